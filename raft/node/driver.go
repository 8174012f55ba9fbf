package node

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/trace"
)

// Driver turns the Core's Readys into actions, in the order the protocol
// needs:
//
//  1. persist the hard state and new entries (one Storage.Save, one sync),
//  2. send the messages and the replies, which may depend on (1),
//  3. hand committed entries, in log order and with their own terms, to
//     the state machine, and answer the reads that are confirmed.
//
// It has no goroutines, no clock and no I/O of its own: it acts through the
// interfaces of its DriverConfig. RaftNode runs it on one goroutine with
// real timers, sockets and files; the deterministic simulation runs the
// very same Driver in virtual time, with a simulated network and disk. A
// Driver is not safe for concurrent use: one caller steps it at a time.
type Driver struct {
	id      int
	core    *core.Core
	storage storage.Storage
	outbox  Outbox
	writer  LogWriter // nil: every Save is synchronous
	applier Applier
	trace   *trace.NodeTracer
	broken  brokenDriver

	// unconfirmed counts the entries handed to writer and not yet
	// reported durable.
	unconfirmed int
	// replies wait for the Save of the Ready that follows the Step that
	// produced them (Figure 2: respond after updating stable storage).
	replies     []pendingReply
	reads       map[uint64]func(index uint64, err error)
	nextReadCtx uint64
	// failed is set when storage failed: the driver then does nothing more.
	failed error
	// incoming receives the chunks of a snapshot sent by the leader.
	incoming storage.SnapshotWriter
	// snapReader reads the chunks a leader sends of its latest snapshot.
	snapReader storage.SnapshotReader
}

// Outbox takes the messages a Driver sends to other servers. RaftNode
// queues them per peer for its sender goroutines; the simulation puts them
// on its network. Send must not block.
type Outbox interface {
	Send(m core.Message)
}

// LogWriter writes a leader's new entries in parallel with their
// replication (thesis §10.2.1). The driver hands it entries with Submit;
// the writer reports each completed write, in order, through
// Driver.WriteDone, or, when the driver must wait for them, through Wait.
type LogWriter interface {
	// Submit queues entries to be written after every entry queued before.
	// It must not block, and must copy what it keeps of ents.
	Submit(ents []core.Entry)
	// Wait blocks until the oldest write not yet reported completes, and
	// returns its report (which is then not reported to WriteDone).
	Wait() Written
}

// Written reports a completed write of Count entries ending at Index/Term.
type Written struct {
	Index, Term uint64
	Count       int
	Err         error
}

// Applier receives committed entries and installed snapshots, in log
// order. Apply must not block: a slow state machine must not stall the
// node's heartbeats (RaftNode hands the batch to a goroutine of its own).
type Applier interface {
	Apply(batch []CommitEntry)
}

// CommitEntry is what the node delivers to the state machine, in log order:
// either a committed log entry with the term it was created in, or (Snapshot
// non-nil) a snapshot that replaces the state machine's whole state.
type CommitEntry struct {
	Index    uint64
	Term     uint64
	Type     core.EntryType
	Command  []byte
	Snapshot *Snapshot
}

// Snapshot is a stored snapshot for the state machine to restore: its
// metadata and a reader of its data. Whoever takes it closes Data.
type Snapshot struct {
	Meta core.SnapshotMeta
	Data storage.SnapshotReader
}

// ProposeResult is the outcome of a proposal: the index and term the entry
// will have if it commits, or why it was refused.
type ProposeResult struct {
	Index, Term uint64
	Err         error
}

type pendingReply struct {
	to    func(*core.Message)
	reply *core.Message
}

// Errors returned by a node.
var (
	ErrStopped  = errors.New("node stopped")
	ErrNoReply  = errors.New("request dropped by the receiver")
	ErrReadLost = errors.New("read could not be confirmed: leadership lost")
	// ErrStorageFailed wraps the storage error that stopped a node.
	ErrStorageFailed = errors.New("storage failed: the node stopped")
)

// DriverConfig configures a Driver.
type DriverConfig struct {
	Core core.CoreConfig
	// Members are the founding voters (see Config.Members).
	Members []int
	// VoteFloor: see core.InitialState.VoteFloor.
	VoteFloor core.VoteFloor
	Storage   storage.Storage
	Outbox    Outbox
	// Writer, if set, writes a leader's new entries asynchronously.
	Writer  LogWriter
	Applier Applier
	Tracer  trace.Tracer

	// broken switches off rules of the driver, so that tests can show the
	// simulation catches the bugs that follow. Never set otherwise.
	broken brokenDriver
}

type brokenDriver struct {
	// replyBeforeSave sends a reply as soon as the request is stepped.
	replyBeforeSave bool
	// followerAsyncWrites lets a follower write through the LogWriter and
	// answer before its entries are durable.
	followerAsyncWrites bool
	// selfAckEarly tells the core the leader's entries are durable as soon
	// as they are handed to the writer.
	selfAckEarly bool
}

// NewDriver restores a core from cfg.Storage and returns its driver. The
// state machine learns of a stored snapshot through the Applier before
// anything else.
func NewDriver(cfg DriverConfig) (*Driver, error) {
	hs, snap, ents, err := cfg.Storage.Load()
	if err != nil {
		return nil, fmt.Errorf("node %d: loading storage: %w", cfg.Core.ID, err)
	}
	d := &Driver{
		id: cfg.Core.ID, storage: cfg.Storage, outbox: cfg.Outbox, writer: cfg.Writer, applier: cfg.Applier,
		trace: trace.ForNode(cfg.Tracer, cfg.Core.ID), broken: cfg.broken,
		reads: map[uint64]func(uint64, error){},
	}
	cc := cfg.Core
	if d.trace.On() {
		cc.Trace = d.trace.Event
	}
	if hook := cc.OnViolation; hook != nil {
		// The hook decides what to say; the driver stops either way, as
		// it does when storage fails: never go on from a broken state.
		cc.OnViolation = func(v core.InvariantViolation) {
			hook(v)
			if d.failed == nil {
				d.failed = v
				d.failReplies()
			}
		}
	}
	boot := core.Configuration{Voters: append([]int(nil), cfg.Members...)}
	d.core, err = core.NewCore(cc, core.InitialState{HardState: hs, Snapshot: snap, Entries: ents, Bootstrap: boot,
		VoteFloor: cfg.VoteFloor})
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", cfg.Core.ID, err)
	}
	if snap != nil {
		// The state machine starts from the snapshot, then replays the log.
		r, err := cfg.Storage.OpenSnapshot()
		if err != nil || r == nil {
			return nil, fmt.Errorf("node %d: opening the snapshot through %d: %v", cfg.Core.ID, snap.LastIncludedIndex, err)
		}
		d.applier.Apply([]CommitEntry{{Index: snap.LastIncludedIndex, Term: snap.LastIncludedTerm, Snapshot: &Snapshot{Meta: r.Meta(), Data: r}}})
	}
	return d, nil
}

// ID returns the server's id.
func (d *Driver) ID() int { return d.id }

// Core gives read access to the protocol state, for status and checks.
// Callers must not step it: only the Driver does.
func (d *Driver) Core() *core.Core { return d.core }

// Summary returns the core's state in brief.
func (d *Driver) Summary() core.Summary { return d.core.Summary() }

// Failed returns the storage error or the invariant violation that stopped
// the driver, ErrStopped if its log writer reported the node stopping, or
// nil. A failed driver does nothing more: its owner must stop the node.
func (d *Driver) Failed() error { return d.failed }

// Tick advances the core's clock by one tick.
func (d *Driver) Tick() {
	if d.failed == nil {
		d.core.Tick()
	}
}

// Step feeds the core an incoming message. For a request, reply is called
// with the reply once what it depends on is durable, or with nil if the
// request gets none (the node stopped); for a reply, pass nil.
func (d *Driver) Step(m core.Message, reply func(*core.Message)) {
	if d.failed != nil {
		if reply != nil {
			reply(nil)
		}
		return
	}
	if d.trace.On() {
		d.trace.Event(core.Event{Kind: core.EventRecv, Term: m.Term, Peer: m.From, RPC: m.Summary()})
	}
	r := d.core.Step(m)
	if reply == nil {
		return
	}
	if d.broken.replyBeforeSave {
		d.sendReply(pendingReply{to: reply, reply: r})
		return
	}
	d.replies = append(d.replies, pendingReply{to: reply, reply: r})
}

// Propose proposes a command; only a leader accepts one.
func (d *Driver) Propose(data []byte) ProposeResult {
	if d.failed != nil {
		return ProposeResult{Err: d.failedErr()}
	}
	var r ProposeResult
	r.Index, r.Term, r.Err = d.core.Propose(data)
	return r
}

// ProposeConfChange proposes one membership change (thesis §4.1).
func (d *Driver) ProposeConfChange(t core.ConfChangeType, id int) ProposeResult {
	if d.failed != nil {
		return ProposeResult{Err: d.failedErr()}
	}
	var r ProposeResult
	r.Index, r.Err = d.core.ProposeConfChange(t, id)
	r.Term = d.core.Term()
	return r
}

// ProposeConfChanges proposes several membership changes in one entry: a
// joint configuration when they change more than one voter (Raft paper §6).
func (d *Driver) ProposeConfChanges(changes []core.ConfChange) ProposeResult {
	if d.failed != nil {
		return ProposeResult{Err: d.failedErr()}
	}
	var r ProposeResult
	r.Index, r.Err = d.core.ProposeConfChanges(changes)
	r.Term = d.core.Term()
	return r
}

// ReadIndex asks to confirm leadership for a linearizable read (thesis
// §6.4); notify gets the index the state machine must reach before it
// serves the read, or an error. It may be called before ReadIndex returns.
func (d *Driver) ReadIndex(notify func(index uint64, err error)) {
	if d.failed != nil {
		notify(0, d.failedErr())
		return
	}
	d.nextReadCtx++
	ctx := d.nextReadCtx
	if err := d.core.ReadIndex(ctx); err != nil {
		notify(0, err)
		return
	}
	d.reads[ctx] = notify
}

// VoteFloor asks the leader for the vote floor of a server about to be
// added to its group with an empty log (core.InitialState.VoteFloor): its
// position now (its term and last index), confirmed by a round of
// heartbeats that a majority acknowledges in that term, as a ReadIndex
// read is (thesis §6.4). The confirmation is what makes the floor cover
// every committed entry: a leader deposed without knowing it would give
// its own position, behind what the group committed since, which a stale
// server's log could reach. (If a majority acknowledges term T after the
// position was taken, no leader of a later term had committed anything by
// then, so every committed entry is in this leader's log: Leader
// Completeness, §5.4.) notify gets the floor, or why there is none (not
// the leader, or deposed during the round).
func (d *Driver) VoteFloor(notify func(core.VoteFloor, error)) {
	c := d.core
	if c.Role() != core.Leader {
		notify(core.VoteFloor{}, core.ErrNotLeader)
		return
	}
	floor := core.VoteFloor{Term: c.Term(), Index: c.LastIndex()}
	d.ReadIndex(func(_ uint64, err error) {
		switch {
		case err != nil:
			notify(core.VoteFloor{}, err)
		case c.Role() != core.Leader || c.Term() != floor.Term:
			notify(core.VoteFloor{}, core.ErrNotLeader)
		default:
			notify(floor, nil)
		}
	})
}

// TransferLeadership asks the leader to hand leadership to target.
func (d *Driver) TransferLeadership(target int) error {
	if d.failed != nil {
		return d.failedErr()
	}
	return d.core.TransferLeadership(target)
}

// Snapshot tells the driver that the state machine's state through index
// (which it has applied) was written to w (from storage.CreateSnapshot,
// closed), with app as the application's metadata: storage installs it and
// the log is discarded up to index. w is used up either way.
func (d *Driver) Snapshot(index uint64, w storage.SnapshotWriter, app []byte) error {
	if d.failed != nil {
		w.Abort()
		return d.failedErr()
	}
	// Storage installs the snapshot after every write handed out before.
	if err := d.flushWrites(); err != nil {
		w.Abort()
		return err
	}
	meta, err := d.core.Compact(index, w.Size(), app)
	if err != nil {
		w.Abort()
		return err
	}
	if err := d.storage.InstallSnapshot(meta, w); err != nil {
		d.storageFailed(err)
		return d.failedErr()
	}
	return nil
}

// WriteDone takes the report of an asynchronous write.
func (d *Driver) WriteDone(w Written) {
	d.unconfirmed -= w.Count
	if d.failed != nil {
		return
	}
	if errors.Is(w.Err, ErrStopped) {
		// The node is stopping, not failing: nothing more is confirmed,
		// and nothing is reported as a storage failure.
		d.failed = ErrStopped
		d.failReplies()
		return
	}
	if w.Err != nil {
		d.storageFailed(w.Err)
		return
	}
	if !d.broken.selfAckEarly {
		d.core.StableTo(w.Index, w.Term)
	}
}

// ProcessReady does everything the core asks until it asks for nothing
// more: persist, then send and reply, then apply.
func (d *Driver) ProcessReady() {
	for d.failed == nil && (d.core.HasReady() || len(d.replies) > 0) {
		if d.unconfirmed > 0 && d.core.Role() != core.Leader {
			// A former leader: whatever it writes now (a vote, entries of
			// the new leader replacing its own) must reach Storage after
			// what it handed to the writer while it led.
			if err := d.flushWrites(); err != nil {
				return
			}
		}
		rd := d.core.Ready()
		// Thesis §10.2.1: a leader may send AppendEntries to its followers
		// in parallel with writing the same entries to its own disk. Its own
		// copy counts toward a majority only once durable (the core counts
		// the leader's match as its stable index, which moves after the
		// write), so a crash before the sync loses nothing a majority relied
		// on. Its term and vote were made durable before it became a
		// candidate; a Ready that changes them, or carries a snapshot, goes
		// the ordinary way.
		leader := d.core.Role() == core.Leader || d.broken.followerAsyncWrites
		early := leader && rd.HardState == nil && rd.Snapshot == nil
		if early {
			for _, m := range rd.Messages {
				if m.Type == core.MsgAppendEntries {
					d.send(m)
				}
			}
		}
		if early && d.writer != nil {
			// The leader's entries go to the writer, which syncs every batch
			// queued meanwhile with one Save: the driver goes on stepping
			// replies and proposals, and StableTo counts the entries once
			// they are durable. The replies of a leader (refusals of stale
			// or rival requests) rest on nothing the writer holds: it never
			// acknowledges entries, and its term and vote are durable.
			var last core.Entry
			if n := len(rd.Entries); n > 0 {
				d.writer.Submit(rd.Entries)
				d.unconfirmed += n
				last = rd.Entries[n-1]
			}
			d.finishReady(rd, early)
			d.core.AdvanceAsync(rd)
			if last.Index > 0 && d.broken.selfAckEarly {
				d.core.StableTo(last.Index, last.Term)
			}
			continue
		}
		// Anything else reaches Storage after the writes handed out before
		// (a leader's Ready never changes its hard state, so this finds
		// nothing to wait for unless that changes).
		if err := d.flushWrites(); err != nil {
			return
		}
		if err := d.persist(rd); err != nil {
			d.storageFailed(err)
			return
		}
		d.finishReady(rd, early)
		d.core.Advance(rd)
	}
}

// flushWrites waits until every write handed to the writer is durable (or
// failed), so that what follows reaches Storage after it.
func (d *Driver) flushWrites() error {
	for d.unconfirmed > 0 && d.failed == nil {
		d.WriteDone(d.writer.Wait())
	}
	return d.failed
}

func (d *Driver) persist(rd core.Ready) error {
	for _, ch := range rd.SnapshotChunks {
		if err := d.writeChunk(ch); err != nil {
			return err
		}
	}
	if rd.Snapshot != nil {
		w := d.incoming
		d.incoming = nil
		if w == nil {
			return fmt.Errorf("node %d: the snapshot through %d is complete, but its chunks were not written", d.id, rd.Snapshot.LastIncludedIndex)
		}
		if err := w.Close(); err != nil {
			w.Abort()
			return err
		}
		if err := d.storage.InstallSnapshot(*rd.Snapshot, w); err != nil {
			return err
		}
	}
	if rd.HardState != nil || len(rd.Entries) > 0 {
		return d.storage.Save(rd.HardState, rd.Entries)
	}
	return nil
}

// finishReady sends rd's replies and messages (but the AppendEntries sent
// early) and delivers what it commits.
func (d *Driver) finishReady(rd core.Ready, early bool) {
	for _, r := range d.replies {
		d.sendReply(r)
	}
	d.replies = d.replies[:0]
	for _, m := range rd.Messages {
		if !early || m.Type != core.MsgAppendEntries {
			d.send(m)
		}
	}
	d.deliver(rd)
}

// writeChunk writes a chunk of a snapshot received from the leader; the
// core hands them over in order, a transfer starting at offset 0.
func (d *Driver) writeChunk(ch core.SnapshotChunk) error {
	if ch.Offset == 0 {
		if d.incoming != nil {
			d.incoming.Abort()
		}
		w, err := d.storage.CreateSnapshot(ch.Meta.LastIncludedIndex)
		if err != nil {
			return err
		}
		d.incoming = w
	}
	if d.incoming == nil || d.incoming.Size() != ch.Offset {
		return fmt.Errorf("node %d: a chunk of snapshot %d at offset %d does not follow what was written", d.id, ch.Meta.LastIncludedIndex, ch.Offset)
	}
	_, err := d.incoming.Write(ch.Data)
	return err
}

// fillSnapshotChunk reads the data of an InstallSnapshot request from the
// stored snapshot. It reports false if it cannot (a newer snapshot replaced
// that one): the core sends the newer one.
func (d *Driver) fillSnapshotChunk(m *core.Message) bool {
	meta := m.Snapshot
	if r := d.snapReader; r == nil || r.Meta().LastIncludedIndex != meta.LastIncludedIndex || r.Meta().LastIncludedTerm != meta.LastIncludedTerm {
		if r != nil {
			r.Close()
			d.snapReader = nil
		}
		r, err := d.storage.OpenSnapshot()
		if err != nil || r == nil {
			return false
		}
		if got := r.Meta(); got.LastIncludedIndex != meta.LastIncludedIndex || got.LastIncludedTerm != meta.LastIncludedTerm {
			r.Close()
			return false
		}
		d.snapReader = r
	}
	n := min(uint64(d.core.SnapshotChunkBytes()), meta.Size-min(m.Offset, meta.Size))
	buf := make([]byte, n)
	if got, err := d.snapReader.ReadAt(buf, int64(m.Offset)); uint64(got) != n {
		if d.trace.On() {
			d.trace.Event(core.Info("cannot read snapshot %d at %d: %v", meta.LastIncludedIndex, m.Offset, err))
		}
		return false
	}
	m.Data = buf
	return true
}

func (d *Driver) send(m core.Message) {
	if m.Type == core.MsgInstallSnapshot && m.Snapshot != nil && m.Data == nil && m.Snapshot.Size > 0 && !d.fillSnapshotChunk(&m) {
		return
	}
	if d.trace.On() {
		d.trace.Event(core.Event{Kind: core.EventSend, Term: m.Term, Peer: m.To, RPC: m.Summary()})
	}
	d.outbox.Send(m)
}

func (d *Driver) sendReply(r pendingReply) {
	if r.reply != nil && d.trace.On() {
		d.trace.Event(core.Event{Kind: core.EventSend, Term: r.reply.Term, Peer: r.reply.To, RPC: r.reply.Summary()})
	}
	r.to(r.reply)
}

func (d *Driver) deliver(rd core.Ready) {
	if rd.Snapshot != nil || len(rd.Committed) > 0 {
		batch := make([]CommitEntry, 0, len(rd.Committed)+1)
		if s := rd.Snapshot; s != nil {
			r, err := d.storage.OpenSnapshot()
			if err != nil || r == nil {
				d.storageFailed(fmt.Errorf("opening the snapshot through %d just installed: %v", s.LastIncludedIndex, err))
				return
			}
			batch = append(batch, CommitEntry{Index: s.LastIncludedIndex, Term: s.LastIncludedTerm, Snapshot: &Snapshot{Meta: r.Meta(), Data: r}})
		}
		for _, e := range rd.Committed {
			batch = append(batch, CommitEntry{Index: e.Index, Term: e.Term, Type: e.Type, Command: e.Data})
		}
		if d.trace.On() && len(rd.Committed) > 0 {
			d.trace.Event(core.Event{Kind: core.EventApplied, Peer: core.None, Index: rd.Committed[0].Index, Index2: rd.Committed[len(rd.Committed)-1].Index})
		}
		d.applier.Apply(batch)
	}
	for _, rs := range rd.ReadStates {
		if notify, ok := d.reads[rs.Ctx]; ok {
			delete(d.reads, rs.Ctx)
			notify(rs.Index, nil)
		}
	}
	for _, ctx := range rd.FailedReads {
		if notify, ok := d.reads[ctx]; ok {
			delete(d.reads, ctx)
			notify(0, ErrReadLost)
		}
	}
}

// storageFailed stops the driver: acting on state that could not be
// persisted would break the promises made to the other servers.
func (d *Driver) storageFailed(err error) {
	d.failed = err
	if d.trace.On() {
		d.trace.Event(core.Event{Kind: core.EventStorageFailed, Peer: core.None, Detail: err.Error()})
	}
	d.failReplies()
}

func (d *Driver) failedErr() error {
	if v, ok := d.failed.(core.InvariantViolation); ok {
		return v
	}
	if d.failed == ErrStopped {
		return ErrStopped
	}
	return fmt.Errorf("%w: %v", ErrStorageFailed, d.failed)
}

func (d *Driver) failReplies() {
	for _, r := range d.replies {
		r.to(nil)
	}
	d.replies = d.replies[:0]
}

// Close abandons what waits on the driver: requests get no reply, reads
// fail with err, a snapshot being received is thrown away. The driver is
// not used afterwards.
func (d *Driver) Close(err error) {
	d.failReplies()
	if d.incoming != nil {
		d.incoming.Abort()
		d.incoming = nil
	}
	if d.snapReader != nil {
		d.snapReader.Close()
		d.snapReader = nil
	}
	// In order, so that a deterministic caller sees the same run twice.
	for _, ctx := range slices.Sorted(maps.Keys(d.reads)) {
		notify := d.reads[ctx]
		delete(d.reads, ctx)
		notify(0, err)
	}
}
