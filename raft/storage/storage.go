package storage

import (
	"errors"
	"io"

	"raft-consensus/raft/core"
)

// Storage is where a server keeps what must survive a crash: the hard state
// (term and vote), the log, and the latest snapshot. It holds what the
// driver uses and nothing more, in the manner of hashicorp/raft's LogStore,
// StableStore and SnapshotStore: an afternoon's work to implement.
//
// A snapshot's data is streamed: whoever makes a snapshot (the state
// machine, or the driver receiving one from the leader) writes it through a
// SnapshotWriter, and InstallSnapshot then makes it the stored snapshot;
// the data is read back through a SnapshotReader.
//
// The driver calls Save and InstallSnapshot from one goroutine;
// CreateSnapshot, the writers and OpenSnapshot may be used from others (the
// state machine writes its snapshot on a goroutine of its own), so
// implementations must be safe for concurrent use.
type Storage interface {
	// Load returns everything stored: the hard state (Term 0 and VotedFor
	// None if none), the latest snapshot's metadata (nil if none) and the
	// entries that follow it.
	Load() (core.HardState, *core.SnapshotMeta, []core.Entry, error)
	// Save makes the hard state (if hs is not nil) and the entries durable
	// before it returns; one sync covers both. Stored entries from
	// entries[0].Index on are replaced by entries: this is how a follower
	// truncates a conflicting suffix (Figure 2, AppendEntries step 3).
	// Appending costs O(len(entries)), whatever the length of the log.
	Save(hs *core.HardState, entries []core.Entry) error
	// CreateSnapshot starts a snapshot of the state through index.
	CreateSnapshot(index uint64) (SnapshotWriter, error)
	// InstallSnapshot makes the data written to w (and closed) the stored
	// snapshot, described by meta, durably, and discards the entries it
	// covers. If the stored entry at meta's last index has meta's last term,
	// the entries after it are kept; otherwise the whole log is discarded
	// (Figure 13, steps 6 and 7). A snapshot not newer than the stored one
	// is thrown away. The writer is used up either way.
	InstallSnapshot(meta core.SnapshotMeta, w SnapshotWriter) error
	// OpenSnapshot opens the latest snapshot's data (nil if none).
	OpenSnapshot() (SnapshotReader, error)
	// Close releases the storage. A closed storage can be opened again.
	Close() error
}

// SnapshotWriter receives a snapshot's data.
type SnapshotWriter interface {
	io.Writer
	// Size is the number of bytes written so far.
	Size() uint64
	// Close makes the data durable; the writer then goes to InstallSnapshot.
	Close() error
	// Abort throws the snapshot away.
	Abort()
}

// WriteSnapshot writes a snapshot of the state through index with write,
// and closes it (its data durable): the writer is ready for
// InstallSnapshot. On an error nothing is left behind.
func WriteSnapshot(st Storage, index uint64, write func(io.Writer) error) (SnapshotWriter, error) {
	w, err := st.CreateSnapshot(index)
	if err != nil {
		return nil, err
	}
	if err := write(w); err != nil {
		w.Abort()
		return nil, err
	}
	if err := w.Close(); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// SnapshotReader reads a stored snapshot's data; it stays readable after a
// newer snapshot replaced it, until it is closed.
type SnapshotReader interface {
	io.ReaderAt
	io.Closer
	// Meta describes the snapshot.
	Meta() core.SnapshotMeta
}

// NewSnapshotReaderSection returns an io.Reader over all of r's data.
func NewSnapshotReaderSection(r SnapshotReader) *io.SectionReader {
	return io.NewSectionReader(r, 0, int64(r.Meta().Size))
}

// Errors a Storage returns.
var (
	ErrUnavailable = errors.New("entries do not follow the stored log (a gap after its last entry)")
	ErrClosed      = errors.New("storage is closed")
	ErrSnapshot    = errors.New("snapshot writer misused")
)
