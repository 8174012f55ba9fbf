package kv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"raft-consensus/raft/core"
	"raft-consensus/raft/node"
	"raft-consensus/raft/trace"
	"raft-consensus/raft/transport"
)

// Server is one member of a cluster as the simulator runs it: a RaftNode,
// the KV state machine it drives, and a net/rpc listener on 127.0.0.1 that
// serves the node's RPCs to its peers.
type Server struct {
	id        int
	node      *node.RaftNode
	rpc       *transport.Listener
	transport transport.Transport
	trace     *trace.NodeTracer

	snapshotThreshold      uint64
	snapshotThresholdBytes uint64

	mu           sync.Mutex
	kv           *Store
	applied      uint64
	snapIndex    uint64
	snapBytes    uint64                  // bytes of commands applied since the last snapshot
	writeWaiters map[uint64]*writeWaiter // by log index
	readWaiters  []readWaiter
	onApply      func(node.CommitEntry)
	applyDone    chan struct{}
}

type writeWaiter struct {
	index    uint64 // 0 until the node has appended the command
	term     uint64
	clientID uint64
	seq      uint64
	done     chan writeOutcome // buffered: exactly one outcome is sent
	gone     bool              // the writer gave up waiting
}

type writeOutcome struct {
	res Result
	err error
}

type readWaiter struct {
	index uint64
	done  chan struct{}
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

// ServerConfig configures a Server.
type ServerConfig struct {
	Node node.Config
	// Addr to listen on, "127.0.0.1:0" for any port.
	Addr string
	// Transport to reach peers (the Server closes it at Stop if it is an
	// io.Closer).
	Transport transport.Transport
	// SnapshotThreshold: the state machine snapshots after this many
	// applied entries since the last snapshot (0: no limit by count).
	SnapshotThreshold uint64
	// SnapshotThresholdBytes: ... or after this many bytes of applied
	// commands since the last snapshot (0: no limit by size).
	SnapshotThresholdBytes uint64
	// OnApply, if set, sees every committed entry after it is applied.
	OnApply func(node.CommitEntry)
}

// StartServer starts a node and its listener.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Node.Transport = cfg.Transport
	node, err := node.NewRaftNode(cfg.Node)
	if err != nil {
		return nil, err
	}
	s := &Server{
		id: cfg.Node.ID, node: node, transport: cfg.Transport,
		trace:             trace.ForNode(cfg.Node.Tracer, cfg.Node.ID),
		snapshotThreshold: cfg.SnapshotThreshold, snapshotThresholdBytes: cfg.SnapshotThresholdBytes,
		kv: NewStore(), writeWaiters: map[uint64]*writeWaiter{},
		onApply: cfg.OnApply, applyDone: make(chan struct{}),
	}
	s.rpc, err = transport.Listen(cfg.Addr, node)
	if err != nil {
		node.Stop()
		return nil, err
	}
	go s.applyLoop()
	return s, nil
}

// ID returns the server's id.
func (s *Server) ID() int { return s.id }

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.rpc.Addr() }

// Node returns the server's RaftNode.
func (s *Server) Node() *node.RaftNode { return s.node }

// Applied returns the last index applied to the state machine.
func (s *Server) Applied() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// Stop stops the node, the listener and the transport. Volatile state is
// gone; the node's Storage is left for the owner to close or reuse.
func (s *Server) Stop() {
	s.rpc.Close()
	s.node.Stop()
	if c, ok := s.transport.(io.Closer); ok {
		c.Close()
	}
	<-s.applyDone
}

// applyLoop applies committed entries to the KV store and wakes the
// clients waiting on them, a batch at a time under one lock (up to a
// snapshot, which is taken outside it).
func (s *Server) applyLoop() {
	defer close(s.applyDone)
	for batch := range s.node.CommitBatches() {
		for len(batch) > 0 {
			s.mu.Lock()
			n, snapNow, snapIndex, snapData := s.applyLocked(batch)
			onApply := s.onApply
			s.mu.Unlock()
			if onApply != nil {
				for _, e := range batch[:n] {
					onApply(e)
				}
			}
			if snapNow {
				if err := s.node.Snapshot(snapIndex, snapData); err != nil && !errors.Is(err, node.ErrStopped) {
					s.trace.Eventf("snapshot at %d failed: %v", snapIndex, err)
				}
			}
			batch = batch[n:]
		}
	}
}

// applyLocked applies the entries of batch until one makes the state
// machine due for a snapshot; it returns how many it applied and the
// snapshot to take, if any.
func (s *Server) applyLocked(batch []node.CommitEntry) (n int, snapNow bool, snapIndex uint64, snapData []byte) {
	for i := range batch {
		e := &batch[i]
		switch {
		case e.Snapshot != nil:
			if err := s.kv.Restore(e.Snapshot.Data); err != nil {
				s.trace.Eventf("SAFETY: cannot restore snapshot %d: %v", e.Index, err)
			}
			s.snapIndex = e.Index
		case e.Type == core.EntryNormal:
			if cmd, err := DecodeCommand(e.Command); err == nil {
				res := s.kv.Apply(cmd)
				if w := s.writeWaiters[e.Index]; w != nil {
					delete(s.writeWaiters, e.Index)
					if w.term == e.Term {
						w.done <- writeOutcome{res: res}
					} else {
						w.done <- writeOutcome{err: ErrLost}
					}
				}
			}
		}
		if e.Index > s.applied {
			s.applied = e.Index
		}
		s.snapBytes += uint64(len(e.Command))
		if e.Snapshot != nil {
			s.snapBytes = 0
			// The snapshot jumped over the waiters' indexes: their sessions
			// tell whether their writes took effect.
			for idx, w := range s.writeWaiters {
				if idx <= s.applied {
					delete(s.writeWaiters, idx)
					w.done <- s.outcomeLocked(w)
				}
			}
		}
		if s.snapshotDueLocked() && e.Snapshot == nil {
			s.wakeReadersLocked()
			s.snapIndex, s.snapBytes = s.applied, 0
			return i + 1, true, s.applied, s.kv.Snapshot()
		}
	}
	s.wakeReadersLocked()
	return len(batch), false, 0, nil
}

// snapshotDueLocked reports whether the log since the last snapshot passed
// a threshold, by entries or by bytes.
func (s *Server) snapshotDueLocked() bool {
	return (s.snapshotThreshold > 0 && s.applied-s.snapIndex >= s.snapshotThreshold) ||
		(s.snapshotThresholdBytes > 0 && s.snapBytes >= s.snapshotThresholdBytes)
}

// outcomeLocked tells a waiter whose index was applied without it being
// notified what happened, from the client's session.
func (s *Server) outcomeLocked(w *writeWaiter) writeOutcome {
	seq, res := s.kv.Session(w.clientID)
	if seq >= w.seq && w.clientID != 0 {
		return writeOutcome{res: res}
	}
	return writeOutcome{err: ErrLost}
}

func (s *Server) wakeReadersLocked() {
	keep := s.readWaiters[:0]
	for _, r := range s.readWaiters {
		if r.index <= s.applied {
			close(r.done)
		} else {
			keep = append(keep, r)
		}
	}
	s.readWaiters = keep
}

func (s *Server) notLeader() error {
	return &NotLeaderError{Leader: s.node.Summary().Leader}
}

// Write submits a set or delete and waits until it is applied.
func (s *Server) Write(ctx context.Context, cmd Command) (Result, error) {
	w := &writeWaiter{clientID: cmd.ClientID, seq: cmd.Seq, done: make(chan writeOutcome, 1)}
	// The node goroutine registers the waiter as soon as it has appended
	// the command, so the caller waits once, for the outcome.
	s.node.ProposeAsync(EncodeCommand(cmd), func(r node.ProposeResult) { s.proposed(w, r) })
	select {
	case out := <-w.done:
		return out.res, out.err
	case <-ctx.Done():
		s.mu.Lock()
		w.gone = true
		if w.index != 0 && s.writeWaiters[w.index] == w {
			delete(s.writeWaiters, w.index)
		}
		s.mu.Unlock()
		return Result{}, ctx.Err()
	case <-s.node.Done():
		return Result{}, node.ErrStopped
	}
}

// proposed runs on the node goroutine with the result of a Write's proposal.
func (s *Server) proposed(w *writeWaiter, r node.ProposeResult) {
	switch {
	case errors.Is(r.Err, core.ErrNotLeader):
		w.done <- writeOutcome{err: s.notLeader()}
		return
	case r.Err != nil:
		w.done <- writeOutcome{err: r.Err}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.index, w.term = r.Index, r.Term
	switch {
	case w.gone:
	case r.Index <= s.applied:
		// Applied before we got here: the session knows the outcome.
		w.done <- s.outcomeLocked(w)
	default:
		s.writeWaiters[r.Index] = w
	}
}

// Read serves a linearizable read with ReadIndex: no log entry is written.
func (s *Server) Read(ctx context.Context, key string) (Result, error) {
	index, err := s.node.ReadIndex(ctx)
	switch {
	case errors.Is(err, core.ErrNotLeader):
		return Result{}, s.notLeader()
	case err != nil:
		return Result{}, err
	}
	s.mu.Lock()
	if index > s.applied {
		r := readWaiter{index: index, done: make(chan struct{})}
		s.readWaiters = append(s.readWaiters, r)
		s.mu.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-s.node.Done():
			return Result{}, node.ErrStopped
		}
		s.mu.Lock()
	}
	v, ok := s.kv.Get(key)
	s.mu.Unlock()
	return Result{Value: v, Found: ok}, nil
}

// Do runs a KV command: reads through ReadIndex, writes through the log.
func (s *Server) Do(ctx context.Context, cmd Command) (Result, error) {
	if cmd.Op == OpGet {
		return s.Read(ctx, cmd.Key)
	}
	return s.Write(ctx, cmd)
}

// KVLen returns the number of keys in the state machine.
func (s *Server) KVLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kv.Len()
}

// SnapshotNow makes the state machine snapshot its state at once.
func (s *Server) SnapshotNow() (uint64, error) {
	s.mu.Lock()
	data, index := s.kv.Snapshot(), s.applied
	s.mu.Unlock()
	if err := s.node.Snapshot(index, data); err != nil {
		return 0, err
	}
	s.mu.Lock()
	if index > s.snapIndex {
		s.snapIndex, s.snapBytes = index, 0
	}
	s.mu.Unlock()
	return index, nil
}
