package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"raft-consensus/raft/core"
	"raft-consensus/raft/internal/wire"
	"raft-consensus/raft/storage/vfs"
)

// SharedLog is one write-ahead log for many Raft groups on one server (as
// TiKV's raft-engine and dragonboat's LogDB are): every group's entries,
// hard states and snapshots are records of one stream of segment files,
// and one Sync makes what all of them saved since the last one durable:
// one fsync for a whole step batch of a multi-raft host, however many
// groups it touched.
//
// Each group's Storage (Group) keeps its image in memory (a MemoryStorage)
// and appends a record to the log for each change; the log is read only
// to recover. A group's Save and InstallSnapshot return before the record
// is durable: the host calls Sync before anything that depends on them
// leaves it (its messages, its replies, its clients' answers), which keeps
// the rule of Figure 2 (respond after updating stable storage) for every
// group at once.
//
// Old segments are deleted once no group needs them. A group needs the
// segments holding its latest hard state, its latest snapshot and the
// entries of its log; a group that has not written for a long time and
// pins the oldest segment is written again (a checkpoint of its state) at
// the head of the log, so that the log does not grow without end.
type SharedLog struct {
	fs   vfs.FS
	dir  string
	opts SharedOptions

	mu      sync.Mutex
	groups  map[uint64]*SharedGroup
	segs    []uint64 // sequence numbers of the segment files, oldest first
	f       vfs.File // the newest segment, open for appending
	size    int64    // its size
	pending []byte   // records not yet written
	failed  error
	stats   SharedStats
	closed  bool
}

// SharedOptions configure a SharedLog.
type SharedOptions struct {
	// SegmentBytes is the size past which a new segment starts (default
	// 4 MiB).
	SegmentBytes int64
	// MaxSegments is how many segments the log keeps before it writes the
	// groups that pin the oldest again (default 4).
	MaxSegments int

	broken brokenShared
}

type brokenShared struct {
	// noSync writes without fsync: what a crash takes was acknowledged.
	noSync bool
}

// SharedStats count what the log did.
type SharedStats struct {
	Syncs, Records, Bytes, Checkpoints, RemovedSegments uint64
}

// SharedGroup is one group's Storage in a SharedLog.
type SharedGroup struct {
	log *SharedLog
	id  uint64
	mem *MemoryStorage
	// Where the group's live records are, by segment: the latest hard
	// state's, the latest snapshot's (0: none), and the runs of entries
	// still in the log.
	hardSeg, snapSeg uint64
	runs             []entryRun
	dropped          bool // Drop forgot it: it writes nothing more
}

// errDropped is the error of a write to a group the log dropped.
var errDropped = errors.New("shared log: the group was dropped")

// entryRun is entries first..last of a group, written in segment seg.
type entryRun struct {
	first, last, seg uint64
}

const (
	sharedSave     = 1
	sharedSnapshot = 2
	// sharedDrop forgets a group: its earlier records count no more, and
	// records after it are a new group of the same id, started empty.
	sharedDrop  = 3
	sharedMagic = "RAFTSHL1"
	recHeader   = 8 // length, CRC
)

var errBadRecord = errors.New("malformed shared log record")

// OpenSharedLog opens (or creates) the shared log in dir and recovers
// every group's state from it. A torn record at the end of the newest
// segment (a crash in the middle of a write) is cut off; a bad record
// anywhere else is corruption, and an error.
func OpenSharedLog(fs vfs.FS, dir string, opts SharedOptions) (*SharedLog, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 4 << 20
	}
	if opts.MaxSegments <= 1 {
		opts.MaxSegments = 4
	}
	l := &SharedLog{fs: fs, dir: dir, opts: opts, groups: map[uint64]*SharedGroup{}}
	if err := fs.MkdirAll(dir); err != nil {
		return nil, err
	}
	if err := fs.SyncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	names, err := fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		var seq uint64
		if _, err := fmt.Sscanf(name, "shared-%016x.log", &seq); err == nil && name == segName(seq) {
			l.segs = append(l.segs, seq)
		}
	}
	slices.Sort(l.segs)
	// Read every record first: each group's latest snapshot goes in before
	// anything else, since the segments with the entries it covers may be
	// gone (and a save of later entries would then leave a gap).
	type record struct {
		seq  uint64
		body []byte
	}
	var records []record
	for i, seq := range l.segs {
		bodies, err := l.read(seq, i == len(l.segs)-1)
		if err != nil {
			return nil, err
		}
		for _, b := range bodies {
			records = append(records, record{seq, b})
		}
	}
	// A group's records before its latest drop are forgotten.
	dropped := map[uint64]int{} // group → position of its latest drop record
	for i, r := range records {
		if len(r.body) > 0 && r.body[0] == sharedDrop {
			id, err := dropRecordGroup(r.body)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", l.path(r.seq), err)
			}
			dropped[id] = i
		}
	}
	live := func(i int, body []byte) bool {
		if len(body) < 2 {
			return true // malformed: apply says so
		}
		id, n := binary.Uvarint(body[1:])
		d, ok := dropped[id]
		return n <= 0 || !ok || i > d
	}
	latest := map[uint64][]byte{}
	for i, r := range records {
		if len(r.body) > 0 && r.body[0] == sharedSnapshot && live(i, r.body) {
			id, index, err := snapshotRecordIndex(r.body)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", l.path(r.seq), err)
			}
			if prev, ok := latest[id]; !ok {
				latest[id] = r.body
			} else if _, pi, _ := snapshotRecordIndex(prev); pi < index {
				latest[id] = r.body
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(latest)) {
		if err := l.apply(0, latest[id]); err != nil {
			return nil, err
		}
	}
	for i, r := range records {
		if !live(i, r.body) {
			continue
		}
		if err := l.apply(r.seq, r.body); err != nil {
			return nil, fmt.Errorf("%s: %w", l.path(r.seq), err)
		}
	}
	if err := l.startSegment(); err != nil {
		return nil, err
	}
	return l, nil
}

// Groups lists the groups the log holds state of, in order.
func (l *SharedLog) Groups() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []uint64
	for id, g := range l.groups {
		if hs, snap, ents, _ := g.mem.Load(); hs.Term != 0 || snap != nil || len(ents) > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Drop forgets group id (a replica destroyed for good): its records count
// no more, in this log and after a recovery, and its segments are no
// longer kept for it; a group of that id made later starts empty. Like
// every record, the drop is durable at the next Sync. The group's Storage
// must not be used again.
func (l *SharedLog) Drop(id uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	if g := l.groups[id]; g != nil {
		g.dropped = true
		delete(l.groups, id)
	}
	b := append([]byte{sharedDrop}, binary.AppendUvarint(nil, id)...)
	l.appendLocked(b)
	return nil
}

func dropRecordGroup(body []byte) (uint64, error) {
	d := recReader{wire.Decoder{B: body[1:]}}
	id := d.Uvarint()
	if d.Failed || len(d.B) != 0 {
		return 0, errBadRecord
	}
	return id, nil
}

// snapshotRecordIndex reads a snapshot record's group and last index.
func snapshotRecordIndex(body []byte) (id, index uint64, err error) {
	d := recReader{wire.Decoder{B: body[1:]}}
	id = d.Uvarint()
	meta, err := decodeSnapshotMeta(d.bytes())
	if err != nil || d.Failed {
		return 0, 0, errBadRecord
	}
	return id, meta.LastIncludedIndex, nil
}

func segName(seq uint64) string { return fmt.Sprintf("shared-%016x.log", seq) }

func (l *SharedLog) path(seq uint64) string { return filepath.Join(l.dir, segName(seq)) }

// read returns one segment's records. A torn record at the end of the
// newest segment is cut off the file; a bad one elsewhere is an error.
func (l *SharedLog) read(seq uint64, last bool) ([][]byte, error) {
	data, err := l.fs.ReadFile(l.path(seq))
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(data, []byte(sharedMagic)) {
		if last && bytes.HasPrefix([]byte(sharedMagic), data[:writtenEnd(data)]) {
			// Created, never written whole (a crash in startSegment): it
			// goes, or the next open would find it in the middle.
			if err := l.fs.Remove(l.path(seq)); err != nil {
				return nil, err
			}
			l.segs = l.segs[:len(l.segs)-1]
			return nil, l.fs.SyncDir(l.dir)
		}
		return nil, fmt.Errorf("%s: not a shared log segment", l.path(seq))
	}
	var bodies [][]byte
	off := len(sharedMagic)
	reread := false
	for off < len(data) {
		n, body, ok := readSharedRecord(data[off:])
		if ok {
			bodies = append(bodies, body)
			off += n
			continue
		}
		if allZero(data[off:]) {
			// The part of a preallocated segment not written yet.
			return bodies, nil
		}
		if !reread {
			// Read the segment once more before judging it: a read that
			// returned other bytes than the disk holds must not cut
			// acknowledged records.
			reread = true
			again, err := l.fs.ReadFile(l.path(seq))
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(again, data) {
				data, bodies, off = again, nil, len(sharedMagic)
				continue
			}
		}
		if !last {
			return nil, fmt.Errorf("%s at offset %d: %w (a segment that is not the newest is damaged)", l.path(seq), off, errBadRecord)
		}
		if !tornTail(data[off:]) {
			return nil, fmt.Errorf("%s at offset %d: %w, with records after it: the disk returned other bytes than were written",
				l.path(seq), off, errBadRecord)
		}
		// A torn write at the end: what follows was never acknowledged.
		// Zero it (the file keeps its preallocated size).
		f, err := l.fs.OpenFile(l.path(seq), os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		// Body first, then the header: a crash in between leaves a record
		// header followed by zeros, which tornTail takes for torn.
		err = zeroRange(f, int64(off)+recHeader, int64(writtenEnd(data)))
		if err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = zeroRange(f, int64(off), min(int64(off)+recHeader, int64(writtenEnd(data))))
		}
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		return bodies, err
	}
	return bodies, nil
}

// tornTail reports whether a bad record at the end of the newest segment
// is a write cut short by a crash: the record runs past the end of the
// file, or everything after the record it claims to be is zeros (a torn
// write that left zeros past its cut). A bad record followed by more data
// is corruption.
func tornTail(b []byte) bool {
	if len(b) < recHeader {
		return true
	}
	switch n := int(binary.LittleEndian.Uint32(b)); {
	case n > len(b)-recHeader:
		return true // cut short
	case n == 0:
		// The length zeroed (by a crash while cutting a torn record) but
		// maybe not yet its CRC.
		return allZero(b[recHeader:])
	default:
		return allZero(b[recHeader+n:])
	}
}

// readSharedRecord reads one record: its size in all, its body, and
// whether it is whole and its checksum right.
func readSharedRecord(b []byte) (int, []byte, bool) {
	if len(b) < recHeader {
		return 0, nil, false
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n == 0 || n > len(b)-recHeader {
		return 0, nil, false
	}
	body := b[recHeader : recHeader+n]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return 0, nil, false
	}
	return recHeader + n, body, true
}

// apply replays one record.
func (l *SharedLog) apply(seq uint64, body []byte) error {
	d := recReader{wire.Decoder{B: body}}
	kind := d.Byte()
	if kind == sharedDrop {
		// Replayed only when it is the group's latest, with nothing of
		// the group before it: the group is simply not there.
		if _, err := dropRecordGroup(body); err != nil {
			return err
		}
		return nil
	}
	g := l.groupLocked(d.Uvarint())
	switch kind {
	case sharedSave:
		var hs *core.HardState
		if d.Byte() == 1 {
			hs = &core.HardState{Term: d.Uvarint(), VotedFor: int(d.Varint())}
		}
		n := d.Uvarint()
		if d.Failed || n > uint64(len(d.B)) {
			return errBadRecord
		}
		ents := make([]core.Entry, n)
		for i := range ents {
			ents[i] = core.Entry{Index: d.Uvarint(), Term: d.Uvarint(), Type: core.EntryType(d.Byte()), Data: d.bytes()}
		}
		if d.Failed || len(d.B) != 0 {
			return errBadRecord
		}
		switch err := g.mem.Save(hs, ents); {
		case errors.Is(err, ErrUnavailable) && seq != 0:
			// Entries that later records replaced, whose predecessors'
			// segment is gone: superseded. Its hard state (Save took it
			// first) and the records after it are what counts.
			g.wrote(seq, hs != nil, nil)
		case err != nil:
			return err
		default:
			g.wrote(seq, hs != nil, ents)
		}
	case sharedSnapshot:
		meta, err := decodeSnapshotMeta(d.bytes())
		data := d.bytes()
		kept := d.Byte() == 1
		if err != nil || d.Failed || len(d.B) != 0 {
			return errBadRecord
		}
		w, _ := g.mem.CreateSnapshot(meta.LastIncludedIndex)
		w.Write(data)
		w.Close()
		if err := g.mem.InstallSnapshot(meta, w); err != nil {
			return err
		}
		if !kept {
			// The snapshot replaced the whole log (Figure 13, step 7):
			// what earlier records put after it is gone, even when the
			// snapshot itself went in first.
			g.mem.discardAfterSnapshot(meta.LastIncludedIndex)
		}
		g.snapshotted(seq, meta.LastIncludedIndex, kept)
	default:
		return errBadRecord
	}
	return nil
}

// startSegment begins a new segment after the newest.
func (l *SharedLog) startSegment() error {
	seq := uint64(1)
	if n := len(l.segs); n > 0 {
		seq = l.segs[n-1] + 1
	}
	f, err := l.fs.OpenFile(l.path(seq), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	// Preallocated, as DiskStorage's segments are (see newSegment there):
	// each Sync then writes over blocks the file has, with fdatasync.
	_, err = f.WriteAt([]byte(sharedMagic), 0)
	if err == nil {
		err = zeroRange(f, int64(len(sharedMagic)), l.opts.SegmentBytes)
	}
	if err != nil {
		f.Close()
		return err
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f, l.size = f, int64(len(sharedMagic))
	l.segs = append(l.segs, seq)
	if l.opts.broken.noSync {
		return nil
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return l.fs.SyncDir(l.dir)
}

// Group returns group id's storage, empty if the log holds nothing of it.
func (l *SharedLog) Group(id uint64) *SharedGroup {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.groupLocked(id)
}

func (l *SharedLog) groupLocked(id uint64) *SharedGroup {
	g := l.groups[id]
	if g == nil {
		g = &SharedGroup{log: l, id: id, mem: NewMemoryStorage()}
		l.groups[id] = g
	}
	return g
}

// Stats returns the log's counters.
func (l *SharedLog) Stats() SharedStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Sync writes every record appended since the last Sync and makes them
// durable with one fsync; then it starts a new segment if the current one
// is full, and deletes the segments no group needs.
func (l *SharedLog) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	if len(l.pending) == 0 {
		return nil
	}
	if err := l.syncLocked(); err != nil {
		l.failed = fmt.Errorf("shared log: %w", err)
		return l.failed
	}
	return nil
}

func (l *SharedLog) syncLocked() error {
	if err := l.writePendingLocked(); err != nil {
		return err
	}
	if l.size < l.opts.SegmentBytes {
		return nil
	}
	if err := l.startSegment(); err != nil {
		return err
	}
	if len(l.segs) > l.opts.MaxSegments {
		// The groups that pin the oldest segment are written again at the
		// head, durably, before any segment goes: until then the old one
		// is their only copy.
		oldest := l.segs[0]
		for _, id := range slices.Sorted(maps.Keys(l.groups)) {
			if g := l.groups[id]; g.liveFrom() <= oldest {
				g.checkpointLocked()
			}
		}
		if len(l.pending) > 0 {
			if err := l.writePendingLocked(); err != nil {
				return err
			}
		}
	}
	return l.collectLocked()
}

// writePendingLocked writes the pending records and fsyncs them.
func (l *SharedLog) writePendingLocked() error {
	if _, err := l.f.WriteAt(l.pending, l.size); err != nil {
		return err
	}
	l.size += int64(len(l.pending))
	l.stats.Bytes += uint64(len(l.pending))
	l.pending = l.pending[:0]
	if !l.opts.broken.noSync {
		if err := l.f.Datasync(); err != nil {
			return err
		}
	}
	l.stats.Syncs++
	return nil
}

// collectLocked deletes the oldest segments that no group needs.
func (l *SharedLog) collectLocked() error {
	need := l.segs[len(l.segs)-1]
	for _, g := range l.groups {
		need = min(need, g.liveFrom())
	}
	removed := false
	for len(l.segs) > 1 && l.segs[0] < need {
		if err := l.fs.Remove(l.path(l.segs[0])); err != nil {
			return err
		}
		l.segs = l.segs[1:]
		l.stats.RemovedSegments++
		removed = true
	}
	if removed && !l.opts.broken.noSync {
		return l.fs.SyncDir(l.dir)
	}
	return nil
}

// Close writes nothing more and closes the segment. Records appended since
// the last Sync are lost, as a crash would lose them.
func (l *SharedLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.f.Close()
}

// maxRecord bounds a record (its length is a uint32).
const maxRecord = 1 << 30

// usableLocked says why the log takes nothing more, or nil.
func (l *SharedLog) usableLocked() error {
	if l.failed != nil {
		return l.failed
	}
	if l.closed {
		return ErrClosed
	}
	return nil
}

// appendLocked adds one record to what the next Sync writes. A record too
// large for the format stops the log.
func (l *SharedLog) appendLocked(body []byte) {
	if len(body) > maxRecord {
		l.failed = fmt.Errorf("shared log: a record of %d bytes (at most %d)", len(body), maxRecord)
		return
	}
	var hdr [recHeader]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(body)))
	binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(body, crcTable))
	l.pending = append(append(l.pending, hdr[:]...), body...)
	l.stats.Records++
}

// current is the segment the next records go to.
func (l *SharedLog) current() uint64 { return l.segs[len(l.segs)-1] }

// liveFrom is the oldest segment the group needs.
func (g *SharedGroup) liveFrom() uint64 {
	need := g.hardSeg
	if g.snapSeg != 0 {
		need = min(need, g.snapSeg)
	}
	if len(g.runs) > 0 {
		need = min(need, g.runs[0].seg)
	}
	if need == 0 { // nothing written: needs nothing
		return ^uint64(0)
	}
	return need
}

// wrote records where a save went.
func (g *SharedGroup) wrote(seq uint64, hard bool, ents []core.Entry) {
	if hard {
		g.hardSeg = seq
	}
	if len(ents) == 0 {
		return
	}
	first, last := ents[0].Index, ents[len(ents)-1].Index
	snap := g.mem.snapshotIndex()
	if last <= snap {
		return // all covered by the snapshot: the image took none of them
	}
	// Entries from first on replace what was there. The runs are in index
	// order (each write appends after what it keeps), so what they replace
	// is at the end: a write costs what it replaces, not the whole list.
	i := len(g.runs)
	for i > 0 && g.runs[i-1].first >= first {
		i--
	}
	g.runs = g.runs[:i]
	if i > 0 {
		g.runs[i-1].last = min(g.runs[i-1].last, first-1)
	}
	// What the snapshot covers is not needed any more (from the start).
	j := 0
	for j < len(g.runs) && g.runs[j].last <= snap {
		j++
	}
	if j > 0 {
		g.runs = append(g.runs[:0], g.runs[j:]...)
	}
	// A write that follows the last run in its segment extends it: one run
	// per segment and truncation, not one per write.
	if n := len(g.runs); n > 0 && g.runs[n-1].seg == seq && g.runs[n-1].last+1 == first {
		g.runs[n-1].last = last
	} else {
		g.runs = append(g.runs, entryRun{first: first, last: last, seg: seq})
	}
	if g.hardSeg == 0 {
		g.hardSeg = seq
	}
}

// snapshotted records a snapshot through index written in seg; kept says
// whether the entries after it stayed.
func (g *SharedGroup) snapshotted(seq, index uint64, kept bool) {
	g.snapSeg = seq
	keep := g.runs[:0]
	for _, r := range g.runs {
		if r.last <= index || !kept {
			continue
		}
		keep = append(keep, r)
	}
	g.runs = keep
	if g.hardSeg == 0 {
		g.hardSeg = seq
	}
}

// checkpointLocked writes the group's whole state again at the head of
// the log: its snapshot, then its hard state and entries.
func (g *SharedGroup) checkpointLocked() {
	l := g.log
	hs, meta, ents, _ := g.mem.Load()
	if meta != nil {
		if r, err := g.mem.OpenSnapshot(); err == nil && r != nil {
			data, _ := io.ReadAll(io.NewSectionReader(r, 0, int64(r.Meta().Size)))
			r.Close()
			l.appendLocked(snapshotRecord(g.id, *meta, data, true))
			g.snapshotted(l.current(), meta.LastIncludedIndex, true)
		}
	}
	l.appendLocked(saveRecord(g.id, &hs, ents))
	g.runs = g.runs[:0] // the whole log is in this record now
	g.wrote(l.current(), true, ents)
	l.stats.Checkpoints++
}

func saveRecord(id uint64, hs *core.HardState, ents []core.Entry) []byte {
	b := make([]byte, 0, 16+len(ents)*24)
	b = append(b, sharedSave)
	b = binary.AppendUvarint(b, id)
	if hs != nil {
		b = append(b, 1)
		b = binary.AppendUvarint(b, hs.Term)
		b = binary.AppendVarint(b, int64(hs.VotedFor))
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(ents)))
	for i := range ents {
		e := &ents[i]
		b = binary.AppendUvarint(b, e.Index)
		b = binary.AppendUvarint(b, e.Term)
		b = append(b, byte(e.Type))
		b = binary.AppendUvarint(b, uint64(len(e.Data)))
		b = append(b, e.Data...)
	}
	return b
}

// snapshotRecord is a snapshot, its data, and whether the entries after it
// were kept (or the whole log replaced).
func snapshotRecord(id uint64, meta core.SnapshotMeta, data []byte, kept bool) []byte {
	m := encodeSnapshotMeta(meta)
	b := make([]byte, 0, 24+len(m)+len(data))
	b = append(b, sharedSnapshot)
	b = binary.AppendUvarint(b, id)
	b = binary.AppendUvarint(b, uint64(len(m)))
	b = append(b, m...)
	b = binary.AppendUvarint(b, uint64(len(data)))
	b = append(b, data...)
	if kept {
		return append(b, 1)
	}
	return append(b, 0)
}

// recReader decodes a record's body. Its byte strings are copies: the
// segment's bytes they come from are let go after recovery.
type recReader struct{ wire.Decoder }

func (d *recReader) bytes() []byte { return slices.Clone(d.Bytes()) }

// Load implements Storage.
func (g *SharedGroup) Load() (core.HardState, *core.SnapshotMeta, []core.Entry, error) {
	return g.mem.Load()
}

// Save implements Storage: the change is in the group's image at once and
// in the log's next Sync, which the host runs before anything that depends
// on it leaves.
func (g *SharedGroup) Save(hs *core.HardState, entries []core.Entry) error {
	l := g.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	if g.dropped {
		return errDropped
	}
	if err := g.mem.Save(hs, entries); err != nil {
		return err
	}
	if hs == nil && len(entries) == 0 {
		return nil
	}
	l.appendLocked(saveRecord(g.id, hs, entries))
	g.wrote(l.current(), hs != nil, entries)
	return nil
}

// CreateSnapshot implements Storage: the data is kept in memory until
// InstallSnapshot logs it.
func (g *SharedGroup) CreateSnapshot(index uint64) (SnapshotWriter, error) {
	return g.mem.CreateSnapshot(index)
}

// InstallSnapshot implements Storage: the snapshot, data and all, is a
// record of the log's next Sync.
func (g *SharedGroup) InstallSnapshot(meta core.SnapshotMeta, w SnapshotWriter) error {
	l := g.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	if g.dropped {
		w.Abort()
		return errDropped
	}
	before := g.mem.snapshotIndex()
	kept := g.mem.holds(meta.LastIncludedIndex, meta.LastIncludedTerm)
	if err := g.mem.InstallSnapshot(meta, w); err != nil {
		return err
	}
	if g.mem.snapshotIndex() == before {
		return nil // not newer: thrown away
	}
	r, err := g.mem.OpenSnapshot()
	if err != nil || r == nil {
		return fmt.Errorf("shared log: reading back the snapshot through %d: %v", meta.LastIncludedIndex, err)
	}
	data, err := io.ReadAll(io.NewSectionReader(r, 0, int64(meta.Size)))
	r.Close()
	if err != nil {
		return err
	}
	l.appendLocked(snapshotRecord(g.id, meta, data, kept))
	g.snapshotted(l.current(), meta.LastIncludedIndex, kept)
	return nil
}

// OpenSnapshot implements Storage.
func (g *SharedGroup) OpenSnapshot() (SnapshotReader, error) { return g.mem.OpenSnapshot() }

// Close implements Storage: a group's storage closes with its log.
func (g *SharedGroup) Close() error { return nil }

func (l *SharedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, len(l.segs))
	for i, s := range l.segs {
		names[i] = segName(s)
	}
	return fmt.Sprintf("shared log %s: %s", l.dir, strings.Join(names, ", "))
}
