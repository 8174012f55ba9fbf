package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/trace"
	"raft-consensus/raft/transport"
)

// RaftNode is one Raft server: the protocol Core driven by a goroutine that
// owns its clock, storage and network. For every batch of inputs (ticks,
// proposals, RPCs, replies) it steps the core, then
//
//  1. persists the hard state and new entries (one Storage.Save, one sync),
//  2. sends the messages and RPC replies, which may depend on (1),
//  3. hands committed entries, in log order and with their own terms, to
//     the state machine through CommitChan.
//
// Its RPC handlers (RequestVote, AppendEntries, InstallSnapshot, TimeoutNow)
// are plain exported methods, so net/rpc, the simulator or a test can call
// them.
type RaftNode struct {
	id        int
	cfg       Config
	core      *core.Core // owned by the run goroutine
	storage   storage.Storage
	transport transport.Transport
	trace     *trace.NodeTracer

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
	// unconfirmed counts the entries handed to writer and not yet
	// confirmed durable; owned by the run goroutine.
	unconfirmed int

	readWaiters map[uint64]chan readResult // owned by the run goroutine
	nextReadCtx uint64
	replies     []pendingReply // owned by the run goroutine

	mu      sync.Mutex
	summary core.Summary
}

type proposal struct {
	kind   proposalKind
	data   []byte
	change core.ConfChangeType
	id     int
	done   chan ProposeResult
	// notify, if set, replaces done: the node goroutine calls it with the
	// result (it must not block).
	notify func(ProposeResult)
}

type proposalKind uint8

const (
	proposeCommand proposalKind = iota
	proposeConfChange
)

// CommitEntry is what the node delivers to the state machine, in log order:
// either a committed log entry with the term it was created in, or (Snapshot
// non-nil) a snapshot that replaces the state machine's whole state.
type CommitEntry struct {
	Index    uint64
	Term     uint64
	Type     core.EntryType
	Command  []byte
	Snapshot *core.Snapshot
}

// ProposeResult is the outcome of a proposal: the index and term the entry
// will have if it commits, or why it was refused.
type ProposeResult struct {
	Index, Term uint64
	Err         error
}

type inbound struct {
	msg   core.Message
	reply chan *core.Message
}

type pendingReply struct {
	to    chan *core.Message
	reply *core.Message
}

type readResult struct {
	index uint64
	err   error
}

// Errors returned by a RaftNode.
var (
	ErrStopped  = errors.New("node stopped")
	ErrNoReply  = errors.New("request dropped by the receiver")
	ErrReadLost = errors.New("read could not be confirmed: leadership lost")
)

// NewRaftNode restores a node from cfg.Storage and starts it.
func NewRaftNode(cfg Config) (*RaftNode, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hs, snap, ents, err := cfg.Storage.Load()
	if err != nil {
		return nil, fmt.Errorf("node %d: loading storage: %w", cfg.ID, err)
	}
	n := &RaftNode{
		id:          cfg.ID,
		cfg:         cfg,
		storage:     cfg.Storage,
		transport:   cfg.Transport,
		trace:       trace.ForNode(cfg.Tracer, cfg.ID),
		propc:       make(chan proposal, 256),
		recvc:       make(chan inbound, 256),
		respc:       make(chan core.Message, 256),
		ctlc:        make(chan func()),
		stopc:       make(chan struct{}),
		done:        make(chan struct{}),
		peers:       map[int]*peerSender{},
		readWaiters: map[uint64]chan readResult{},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	cc := cfg.coreConfig()
	if n.trace.On() {
		cc.Trace = n.trace.Event
	}
	boot := core.Configuration{Voters: append([]int(nil), cfg.Members...)}
	n.core, err = core.NewCore(cc, core.InitialState{HardState: hs, Snapshot: snap, Entries: ents, Bootstrap: boot})
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", cfg.ID, err)
	}
	n.apply = newApplier()
	if cfg.AsyncLeaderWrites {
		n.writer = newLogWriter(cfg.Storage)
		go n.writer.run()
	}
	if snap != nil {
		// The state machine starts from the snapshot, then replays the log.
		n.apply.push([]CommitEntry{{Index: snap.Meta.LastIncludedIndex, Term: snap.Meta.LastIncludedTerm, Snapshot: snap}})
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
	p.done = make(chan ProposeResult, 1)
	select {
	case n.propc <- p:
	case <-n.done:
		return ProposeResult{Err: ErrStopped}
	}
	select {
	case r := <-p.done:
		return r
	case <-n.done:
		return ProposeResult{Err: ErrStopped}
	}
}

// ReadIndex confirms that this node is still the leader and returns the
// index the state machine must reach before it serves a linearizable read
// (thesis §6.4).
func (n *RaftNode) ReadIndex(ctx context.Context) (uint64, error) {
	ch := make(chan readResult, 1)
	err := n.do(ctx, func() {
		n.nextReadCtx++
		rctx := n.nextReadCtx
		if err := n.core.ReadIndex(rctx); err != nil {
			ch <- readResult{err: err}
			return
		}
		n.readWaiters[rctx] = ch
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
	if derr := n.do(ctx, func() { err = n.core.TransferLeadership(target) }); derr != nil {
		return derr
	}
	return err
}

// Snapshot tells the node that the state machine's state through index
// (which it has applied) is data: the node persists it and discards the log
// up to index.
func (n *RaftNode) Snapshot(index uint64, data []byte) error {
	var err error
	derr := n.do(context.Background(), func() {
		// Storage applies the snapshot after every write handed out before.
		if err = n.flushWrites(); err != nil {
			return
		}
		var snap *core.Snapshot
		if snap, err = n.core.Compact(index, data); err == nil {
			err = n.storage.SaveSnapshot(snap)
		}
	})
	if derr != nil {
		return derr
	}
	return err
}

// Status returns the core's full status (asks the node goroutine).
func (n *RaftNode) Status(ctx context.Context) (core.Status, error) {
	var st core.Status
	err := n.do(ctx, func() { st = n.core.Status() })
	return st, err
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
	if !m.Type.IsRequest() || m.To != n.id {
		return core.Message{}, fmt.Errorf("node %d: malformed %v request", n.id, m.Type)
	}
	in := inbound{msg: m, reply: make(chan *core.Message, 1)}
	select {
	case n.recvc <- in:
	case <-n.done:
		return core.Message{}, ErrStopped
	}
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

// run is the node goroutine.
func (n *RaftNode) run() {
	defer n.shutdown()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	n.processReady()
	for {
		select {
		case <-ticker.C:
			n.core.Tick()
		case p := <-n.propc:
			n.handleProposal(p)
		case in := <-n.recvc:
			n.handleInbound(in)
		case m := <-n.respc:
			n.handleReply(m)
		case w := <-n.writer.results():
			n.handleWritten(w)
		case f := <-n.ctlc:
			f()
		case <-n.stopc:
			return
		}
		n.drainInputs()
		n.processReady()
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
			n.handleReply(m)
		case w := <-n.writer.results():
			n.handleWritten(w)
		default:
			return
		}
	}
}

// handleWritten takes the result of an asynchronous write.
func (n *RaftNode) handleWritten(w written) {
	n.unconfirmed -= w.count
	if w.err != nil {
		n.storageFailed(w.err)
		return
	}
	n.core.StableTo(w.index, w.term)
}

// flushWrites waits until every write handed to the writer is durable (or
// failed), so that what follows reaches Storage after it.
func (n *RaftNode) flushWrites() error {
	for n.unconfirmed > 0 {
		select {
		case w := <-n.writer.results():
			n.handleWritten(w)
			if w.err != nil {
				return w.err
			}
		case <-n.stopc:
			// After a failed write nothing more is confirmed.
			return ErrStopped
		}
	}
	return nil
}

// storageFailed stops the node: acting on state that could not be
// persisted would break the promises made to the other servers.
func (n *RaftNode) storageFailed(err error) {
	n.trace.Eventf("SAFETY: storage failed, stopping: %v", err)
	n.failReplies()
	n.requestStop()
}

func (n *RaftNode) handleProposal(p proposal) {
	var r ProposeResult
	switch p.kind {
	case proposeCommand:
		r.Index, r.Term, r.Err = n.core.Propose(p.data)
	case proposeConfChange:
		r.Index, r.Err = n.core.ProposeConfChange(p.change, p.id)
		r.Term = n.core.Term()
	}
	p.reply(r)
}

func (p *proposal) reply(r ProposeResult) {
	if p.notify != nil {
		p.notify(r)
	} else {
		p.done <- r
	}
}

func (n *RaftNode) handleInbound(in inbound) {
	if n.trace.On() {
		n.trace.Event("recv " + in.msg.String())
	}
	reply := n.core.Step(in.msg)
	// The reply waits until the Ready that follows is persisted.
	n.replies = append(n.replies, pendingReply{to: in.reply, reply: reply})
}

func (n *RaftNode) handleReply(m core.Message) {
	if n.trace.On() {
		n.trace.Event("recv " + m.String())
	}
	n.core.Step(m)
}

// processReady does what the core asks, in the order the protocol needs.
func (n *RaftNode) processReady() {
	for n.core.HasReady() || len(n.replies) > 0 {
		select {
		case <-n.stopc:
			return
		default:
		}
		if n.unconfirmed > 0 && n.core.Role() != core.Leader {
			// A former leader: whatever it writes now (a vote, entries of
			// the new leader replacing its own) must reach Storage after
			// what it handed to the writer while it led.
			if err := n.flushWrites(); err != nil {
				return
			}
		}
		rd := n.core.Ready()
		// Thesis §10.2.1: a leader may send AppendEntries to its followers
		// in parallel with writing the same entries to its own disk. Its own
		// copy counts toward a majority only once durable (the core counts
		// the leader's match as log.stabled, which moves after the write),
		// so a crash before the sync loses nothing a majority relied on.
		// Its term and vote were made durable before it became a candidate;
		// a Ready that changes them, or carries a snapshot, goes the
		// ordinary way.
		early := n.core.Role() == core.Leader && rd.HardState == nil && rd.Snapshot == nil
		if early {
			for _, m := range rd.Messages {
				if m.Type == core.MsgAppendEntries {
					n.peer(m.To).enqueue(m)
				}
			}
		}
		if early && n.writer != nil {
			// The leader's entries go to the writer, which syncs every batch
			// queued meanwhile with one Save: the loop goes on stepping
			// replies and proposals, and StableTo counts the entries once
			// they are durable. The replies of a leader (refusals of stale
			// or rival requests) rest on nothing the writer holds: it never
			// acknowledges entries, and its term and vote are durable.
			if len(rd.Entries) > 0 {
				n.writer.submit(rd.Entries)
				n.unconfirmed += len(rd.Entries)
			}
			n.finishReady(rd, early)
			n.core.AdvanceAsync(rd)
			continue
		}
		// Anything else reaches Storage after the writes handed out before
		// (a leader's Ready never changes its hard state, so this finds
		// nothing to wait for unless that changes).
		if err := n.flushWrites(); err != nil {
			return
		}
		if err := n.persist(rd); err != nil {
			n.storageFailed(err)
			return
		}
		n.finishReady(rd, early)
		n.core.Advance(rd)
	}
	n.updateSummary()
}

// finishReady sends rd's replies and messages (but the AppendEntries sent
// early) and delivers what it commits.
func (n *RaftNode) finishReady(rd core.Ready, early bool) {
	for _, r := range n.replies {
		if r.reply != nil && n.trace.On() {
			n.trace.Event("send " + r.reply.String())
		}
		r.to <- r.reply
	}
	n.replies = n.replies[:0]
	for _, m := range rd.Messages {
		if !early || m.Type != core.MsgAppendEntries {
			n.peer(m.To).enqueue(m)
		}
	}
	n.deliver(rd)
}

func (n *RaftNode) persist(rd core.Ready) error {
	if rd.Snapshot != nil {
		if err := n.storage.SaveSnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	if rd.HardState != nil || len(rd.Entries) > 0 {
		return n.storage.Save(rd.HardState, rd.Entries)
	}
	return nil
}

func (n *RaftNode) failReplies() {
	for _, r := range n.replies {
		r.to <- nil
	}
	n.replies = n.replies[:0]
}

func (n *RaftNode) deliver(rd core.Ready) {
	if rd.Snapshot != nil || len(rd.Committed) > 0 {
		batch := make([]CommitEntry, 0, len(rd.Committed)+1)
		if s := rd.Snapshot; s != nil {
			batch = append(batch, CommitEntry{Index: s.Meta.LastIncludedIndex, Term: s.Meta.LastIncludedTerm, Snapshot: s})
		}
		for _, e := range rd.Committed {
			batch = append(batch, CommitEntry{Index: e.Index, Term: e.Term, Type: e.Type, Command: e.Data})
		}
		if n.trace.On() && len(rd.Committed) > 0 {
			n.trace.Eventf("applied %d..%d", rd.Committed[0].Index, rd.Committed[len(rd.Committed)-1].Index)
		}
		n.apply.push(batch)
	}
	for _, rs := range rd.ReadStates {
		if ch, ok := n.readWaiters[rs.Ctx]; ok {
			delete(n.readWaiters, rs.Ctx)
			ch <- readResult{index: rs.Index}
		}
	}
	for _, ctx := range rd.FailedReads {
		if ch, ok := n.readWaiters[ctx]; ok {
			delete(n.readWaiters, ctx)
			ch <- readResult{err: ErrReadLost}
		}
	}
}

func (n *RaftNode) updateSummary() {
	s := n.core.Summary()
	n.mu.Lock()
	n.summary = s
	n.mu.Unlock()
}

func (n *RaftNode) peer(id int) *peerSender {
	p := n.peers[id]
	if p == nil {
		p = &peerSender{id: id, node: n, wake: make(chan struct{}, 1)}
		n.peers[id] = p
		n.peersWG.Add(1)
		go p.run()
	}
	return p
}

func (n *RaftNode) shutdown() {
	n.failReplies()
	// A write in progress completes; those queued behind it are lost, as
	// in a crash.
	n.writer.stop()
	for ctx, ch := range n.readWaiters {
		ch <- readResult{err: ErrStopped}
		delete(n.readWaiters, ctx)
	}
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
			p.reply(ProposeResult{Err: ErrStopped})
		default:
			return
		}
	}
}

// peerSender sends one peer its messages in order, one RPC at a time, and
// feeds the replies back to the node. Keeping order per peer means a
// heartbeat never overtakes the entries sent before it. The AppendEntries
// that queue up behind an RPC in flight leave as one (coalesceAppends).
type peerSender struct {
	id   int
	node *RaftNode
	wake chan struct{}

	mu    sync.Mutex
	queue []core.Message
}

// maxPeerQueue bounds the messages waiting for a slow peer; Raft recovers
// from the loss of the oldest ones by retrying.
const maxPeerQueue = 256

func (p *peerSender) enqueue(m core.Message) {
	p.mu.Lock()
	if len(p.queue) >= maxPeerQueue {
		p.queue = p.queue[1:]
	}
	p.queue = append(p.queue, m)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *peerSender) run() {
	n := p.node
	defer n.peersWG.Done()
	for {
		select {
		case <-p.wake:
		case <-n.stopc:
			return
		}
		for {
			p.mu.Lock()
			if len(p.queue) == 0 {
				p.mu.Unlock()
				break
			}
			m, taken := coalesceAppends(p.queue, n.cfg.MaxEntriesPerAppend, n.cfg.MaxBytesPerAppend)
			clear(p.queue[:taken])
			if taken == len(p.queue) {
				p.queue = p.queue[:0] // start over at the front of the array
			} else {
				p.queue = p.queue[taken:]
			}
			p.mu.Unlock()
			if n.trace.On() {
				n.trace.Event("send " + m.String())
			}
			if n.transport == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RPCTimeout)
			reply, err := n.transport.Call(ctx, m)
			cancel()
			if err != nil {
				continue // lost: the protocol retries
			}
			select {
			case n.respc <- reply:
			case <-n.stopc:
				return
			}
		}
	}
}

// coalesceAppends returns the first queued message, merged with the
// AppendEntries queued behind it that continue it: same term, each one's
// PrevLogIndex at the end of the entries before it. One RPC then carries
// what the core sent in several rounds while the previous RPC was in
// flight, and the follower persists it with one sync. Commit index and
// read round are the latest ones: the merged message leaves after every
// part was sent, so acknowledging the latest read round is sound. It
// returns how many queued messages the result stands for.
func coalesceAppends(queue []core.Message, maxEntries, maxBytes int) (core.Message, int) {
	m := queue[0]
	if m.Type != core.MsgAppendEntries {
		return m, 1
	}
	end, lastTerm := m.PrevLogIndex+uint64(len(m.Entries)), m.PrevLogTerm
	if len(m.Entries) > 0 {
		lastTerm = m.Entries[len(m.Entries)-1].Term
	}
	count, bytes := len(m.Entries), entryBytes(m.Entries)
	taken, extra := 1, 0
	for _, q := range queue[1:] {
		if q.Type != core.MsgAppendEntries || q.Term != m.Term || q.PrevLogIndex != end || q.PrevLogTerm != lastTerm {
			break
		}
		if len(q.Entries) > 0 {
			b := entryBytes(q.Entries)
			if count+len(q.Entries) > maxEntries || bytes+b > maxBytes {
				break
			}
			count, bytes = count+len(q.Entries), bytes+b
			extra += len(q.Entries)
			end += uint64(len(q.Entries))
			lastTerm = q.Entries[len(q.Entries)-1].Term
		}
		taken++
	}
	if taken == 1 {
		return m, 1
	}
	merged := m
	if extra > 0 {
		// A fresh slice: the parts alias the leader's log.
		merged.Entries = make([]core.Entry, 0, count)
		merged.Entries = append(merged.Entries, m.Entries...)
	}
	for _, q := range queue[1:taken] {
		if extra > 0 {
			merged.Entries = append(merged.Entries, q.Entries...)
		}
		merged.LeaderCommit = max(merged.LeaderCommit, q.LeaderCommit)
		merged.ReadRound = max(merged.ReadRound, q.ReadRound)
	}
	return merged, taken
}

func entryBytes(ents []core.Entry) int {
	n := 0
	for i := range ents {
		n += len(ents[i].Data)
	}
	return n
}

// logWriter writes a leader's new entries to Storage on its own goroutine:
// every batch queued while a Save is in progress goes into the next Save,
// so one sync covers them all (group commit). Batches are contiguous: the
// node flushes the writer before any other write.
type logWriter struct {
	storage storage.Storage
	wake    chan struct{}
	out     chan written
	stopc   chan struct{}
	done    chan struct{}

	mu    sync.Mutex
	queue []core.Entry
	spare []core.Entry
}

// written reports a completed Save of count entries ending at index/term.
type written struct {
	index, term uint64
	count       int
	err         error
}

func newLogWriter(st storage.Storage) *logWriter {
	return &logWriter{storage: st, wake: make(chan struct{}, 1), out: make(chan written, 64),
		stopc: make(chan struct{}), done: make(chan struct{})}
}

// results is nil for a nil writer: a channel that never delivers.
func (w *logWriter) results() <-chan written {
	if w == nil {
		return nil
	}
	return w.out
}

// submit queues entries for writing. It copies them: the core may replace
// its log's entries in place once it has stepped down.
func (w *logWriter) submit(ents []core.Entry) {
	w.mu.Lock()
	w.queue = append(w.queue, ents...)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *logWriter) run() {
	defer close(w.done)
	for {
		select {
		case <-w.wake:
		case <-w.stopc:
			return
		}
		for {
			w.mu.Lock()
			batch := w.queue
			w.queue, w.spare = w.spare[:0], nil
			w.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			err := w.storage.Save(nil, batch)
			last := batch[len(batch)-1]
			res := written{index: last.Index, term: last.Term, count: len(batch), err: err}
			clear(batch) // drop the references to the entries' data
			w.mu.Lock()
			w.spare = batch[:0]
			w.mu.Unlock()
			select {
			case w.out <- res:
			case <-w.stopc:
				return
			}
			if err != nil {
				return
			}
		}
	}
}

func (w *logWriter) stop() {
	if w == nil {
		return
	}
	close(w.stopc)
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

func (a *applier) push(batch []CommitEntry) {
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

// stop ends delivery (entries not yet delivered are dropped, as in a crash)
// and closes the channel.
func (a *applier) stop() {
	close(a.stopc)
	<-a.done
}
