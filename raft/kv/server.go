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

// Server is one member of a cluster: a RaftNode, a Host running the state
// machine on it, and a net/rpc listener on 127.0.0.1 that serves the node's
// RPCs to its peers. The decisions are the Host's (and the node's Driver's);
// the Server adds the goroutines, the lock and the waiting.
//
// The node goroutine never waits for the Host: a slow Apply or Restore
// holds mu, and a node goroutine blocked on it would send no heartbeats and
// answer no RPCs. What the node reports (a command appended, a read index
// known) is posted to the inbox instead, and the apply goroutine hands it
// to the Host, between batches.
type Server struct {
	id        int
	node      *node.RaftNode
	rpc       *transport.Listener
	transport transport.Transport
	trace     *trace.NodeTracer

	mu        sync.Mutex // guards host
	host      *Host
	inbox     inbox
	applyDone chan struct{}
	snapWG    sync.WaitGroup
}

// inbox queues work for the Host without ever blocking the poster on it:
// its own lock is held only to append or to take the queue.
type inbox struct {
	mu    sync.Mutex
	queue []func(*Host)
	wake  chan struct{} // capacity 1: something is queued
}

func (b *inbox) post(f func(*Host)) {
	b.mu.Lock()
	b.queue = append(b.queue, f)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// run hands everything queued to h, in order (the caller holds the
// Server's mu).
func (b *inbox) run(h *Host) {
	b.mu.Lock()
	queue := b.queue
	b.queue = nil
	b.mu.Unlock()
	for _, f := range queue {
		f(h)
	}
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Node node.Config
	// Addr to listen on, "127.0.0.1:0" for any port.
	Addr string
	// Listen configures the listener further: the cluster id and who may
	// connect, TLS, remote listening, more services (Addr, Handler and ID
	// are the Server's own; the KV Service is always served).
	Listen transport.ListenConfig
	// Services, if set, returns further services for the listener, given
	// the server (an admin service, say).
	Services func(*Server) map[string]any
	// Transport to reach peers (the Server closes it at Stop if it is an
	// io.Closer).
	Transport transport.Transport
	// StateMachine is what the server replicates (default: a KV Store).
	StateMachine StateMachine
	// SnapshotThreshold, SnapshotThresholdBytes, SnapshotLogRatio, OnApply
	// and OnViolation: see HostConfig.
	SnapshotThreshold      uint64
	SnapshotThresholdBytes uint64
	SnapshotLogRatio       float64
	OnApply                func(node.CommitEntry)
	OnViolation            func(core.InvariantViolation)
}

// StartServer starts a node and its listener.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.StateMachine == nil {
		cfg.StateMachine = NewStore()
	}
	cfg.Node.Transport = cfg.Transport
	n, err := node.NewRaftNode(cfg.Node)
	if err != nil {
		return nil, err
	}
	s := &Server{
		id: cfg.Node.ID, node: n, transport: cfg.Transport,
		trace:     trace.ForNode(cfg.Node.Tracer, cfg.Node.ID),
		inbox:     inbox{wake: make(chan struct{}, 1)},
		applyDone: make(chan struct{}),
	}
	onViolation := cfg.OnViolation
	if onViolation != nil { // nil: the Host panics
		onViolation = func(v core.InvariantViolation) {
			cfg.OnViolation(v)
			n.Stop() // on the apply goroutine, as OnStorageFailure
		}
	}
	s.host = NewHost(n, cfg.StateMachine, HostConfig{
		SnapshotThreshold: cfg.SnapshotThreshold, SnapshotThresholdBytes: cfg.SnapshotThresholdBytes,
		SnapshotLogRatio: cfg.SnapshotLogRatio,
		OnApply:          cfg.OnApply, OnViolation: onViolation, Tracer: cfg.Node.Tracer, ID: cfg.Node.ID,
		// Called on the apply goroutine, under mu: the node's shutdown
		// never waits for mu (see inbox), so it can stop the node there.
		OnStorageFailure: func(error) { n.Stop() },
	})
	lc := cfg.Listen
	lc.Addr, lc.Handler, lc.ID = cfg.Addr, n, cfg.Node.ID
	lc.Services = map[string]any{ServiceName: &Service{server: s}}
	if cfg.Services != nil {
		for name, svc := range cfg.Services(s) {
			lc.Services[name] = svc
		}
	}
	s.rpc, err = transport.ListenWith(lc)
	if err != nil {
		n.Stop()
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
	return s.host.Applied()
}

// Stop stops the node, the listener and the transport. Volatile state is
// gone; the node's Storage is left for the owner to close or reuse.
func (s *Server) Stop() {
	// The node first: the calls waiting on it (a write that cannot commit
	// on a minority side) end at once with ErrStopped, and the listener's
	// close, which waits for the calls it is serving, does not wait for
	// their timeouts.
	s.node.Stop()
	s.rpc.Close()
	if c, ok := s.transport.(io.Closer); ok {
		c.Close()
	}
	<-s.applyDone
	s.snapWG.Wait()
}

// applyLoop applies committed entries, a batch at a time under the lock,
// hands the Host what the node posted to the inbox, and starts the
// snapshots the Host asks for.
func (s *Server) applyLoop() {
	defer close(s.applyDone)
	batches := s.node.CommitBatches()
	for {
		select {
		case batch, ok := <-batches:
			s.mu.Lock()
			s.inbox.run(s.host) // appended before they were committed
			var job *SnapshotJob
			if ok {
				job = s.host.Apply(batch)
			}
			s.mu.Unlock()
			if !ok {
				return
			}
			if job != nil {
				s.startSnapshot(job)
			}
		case <-s.inbox.wake:
			s.mu.Lock()
			s.inbox.run(s.host)
			s.mu.Unlock()
		}
	}
}

// startSnapshot writes the captured state out on a goroutine of its own,
// so that neither the node's heartbeats nor the applying of entries wait
// for it, then hands it to the node.
func (s *Server) startSnapshot(job *SnapshotJob) {
	s.snapWG.Add(1)
	go func() {
		defer s.snapWG.Done()
		err := s.writeSnapshot(job)
		if err != nil && !errors.Is(err, node.ErrStopped) && !errors.Is(err, core.ErrSnapshotTooOld) {
			s.trace.Event(core.Info("snapshot at %d failed: %v", job.Index, err))
		}
		s.mu.Lock()
		s.host.SnapshotDone(job, err)
		s.mu.Unlock()
	}()
}

func (s *Server) writeSnapshot(job *SnapshotJob) error {
	return s.node.Snapshot(job.Index, nil, job.Write)
}

// Write submits a set or delete and waits until it is applied.
func (s *Server) Write(ctx context.Context, cmd Command) (Result, error) {
	res, err := s.Propose(ctx, EncodeCommand(cmd))
	if err != nil {
		return Result{}, err
	}
	r, _ := res.(Result)
	return r, nil
}

type outcome struct {
	result any
	err    error
}

// Propose submits a command of the state machine and waits until it is
// applied; it returns the state machine's result.
func (s *Server) Propose(ctx context.Context, cmd []byte) (any, error) {
	done := make(chan outcome, 1)
	w := NewWrite(cmd, func(res any, err error) { done <- outcome{res, err} })
	// The node goroutine posts the answer as soon as it has appended the
	// command, so the caller waits once, for the outcome.
	s.node.ProposeAsync(cmd, func(r node.ProposeResult) {
		s.inbox.post(func(h *Host) { h.Proposed(w, r) })
	})
	return s.await(ctx, done, func(h *Host) { h.Abandon(w) })
}

// Read serves a linearizable read with ReadIndex: no log entry is written.
func (s *Server) Read(ctx context.Context, key string) (Result, error) {
	res, err := s.Query(ctx, key)
	if err != nil {
		return Result{}, err
	}
	r, ok := res.(Result)
	if !ok {
		return Result{}, fmt.Errorf("kv: the state machine answered %T, not a Result", res)
	}
	return r, nil
}

// Query answers a query of the state machine, linearizably (ReadIndex).
func (s *Server) Query(ctx context.Context, query any) (any, error) {
	done := make(chan outcome, 1)
	r := NewRead(query, func(res any, err error) { done <- outcome{res, err} })
	// The read is served on the apply goroutine, never the node's.
	s.node.ReadIndexAsync(func(index uint64, err error) {
		s.inbox.post(func(h *Host) { h.ReadIndexed(r, index, err) })
	})
	return s.await(ctx, done, func(h *Host) { h.AbandonRead(r) })
}

// await waits for an operation's outcome; if the caller gives up first, the
// Host is told (through the inbox: the caller does not wait for a batch
// being applied) to abandon it.
func (s *Server) await(ctx context.Context, done <-chan outcome, abandon func(*Host)) (any, error) {
	select {
	case out := <-done:
		return out.result, out.err
	case <-ctx.Done():
		s.inbox.post(abandon)
		return nil, ctx.Err()
	case <-s.node.Done():
		return nil, s.stopped()
	}
}

// stopped says why the node is gone: a storage failure, or a stop.
func (s *Server) stopped() error {
	if err := s.node.Failed(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.host.Failed(); err != nil {
		if v, ok := err.(core.InvariantViolation); ok {
			return v
		}
		return fmt.Errorf("%w: %v", node.ErrStorageFailed, err)
	}
	return node.ErrStopped
}

// Do runs a KV command: reads through ReadIndex, writes through the log.
func (s *Server) Do(ctx context.Context, cmd Command) (Result, error) {
	if cmd.Op == OpGet {
		return s.Read(ctx, cmd.Key)
	}
	return s.Write(ctx, cmd)
}

// ReadLocal answers a query from this server's state machine as it
// stands, without ReadIndex, with the index it has applied. The answer may
// be stale: a follower lags, and a deposed leader that has not heard of its
// successor answers an old value (thesis §6.4). It shows what linearizable
// reads prevent; clients are never served this way.
func (s *Server) ReadLocal(query any) (res any, applied uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err = s.host.StateMachine().Read(query)
	return res, s.host.Applied(), err
}

// KVLen returns the number of keys in the state machine, if it is a Store.
func (s *Server) KVLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.host.StateMachine().(*Store); ok {
		return st.Len()
	}
	return 0
}

// SnapshotNow makes the state machine snapshot its state at once and
// waits until the node has it.
func (s *Server) SnapshotNow() (uint64, error) {
	s.mu.Lock()
	job := s.host.SnapshotNow()
	s.mu.Unlock()
	if job == nil {
		return 0, errors.New("a snapshot is being written already")
	}
	err := s.writeSnapshot(job)
	s.mu.Lock()
	s.host.SnapshotDone(job, err)
	s.mu.Unlock()
	return job.Index, err
}
