package raft

import (
	"slices"
	"sync"
)

// MemoryStorage keeps everything in memory. It outlives a simulated crash
// the way a disk does: the simulator hands the same MemoryStorage to the
// restarted server.
type MemoryStorage struct {
	mu       sync.Mutex
	hard     HardState
	snapshot *Snapshot
	// ents[0] is a dummy holding the snapshot's last index and term, so
	// that ents[i].Index == ents[0].Index+i.
	ents []Entry
	// saves counts calls to Save (tests use it to see batching).
	saves int
}

// NewMemoryStorage returns an empty storage.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{hard: HardState{VotedFor: None}, ents: make([]Entry, 1)}
}

// Load implements Storage.
func (s *MemoryStorage) Load() (HardState, *Snapshot, []Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hard, s.snapshot, slices.Clone(s.ents[1:]), nil
}

// Save implements Storage.
func (s *MemoryStorage) Save(hs *HardState, entries []Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	if hs != nil {
		s.hard = *hs
	}
	if len(entries) == 0 {
		return nil
	}
	first := entries[0].Index
	offset := s.ents[0].Index
	switch {
	case first <= offset:
		// Entries the snapshot already covers: keep only what follows it.
		if skip := offset + 1 - first; skip < uint64(len(entries)) {
			entries = entries[skip:]
			first = offset + 1
		} else {
			return nil
		}
	case first > offset+uint64(len(s.ents)):
		return ErrUnavailable // a gap: the caller broke the contract
	}
	s.ents = append(s.ents[:first-offset], entries...)
	return nil
}

// SaveSnapshot implements Storage.
func (s *MemoryStorage) SaveSnapshot(snap *Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	meta := snap.Meta
	offset := s.ents[0].Index
	if meta.LastIncludedIndex <= offset {
		return nil
	}
	i := meta.LastIncludedIndex - offset
	var rest []Entry
	if i < uint64(len(s.ents)) && s.ents[i].Term == meta.LastIncludedTerm {
		rest = s.ents[i+1:]
	}
	ents := make([]Entry, 1, 1+len(rest))
	ents[0] = Entry{Index: meta.LastIncludedIndex, Term: meta.LastIncludedTerm}
	s.ents = append(ents, rest...)
	s.snapshot = snap
	return nil
}

// FirstIndex implements Storage.
func (s *MemoryStorage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ents[0].Index + 1, nil
}

// LastIndex implements Storage.
func (s *MemoryStorage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ents[0].Index + uint64(len(s.ents)) - 1, nil
}

// Entries implements Storage.
func (s *MemoryStorage) Entries(lo, hi uint64) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	offset := s.ents[0].Index
	if lo <= offset {
		return nil, ErrCompacted
	}
	if hi > offset+uint64(len(s.ents)) || lo > hi {
		return nil, ErrUnavailable
	}
	return slices.Clone(s.ents[lo-offset : hi-offset]), nil
}

// Term implements Storage.
func (s *MemoryStorage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	offset := s.ents[0].Index
	switch {
	case i < offset:
		return 0, ErrCompacted
	case i >= offset+uint64(len(s.ents)):
		return 0, ErrUnavailable
	}
	return s.ents[i-offset].Term, nil
}

// Close implements Storage; a MemoryStorage stays usable after it.
func (s *MemoryStorage) Close() error { return nil }

// Saves returns how many times Save was called.
func (s *MemoryStorage) Saves() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}
