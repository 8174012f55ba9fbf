package storage

import (
	"fmt"
	"io"
	"slices"
	"sync"

	"raft-consensus/raft/core"
)

// MemoryStorage keeps everything in memory. It outlives a simulated crash
// the way a disk does: the simulator hands the same MemoryStorage to the
// restarted server.
type MemoryStorage struct {
	mu       sync.Mutex
	hard     core.HardState
	snapshot *memSnapshot
	// The entries after the snapshot, in chunks of memChunk so that the
	// log grows without ever being copied: the entry at snapIndex+1+i is
	// at position head+i, in chunks[(head+i)/memChunk].
	snapIndex, snapTerm uint64
	chunks              [][]core.Entry
	head                int // position of the first entry in chunks[0]
	count               int // number of entries
}

const memChunk = 4096

// NewMemoryStorage returns an empty storage.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{hard: core.HardState{VotedFor: core.None}}
}

func (s *MemoryStorage) lastIndex() uint64 { return s.snapIndex + uint64(s.count) }

// at returns the entry at index i, which must be stored.
func (s *MemoryStorage) at(i uint64) *core.Entry {
	p := s.head + int(i-s.snapIndex-1)
	return &s.chunks[p/memChunk][p%memChunk]
}

// copyRange copies the entries in [lo, hi), which must be stored.
func (s *MemoryStorage) copyRange(lo, hi uint64) []core.Entry {
	out := make([]core.Entry, 0, hi-lo)
	for p, end := s.head+int(lo-s.snapIndex-1), s.head+int(hi-s.snapIndex-1); p < end; {
		c := s.chunks[p/memChunk]
		n := min(end-p, memChunk-p%memChunk)
		out = append(out, c[p%memChunk:p%memChunk+n]...)
		p += n
	}
	return out
}

// truncate keeps the first n entries.
func (s *MemoryStorage) truncate(n int) {
	end := s.head + n
	keep := (end + memChunk - 1) / memChunk
	for i := keep; i < len(s.chunks); i++ {
		clear(s.chunks[i])
		s.chunks[i] = nil
	}
	s.chunks = s.chunks[:keep]
	if keep > 0 && end%memChunk != 0 {
		last := s.chunks[keep-1]
		clear(last[end%memChunk:])
		s.chunks[keep-1] = last[:end%memChunk]
	}
	s.count = n
	if n == 0 {
		s.chunks, s.head = s.chunks[:0], 0
	}
}

func (s *MemoryStorage) push(ents []core.Entry) {
	for len(ents) > 0 {
		if len(s.chunks) == 0 || len(s.chunks[len(s.chunks)-1]) == memChunk {
			// The first chunk starts small and doubles up to memChunk (a
			// host of many small groups keeps many logs of a few entries);
			// the next ones are whole from the start.
			c := memChunk
			if len(s.chunks) == 0 {
				c = min(memChunk, max(16, len(ents)))
			}
			s.chunks = append(s.chunks, make([]core.Entry, 0, c))
		}
		last := &s.chunks[len(s.chunks)-1]
		n := min(len(ents), memChunk-len(*last))
		if len(*last)+n > cap(*last) {
			*last = slices.Grow(*last, min(memChunk, max(2*cap(*last), len(*last)+n))-len(*last))
		}
		*last = append(*last, ents[:n]...)
		s.count += n
		ents = ents[n:]
	}
}

// Load implements Storage.
func (s *MemoryStorage) Load() (core.HardState, *core.SnapshotMeta, []core.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var meta *core.SnapshotMeta
	if s.snapshot != nil {
		m := s.snapshot.meta
		meta = &m
	}
	return s.hard, meta, s.copyRange(s.snapIndex+1, s.lastIndex()+1), nil
}

// Save implements Storage.
func (s *MemoryStorage) Save(hs *core.HardState, entries []core.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hs != nil {
		s.hard = *hs
	}
	if len(entries) == 0 {
		return nil
	}
	first := entries[0].Index
	switch {
	case first <= s.snapIndex:
		// Entries the snapshot already covers: keep only what follows it.
		if skip := s.snapIndex + 1 - first; skip < uint64(len(entries)) {
			entries = entries[skip:]
			first = s.snapIndex + 1
		} else {
			return nil
		}
	case first > s.lastIndex()+1:
		return ErrUnavailable // a gap: the caller broke the contract
	}
	s.truncate(int(first - s.snapIndex - 1))
	s.push(entries)
	return nil
}

// snapshotIndex is the last index the stored snapshot covers (0: none).
func (s *MemoryStorage) snapshotIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapIndex
}

// holds reports whether the stored entry at index has term.
func (s *MemoryStorage) holds(index, term uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return index > s.snapIndex && index <= s.lastIndex() && s.at(index).Term == term
}

// discardAfterSnapshot drops every entry after a snapshot through index
// that is the stored one (a snapshot that replaced the whole log).
func (s *MemoryStorage) discardAfterSnapshot(index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snapIndex == index {
		s.truncate(0)
	}
}

// CreateSnapshot implements Storage: the data is kept in memory.
func (s *MemoryStorage) CreateSnapshot(index uint64) (SnapshotWriter, error) {
	return &memSnapshotWriter{owner: s, index: index}, nil
}

// InstallSnapshot implements Storage.
func (s *MemoryStorage) InstallSnapshot(meta core.SnapshotMeta, w SnapshotWriter) error {
	mw, ok := w.(*memSnapshotWriter)
	if !ok || mw.owner != s || !mw.closed || mw.used {
		return fmt.Errorf("%w: InstallSnapshot takes a closed writer of this storage's CreateSnapshot", ErrSnapshot)
	}
	mw.used = true
	if mw.size != meta.Size {
		return fmt.Errorf("%w: %d bytes written, the snapshot says %d", ErrSnapshot, mw.size, meta.Size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if meta.LastIncludedIndex <= s.snapIndex {
		return nil
	}
	if meta.LastIncludedIndex <= s.lastIndex() && s.at(meta.LastIncludedIndex).Term == meta.LastIncludedTerm {
		// Keep the entries after the snapshot; drop the chunks before them.
		drop := int(meta.LastIncludedIndex - s.snapIndex)
		p := s.head + drop
		for i := range p / memChunk {
			s.chunks[i] = nil
		}
		s.chunks = s.chunks[p/memChunk:]
		s.head = p % memChunk
		s.count -= drop
		if s.count == 0 {
			s.chunks, s.head = nil, 0
		} else {
			clear(s.chunks[0][:s.head]) // let go of the compacted entries' data
		}
	} else {
		s.chunks, s.head, s.count = nil, 0, 0
	}
	s.snapIndex, s.snapTerm = meta.LastIncludedIndex, meta.LastIncludedTerm
	s.snapshot = &memSnapshot{meta: meta, chunks: mw.chunks, size: mw.size}
	return nil
}

// OpenSnapshot implements Storage.
func (s *MemoryStorage) OpenSnapshot() (SnapshotReader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snapshot == nil {
		return nil, nil
	}
	return &memSnapshotReader{snap: s.snapshot}, nil
}

// memSnapshot is a stored snapshot: its data, in chunks of
// memSnapshotChunk bytes (the last one shorter), is never changed.
type memSnapshot struct {
	meta   core.SnapshotMeta
	chunks [][]byte
	size   uint64
}

// memSnapshotChunk is the size of a snapshot's chunks in memory: a large
// state is written without a slice that grows by doubling (a copy of
// everything written so far at each step, and twice the garbage).
const memSnapshotChunk = 1 << 20

type memSnapshotWriter struct {
	owner        *MemoryStorage
	index        uint64
	chunks       [][]byte
	size         uint64
	closed, used bool
}

func (w *memSnapshotWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("%w: write after Close", ErrSnapshot)
	}
	n := len(p)
	for len(p) > 0 {
		last := len(w.chunks) - 1
		if last < 0 || len(w.chunks[last]) == memSnapshotChunk {
			w.chunks = append(w.chunks, make([]byte, 0, min(memSnapshotChunk, max(len(p), 4096))))
			last++
		}
		c := w.chunks[last]
		if cap(c) < memSnapshotChunk && len(c)+len(p) > cap(c) {
			// A small first chunk grows up to a whole one.
			grown := make([]byte, len(c), min(memSnapshotChunk, max(2*cap(c), len(c)+len(p))))
			copy(grown, c)
			c = grown
		}
		k := min(len(p), memSnapshotChunk-len(c))
		w.chunks[last] = append(c, p[:k]...)
		p = p[k:]
	}
	w.size += uint64(n)
	return n, nil
}

func (w *memSnapshotWriter) Size() uint64 { return w.size }
func (w *memSnapshotWriter) Close() error { w.closed = true; return nil }
func (w *memSnapshotWriter) Abort()       { w.closed, w.used, w.chunks = true, true, nil }

type memSnapshotReader struct {
	snap *memSnapshot
}

// ReadAt implements io.ReaderAt over the chunks.
func (r *memSnapshotReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrSnapshot, off)
	}
	n := 0
	for n < len(p) && uint64(off) < r.snap.size {
		c := r.snap.chunks[off/memSnapshotChunk]
		k := copy(p[n:], c[off%memSnapshotChunk:])
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (r *memSnapshotReader) Close() error            { return nil }
func (r *memSnapshotReader) Meta() core.SnapshotMeta { return r.snap.meta }

// Close implements Storage; a MemoryStorage stays usable after it.
func (s *MemoryStorage) Close() error { return nil }
