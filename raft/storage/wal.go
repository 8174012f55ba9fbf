package storage

// The on-disk formats of DiskStorage: write-ahead log records and batches,
// snapshot files, file names. All integers are little-endian.
//
// A record is
//
//	length uint32 | crc uint32 | kind byte | payload
//
// where length counts kind and payload, and crc is the CRC-32C (Castagnoli)
// of kind and payload. Every write to the log is one batch: a batch record
// giving the byte length and the record count of the records that follow,
// then those records. One Save is one batch, so on recovery a Save is all or
// nothing, and the batch boundaries tell a torn last write (nothing follows
// it) from damage to data that was already synced (something follows it).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage/vfs"
)

// Record kinds.
const (
	recBatch     byte = 1 // body length uint64, record count uint32
	recHardState byte = 2 // term uint64, votedFor int64 (two's complement: None is -1)
	recEntry     byte = 3 // index uint64, term uint64, type byte, data
	// recSnapshot says a snapshot through index/term was saved, and whether
	// the entries after it were kept (kept byte: 1) or the whole log was
	// discarded (0). Recording the outcome, rather than recomputing it on
	// replay, keeps replay exact when the segments holding the entries it
	// was decided on have been deleted.
	recSnapshot byte = 4 // index uint64, term uint64, kept byte
)

const (
	recHeaderSize       = 8
	batchRecordSize     = recHeaderSize + 1 + 8 + 4
	hardStateRecordSize = recHeaderSize + 1 + 8 + 8
	entryRecordOverhead = recHeaderSize + 1 + 8 + 8 + 1
	snapshotRecordSize  = recHeaderSize + 1 + 8 + 8 + 1
	// segmentHeaderSize is the batch holding the hard state that every
	// segment starts with.
	segmentHeaderSize = batchRecordSize + hardStateRecordSize
	// maxEntryData keeps a record's length within its uint32 field.
	maxEntryData = math.MaxUint32 - (entryRecordOverhead - recHeaderSize)
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// WALCorruptionError reports damage to the log that is not a torn last
// write: data that was synced and read back different.
type WALCorruptionError struct {
	Path   string
	Offset int64
	Reason string
}

func (e *WALCorruptionError) Error() string {
	return fmt.Sprintf("raft: corrupt write-ahead log %s at offset %d: %s", e.Path, e.Offset, e.Reason)
}

func corrupt(path string, off int, format string, args ...any) error {
	return &WALCorruptionError{Path: path, Offset: int64(off), Reason: fmt.Sprintf(format, args...)}
}

// Encoding.

func beginRecord(buf []byte, kind byte) []byte {
	return append(buf, 0, 0, 0, 0, 0, 0, 0, 0, kind)
}

// endRecord fills in the length and CRC of the record that starts at start
// and runs to the end of buf.
func endRecord(buf []byte, start int) {
	body := buf[start+recHeaderSize:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(body, crcTable))
}

// beginBatch reserves room for a batch record; endBatch fills it in once the
// batch's records follow it.
func beginBatch(buf []byte) ([]byte, int) {
	return append(buf, make([]byte, batchRecordSize)...), len(buf)
}

func endBatch(buf []byte, start, count int) {
	buf[start+recHeaderSize] = recBatch
	binary.LittleEndian.PutUint64(buf[start+recHeaderSize+1:], uint64(len(buf)-start-batchRecordSize))
	binary.LittleEndian.PutUint32(buf[start+recHeaderSize+9:], uint32(count))
	endRecord(buf[:start+batchRecordSize], start)
}

func appendHardStateRecord(buf []byte, hs core.HardState) []byte {
	start := len(buf)
	buf = beginRecord(buf, recHardState)
	buf = binary.LittleEndian.AppendUint64(buf, hs.Term)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(int64(hs.VotedFor)))
	endRecord(buf, start)
	return buf
}

func appendEntryRecord(buf []byte, e *core.Entry) []byte {
	start := len(buf)
	buf = beginRecord(buf, recEntry)
	buf = binary.LittleEndian.AppendUint64(buf, e.Index)
	buf = binary.LittleEndian.AppendUint64(buf, e.Term)
	buf = append(buf, byte(e.Type))
	buf = append(buf, e.Data...)
	endRecord(buf, start)
	return buf
}

func appendSnapshotRecord(buf []byte, index, term uint64, kept bool) []byte {
	start := len(buf)
	buf = beginRecord(buf, recSnapshot)
	buf = binary.LittleEndian.AppendUint64(buf, index)
	buf = binary.LittleEndian.AppendUint64(buf, term)
	k := byte(0)
	if kept {
		k = 1
	}
	buf = append(buf, k)
	endRecord(buf, start)
	return buf
}

// Decoding.

type walRecord struct {
	kind    byte
	payload []byte
	off     int // where the record starts
	end     int // where the next one starts
}

type recStatus int

const (
	recOK      recStatus = iota
	recShort             // the record runs past the end of the data
	recDamaged           // zero length or CRC mismatch
)

func readRecord(data []byte, off int) (walRecord, recStatus) {
	if len(data)-off < recHeaderSize {
		return walRecord{}, recShort
	}
	n := binary.LittleEndian.Uint32(data[off:])
	if n == 0 {
		return walRecord{}, recDamaged
	}
	if uint64(n) > uint64(len(data)-off-recHeaderSize) {
		return walRecord{}, recShort
	}
	end := off + recHeaderSize + int(n)
	body := data[off+recHeaderSize : end]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(data[off+4:]) {
		return walRecord{}, recDamaged
	}
	return walRecord{kind: body[0], payload: body[1:], off: off, end: end}, recOK
}

func decodeHardState(p []byte) (core.HardState, bool) {
	if len(p) != 16 {
		return core.HardState{}, false
	}
	v := int64(binary.LittleEndian.Uint64(p[8:]))
	if int64(int(v)) != v {
		return core.HardState{}, false
	}
	return core.HardState{Term: binary.LittleEndian.Uint64(p), VotedFor: int(v)}, true
}

// decodeEntry returns an entry whose Data aliases p.
func decodeEntry(p []byte) (core.Entry, bool) {
	if len(p) < 17 {
		return core.Entry{}, false
	}
	e := core.Entry{
		Index: binary.LittleEndian.Uint64(p),
		Term:  binary.LittleEndian.Uint64(p[8:]),
		Type:  core.EntryType(p[16]),
	}
	if d := p[17:]; len(d) > 0 {
		e.Data = d[:len(d):len(d)]
	}
	return e, true
}

func decodeSnapshotRecord(p []byte) (index, term uint64, kept, ok bool) {
	if len(p) != 17 || p[16] > 1 {
		return 0, 0, false, false
	}
	return binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:]), p[16] == 1, true
}

// walBatch is one write's worth of records, read back.
type walBatch struct {
	off  int
	recs []walRecord
}

// scanSegment hands the batches of one segment to apply, in order, each only
// once all of its records passed their CRC. It returns where the valid data
// ends: at the end of the file, or where only zeros follow (the part of a
// preallocated segment not written yet). Damage is a torn write, and ends
// the valid data, only in the last segment and only when no later batch
// follows it: a batch whose header is damaged with no intact batch header
// anywhere after it, a batch that runs past the end of the file, or a last
// batch with a damaged record that nothing but zeros follows. Any other
// damage is a *WALCorruptionError.
//
// tornByFileEnd is the broken variant (DiskOptions.broken): a batch with a
// damaged record is torn only if it reaches the end of the file, the rule
// of a log that is not preallocated.
//
// What this cannot tell apart: damage to the very last batch of the last
// segment after it was synced looks like a torn write, and drops that batch.
func scanSegment(path string, data []byte, last, tornByFileEnd bool, apply func(walBatch) error) (int, error) {
	var recs []walRecord
	off := 0
	for off < len(data) {
		hdr, st := readRecord(data, off)
		if st != recOK {
			if allZero(data[off:]) {
				// The part of a preallocated segment not written yet.
				return off, nil
			}
			if !last {
				return 0, corrupt(path, off, "damaged batch header")
			}
			next := findBatchHeader(data, off+1)
			if next < 0 {
				return off, nil
			}
			return 0, corrupt(path, off, "damaged batch header, and an intact batch follows at offset %d", next)
		}
		if hdr.kind != recBatch || len(hdr.payload) != 12 {
			return 0, corrupt(path, off, "record of kind %d where a batch should start", hdr.kind)
		}
		bodyLen := binary.LittleEndian.Uint64(hdr.payload)
		count := binary.LittleEndian.Uint32(hdr.payload[8:])
		if bodyLen > uint64(len(data)-hdr.end) {
			if last {
				return off, nil
			}
			return 0, corrupt(path, off, "batch of %d bytes runs past the end of the file", bodyLen)
		}
		end := hdr.end + int(bodyLen)
		recs = recs[:0]
		p := hdr.end
		for p < end {
			r, st := readRecord(data[:end], p)
			if st != recOK {
				// Torn if nothing was written after the batch: the file
				// ends with it, or only the zeros of a preallocated
				// segment follow it (see DiskStorage.newSegment).
				if last && (end == len(data) || !tornByFileEnd && allZero(data[end:])) {
					return off, nil
				}
				if last {
					return 0, corrupt(path, p, "damaged record in a batch that later data follows")
				}
				return 0, corrupt(path, p, "damaged record")
			}
			recs = append(recs, r)
			p = r.end
		}
		if uint64(len(recs)) != uint64(count) {
			return 0, corrupt(path, off, "batch holds %d records, its header says %d", len(recs), count)
		}
		if err := apply(walBatch{off: off, recs: recs}); err != nil {
			return 0, err
		}
		off = end
	}
	return len(data), nil
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// writtenEnd returns the offset past the last byte of data that is not zero:
// where what was ever written to a preallocated segment ends.
func writtenEnd(data []byte) int {
	end := len(data)
	for end >= 8 && binary.LittleEndian.Uint64(data[end-8:]) == 0 {
		end -= 8
	}
	for end > 0 && data[end-1] == 0 {
		end--
	}
	return end
}

// scanTornTail is the broken variant of scanSegment for the last segment
// (DiskOptions.broken.tornTailWhole): it applies the intact records of a
// torn last batch as if the batch were whole.
func scanTornTail(path string, data []byte, apply func(walBatch) error) (int, error) {
	off := 0
	for off < len(data) {
		hdr, st := readRecord(data, off)
		if st != recOK || hdr.kind != recBatch || len(hdr.payload) != 12 {
			return off, nil
		}
		end := min(hdr.end+int(binary.LittleEndian.Uint64(hdr.payload)), len(data))
		var recs []walRecord
		for p := hdr.end; p < end; {
			r, st := readRecord(data[:end], p)
			if st != recOK {
				break
			}
			recs = append(recs, r)
			p = r.end
		}
		if len(recs) > 0 {
			if err := apply(walBatch{off: off, recs: recs}); err != nil {
				return 0, err
			}
			end = recs[len(recs)-1].end
		}
		if end <= hdr.end {
			return off, nil
		}
		off = end
	}
	return len(data), nil
}

// findBatchHeader returns the offset of the first intact batch record at or
// after from, or -1. It is a byte-by-byte search, linear in the data: the
// length field of a batch record is a constant, which filters almost every
// position before any CRC is computed.
func findBatchHeader(data []byte, from int) int {
	for p := from; p+batchRecordSize <= len(data); p++ {
		if binary.LittleEndian.Uint32(data[p:]) != batchRecordSize-recHeaderSize || data[p+recHeaderSize] != recBatch {
			continue
		}
		if _, st := readRecord(data[:p+batchRecordSize], p); st == recOK {
			return p
		}
	}
	return -1
}

// Snapshot files are written as they are streamed: the data first, then,
// once the snapshot is installed, its metadata, a checksum of every block
// of the data, and a footer:
//
//	data | meta | blockCRC uint32 … | metaLen uint32 | blocks uint32 | crc uint32 | magic [8]byte
//
// blockCRC i is the CRC-32C of data block i (snapBlock bytes, the last one
// shorter), so that every read of the data, whatever its offset, checks the
// blocks it touches; crc is the CRC-32C of meta and the block CRCs. meta is
// index uint64, term uint64, size uint64 (of data), voters and learners
// (each a count uint32 and that many int64), and the application's bytes
// (a length uint32 and the bytes).

const (
	snapMagic = "RAFTSNP3"
	// snapMagicJoint ends a snapshot whose configuration is joint: a
	// binary from before joint consensus refuses it as not a snapshot
	// of its format, rather than reading it without its outgoing voters.
	snapMagicJoint = "RAFTSNP4"
	// snapMagicStaged ends a snapshot whose configuration has staged
	// learners (core.Configuration.Staged), for the same reason.
	snapMagicStaged = "RAFTSNP5"
	snapFooterSize  = 4 + 4 + 4 + 8
	snapBlock       = 64 << 10
)

var errBadSnapshot = errors.New("malformed snapshot file")

// ErrSnapshotRead is what a read of a snapshot's data returns when a block
// fails its checksum: the disk returned other bytes than were written.
var ErrSnapshotRead = errors.New("snapshot data fails its checksum")

func encodeSnapshotMeta(m core.SnapshotMeta) []byte {
	b := make([]byte, 0, 8+8+8+4+8*len(m.Config.Voters)+4+8*len(m.Config.Learners)+4+len(m.App))
	b = binary.LittleEndian.AppendUint64(b, m.LastIncludedIndex)
	b = binary.LittleEndian.AppendUint64(b, m.LastIncludedTerm)
	b = binary.LittleEndian.AppendUint64(b, m.Size)
	for _, ids := range [][]int{m.Config.Voters, m.Config.Learners} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ids)))
		for _, id := range ids {
			b = binary.LittleEndian.AppendUint64(b, uint64(int64(id)))
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.App)))
	b = append(b, m.App...)
	// A joint configuration's outgoing voters come last, after the
	// application's data, so that files written before joint consensus
	// existed (nothing after it) read alike.
	// Staged learners come after them (the outgoing list then written
	// even if empty).
	tail := [][]int{}
	switch {
	case len(m.Config.Staged) > 0:
		tail = [][]int{m.Config.Outgoing, m.Config.Staged}
	case m.Config.IsJoint():
		tail = [][]int{m.Config.Outgoing}
	}
	for _, ids := range tail {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ids)))
		for _, id := range ids {
			b = binary.LittleEndian.AppendUint64(b, uint64(int64(id)))
		}
	}
	return b
}

// blockCRCs computes the checksums of data's blocks as data is written.
type blockCRCs struct {
	crcs []uint32 // of the complete blocks
	cur  uint32   // of the block being written
	fill int      // bytes in it
}

func (c *blockCRCs) write(p []byte) {
	for len(p) > 0 {
		n := min(len(p), snapBlock-c.fill)
		c.cur = crc32.Update(c.cur, crcTable, p[:n])
		c.fill += n
		p = p[n:]
		if c.fill == snapBlock {
			c.crcs = append(c.crcs, c.cur)
			c.cur, c.fill = 0, 0
		}
	}
}

// all returns the checksums of every block, the last partial one included.
func (c *blockCRCs) all() []uint32 {
	if c.fill > 0 {
		return append(c.crcs[:len(c.crcs):len(c.crcs)], c.cur)
	}
	return c.crcs
}

// snapshotTrailer is what follows the data: the meta, the block CRCs and
// the footer.
func snapshotTrailer(m core.SnapshotMeta, blocks []uint32) []byte {
	meta := encodeSnapshotMeta(m)
	b := append([]byte(nil), meta...)
	for _, c := range blocks {
		b = binary.LittleEndian.AppendUint32(b, c)
	}
	crc := crc32.Checksum(b, crcTable)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(meta)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(blocks)))
	b = binary.LittleEndian.AppendUint32(b, crc)
	switch {
	case len(m.Config.Staged) > 0:
		return append(b, snapMagicStaged...)
	case m.Config.IsJoint():
		return append(b, snapMagicJoint...)
	}
	return append(b, snapMagic...)
}

func decodeSnapshotMeta(b []byte) (core.SnapshotMeta, error) {
	var m core.SnapshotMeta
	if len(b) < 24 {
		return m, errBadSnapshot
	}
	m.LastIncludedIndex = binary.LittleEndian.Uint64(b)
	m.LastIncludedTerm = binary.LittleEndian.Uint64(b[8:])
	m.Size = binary.LittleEndian.Uint64(b[16:])
	b = b[24:]
	readIDs := func() ([]int, error) {
		if len(b) < 4 {
			return nil, errBadSnapshot
		}
		n := uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
		if n > uint64(len(b))/8 {
			return nil, errBadSnapshot
		}
		var ids []int
		for range n {
			v := int64(binary.LittleEndian.Uint64(b))
			if int64(int(v)) != v {
				return nil, errBadSnapshot
			}
			ids = append(ids, int(v))
			b = b[8:]
		}
		return ids, nil
	}
	var err error
	if m.Config.Voters, err = readIDs(); err != nil {
		return m, err
	}
	if m.Config.Learners, err = readIDs(); err != nil {
		return m, err
	}
	if len(b) < 4 || uint64(binary.LittleEndian.Uint32(b)) > uint64(len(b)-4) {
		return m, errBadSnapshot
	}
	n := int(binary.LittleEndian.Uint32(b))
	if app := b[4 : 4+n]; len(app) > 0 {
		m.App = append([]byte(nil), app...)
	}
	if b = b[4+n:]; len(b) > 0 {
		if m.Config.Outgoing, err = readIDs(); err != nil {
			return m, err
		}
		if len(b) > 0 {
			if m.Config.Staged, err = readIDs(); err != nil {
				return m, err
			}
			if len(m.Config.Staged) == 0 || len(b) != 0 || !m.Config.StagedAreLearners() {
				return m, errBadSnapshot
			}
		} else if len(m.Config.Outgoing) == 0 {
			return m, errBadSnapshot
		}
	}
	return m, nil
}

// snapshotFile is an open snapshot file: its metadata and block checksums.
type snapshotFile struct {
	f      vfs.File
	path   string
	meta   core.SnapshotMeta
	blocks []uint32
}

// openSnapshotFile opens a snapshot file and reads its trailer; with
// verify it also reads all the data through the block checksums.
func openSnapshotFile(fsys vfs.FS, path string, verify bool) (*snapshotFile, error) {
	size, err := fsys.Size(path)
	if err != nil {
		return nil, err
	}
	if size < snapFooterSize {
		return nil, errBadSnapshot
	}
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	sf, err := readSnapshotTrailer(f, path, size)
	if err == nil && verify {
		err = sf.verifyAll()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return sf, nil
}

func readSnapshotTrailer(f vfs.File, path string, size int64) (*snapshotFile, error) {
	footer := make([]byte, snapFooterSize)
	if _, err := f.ReadAt(footer, size-snapFooterSize); err != nil {
		return nil, err
	}
	metaLen := int64(binary.LittleEndian.Uint32(footer))
	nblocks := int64(binary.LittleEndian.Uint32(footer[4:]))
	rest := size - snapFooterSize
	if magic := string(footer[12:]); magic != snapMagic && magic != snapMagicJoint && magic != snapMagicStaged || metaLen > rest || nblocks > (rest-metaLen)/4 {
		return nil, errBadSnapshot
	}
	trailer := make([]byte, metaLen+4*nblocks)
	dataEnd := rest - int64(len(trailer))
	if _, err := f.ReadAt(trailer, dataEnd); err != nil {
		return nil, err
	}
	if crc32.Checksum(trailer, crcTable) != binary.LittleEndian.Uint32(footer[8:]) {
		return nil, errors.New("snapshot file's metadata fails its CRC")
	}
	m, err := decodeSnapshotMeta(trailer[:metaLen])
	if err != nil {
		return nil, err
	}
	if m.Size != uint64(dataEnd) || nblocks != (dataEnd+snapBlock-1)/snapBlock {
		return nil, errBadSnapshot
	}
	sf := &snapshotFile{f: f, path: path, meta: m, blocks: make([]uint32, nblocks)}
	for i := range sf.blocks {
		sf.blocks[i] = binary.LittleEndian.Uint32(trailer[metaLen+4*int64(i):])
	}
	return sf, nil
}

// ReadAt reads data, checking every block it touches.
func (sf *snapshotFile) ReadAt(p []byte, off int64) (int, error) {
	size := int64(sf.meta.Size)
	if off >= size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), size-off)
	var block []byte
	n := 0
	for int64(n) < want {
		pos := off + int64(n)
		b := pos / snapBlock
		start := b * snapBlock
		end := min(start+snapBlock, size)
		if cap(block) < int(end-start) {
			block = make([]byte, end-start)
		}
		block = block[:end-start]
		if _, err := sf.f.ReadAt(block, start); err != nil {
			return n, fmt.Errorf("raft: disk storage: reading %s: %w", sf.path, err)
		}
		if crc32.Checksum(block, crcTable) != sf.blocks[b] {
			return n, fmt.Errorf("raft: disk storage: %s at offset %d: %w", sf.path, start, ErrSnapshotRead)
		}
		n += copy(p[n:want], block[pos-start:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (sf *snapshotFile) verifyAll() error {
	buf := make([]byte, snapBlock)
	for off := int64(0); off < int64(sf.meta.Size); off += snapBlock {
		if _, err := sf.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	return nil
}

func (sf *snapshotFile) Close() error            { return sf.f.Close() }
func (sf *snapshotFile) Meta() core.SnapshotMeta { return sf.meta }

// File names. The numbers are fixed-width hex so that names sort by them.

func segmentName(seq, firstIndex uint64) string {
	return fmt.Sprintf("wal-%016x-%016x.log", seq, firstIndex)
}

func snapshotName(index, term uint64) string {
	return fmt.Sprintf("snap-%016x-%016x.snap", index, term)
}

const snapTempSuffix = ".tmp"

// parseName parses the two numbers of a segment or snapshot file name.
func parseName(name, prefix, suffix string) (a, b uint64, ok bool) {
	rest, ok1 := strings.CutPrefix(name, prefix)
	rest, ok2 := strings.CutSuffix(rest, suffix)
	x, y, ok3 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || !ok3 || len(x) != 16 || len(y) != 16 {
		return 0, 0, false
	}
	a, err1 := strconv.ParseUint(x, 16, 64)
	b, err2 := strconv.ParseUint(y, 16, 64)
	return a, b, err1 == nil && err2 == nil
}
