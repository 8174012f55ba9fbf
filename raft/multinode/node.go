// Package multinode runs a multi.Host on real time: one goroutine per
// server steps the host on a ticker, on the batches other servers send and
// on its clients' proposals, and flushes once for everything that arrived
// together, so that what it sends each peer in that round is one batch.
// The host's rules stay in package multi (deterministic, no I/O); this
// package only supplies goroutines, a clock and a Transport.
package multinode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/node"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/trace"
)

// Transport carries batches between servers. Send must not block: a batch
// that cannot be delivered is dropped (Raft retries).
type Transport interface {
	Send(b *multi.Batch)
}

// Config configures a Node.
type Config struct {
	ID   multi.NodeID
	Core core.CoreConfig
	// Tick is the length of a tick (default 10 ms).
	Tick      time.Duration
	Transport Transport
	// Storage returns a group's storage (default: a MemoryStorage).
	Storage func(multi.GroupID) storage.Storage
	// LivenessTicks: see multi.Config.
	LivenessTicks int
	// Log, if set, holds every group of the node in one durable shared
	// log (Storage is then its groups): one fsync per round for all.
	Log *storage.SharedLog
	// Apply, if set, receives every group's committed entries on the node
	// goroutine, once the round that applied them is durable: where the
	// application's state machines run (raft/shard's KV stores).
	Apply func(g multi.GroupID, batch []node.CommitEntry)
	// Events, if set, receives the host's events on the node goroutine.
	Events func(multi.Event)
	// Tracer, if set, receives every group's protocol events.
	Tracer trace.Tracer
}

// ErrStopped is the error of a call on a stopped node.
var ErrStopped = errors.New("multinode: node stopped")

// ErrLost is the error of a proposal whose entry was replaced by another
// leader's before it committed.
var ErrLost = errors.New("multinode: the proposal was lost to a new leader")

// ErrUnknown is the error of a proposal whose outcome this node cannot
// tell: a snapshot covered its entry before it applied here, or the node's
// storage failed. It may have committed, or not. (A retry could apply it
// twice: the KV's sessions are what make that safe.)
var ErrUnknown = errors.New("multinode: the proposal's outcome is unknown")

// Node is one server hosting many groups.
type Node struct {
	cfg   Config
	host  *multi.Host
	inbox chan *multi.Batch
	calls chan func()
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	// waiting are the proposals made here, by group and index, until they
	// apply (on the node goroutine only); answers wait in answers until
	// the round's Flush has made everything durable.
	waiting map[multi.GroupID]map[uint64]waiter
	answers []func()

	dropped atomic.Uint64 // batches lost to a full inbox

	mu      sync.Mutex
	leaders map[multi.GroupID]multi.NodeID // as this node last saw them
	stats   multi.Stats
	failed  error // why it stopped by itself
}

type waiter struct {
	term uint64
	done func(error)
}

// New starts a node with no groups.
func New(cfg Config) *Node {
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	var sync func() error
	switch {
	case cfg.Log != nil:
		cfg.Storage = func(g multi.GroupID) storage.Storage { return cfg.Log.Group(uint64(g)) }
		sync = cfg.Log.Sync
	case cfg.Storage == nil:
		cfg.Storage = func(multi.GroupID) storage.Storage { return storage.NewMemoryStorage() }
	}
	n := &Node{cfg: cfg, inbox: make(chan *multi.Batch, 1024), calls: make(chan func(), 1024),
		stop: make(chan struct{}), done: make(chan struct{}), waiting: map[multi.GroupID]map[uint64]waiter{},
		leaders: map[multi.GroupID]multi.NodeID{}}
	n.host = multi.NewHost(multi.Config{ID: cfg.ID, Core: cfg.Core, Storage: cfg.Storage, Apply: n.apply, Events: n.event,
		LivenessTicks: cfg.LivenessTicks, Sync: sync, Tracer: cfg.Tracer})
	go n.run()
	return n
}

// ID returns the node's id.
func (n *Node) ID() multi.NodeID { return n.cfg.ID }

// Deliver hands the node a batch from another server; it never blocks (a
// full inbox drops the batch, as a congested network would).
func (n *Node) Deliver(b *multi.Batch) {
	select {
	case n.inbox <- b:
	default:
		n.dropped.Add(1)
	}
}

// Dropped counts the batches lost to a full inbox.
func (n *Node) Dropped() uint64 { return n.dropped.Load() }

// Do runs fn with the host on the node goroutine and waits for it; the
// round then flushes what fn did. fn must not block.
func (n *Node) Do(ctx context.Context, fn func(*multi.Host)) error {
	return n.do(ctx, func() { fn(n.host) })
}

// Done is closed when the node has stopped: Stop, or a storage failure.
func (n *Node) Done() <-chan struct{} { return n.done }

// Failed is why the node stopped by itself (its storage failed), or nil.
func (n *Node) Failed() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.failed
}

// do runs fn on the node goroutine and waits for it.
func (n *Node) do(ctx context.Context, fn func()) error {
	ran := make(chan struct{})
	select {
	case n.calls <- func() { fn(); close(ran) }:
	case <-n.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ran:
		return nil
	case <-n.done:
		return ErrStopped
	}
}

// CreateGroup creates the node's replica of group g with these founding
// members.
func (n *Node) CreateGroup(g multi.GroupID, members []multi.NodeID) error {
	var err error
	if e := n.do(context.Background(), func() { err = n.host.CreateGroup(g, members) }); e != nil {
		return e
	}
	return err
}

// Propose proposes data to group g, which must lead here, and waits until
// the entry is applied here (nil), lost, or ctx is done.
func (n *Node) Propose(ctx context.Context, g multi.GroupID, data []byte) error {
	result := make(chan error, 1)
	err := n.do(ctx, func() {
		res := n.host.Propose(g, data)
		if res.Err != nil {
			result <- res.Err
			return
		}
		if n.waiting[g] == nil {
			n.waiting[g] = map[uint64]waiter{}
		}
		n.waiting[g][res.Index] = waiter{term: res.Term, done: func(err error) { result <- err }}
	})
	if err != nil {
		return err
	}
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrStopped
	}
}

// Leader is group g's leader as this node last saw it (-1: none known).
func (n *Node) Leader(g multi.GroupID) multi.NodeID {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l, ok := n.leaders[g]; ok {
		return l
	}
	return -1
}

// Stats returns the host's counters.
func (n *Node) Stats() multi.Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Quiet counts the node's quiet replicas.
func (n *Node) Quiet() (quiet, all int, err error) {
	err = n.do(context.Background(), func() {
		for _, g := range n.host.Groups() {
			all++
			if _, q, _ := n.host.Summary(g); q {
				quiet++
			}
		}
	})
	return quiet, all, err
}

// Stop stops the node's goroutine; its proposals fail with ErrStopped.
func (n *Node) Stop() {
	n.once.Do(func() { close(n.stop) })
	<-n.done
}

func (n *Node) run() {
	defer close(n.done)
	ticker := time.NewTicker(n.cfg.Tick)
	defer ticker.Stop()
	for {
		select {
		case <-n.stop:
			n.failWaiting(ErrStopped)
			return
		case <-ticker.C:
			n.host.Tick()
		case b := <-n.inbox:
			n.host.Step(b)
		case fn := <-n.calls:
			fn()
		}
		// Take everything else that is already here, then flush once.
		for more := true; more; {
			select {
			case b := <-n.inbox:
				n.host.Step(b)
			case fn := <-n.calls:
				fn()
			default:
				more = false
			}
		}
		for _, b := range n.host.Flush() {
			n.cfg.Transport.Send(b)
		}
		if err := n.host.Failed(); err != nil {
			// Its storage failed: nothing more is durable here, and what
			// was proposed may or may not commit elsewhere. The node stops
			// (as a crash would), and Failed says why.
			n.failWaiting(fmt.Errorf("%w: %v", ErrUnknown, err))
			for _, a := range n.answers {
				a()
			}
			n.answers = nil
			n.mu.Lock()
			n.failed = err
			n.mu.Unlock()
			return
		}
		for _, a := range n.answers {
			a()
		}
		n.answers = n.answers[:0]
		n.mu.Lock()
		n.stats = n.host.Stats()
		n.mu.Unlock()
	}
}

// apply answers the proposals made here as their entries apply, once the
// round that applied them is durable (Flush synced it).
func (n *Node) apply(g multi.GroupID, batch []node.CommitEntry) {
	if n.cfg.Apply != nil {
		n.cfg.Apply(g, batch)
	}
	ws := n.waiting[g]
	answer := func(w waiter, err error) { n.answers = append(n.answers, func() { w.done(err) }) }
	for _, e := range batch {
		if e.Snapshot != nil {
			if n.cfg.Apply == nil {
				e.Snapshot.Data.Close() // no state machine here takes it
			}
			for i, w := range ws {
				if i <= e.Index {
					answer(w, ErrUnknown)
					delete(ws, i)
				}
			}
			continue
		}
		if w, ok := ws[e.Index]; ok {
			if w.term == e.Term {
				answer(w, nil)
			} else {
				answer(w, ErrLost)
			}
			delete(ws, e.Index)
		}
	}
}

func (n *Node) event(e multi.Event) {
	if n.cfg.Events != nil {
		n.cfg.Events(e)
	}
	if e.Kind == multi.EventLeader {
		n.mu.Lock()
		n.leaders[e.Group] = e.Leader
		n.mu.Unlock()
	}
}

func (n *Node) failWaiting(err error) {
	for g, ws := range n.waiting {
		for _, w := range ws {
			w.done(err)
		}
		delete(n.waiting, g)
	}
}

// ProposeAtLeader proposes data to group g at the node that last saw
// itself lead it, as a client would: on a refusal, a lost entry or an
// attempt that takes longer than attempt, it tries again where the nodes
// now say the leader is, until ctx is done.
func ProposeAtLeader(ctx context.Context, nodes []*Node, g multi.GroupID, data []byte, attempt time.Duration) error {
	for {
		target := nodes[0]
		for _, n := range nodes {
			if l := n.Leader(g); l >= 0 {
				for _, m := range nodes {
					if m.ID() == l {
						target = m
					}
				}
			}
		}
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := target.Propose(actx, g, data)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if !errors.Is(err, core.ErrNotLeader) && !errors.Is(err, ErrLost) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// LocalNetwork delivers batches between nodes of one process.
type LocalNetwork struct {
	mu    sync.Mutex
	nodes map[multi.NodeID]*Node
}

// NewLocalNetwork returns an empty network.
func NewLocalNetwork() *LocalNetwork { return &LocalNetwork{nodes: map[multi.NodeID]*Node{}} }

// Add connects a node.
func (l *LocalNetwork) Add(n *Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes[n.ID()] = n
}

// Transport is the transport of one node.
func (l *LocalNetwork) Transport() Transport { return localTransport{l} }

type localTransport struct{ l *LocalNetwork }

func (t localTransport) Send(b *multi.Batch) {
	t.l.mu.Lock()
	n := t.l.nodes[b.To]
	t.l.mu.Unlock()
	if n != nil {
		n.Deliver(b)
	}
}

func (n *Node) String() string { return fmt.Sprintf("node %d", n.cfg.ID) }
