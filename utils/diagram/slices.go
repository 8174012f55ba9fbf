package diagram

import (
	"bytes"
	"fmt"
	"time"
)

// sliceSize is how many arrows or events share one <g class="slice">. The
// script moves only the slices near the visible part of the time axis and
// hides the rest, so zooming into a 20k-event run stays quick.
const sliceSize = 200

type slice struct {
	buf    bytes.Buffer
	t0, t1 time.Duration
	n      int
}

func (d *diagram) beginSlices() {
	d.slice = &slice{}
	d.p.sink = &d.slice.buf
}

// sliceItem accounts for the element just written, from t0 to t1.
func (d *diagram) sliceItem(t0, t1 time.Duration) {
	s := d.slice
	if s.n == 0 || t0 < s.t0 {
		s.t0 = t0
	}
	if s.n == 0 || t1 > s.t1 {
		s.t1 = t1
	}
	s.n++
	if s.n >= sliceSize {
		d.flushSlice()
	}
}

func (d *diagram) flushSlice() {
	s := d.slice
	if s.n > 0 {
		fmt.Fprintf(d.p.w, "<g class=\"slice\" data-t0=\"%d\" data-t1=\"%d\">\n", d.us(s.t0), d.us(s.t1))
		d.p.w.Write(s.buf.Bytes())
		d.p.w.WriteString("</g>\n")
	}
	s.buf.Reset()
	s.n = 0
}

func (d *diagram) endSlices() {
	d.flushSlice()
	d.p.sink = nil
}
