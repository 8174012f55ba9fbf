package kv

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"

	"raft-consensus/raft/core"
	"raft-consensus/raft/node"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/trace"
)

// Node is what a Host needs of its Raft node: who leads, for the hint in a
// NotLeaderError. RaftNode and Driver have it.
type Node interface {
	// Summary reports the node's state without blocking.
	Summary() core.Summary
}

// Host runs a StateMachine on a Raft node: it proposes writes and tells
// each writer its outcome once the entry is applied, serves reads once
// ReadIndex allows, applies committed entries in order, and asks for a
// snapshot when the log since the last one has grown past a threshold. It
// has no goroutines and no locks: Server drives it from its goroutines
// under one mutex, the simulation from its event loop. It never calls its
// Node while the caller might hold that mutex: the caller proposes.
type Host struct {
	node  Node
	sm    StateMachine
	trace *trace.NodeTracer

	snapshotThreshold      uint64
	snapshotThresholdBytes uint64
	snapshotLogRatio       float64
	onApply                func(node.CommitEntry)
	onViolation            func(core.InvariantViolation)
	onStorageFailure       func(error)
	failed                 error
	id                     int

	applied      uint64
	snapIndex    uint64 // index of the latest snapshot, taken or installed
	snapBytes    uint64 // bytes of commands applied since then
	snapSize     uint64 // bytes of that snapshot
	snapshotting bool   // a snapshot is being written out
	writes       map[uint64]*Write
	reads        []*Read
}

// HostConfig configures a Host.
type HostConfig struct {
	// SnapshotThreshold: snapshot after this many applied entries since
	// the last snapshot (0: no limit by count).
	SnapshotThreshold uint64
	// SnapshotThresholdBytes: ... or after this many bytes of applied
	// commands since the last snapshot (0: no limit by size).
	SnapshotThresholdBytes uint64
	// SnapshotLogRatio, if set, holds a snapshot that a threshold calls
	// for back until the commands applied since the last snapshot add up
	// to this many times that snapshot's size: writing snapshots then
	// costs at most 1/ratio of the bytes the log takes in, however large
	// the state grows (thesis §5.1.3, "when to snapshot"). Without it a
	// large state is written out whole every SnapshotThreshold entries.
	SnapshotLogRatio float64
	// OnApply, if set, sees every committed entry after it is applied.
	OnApply func(node.CommitEntry)
	// OnViolation, if set, is called when an invariant breaks (a snapshot
	// from the log that the state machine cannot restore): the Host
	// applies nothing more, and the node must stop. If nil, the Host
	// panics.
	OnViolation func(core.InvariantViolation)
	// OnStorageFailure, if set, is called when reading a snapshot failed
	// (the disk returned other bytes than were written): the Host applies
	// nothing more, and the node must stop. If nil, the Host panics.
	OnStorageFailure func(error)
	Tracer           trace.Tracer
	ID               int // for traces
}

// NewHost returns a host of sm on n.
func NewHost(n Node, sm StateMachine, cfg HostConfig) *Host {
	return &Host{
		node: n, sm: sm, trace: trace.ForNode(cfg.Tracer, cfg.ID),
		snapshotThreshold: cfg.SnapshotThreshold, snapshotThresholdBytes: cfg.SnapshotThresholdBytes,
		snapshotLogRatio: cfg.SnapshotLogRatio,
		onApply:          cfg.OnApply, onViolation: cfg.OnViolation, onStorageFailure: cfg.OnStorageFailure, id: cfg.ID, writes: map[uint64]*Write{},
	}
}

// Write is a command on its way through the log.
type Write struct {
	cmd   []byte
	index uint64 // 0 until the node has appended the command
	term  uint64
	done  func(result any, err error)
	over  bool // done was called, or the writer gave up
}

// Read is a query waiting for the state machine to be current.
type Read struct {
	query any
	index uint64
	done  func(result any, err error)
	over  bool
}

// NotLeaderError is returned by a server that is not the leader; Leader is
// the leader it knows of, or None.
type NotLeaderError struct{ Leader int }

func (e *NotLeaderError) Error() string {
	if e.Leader == core.None {
		return "not the leader (leader unknown)"
	}
	return fmt.Sprintf("not the leader (leader is %d)", e.Leader)
}

// ErrLost says a write was overwritten by a new leader before it committed:
// it did not take effect, and the client should retry.
var ErrLost = errors.New("write lost to a leader change: retry")

// NewWrite prepares a write of cmd; done gets its outcome, exactly once.
// The caller proposes cmd with the node and hands the answer to Proposed.
func NewWrite(cmd []byte, done func(result any, err error)) *Write {
	return &Write{cmd: cmd, done: done}
}

// Command is the command to propose.
func (w *Write) Command() []byte { return w.cmd }

func (w *Write) finish(result any, err error) {
	if !w.over {
		w.over = true
		w.done(result, err)
	}
}

// Proposed takes the node's answer to the proposal of w.
func (h *Host) Proposed(w *Write, r node.ProposeResult) {
	switch {
	case errors.Is(r.Err, core.ErrNotLeader):
		w.finish(nil, h.notLeader())
		return
	case r.Err != nil:
		w.finish(nil, r.Err)
		return
	}
	w.index, w.term = r.Index, r.Term
	switch {
	case w.over:
	case r.Index <= h.applied:
		// Applied before we got here: the session knows the outcome.
		w.finish(h.outcome(w))
	default:
		h.writes[r.Index] = w
	}
}

// Abandon forgets a write whose writer gave up waiting.
func (h *Host) Abandon(w *Write) {
	w.over = true
	if w.index != 0 && h.writes[w.index] == w {
		delete(h.writes, w.index)
	}
}

// NewRead prepares a read of query; done gets its answer, exactly once.
// The caller asks the node for a read index and hands it to ReadIndexed.
func NewRead(query any, done func(result any, err error)) *Read {
	return &Read{query: query, done: done}
}

func (r *Read) finish(result any, err error) {
	if !r.over {
		r.over = true
		r.done(result, err)
	}
}

// ReadIndexed takes the node's answer to r's ReadIndex: r is served once
// the state machine has applied index.
func (h *Host) ReadIndexed(r *Read, index uint64, err error) {
	switch {
	case errors.Is(err, core.ErrNotLeader):
		r.finish(nil, h.notLeader())
	case err != nil:
		r.finish(nil, err)
	case r.over:
	case index <= h.applied:
		h.serve(r)
	default:
		r.index = index
		h.reads = append(h.reads, r)
	}
}

// AbandonRead forgets a read whose reader gave up waiting.
func (h *Host) AbandonRead(r *Read) { r.over = true }

func (h *Host) serve(r *Read) {
	r.finish(h.sm.Read(r.query))
}

func (h *Host) notLeader() error {
	return &NotLeaderError{Leader: h.node.Summary().Leader}
}

// Applied returns the last index applied to the state machine.
func (h *Host) Applied() uint64 { return h.applied }

// Failed returns why the Host stopped applying (a snapshot storage could
// not read back, or a core.InvariantViolation), or nil.
func (h *Host) Failed() error { return h.failed }

// StateMachine returns the state machine (for reads by tests and tools).
func (h *Host) StateMachine() StateMachine { return h.sm }

// SnapshotJob is a snapshot to write out: the state through Index.
type SnapshotJob struct {
	Index uint64
	State StateSnapshot
	size  uint64 // bytes Write wrote
}

// Apply applies a batch of committed entries and installed snapshots and
// wakes the writers and readers waiting on them. If the log since the last
// snapshot has passed a threshold it captures the state and returns the
// job of writing it out (nil otherwise); the caller writes it, hands it to
// the node, and reports with SnapshotDone.
func (h *Host) Apply(batch []node.CommitEntry) *SnapshotJob {
	for i := 0; i < len(batch) && h.failed == nil; {
		if batch[i].Snapshot != nil {
			h.restore(&batch[i])
			i++
			continue
		}
		j := i + 1
		for j < len(batch) && batch[j].Snapshot == nil {
			j++
		}
		h.applyEntries(batch[i:j])
		i = j
	}
	h.wakeReads()
	if h.snapshotting || !h.snapshotDue() {
		return nil
	}
	return h.captureSnapshot()
}

// applyEntries applies a run of committed log entries.
func (h *Host) applyEntries(ents []node.CommitEntry) {
	var normal []node.CommitEntry
	for _, e := range ents {
		if e.Type == core.EntryNormal {
			normal = append(normal, e)
		}
	}
	var results []any
	if len(normal) > 0 {
		results = h.sm.Apply(normal)
	}
	k := 0
	for _, e := range ents {
		if e.Type == core.EntryNormal {
			if w := h.writes[e.Index]; w != nil {
				delete(h.writes, e.Index)
				if w.term == e.Term {
					w.finish(results[k], nil)
				} else {
					w.finish(nil, ErrLost)
				}
			}
			k++
		}
		h.applied = max(h.applied, e.Index)
		h.snapBytes += uint64(len(e.Command))
		if h.onApply != nil {
			h.onApply(e)
		}
	}
}

// restore resets the state machine from a snapshot installed by the leader
// (or loaded at start).
func (h *Host) restore(e *node.CommitEntry) {
	err := h.sm.Restore(storage.NewSnapshotReaderSection(e.Snapshot.Data))
	e.Snapshot.Data.Close()
	if err != nil && !errors.Is(err, storage.ErrSnapshotRead) && !errors.As(err, new(*fs.PathError)) {
		// The bytes are what was written, and the state machine cannot
		// take them: a bug, not the disk. Nothing more is applied.
		h.failed = h.violated(fmt.Sprintf("cannot restore snapshot %d: %v", e.Index, err))
		return
	}
	if err != nil {
		// The disk failed the read: the state machine is not what the log
		// says it is, and the node must not go on with it.
		h.failed = fmt.Errorf("reading snapshot %d: %w", e.Index, err)
		h.trace.Event(core.Event{Kind: core.EventStorageFailed, Peer: core.None, Detail: h.failed.Error()})
		if h.onStorageFailure == nil {
			panic(h.failed)
		}
		h.onStorageFailure(h.failed)
		return
	}
	h.applied = max(h.applied, e.Index)
	h.snapIndex, h.snapBytes, h.snapSize = e.Index, 0, e.Snapshot.Meta.Size
	// The snapshot jumped over the waiters' indexes: their sessions tell
	// whether their writes took effect.
	// In index order, so that a deterministic caller sees the same run twice.
	for _, idx := range slices.Sorted(maps.Keys(h.writes)) {
		if idx <= h.applied {
			w := h.writes[idx]
			delete(h.writes, idx)
			w.finish(h.outcome(w))
		}
	}
	if h.onApply != nil {
		h.onApply(*e)
	}
}

// violated reports a broken invariant to the tracer and the hook, or
// panics; it returns the violation.
func (h *Host) violated(what string) core.InvariantViolation {
	h.trace.Event(core.Event{Kind: core.EventSafety, Peer: core.None, Detail: what})
	v := core.InvariantViolation{Node: h.id, What: what}
	if h.onViolation == nil {
		panic(v)
	}
	h.onViolation(v)
	return v
}

// outcome tells a writer whose index was applied without it being notified
// what happened, from the client's session.
func (h *Host) outcome(w *Write) (any, error) {
	if d, ok := h.sm.(Deduplicator); ok {
		if res, applied := d.Outcome(w.cmd); applied {
			return res, nil
		}
	}
	return nil, ErrLost
}

func (h *Host) wakeReads() {
	keep := h.reads[:0]
	for _, r := range h.reads {
		switch {
		case r.over:
		case r.index <= h.applied:
			h.serve(r)
		default:
			keep = append(keep, r)
		}
	}
	clear(h.reads[len(keep):])
	h.reads = keep
}

// snapshotDue reports whether the log since the last snapshot passed a
// threshold, by entries or by bytes, and has grown past SnapshotLogRatio
// times the last snapshot's size.
//
// Each server waits a little longer than the thresholds say, by a factor
// of its own between 1 and 1.5 (from its id): the replicas of a log apply
// the same entries at about the same moment, and without it they would all
// write their snapshots at once, which on shared cores or a shared disk
// stalls every one of them together.
func (h *Host) snapshotDue() bool {
	f := h.snapshotStagger()
	due := (h.snapshotThreshold > 0 && float64(h.applied-h.snapIndex) >= f*float64(h.snapshotThreshold)) ||
		(h.snapshotThresholdBytes > 0 && float64(h.snapBytes) >= f*float64(h.snapshotThresholdBytes))
	return due && (h.snapshotLogRatio <= 0 || float64(h.snapBytes) >= f*h.snapshotLogRatio*float64(h.snapSize))
}

// snapshotStagger is the server's factor in [1, 1.5): the fractional part
// of id times the golden ratio spreads any set of ids evenly.
func (h *Host) snapshotStagger() float64 {
	const golden = 0.6180339887498949
	x := float64(max(h.id, 0)) * golden
	return 1 + 0.5*(x-float64(int64(x)))
}

func (h *Host) captureSnapshot() *SnapshotJob {
	st, err := h.sm.Snapshot()
	if err != nil {
		h.trace.Event(core.Info("snapshot at %d failed: %v", h.applied, err))
		return nil
	}
	h.snapshotting = true
	return &SnapshotJob{Index: h.applied, State: st}
}

// SnapshotNow captures the state at once, whatever the thresholds, unless
// a snapshot is being written out already (nil then).
func (h *Host) SnapshotNow() *SnapshotJob {
	if h.snapshotting {
		return nil
	}
	return h.captureSnapshot()
}

// SnapshotDone reports that job was written out and handed to the node
// (err nil) or failed.
func (h *Host) SnapshotDone(job *SnapshotJob, err error) {
	h.snapshotting = false
	if err == nil && job.Index > h.snapIndex {
		h.snapIndex, h.snapBytes, h.snapSize = job.Index, 0, job.size
	}
}

// Write writes the captured state to w (the state machine's WriteTo).
func (j *SnapshotJob) Write(w io.Writer) error {
	n, err := j.State.WriteTo(w)
	j.size = uint64(max(n, 0))
	return err
}
