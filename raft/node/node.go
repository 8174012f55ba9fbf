package node

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/transport"
)

// RaftNode is one Raft server: a Driver run by one goroutine that owns its
// clock, and around it the goroutines that do its blocking work — a sender
// per peer, the leader's log writer and the applier. For every batch of
// inputs (ticks, proposals, RPCs, replies) the node goroutine steps the
// driver, which persists, then sends, then hands committed entries to the
// state machine (see Driver). Every input that arrived meanwhile is stepped
// before one Storage.Save, so one sync covers them all (group commit).
//
// All the decisions are the Driver's: this type only turns channels and
// timers into calls of it, which is what lets the deterministic simulation
// run the same Driver in virtual time.
type RaftNode struct {
	id        int
	cfg       Config
	driver    *Driver // owned by the run goroutine
	transport transport.Transport

	propc chan proposal
	recvc chan inbound
	respc chan core.Message
	ctlc  chan func()
	stopc chan struct{}
	done  chan struct{}
	// ctx is cancelled when the node stops, ending RPCs in flight.
	ctx    context.Context
	cancel context.CancelFunc

	peers   map[int]*peerSender // owned by the run goroutine
	peersWG sync.WaitGroup
	apply   *applier
	// writer writes a leader's new entries on its own goroutine
	// (Config.AsyncLeaderWrites); nil: every Save is synchronous.
	writer *logWriter

	mu      sync.Mutex
	summary core.Summary
	failed  error
}

type proposal struct {
	kind   proposalKind
	data   []byte
	change core.ConfChangeType
	id     int
	// changes, if set, is a change of several members (proposeConfChanges).
	changes []core.ConfChange
	// notify gets the result on the node goroutine (it must not block).
	notify func(ProposeResult)
}

type proposalKind uint8

const (
	proposeCommand proposalKind = iota
	proposeConfChange
	proposeConfChanges
)

type inbound struct {
	msg   core.Message
	reply chan *core.Message
}

// NewRaftNode restores a node from cfg.Storage and starts it.
func NewRaftNode(cfg Config) (*RaftNode, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	n := &RaftNode{
		id:        cfg.ID,
		cfg:       cfg,
		transport: cfg.Transport,
		propc:     make(chan proposal, 256),
		recvc:     make(chan inbound, 256),
		respc:     make(chan core.Message, 256),
		ctlc:      make(chan func()),
		stopc:     make(chan struct{}),
		done:      make(chan struct{}),
		peers:     map[int]*peerSender{},
		apply:     newApplier(),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	dc := DriverConfig{
		Core: cfg.coreConfig(), Members: cfg.Members, VoteFloor: cfg.VoteFloor, Storage: cfg.Storage,
		Outbox: n, Applier: n.apply, Tracer: cfg.Tracer, broken: cfg.broken,
	}
	if cfg.AsyncLeaderWrites {
		n.writer = newLogWriter(cfg.Storage, cfg.LeaderSyncGap, n.stopc)
		dc.Writer = n.writer
	}
	n.driver, err = NewDriver(dc)
	if err != nil {
		return nil, err
	}
	if n.writer != nil {
		go n.writer.run()
	}
	n.updateSummary()
	go n.apply.run()
	go n.run()
	return n, nil
}

// ID returns the node's id.
func (n *RaftNode) ID() int { return n.id }

// CommitChan delivers committed entries and installed snapshots in log
// order. It is closed when the node stops. (A Server consumes its node's
// entries itself, in batches: do not read a Server's node's CommitChan.)
func (n *RaftNode) CommitChan() <-chan CommitEntry { return n.apply.entries() }

// CommitBatches delivers the same as CommitChan, a batch at a time: one
// channel operation per batch rather than per entry.
func (n *RaftNode) CommitBatches() <-chan []CommitEntry { return n.apply.out }

// Submit proposes a command. It returns the index and term the command will
// have if it commits, and whether this node is the leader (only a leader
// accepts commands).
func (n *RaftNode) Submit(cmd []byte) (index, term uint64, isLeader bool) {
	r := n.propose(proposal{kind: proposeCommand, data: cmd})
	return r.Index, r.Term, r.Err == nil
}

// Propose is Submit with the reason for a refusal.
func (n *RaftNode) Propose(cmd []byte) (index, term uint64, err error) {
	r := n.propose(proposal{kind: proposeCommand, data: cmd})
	return r.Index, r.Term, r.Err
}

// ProposeConfChange proposes one membership change (thesis §4.1).
func (n *RaftNode) ProposeConfChange(t core.ConfChangeType, id int) (index uint64, err error) {
	r := n.propose(proposal{kind: proposeConfChange, change: t, id: id})
	return r.Index, r.Err
}

// ProposeConfChanges proposes a change of several members in one step,
// through a joint configuration when more than one voter changes (Raft
// paper §6; the leader leaves it by itself once it commits).
func (n *RaftNode) ProposeConfChanges(changes []core.ConfChange) (index uint64, err error) {
	r := n.propose(proposal{kind: proposeConfChanges, changes: slices.Clone(changes)})
	return r.Index, r.Err
}

// ProposeAsync proposes a command without waiting: notify gets the result
// on the node goroutine, or ErrStopped if the node stops first.
func (n *RaftNode) ProposeAsync(cmd []byte, notify func(ProposeResult)) {
	select {
	case n.propc <- proposal{kind: proposeCommand, data: cmd, notify: notify}:
	case <-n.done:
		notify(ProposeResult{Err: ErrStopped})
	}
}

func (n *RaftNode) propose(p proposal) ProposeResult {
	ch := make(chan ProposeResult, 1)
	p.notify = func(r ProposeResult) { ch <- r }
	select {
	case n.propc <- p:
	case <-n.done:
		return ProposeResult{Err: ErrStopped}
	}
	select {
	case r := <-ch:
		return r
	case <-n.done:
		return ProposeResult{Err: ErrStopped}
	}
}

// ReadIndexAsync asks for a linearizable read (thesis §6.4) without
// waiting: notify gets, on the node goroutine, the index the state machine
// must reach before it serves the read, or an error.
func (n *RaftNode) ReadIndexAsync(notify func(index uint64, err error)) {
	select {
	case n.ctlc <- func() { n.driver.ReadIndex(notify) }:
	case <-n.done:
		notify(0, ErrStopped)
	}
}

// ReadIndex confirms that this node is still the leader and returns the
// index the state machine must reach before it serves a linearizable read
// (thesis §6.4).
func (n *RaftNode) ReadIndex(ctx context.Context) (uint64, error) {
	type result struct {
		index uint64
		err   error
	}
	ch := make(chan result, 1)
	err := n.do(ctx, func() {
		n.driver.ReadIndex(func(index uint64, err error) { ch <- result{index, err} })
	})
	if err != nil {
		return 0, err
	}
	select {
	case r := <-ch:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.done:
		return 0, ErrStopped
	}
}

// TransferLeadership asks the leader to hand leadership to target.
func (n *RaftNode) TransferLeadership(ctx context.Context, target int) error {
	var err error
	if derr := n.do(ctx, func() { err = n.driver.TransferLeadership(target) }); derr != nil {
		return derr
	}
	return err
}

// Snapshot saves the state machine's state through index (which it has
// applied): write writes the state out, on the caller's goroutine and
// straight into storage, while the node goes on; then the node makes it
// its snapshot and discards the log up to index. app is the application's
// metadata, kept and sent with the snapshot.
func (n *RaftNode) Snapshot(index uint64, app []byte, write func(io.Writer) error) error {
	w, err := storage.WriteSnapshot(n.cfg.Storage, index, write)
	if err != nil {
		return err
	}
	if derr := n.do(context.Background(), func() { err = n.driver.Snapshot(index, w, app) }); derr != nil {
		w.Abort()
		return derr
	}
	return err
}

// VoteFloor asks this node, which must lead, for the vote floor of a
// server about to be added with an empty log: its position confirmed by a
// majority (Driver.VoteFloor).
func (n *RaftNode) VoteFloor(ctx context.Context) (core.VoteFloor, error) {
	type result struct {
		floor core.VoteFloor
		err   error
	}
	ch := make(chan result, 1)
	if err := n.do(ctx, func() {
		n.driver.VoteFloor(func(f core.VoteFloor, err error) { ch <- result{f, err} })
	}); err != nil {
		return core.VoteFloor{}, err
	}
	select {
	case r := <-ch:
		return r.floor, r.err
	case <-ctx.Done():
		return core.VoteFloor{}, ctx.Err()
	case <-n.done:
		return core.VoteFloor{}, ErrStopped
	}
}

// SetVoteFloor replaces this node's vote floor (core.Core.SetVoteFloor).
func (n *RaftNode) SetVoteFloor(ctx context.Context, f core.VoteFloor) error {
	return n.do(ctx, func() { n.driver.Core().SetVoteFloor(f) })
}

// Status returns the core's full status (asks the node goroutine).
func (n *RaftNode) Status(ctx context.Context) (core.Status, error) {
	var st core.Status
	err := n.do(ctx, func() { st = n.driver.Core().Status() })
	return st, err
}

// Inspect runs f on the node goroutine, between steps, with the node's
// core: for displays that need more than Summary (the log, the timers). f
// must only read, and must not keep what it is given.
func (n *RaftNode) Inspect(ctx context.Context, f func(*core.Core)) error {
	return n.do(ctx, func() { f(n.driver.Core()) })
}

// Report returns the node's id, term and whether it believes it leads.
func (n *RaftNode) Report() (id int, term uint64, isLeader bool) {
	s := n.Summary()
	return n.id, s.Term, s.Role == core.Leader
}

// Summary returns role, term, leader and indexes without blocking.
func (n *RaftNode) Summary() core.Summary {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.summary
}

// Failed returns the storage error or the broken invariant that stopped the
// node, or nil (also after a plain Stop).
func (n *RaftNode) Failed() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.failed
}

// do runs f on the node goroutine.
func (n *RaftNode) do(ctx context.Context, f func()) error {
	fin := make(chan struct{})
	select {
	case n.ctlc <- func() { f(); close(fin) }:
	case <-n.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-fin:
		return nil
	case <-n.done:
		return ErrStopped
	}
}

// Stop stops the node and waits for its goroutines. What it persisted stays
// in its Storage, which the caller owns and closes.
func (n *RaftNode) Stop() {
	n.requestStop()
	<-n.done
}

func (n *RaftNode) requestStop() {
	select {
	case <-n.stopc:
	default:
		close(n.stopc)
		n.cancel()
	}
}

// Done is closed once the node has stopped.
func (n *RaftNode) Done() <-chan struct{} { return n.done }

// Handle steps an incoming request and returns the reply once the node has
// persisted what the reply depends on (Figure 2: respond after updating
// stable storage). It is the node's side of every transport.
func (n *RaftNode) Handle(m core.Message) (core.Message, error) {
	return n.Accept(m)()
}

// Accept queues an incoming request for the node and returns at once; wait
// returns the reply as Handle does. Requests accepted one after the other
// are stepped in that order: the TCP listener accepts a connection's
// requests from the goroutine that reads them, so pipelined AppendEntries
// reach the core in the order the leader sent them (transport.OrderedHandler).
func (n *RaftNode) Accept(m core.Message) (wait func() (core.Message, error)) {
	if !m.Type.IsRequest() || m.To != n.id {
		err := fmt.Errorf("node %d: malformed %v request", n.id, m.Type)
		return func() (core.Message, error) { return core.Message{}, err }
	}
	in := inbound{msg: m, reply: make(chan *core.Message, 1)}
	select {
	case n.recvc <- in:
	case <-n.done:
		return func() (core.Message, error) { return core.Message{}, ErrStopped }
	}
	return func() (core.Message, error) {
		select {
		case r := <-in.reply:
			if r == nil {
				return core.Message{}, ErrNoReply
			}
			return *r, nil
		case <-n.done:
			return core.Message{}, ErrStopped
		}
	}
}

// run is the node goroutine.
func (n *RaftNode) run() {
	defer n.shutdown()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	n.driver.ProcessReady()
	for {
		select {
		case <-ticker.C:
			n.driver.Tick()
		case p := <-n.propc:
			n.handleProposal(p)
		case in := <-n.recvc:
			n.handleInbound(in)
		case m := <-n.respc:
			n.driver.Step(m, nil)
		case w := <-n.writer.results():
			n.driver.WriteDone(w)
		case f := <-n.ctlc:
			f()
		case <-n.stopc:
			return
		}
		n.drainInputs()
		n.driver.ProcessReady()
		n.updateSummary()
		if n.driver.Failed() != nil {
			return
		}
	}
}

// maxBatch bounds how many queued inputs one round takes, so that a flood
// of proposals cannot starve ticks or delay persistence indefinitely.
const maxBatch = 4096

// drainInputs steps every input already waiting, so that they share one
// Storage.Save and one AppendEntries per follower (group commit).
func (n *RaftNode) drainInputs() {
	for range maxBatch {
		select {
		case p := <-n.propc:
			n.handleProposal(p)
		case in := <-n.recvc:
			n.handleInbound(in)
		case m := <-n.respc:
			n.driver.Step(m, nil)
		case w := <-n.writer.results():
			n.driver.WriteDone(w)
		default:
			return
		}
	}
}

func (n *RaftNode) handleProposal(p proposal) {
	switch p.kind {
	case proposeCommand:
		p.notify(n.driver.Propose(p.data))
	case proposeConfChange:
		p.notify(n.driver.ProposeConfChange(p.change, p.id))
	case proposeConfChanges:
		p.notify(n.driver.ProposeConfChanges(p.changes))
	}
}

func (n *RaftNode) handleInbound(in inbound) {
	n.driver.Step(in.msg, func(r *core.Message) { in.reply <- r })
}

// Send implements Outbox: the message waits in its peer's queue for the
// peer's sender goroutine.
func (n *RaftNode) Send(m core.Message) {
	p := n.peers[m.To]
	if p == nil {
		p = &peerSender{id: m.To, node: n, wake: make(chan struct{}, 1),
			queue: NewPeerQueue(n.cfg.MaxEntriesPerAppend, n.cfg.MaxBytesPerAppend)}
		n.peers[m.To] = p
		n.peersWG.Add(1)
		go p.run()
	}
	p.queue.Push(m)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (n *RaftNode) updateSummary() {
	s := n.driver.Summary()
	n.mu.Lock()
	n.summary = s
	if f := n.driver.Failed(); f != nil && f != ErrStopped && n.failed == nil {
		n.failed = n.driver.failedErr()
	}
	n.mu.Unlock()
}

func (n *RaftNode) shutdown() {
	n.requestStop()
	// A write in progress completes; those queued behind it are lost, as
	// in a crash.
	n.writer.stop()
	n.driver.Close(ErrStopped)
	n.peersWG.Wait()
	n.apply.stop()
	// Unblock RPC handlers and callers waiting on the node.
	close(n.done)
	// Drain what arrived meanwhile so no sender stays blocked.
	for {
		select {
		case in := <-n.recvc:
			in.reply <- nil
		case p := <-n.propc:
			p.notify(ProposeResult{Err: ErrStopped})
		default:
			return
		}
	}
}

// peerSender sends one peer its messages in order and feeds the replies
// back to the node. With Config.Pipeline > 1 and a transport that
// pipelines, up to that many RPCs are in flight at once, started in queue
// order (so a heartbeat never overtakes the entries sent before it on the
// wire); otherwise (oneAtATime) it waits for each reply before sending
// the next.
type peerSender struct {
	id    int
	node  *RaftNode
	wake  chan struct{}
	queue *PeerQueue
}

// callResult is the outcome of one pipelined RPC.
type callResult struct {
	reply core.Message
	err   error
}

func (p *peerSender) run() {
	n := p.node
	defer n.peersWG.Done()
	pipe, _ := n.transport.(transport.Pipeliner)
	depth := n.cfg.Pipeline
	if pipe == nil || depth <= 1 {
		pipe, depth = oneAtATime{n.transport}, 1
	}
	// Every RPC started delivers one result, and at most depth are in
	// flight: a done callback never blocks.
	results := make(chan callResult, depth)
	inflight := 0
	// An RPC starts behind others in flight only once the latest has
	// waited PipelineAfter for its reply: on a fast link the reply comes
	// first and the queue merges what waits into one RPC (fewer, larger
	// RPCs cost less CPU); on a slow one the link fills.
	var lastStart time.Time
	gate := time.NewTimer(time.Hour)
	gate.Stop()
	armed := false
	defer gate.Stop()
	for {
		for inflight < depth && p.queue.Len() > 0 {
			if inflight > 0 {
				if wait := n.cfg.PipelineAfter - time.Since(lastStart); wait > 0 {
					if !armed {
						gate.Reset(wait)
						armed = true
					}
					break
				}
			}
			m, ok := p.queue.Take()
			if !ok {
				break
			}
			inflight++
			lastStart = time.Now()
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RPCTimeout)
			pipe.Go(ctx, m, func(reply core.Message, err error) {
				cancel()
				results <- callResult{reply, err}
			})
		}
		select {
		case <-p.wake:
		case <-gate.C:
			armed = false
		case r := <-results:
			inflight--
			if r.err != nil {
				continue // lost: the protocol retries
			}
			select {
			case n.respc <- r.reply:
			case <-n.stopc:
				return
			}
		case <-n.stopc:
			return // the node's context ends the calls in flight
		}
	}
}

// oneAtATime makes a Pipeliner of a plain Transport for depth 1: each Go
// runs Call on a goroutine, so at most one request is in flight and order
// holds. A node without a transport (a single server) sends nothing.
type oneAtATime struct{ t transport.Transport }

func (o oneAtATime) Call(ctx context.Context, m core.Message) (core.Message, error) {
	if o.t == nil {
		return core.Message{}, transport.ErrUnreachable
	}
	return o.t.Call(ctx, m)
}

func (o oneAtATime) Go(ctx context.Context, m core.Message, done func(core.Message, error)) {
	if o.t == nil {
		done(core.Message{}, transport.ErrUnreachable)
		return
	}
	go func() { done(o.t.Call(ctx, m)) }()
}

// logWriter writes a leader's new entries to Storage on its own goroutine,
// a WriteQueue's batch at a time.
type logWriter struct {
	storage storage.Storage
	gap     time.Duration // rest after each write (Config.LeaderSyncGap)
	queue   WriteQueue
	wake    chan struct{}
	out     chan Written
	stopc   <-chan struct{} // the node's
	done    chan struct{}
}

func newLogWriter(st storage.Storage, gap time.Duration, stopc <-chan struct{}) *logWriter {
	return &logWriter{storage: st, gap: gap, wake: make(chan struct{}, 1), out: make(chan Written, 64),
		stopc: stopc, done: make(chan struct{})}
}

// results is nil for a nil writer: a channel that never delivers.
func (w *logWriter) results() <-chan Written {
	if w == nil {
		return nil
	}
	return w.out
}

// Submit implements LogWriter.
func (w *logWriter) Submit(ents []core.Entry) {
	w.queue.Push(ents)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Wait implements LogWriter.
func (w *logWriter) Wait() Written {
	select {
	case r := <-w.out:
		return r
	case <-w.stopc:
		// After a failed write nothing more is confirmed.
		return Written{Err: ErrStopped}
	}
}

func (w *logWriter) run() {
	defer close(w.done)
	var rest *time.Timer
	if w.gap > 0 {
		rest = time.NewTimer(w.gap)
		rest.Stop()
	}
	for {
		select {
		case <-w.wake:
		case <-w.stopc:
			return
		}
		for {
			batch := w.queue.Take()
			if batch == nil {
				break
			}
			res := WriteBatch(w.storage, batch)
			w.queue.Recycle(batch)
			select {
			case w.out <- res:
			case <-w.stopc:
				return
			}
			if res.Err != nil {
				return
			}
			if rest != nil {
				// What the driver submits meanwhile goes into the next
				// write, with one sync (Config.LeaderSyncGap).
				rest.Reset(w.gap)
				select {
				case <-rest.C:
				case <-w.stopc:
					return
				}
			}
		}
	}
}

func (w *logWriter) stop() {
	if w == nil {
		return
	}
	<-w.done
}

// applier hands committed entries to the state machine, in batches, from
// its own goroutine, so that a slow state machine never stalls the node's
// heartbeats.
type applier struct {
	mu    sync.Mutex
	queue []CommitEntry
	wake  chan struct{}
	out   chan []CommitEntry
	stopc chan struct{}
	done  chan struct{}

	flatOnce sync.Once
	flat     chan CommitEntry // CommitChan, fed from out once asked for
}

func newApplier() *applier {
	return &applier{wake: make(chan struct{}, 1), out: make(chan []CommitEntry, 64),
		stopc: make(chan struct{}), done: make(chan struct{})}
}

// Apply implements Applier.
func (a *applier) Apply(batch []CommitEntry) {
	a.mu.Lock()
	if a.queue == nil {
		a.queue = batch // handed over: the caller does not keep it
	} else {
		a.queue = append(a.queue, batch...)
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *applier) run() {
	defer close(a.done)
	defer close(a.out)
	for {
		select {
		case <-a.wake:
		case <-a.stopc:
			return
		}
		a.mu.Lock()
		batch := a.queue
		a.queue = nil
		a.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		select {
		case a.out <- batch:
		case <-a.stopc:
			return
		}
	}
}

// entries returns a channel of the entries one at a time, fed by a
// goroutine started on the first call; it closes when out does.
func (a *applier) entries() <-chan CommitEntry {
	a.flatOnce.Do(func() {
		a.flat = make(chan CommitEntry, 1024)
		go func() {
			defer close(a.flat)
			for batch := range a.out {
				for _, e := range batch {
					select {
					case a.flat <- e:
					case <-a.stopc:
						return
					}
				}
			}
		}()
	})
	return a.flat
}

// stop ends delivery (entries still queued are dropped, as in a crash, and
// the snapshots among them closed) and closes the channel; the batches
// already in its buffer can still be read.
func (a *applier) stop() {
	close(a.stopc)
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.queue {
		if e.Snapshot != nil {
			e.Snapshot.Data.Close()
		}
	}
	a.queue = nil
}
