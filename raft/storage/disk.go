package storage

// DiskStorage keeps the hard state, the log and the latest snapshot in a
// directory, in a write-ahead log of its own rather than in an embedded
// database such as go.etcd.io/bbolt, because a Raft log is append-mostly:
//
//   - One Save is one write and one sync. A bbolt commit rewrites the B+tree
//     pages on the path to every changed key, then syncs twice (data pages,
//     then the meta page).
//   - Appending costs O(len(entries)) whatever the length of the log: the
//     records go at the end of the last segment file, nothing else is touched.
//   - Every record carries a CRC, and every write is one length-prefixed
//     batch, so a torn last write is detected explicitly and cut off, while
//     damage to data that was already synced is reported, not loaded.
//   - The log is split into segment files, so compaction after a snapshot is
//     deleting whole files.
//   - No dependency outside the standard library.
//
// The price is the code below, and that a suffix overwritten by a follower
// stays in the file until its segment is deleted (replay knows that an entry
// record replaces every entry at or after its index recorded before it).
//
// Memory: entries are not kept in memory. Each stored entry costs 32 bytes
// of index (term, segment, offset, size); Load, called once at start, reads
// the records back from the files (pread, CRC checked again; the open that
// built the index read them already, a cost paid once per start). Snapshots are
// streamed: their data is written and read through files, never held whole
// (only their metadata is kept).
//
// Segments are preallocated (newSegment): created at their full size and
// filled with zeros, so that a Save overwrites blocks the file already has
// and syncs with fdatasync(2) (File.Datasync), which then has no metadata
// to commit. Appending to a file would grow it with every Save, and
// fdatasync would have to commit the new size as fsync does. So the end of
// the data is not the end of the file: the scan stops where only zeros
// follow.
//
// Layout of the directory:
//
//	wal-<seq>-<first index>.log   segments, <seq> consecutive; see wal.go
//	snap-<index>-<term>.snap      the latest snapshot (older ones are removed)
//	snap-<index>-w<n>.tmp         a snapshot being written; removed on open

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage/vfs"
)

// DiskOptions tune a DiskStorage.
type DiskOptions struct {
	// NoSync skips every fsync: Save returns before the data is durable.
	// For benchmarks and tests only.
	NoSync bool
	// SegmentBytes is the size at which the log moves on to a new segment
	// file (default 8 MiB). A single Save is never split, so a segment can
	// be larger.
	SegmentBytes int64
	// FS is the file system (default: the operating system's).
	FS vfs.FS

	// broken switches off rules of the storage, so that tests can show the
	// simulation catches the bugs that follow. Never set otherwise.
	broken brokenDisk
}

type brokenDisk struct {
	// ackBeforeSync returns from Save and InstallSnapshot without syncing.
	ackBeforeSync bool
	// tornTailWhole loads the complete records of a torn last batch, as if
	// the write had completed.
	tornTailWhole bool
	// tornByFileEnd takes a batch with a damaged record for a torn write
	// only if it ends the file, as if segments were not preallocated: a
	// torn write followed by the segment's zeros then reads as corruption.
	tornByFileEnd bool
}

const defaultSegmentBytes = 8 << 20

// maxKeptBuffer bounds the encoding buffer kept between Saves.
const maxKeptBuffer = 1 << 20

// DiskStorage is a durable Storage in a directory. See the top of this file.
type DiskStorage struct {
	dir  string
	opts DiskOptions
	fs   vfs.FS

	mu     sync.RWMutex
	closed bool
	// failed is set when a write or sync failed: what reached the disk is
	// then unknown, so no further write is attempted (reads still work).
	failed error

	hard      core.HardState
	snap      *core.SnapshotMeta // the latest snapshot's (nil if none)
	snapIndex uint64
	snapTerm  uint64
	// ents[i] locates the entry at index snapIndex+1+i.
	ents []entryLoc

	segs []*segment // consecutive seqs; the last one is written to
	buf  []byte     // encoding buffer, reused
	locs []entryLoc // scratch for Save

	torn    int64  // bytes cut off a torn tail when opening
	writers uint64 // snapshot writers created, to name their files
}

type entryLoc struct {
	term uint64
	seq  uint64 // segment
	off  int64  // of the record in the segment
	size int64  // of the record
}

type segment struct {
	seq      uint64
	path     string
	f        vfs.File
	size     int64  // bytes of valid data
	maxIndex uint64 // highest index of an entry record in it (0 if none)
	// created: the file is new and the directory not yet synced.
	created bool
}

// OpenDiskStorage opens the storage in dir, creating dir if needed, and
// recovers what the last run left: a torn write at the end of the log is
// cut off (see Recovered); any other damage is an error.
func OpenDiskStorage(dir string, opts DiskOptions) (*DiskStorage, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = defaultSegmentBytes
	}
	if opts.FS == nil {
		opts.FS = vfs.OS{}
	}
	if err := opts.FS.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("raft: disk storage: %w", err)
	}
	s := &DiskStorage{dir: dir, opts: opts, fs: opts.FS, hard: core.HardState{VotedFor: core.None}}
	if err := s.open(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

type namedFile struct {
	a, b uint64
	name string
}

func (s *DiskStorage) open() error {
	names, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("raft: disk storage: %w", err)
	}
	var segs, snaps []namedFile
	removed := false
	for _, name := range names {
		if strings.HasPrefix(name, "snap-") && strings.HasSuffix(name, snapTempSuffix) {
			// A snapshot that was being written when the last run stopped.
			if err := s.fs.Remove(filepath.Join(s.dir, name)); err != nil {
				return fmt.Errorf("raft: disk storage: %w", err)
			}
			removed = true
		} else if a, b, ok := parseName(name, "wal-", ".log"); ok {
			segs = append(segs, namedFile{a, b, name})
		} else if a, b, ok := parseName(name, "snap-", ".snap"); ok {
			snaps = append(snaps, namedFile{a, b, name})
		}
	}
	if removed {
		if err := s.syncDir(); err != nil {
			return err
		}
	}
	if err := s.loadSnapshot(snaps); err != nil {
		return err
	}

	slices.SortFunc(segs, func(x, y namedFile) int { return cmpUint64(x.a, y.a) })
	for i := 1; i < len(segs); i++ {
		if segs[i].a != segs[i-1].a+1 {
			return fmt.Errorf("raft: disk storage %s: segments %s and %s are not consecutive", s.dir, segs[i-1].name, segs[i].name)
		}
	}
	r := walReplay{hard: core.HardState{VotedFor: core.None}}
	for i, nf := range segs {
		last := i == len(segs)-1
		path := filepath.Join(s.dir, nf.name)
		flag := os.O_RDONLY
		if last {
			flag = os.O_RDWR
		}
		f, err := s.fs.OpenFile(path, flag, 0)
		if err != nil {
			return fmt.Errorf("raft: disk storage: %w", err)
		}
		seg := &segment{seq: nf.a, path: path, f: f}
		s.segs = append(s.segs, seg)
		data, err := s.fs.ReadFile(path)
		if err != nil {
			return fmt.Errorf("raft: disk storage: %w", err)
		}
		scan := scanSegment
		if last && s.opts.broken.tornTailWhole {
			scan = func(path string, data []byte, _, _ bool, apply func(walBatch) error) (int, error) {
				return scanTornTail(path, data, apply)
			}
		}
		end, err := scan(path, data, last, s.opts.broken.tornByFileEnd, func(b walBatch) error { return r.apply(seg, b) })
		if err != nil {
			return err
		}
		// What follows the valid data is either the zeros of a
		// preallocated segment, which are no loss, or a torn write.
		if written := writtenEnd(data); end < written {
			// Cutting data off is final: make sure the disk says the same
			// thrice, so that a passing read error is not taken for a torn
			// write and synced data thrown away. (A read error that
			// repeats, as it does when the page cache serves the re-reads,
			// cannot be told from a torn write: see scanSegment.)
			for range 2 {
				again, err := s.fs.ReadFile(path)
				if err != nil {
					return fmt.Errorf("raft: disk storage: %w", err)
				}
				if !bytes.Equal(again, data) {
					return fmt.Errorf("raft: disk storage %s: reads of the file returned different data (a read error): not cutting off what looks like a torn write at offset %d", path, end)
				}
			}
			// A torn write: the last Save was interrupted before its sync
			// completed, so nobody was told it succeeded. Zero it, so that
			// the next write goes where it would have and leaves nothing
			// of it behind (the file keeps its preallocated size).
			if err := zeroRange(f, int64(end), int64(written)); err != nil {
				return fmt.Errorf("raft: disk storage: cutting the torn tail of %s: %w", path, err)
			}
			if !s.opts.NoSync {
				if err := f.Sync(); err != nil {
					return fmt.Errorf("raft: disk storage: %w", err)
				}
			}
			s.torn = int64(written - end)
		}
		seg.size = int64(end)
	}
	unrecorded, kept, err := r.finish(s.dir, s.snapIndex, s.snapTerm)
	if err != nil {
		return err
	}
	s.hard = r.hard
	s.ents = slices.Clone(r.ents)

	if len(s.segs) == 0 {
		// The segment's header is written with the first Save.
		seg, err := s.newSegment(1, s.snapIndex+1)
		if err != nil {
			return err
		}
		seg.created = false // the directory is synced below
		s.segs = append(s.segs, seg)
	}
	// The last run may have stopped between creating a segment and syncing
	// the directory; what goes into that segment now must not vanish with
	// its directory entry.
	if err := s.syncDir(); err != nil {
		return err
	}
	if unrecorded {
		// Finish the interrupted InstallSnapshot: entries saved from now on
		// must replay after the snapshot's effect, not before it.
		if err := s.appendSnapshotRecord(kept); err != nil {
			return err
		}
		return s.removeCompacted()
	}
	return nil
}

// loadSnapshot takes the snapshot with the highest index that passes its
// checks. A damaged one is skipped, not removed.
func (s *DiskStorage) loadSnapshot(files []namedFile) error {
	slices.SortFunc(files, func(x, y namedFile) int {
		if c := cmpUint64(y.a, x.a); c != 0 {
			return c
		}
		return cmpUint64(y.b, x.b)
	})
	for _, nf := range files {
		sf, err := openSnapshotFile(s.fs, filepath.Join(s.dir, nf.name), true)
		if err != nil {
			continue
		}
		sf.Close()
		if meta := sf.meta; meta.LastIncludedIndex == nf.a && meta.LastIncludedTerm == nf.b {
			s.snap, s.snapIndex, s.snapTerm = &meta, nf.a, nf.b
			return nil
		}
	}
	return nil
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// walReplay rebuilds the log from the records, oldest first. Segments whose
// entries were all compacted away may have been deleted, so replay can start
// in the middle of the history: until an entry record or a discarding
// snapshot record says where the log stands, the entries before the first
// one seen are unknown, and they are all at or below the snapshot's index.
type walReplay struct {
	hard  core.HardState
	known bool   // whether first is known
	first uint64 // index of ents[0] (of the next entry if ents is empty)
	ents  []entryLoc
	// floor is the index of the latest snapshot record; nothing at or
	// below it can be written after it.
	floor      uint64
	marker     bool // a snapshot record was seen
	markerTerm uint64
}

func (r *walReplay) next() uint64 { return r.first + uint64(len(r.ents)) }

func (r *walReplay) apply(seg *segment, b walBatch) error {
	if b.off == 0 && (len(b.recs) != 1 || b.recs[0].kind != recHardState) {
		return corrupt(seg.path, 0, "segment does not start with a hard state record")
	}
	for _, rec := range b.recs {
		var problem string
		switch rec.kind {
		case recHardState:
			if hs, ok := decodeHardState(rec.payload); ok {
				r.hard = hs
			} else {
				problem = "malformed hard state record"
			}
		case recEntry:
			e, ok := decodeEntry(rec.payload)
			if !ok {
				problem = "malformed entry record"
				break
			}
			problem = r.entry(e.Index, entryLoc{term: e.Term, seq: seg.seq, off: int64(rec.off), size: int64(rec.end - rec.off)})
			seg.maxIndex = max(seg.maxIndex, e.Index)
		case recSnapshot:
			index, term, kept, ok := decodeSnapshotRecord(rec.payload)
			if !ok {
				problem = "malformed snapshot record"
				break
			}
			problem = r.snapshot(index, term, kept)
		default:
			problem = fmt.Sprintf("unknown record kind %d", rec.kind)
		}
		if problem != "" {
			return corrupt(seg.path, rec.off, "%s", problem)
		}
	}
	return nil
}

// entry replays an entry record: it replaces every entry at or after index.
func (r *walReplay) entry(index uint64, loc entryLoc) string {
	switch {
	case index <= r.floor:
		return fmt.Sprintf("entry %d is at or below the snapshot at %d recorded before it", index, r.floor)
	case r.known && index > r.next():
		return fmt.Sprintf("entry %d leaves a gap after entry %d", index, r.next()-1)
	case r.known && index >= r.first:
		r.ents = append(r.ents[:index-r.first], loc)
	default:
		// The first entry seen, or one before it: the entries it replaces
		// were in deleted segments.
		r.known, r.first = true, index
		r.ents = append(r.ents[:0], loc)
	}
	return ""
}

// snapshot replays a snapshot record, exactly as InstallSnapshot decided it.
func (r *walReplay) snapshot(index, term uint64, kept bool) string {
	if index <= r.floor {
		return fmt.Sprintf("snapshot at %d is not after the one at %d recorded before it", index, r.floor)
	}
	switch {
	case !kept:
		r.known, r.first = true, index+1
		r.ents = r.ents[:0]
	case r.known && index >= r.next():
		return fmt.Sprintf("snapshot at %d keeps the entries after it, but the log ends at %d", index, r.next()-1)
	case r.known && index >= r.first:
		if t := r.ents[index-r.first].term; t != term {
			return fmt.Sprintf("snapshot at %d/%d keeps the entries after it, but the entry there has term %d", index, term, t)
		}
		r.ents = r.ents[index-r.first+1:]
		r.first = index + 1
	}
	// Otherwise the entries it covers were in deleted segments.
	r.floor, r.marker, r.markerTerm = index, true, term
	return ""
}

// finish reconciles the replayed log with the snapshot file that was loaded.
// unrecorded reports a snapshot missing from the log, and kept what applying
// it did.
func (r *walReplay) finish(dir string, snapIndex, snapTerm uint64) (unrecorded, kept bool, err error) {
	switch {
	case r.marker && r.floor > snapIndex:
		return false, false, fmt.Errorf("raft: disk storage %s: the log records a snapshot through %d, but the newest valid snapshot file ends at %d", dir, r.floor, snapIndex)
	case r.marker && r.floor == snapIndex && r.markerTerm != snapTerm:
		return false, false, fmt.Errorf("raft: disk storage %s: the log records a snapshot through %d/%d, but the snapshot file has term %d", dir, r.floor, r.markerTerm, snapTerm)
	case snapIndex > r.floor:
		// The last run stopped after the snapshot file was renamed into
		// place but before its record reached the log: apply it here as
		// InstallSnapshot would have.
		unrecorded = true
		kept = r.known && snapIndex >= r.first && snapIndex < r.next() && r.ents[snapIndex-r.first].term == snapTerm
		if problem := r.snapshot(snapIndex, snapTerm, kept); problem != "" {
			return false, false, fmt.Errorf("raft: disk storage %s: %s", dir, problem)
		}
	}
	if len(r.ents) > 0 && r.first != snapIndex+1 {
		return false, false, fmt.Errorf("raft: disk storage %s: the log starts at %d, but the snapshot ends at %d: entries are missing", dir, r.first, snapIndex)
	}
	return unrecorded, kept, nil
}

// Recovered returns how many bytes of a torn write were cut off the end of
// the log when the storage was opened (0 if it was intact).
func (s *DiskStorage) Recovered() (tornBytes int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.torn
}

func (s *DiskStorage) lastIndex() uint64 { return s.snapIndex + uint64(len(s.ents)) }

func (s *DiskStorage) checkWritable() error {
	if s.closed {
		return ErrClosed
	}
	if s.failed != nil {
		return fmt.Errorf("raft: disk storage unusable after an earlier failure: %w", s.failed)
	}
	return nil
}

func (s *DiskStorage) syncDir() error {
	if s.opts.NoSync {
		return nil
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("raft: disk storage: syncing %s: %w", s.dir, err)
	}
	return nil
}

// Save implements Storage: one batch, one write, one sync.
func (s *DiskStorage) Save(hs *core.HardState, entries []core.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(); err != nil {
		return err
	}
	if len(entries) > 0 {
		first := entries[0].Index
		for i := range entries {
			if entries[i].Index != first+uint64(i) {
				return fmt.Errorf("raft: Save: entry %d at position %d does not follow entry %d", entries[i].Index, i, first)
			}
			if len(entries[i].Data) > maxEntryData {
				return fmt.Errorf("raft: Save: entry %d has %d bytes of data, more than a record holds", entries[i].Index, len(entries[i].Data))
			}
		}
		if first <= s.snapIndex {
			// Entries the snapshot already covers: keep only what follows it.
			if skip := s.snapIndex + 1 - first; skip < uint64(len(entries)) {
				entries = entries[skip:]
			} else {
				entries = nil
			}
		}
		if len(entries) > 0 && entries[0].Index > s.lastIndex()+1 {
			return ErrUnavailable // a gap: the caller broke the contract
		}
	}
	if hs == nil && len(entries) == 0 {
		return nil
	}

	size := int64(batchRecordSize)
	if hs != nil {
		size += hardStateRecordSize
	}
	for i := range entries {
		size += entryRecordOverhead + int64(len(entries[i].Data))
	}
	next := s.lastIndex() + 1
	if len(entries) > 0 {
		next = entries[0].Index
	}
	seg, err := s.tailFor(size, next)
	if err != nil {
		return err
	}
	buf := s.startWrite(seg)
	buf, batch := beginBatch(buf)
	count := 0
	if hs != nil {
		buf = appendHardStateRecord(buf, *hs)
		count++
	}
	s.locs = s.locs[:0]
	for i := range entries {
		off := seg.size + int64(len(buf))
		buf = appendEntryRecord(buf, &entries[i])
		s.locs = append(s.locs, entryLoc{term: entries[i].Term, seq: seg.seq, off: off, size: seg.size + int64(len(buf)) - off})
		count++
	}
	endBatch(buf, batch, count)
	if err := s.commit(seg, buf); err != nil {
		return err
	}

	if hs != nil {
		s.hard = *hs
	}
	if len(entries) > 0 {
		s.ents = append(s.ents[:entries[0].Index-s.snapIndex-1], s.locs...)
		seg.maxIndex = max(seg.maxIndex, entries[len(entries)-1].Index)
	}
	return nil
}

// tailFor returns the segment to append size bytes to, starting a new one
// if the last is full. next is the index of the first entry to be written.
func (s *DiskStorage) tailFor(size int64, next uint64) (*segment, error) {
	tail := s.segs[len(s.segs)-1]
	if tail.size <= segmentHeaderSize || tail.size+size <= s.opts.SegmentBytes {
		return tail, nil
	}
	seg, err := s.newSegment(tail.seq+1, next)
	if err != nil {
		return nil, err
	}
	s.segs = append(s.segs, seg)
	return seg, nil
}

// newSegment creates segment seq, whose first entry will be first, at its
// full size: SegmentBytes of zeros, synced once. Every Save then writes
// over blocks the file already has, and its fdatasync has no metadata to
// commit with the data (no new size, no new extent): on this project's
// ext4 disk, three writers complete 1.9 times as many such syncs a second
// as appending ones (bench/fsyncprobe -preallocated). This is what pebble
// gets from recycling its WAL files, and etcd from preallocating its
// segments. The directory entry is synced with the segment's first write.
func (s *DiskStorage) newSegment(seq, first uint64) (*segment, error) {
	path := filepath.Join(s.dir, segmentName(seq, first))
	f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("raft: disk storage: %w", err)
	}
	err = zeroRange(f, 0, s.opts.SegmentBytes)
	if err == nil && !s.opts.NoSync {
		err = f.Sync()
	}
	if err != nil {
		// Nothing was written to it: take it away, so that a later
		// attempt (once the disk has room, say) can create it again.
		f.Close()
		s.fs.Remove(path)
		return nil, fmt.Errorf("raft: disk storage: preallocating %s: %w", path, err)
	}
	return &segment{seq: seq, path: path, f: f, created: true}, nil
}

// zeros is written, never modified.
var zeros = make([]byte, 256<<10)

// zeroRange writes zeros over [from, to) of f.
func zeroRange(f vfs.File, from, to int64) error {
	for off := from; off < to; {
		n := min(int64(len(zeros)), to-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// startWrite returns the encoding buffer, holding the segment's header if
// seg is empty: every segment starts with the hard state, so that deleting
// the segments before it never loses the hard state.
func (s *DiskStorage) startWrite(seg *segment) []byte {
	buf := s.buf[:0]
	if seg.size == 0 {
		var start int
		buf, start = beginBatch(buf)
		buf = appendHardStateRecord(buf, s.hard)
		endBatch(buf, start, 1)
	}
	return buf
}

// commit writes buf at the end of seg and makes it durable.
func (s *DiskStorage) commit(seg *segment, buf []byte) error {
	if cap(buf) <= maxKeptBuffer {
		s.buf = buf[:0]
	} else {
		s.buf = nil
	}
	if _, err := seg.f.WriteAt(buf, seg.size); err != nil {
		s.failed = fmt.Errorf("writing %s: %w", seg.path, err)
		return fmt.Errorf("raft: disk storage: %w", s.failed)
	}
	if !s.opts.NoSync && !s.opts.broken.ackBeforeSync {
		// fdatasync: within the preallocated size it has only the data to
		// make durable; a write past it (a Save larger than a segment)
		// grows the file, and fdatasync commits the new size too.
		if err := seg.f.Datasync(); err != nil {
			// After a failed fsync the kernel may have dropped the dirty
			// pages: what is on disk is unknown. Stop writing.
			s.failed = fmt.Errorf("syncing %s: %w", seg.path, err)
			return fmt.Errorf("raft: disk storage: %w", s.failed)
		}
	}
	if seg.created {
		if err := s.syncDir(); err != nil {
			s.failed = err
			return err
		}
		seg.created = false
	}
	seg.size += int64(len(buf))
	return nil
}

// CreateSnapshot implements Storage. The data goes to a temporary file in
// the directory, with its CRC computed as it is written; InstallSnapshot
// completes the file and renames it into place.
func (s *DiskStorage) CreateSnapshot(index uint64) (SnapshotWriter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(); err != nil {
		return nil, err
	}
	s.writers++
	path := filepath.Join(s.dir, fmt.Sprintf("snap-%016x-w%d%s", index, s.writers, snapTempSuffix))
	f, err := s.fs.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("raft: disk storage: %w", err)
	}
	return &diskSnapshotWriter{s: s, f: f, path: path}, nil
}

// diskSnapshotWriter writes a snapshot's data to a temporary file.
type diskSnapshotWriter struct {
	s      *DiskStorage
	f      vfs.File
	path   string
	size   uint64
	crcs   blockCRCs
	closed bool // Close synced the data
	done   bool // installed or aborted: the file is no longer ours
	err    error
}

func (w *diskSnapshotWriter) Write(p []byte) (int, error) {
	if w.closed || w.err != nil {
		return 0, fmt.Errorf("%w: write after Close or a failed write", ErrSnapshot)
	}
	n, err := w.f.Write(p)
	w.size += uint64(n)
	w.crcs.write(p[:n])
	if err != nil {
		w.err = err
		return n, fmt.Errorf("raft: disk storage: writing snapshot: %w", err)
	}
	return n, nil
}

func (w *diskSnapshotWriter) Size() uint64 { return w.size }

// Close implements SnapshotWriter: it syncs the data (on the caller's
// goroutine: the big write of a snapshot stays off the driver's).
func (w *diskSnapshotWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	if !w.closed && !w.s.opts.NoSync && !w.s.opts.broken.ackBeforeSync {
		if err := w.f.Sync(); err != nil {
			w.err = fmt.Errorf("raft: disk storage: syncing snapshot: %w", err)
			return w.err
		}
	}
	w.closed = true
	return nil
}

// Abort implements SnapshotWriter.
func (w *diskSnapshotWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	w.s.fs.Remove(w.path) // a leftover is removed at the next open
}

// InstallSnapshot implements Storage. The snapshot's metadata is appended
// to its data and synced, the file renamed into place and the directory
// synced, so that a crash leaves the old snapshot or the new one; then a
// snapshot record in the log says whether the entries after it were kept;
// then older snapshot files and the segments holding only entries it
// covers are deleted.
func (s *DiskStorage) InstallSnapshot(meta core.SnapshotMeta, sw SnapshotWriter) error {
	w, ok := sw.(*diskSnapshotWriter)
	if !ok || w.s != s || w.done {
		return fmt.Errorf("%w: InstallSnapshot takes a writer of this storage's CreateSnapshot", ErrSnapshot)
	}
	if !w.closed {
		w.Abort()
		return fmt.Errorf("%w: the writer was not closed", ErrSnapshot)
	}
	if w.size != meta.Size {
		w.Abort()
		return fmt.Errorf("%w: %d bytes written, the snapshot says %d", ErrSnapshot, w.size, meta.Size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(); err != nil {
		w.Abort()
		return err
	}
	index, term := meta.LastIncludedIndex, meta.LastIncludedTerm
	if index <= s.snapIndex {
		w.Abort()
		return nil
	}
	if err := s.finishSnapshotFile(meta, w); err != nil {
		return err
	}
	// From here on the snapshot file is in place, and the next open would
	// apply it after every entry in the log. Any failure before its record
	// is in the log stops the storage, so that no entry gets logged after
	// the snapshot without that record before it.
	kept := index <= s.lastIndex() && s.ents[index-s.snapIndex-1].term == term
	if kept {
		s.ents = slices.Clone(s.ents[index-s.snapIndex:])
	} else {
		s.ents = nil
	}
	s.snap, s.snapIndex, s.snapTerm = &meta, index, term
	if err := s.appendSnapshotRecord(kept); err != nil {
		if s.failed == nil {
			s.failed = err
		}
		return err
	}
	return s.removeCompacted()
}

// appendSnapshotRecord logs that the current snapshot was saved and whether
// the entries after it were kept.
func (s *DiskStorage) appendSnapshotRecord(kept bool) error {
	seg, err := s.tailFor(snapshotRecordSize+batchRecordSize, s.lastIndex()+1)
	if err != nil {
		return err
	}
	buf := s.startWrite(seg)
	buf, batch := beginBatch(buf)
	buf = appendSnapshotRecord(buf, s.snapIndex, s.snapTerm, kept)
	endBatch(buf, batch, 1)
	return s.commit(seg, buf)
}

// finishSnapshotFile appends the metadata to w's data, syncs, and renames
// the file into place.
func (s *DiskStorage) finishSnapshotFile(meta core.SnapshotMeta, w *diskSnapshotWriter) error {
	w.done = true
	final := filepath.Join(s.dir, snapshotName(meta.LastIncludedIndex, meta.LastIncludedTerm))
	_, err := w.f.Write(snapshotTrailer(meta, w.crcs.all()))
	if err == nil && !s.opts.NoSync && !s.opts.broken.ackBeforeSync {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Rename(w.path, final)
	}
	if err != nil {
		s.fs.Remove(w.path)
		return fmt.Errorf("raft: disk storage: writing snapshot: %w", err)
	}
	if err := s.syncDir(); err != nil {
		s.failed = err // the rename may or may not be durable: see InstallSnapshot
		return err
	}
	return nil
}

// OpenSnapshot implements Storage.
func (s *DiskStorage) OpenSnapshot() (SnapshotReader, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.snap == nil {
		return nil, nil
	}
	sf, err := openSnapshotFile(s.fs, filepath.Join(s.dir, snapshotName(s.snapIndex, s.snapTerm)), false)
	if err != nil {
		return nil, fmt.Errorf("raft: disk storage: opening the snapshot: %w", err)
	}
	return sf, nil
}

// removeCompacted deletes the snapshot files older than the current one and
// the segments, oldest first, whose entries the snapshot all covers. The
// last segment stays: it is being written to.
func (s *DiskStorage) removeCompacted() error {
	names, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("raft: disk storage: %w", err)
	}
	removed := false
	var errs []error
	for _, name := range names {
		index, term, ok := parseName(name, "snap-", ".snap")
		if ok && (index < s.snapIndex || index == s.snapIndex && term != s.snapTerm) {
			if err := s.fs.Remove(filepath.Join(s.dir, name)); err != nil {
				errs = append(errs, err)
			}
			removed = true
		}
	}
	for len(s.segs) > 1 && s.segs[0].maxIndex <= s.snapIndex {
		seg := s.segs[0]
		if err := s.fs.Remove(seg.path); err != nil {
			errs = append(errs, err)
			break
		}
		seg.f.Close()
		s.segs[0] = nil
		s.segs = s.segs[1:]
		removed = true
	}
	if removed {
		errs = append(errs, s.syncDir())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raft: disk storage: removing compacted files: %w", err)
	}
	return nil
}

// Load implements Storage.
func (s *DiskStorage) Load() (core.HardState, *core.SnapshotMeta, []core.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return core.HardState{}, nil, nil, ErrClosed
	}
	ents, err := s.readEntries(s.snapIndex+1, s.lastIndex()+1)
	if err != nil {
		return core.HardState{}, nil, nil, err
	}
	var meta *core.SnapshotMeta
	if s.snap != nil {
		m := *s.snap
		meta = &m
	}
	return s.hard, meta, ents, nil
}

// readEntries reads [lo, hi), which the caller checked is stored, with one
// read per run of records that lie next to each other in a segment. The
// entries' Data share that read's buffer.
func (s *DiskStorage) readEntries(lo, hi uint64) ([]core.Entry, error) {
	if lo >= hi {
		return nil, nil
	}
	locs := s.ents[lo-s.snapIndex-1 : hi-s.snapIndex-1]
	out := make([]core.Entry, 0, len(locs))
	for i := 0; i < len(locs); {
		start := locs[i]
		end := start.off + start.size
		j := i + 1
		for j < len(locs) && locs[j].seq == start.seq && locs[j].off == end {
			end += locs[j].size
			j++
		}
		seg := s.segment(start.seq)
		if seg == nil {
			return nil, fmt.Errorf("raft: disk storage: entry %d is in segment %d, which is gone", lo+uint64(i), start.seq)
		}
		buf := make([]byte, end-start.off)
		if _, err := seg.f.ReadAt(buf, start.off); err != nil {
			return nil, fmt.Errorf("raft: disk storage: reading %s: %w", seg.path, err)
		}
		p := 0
		for k := i; k < j; k++ {
			rec, st := readRecord(buf[:p+int(locs[k].size)], p)
			var e core.Entry
			ok := st == recOK && rec.kind == recEntry
			if ok {
				e, ok = decodeEntry(rec.payload)
			}
			if !ok || e.Index != lo+uint64(k) || e.Term != locs[k].term {
				return nil, corrupt(seg.path, int(locs[k].off), "entry %d changed on disk since it was written", lo+uint64(k))
			}
			out = append(out, e)
			p = rec.end
		}
		i = j
	}
	return out, nil
}

func (s *DiskStorage) segment(seq uint64) *segment {
	if len(s.segs) == 0 || seq < s.segs[0].seq || seq-s.segs[0].seq >= uint64(len(s.segs)) {
		return nil
	}
	return s.segs[seq-s.segs[0].seq]
}

// Close implements Storage. Closing twice is harmless.
func (s *DiskStorage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.closeFiles()
}

func (s *DiskStorage) closeFiles() error {
	var errs []error
	for _, seg := range s.segs {
		errs = append(errs, seg.f.Close())
	}
	s.segs = nil
	return errors.Join(errs...)
}
