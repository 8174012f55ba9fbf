package kv

import (
	"io"

	"raft-consensus/raft/node"
)

// StateMachine is the application a Server replicates, in the spirit of
// hashicorp/raft's FSM: it applies committed commands in log order,
// answers reads, and saves and restores its whole state. The Server calls
// it from one goroutine at a time. Store, the KV store, is one.
type StateMachine interface {
	// Apply applies a batch of committed commands (entries of type
	// EntryNormal), in log order, and returns one result per entry. A
	// command it does not understand changes nothing; its result is nil.
	Apply(entries []node.CommitEntry) []any
	// Read answers a query on the state as it is now. The Server calls it
	// once ReadIndex has made sure the state is current (thesis §6.4).
	Read(query any) (any, error)
	// Snapshot captures the state as it is now. It must be quick (a copy,
	// or a copy-on-write view): the slow part, writing it out, runs later
	// on another goroutine, while Apply goes on.
	Snapshot() (StateSnapshot, error)
	// Restore replaces the state by one that a StateSnapshot wrote.
	Restore(r io.Reader) error
}

// StateSnapshot is a state captured by StateMachine.Snapshot.
type StateSnapshot interface {
	// WriteTo writes the state out; it may run concurrently with Apply.
	WriteTo(w io.Writer) (int64, error)
}

// Deduplicator is an optional interface of a StateMachine that keeps client
// sessions (thesis §6.3): it tells whether a command was applied, and its
// result, after the Server lost track of it (a snapshot installed from the
// leader jumped over its index).
type Deduplicator interface {
	// Outcome returns the result of cmd and true if it was applied.
	Outcome(cmd []byte) (any, bool)
}
