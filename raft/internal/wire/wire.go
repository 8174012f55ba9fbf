// Package wire reads the varint-and-bytes encodings of the project's
// binary formats: the transport's frames and hellos, the KV commands and
// the shared log's records. One Decoder remembers its first failure, so
// that a malformed input is refused without a panic, and never allocates
// more than the input holds.
package wire

import (
	"encoding/binary"
	"math"
)

// Decoder reads from B, which it consumes; Failed says that something
// read was malformed (every later read then returns zero values).
type Decoder struct {
	B      []byte
	Failed bool
}

// Fail marks the input malformed.
func (d *Decoder) Fail() { d.Failed, d.B = true, nil }

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if len(d.B) == 0 {
		d.Fail()
		return 0
	}
	v := d.B[0]
	d.B = d.B[1:]
	return v
}

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.Fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.Fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Int reads a signed varint that fits an int.
func (d *Decoder) Int() int {
	v := d.Varint()
	if v < math.MinInt || v > math.MaxInt {
		d.Fail()
		return 0
	}
	return int(v)
}

// Length reads the count of a list whose elements take at least a byte
// each: a count beyond the bytes left is malformed input (0 then), so a
// hostile input cannot make the caller allocate more than it sent.
func (d *Decoder) Length() uint64 {
	n := d.Uvarint()
	if n > uint64(len(d.B)) {
		d.Fail()
		return 0
	}
	return n
}

// Bytes reads a length-prefixed byte string aliasing the input, nil if
// empty.
func (d *Decoder) Bytes() []byte {
	n := d.Length()
	if n == 0 {
		return nil
	}
	v := d.B[:n:n]
	d.B = d.B[n:]
	return v
}

// Str reads a length-prefixed string.
func (d *Decoder) Str() string { return string(d.Bytes()) }
