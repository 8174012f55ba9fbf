package storage

import (
	"errors"

	"raft-consensus/raft/core"
)

// Storage is where a server keeps what must survive a crash: the hard state
// (term and vote), the log, and the latest snapshot. It is small on purpose,
// in the manner of hashicorp/raft's LogStore and StableStore: an afternoon's
// work to implement.
//
// The driver calls Save and SaveSnapshot from one goroutine; the read
// methods may be called from others (status, tests), so implementations
// must be safe for concurrent use.
type Storage interface {
	// Load returns everything stored: the hard state (Term 0 and VotedFor
	// None if none), the latest snapshot (nil if none) and the entries that
	// follow it.
	Load() (core.HardState, *core.Snapshot, []core.Entry, error)
	// Save makes the hard state (if hs is not nil) and the entries durable
	// before it returns; one sync covers both. Stored entries from
	// entries[0].Index on are replaced by entries: this is how a follower
	// truncates a conflicting suffix (Figure 2, AppendEntries step 3).
	// Appending costs O(len(entries)), whatever the length of the log.
	Save(hs *core.HardState, entries []core.Entry) error
	// SaveSnapshot makes snap durable and discards the entries it covers.
	// If the stored entry at snap's last index has snap's last term, the
	// entries after it are kept; otherwise the whole log is discarded
	// (Figure 13, steps 6 and 7).
	SaveSnapshot(snap *core.Snapshot) error

	// FirstIndex is the index of the first stored entry (snapshot index + 1).
	FirstIndex() (uint64, error)
	// LastIndex is the index of the last stored entry (or the snapshot's).
	LastIndex() (uint64, error)
	// Entries returns the stored entries in [lo, hi).
	Entries(lo, hi uint64) ([]core.Entry, error)
	// Term returns the term of the entry at i (or of the snapshot's last).
	Term(i uint64) (uint64, error)

	// Close releases the storage. A closed storage can be opened again.
	Close() error
}

// Errors a Storage returns.
var (
	ErrCompacted   = errors.New("requested entry was compacted into a snapshot")
	ErrUnavailable = errors.New("requested entry is beyond the last stored one")
	ErrClosed      = errors.New("storage is closed")
)
