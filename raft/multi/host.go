package multi

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"raft-consensus/raft/core"
	"raft-consensus/raft/node"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/trace"
)

// Config configures a Host.
type Config struct {
	ID NodeID
	// Core is every group's core configuration; its ID is set to the
	// host's.
	Core core.CoreConfig
	// Storage returns group g's storage on this host: MemoryStorage
	// survives a simulated crash, as a disk would.
	Storage func(g GroupID) storage.Storage
	// Apply receives each group's committed entries, in log order.
	Apply func(g GroupID, batch []node.CommitEntry)
	// Events, if set, receives the events of every group (Event).
	Events func(Event)
	// LivenessTicks is how long a node may stay silent before the host
	// wakes the quiesced groups it leads, whose followers then count that
	// silence toward their election timeouts (core.LeaderSilent). The
	// default, the minimum election timeout, is what a ticking follower
	// waits before it may campaign: a quiet group fails over about as
	// fast as an active one. Every host sends every peer a batch per
	// heartbeat interval, so this is several missed batches.
	LivenessTicks int
	// Sync, if set, makes durable what every group saved since the last
	// call (storage.SharedLog.Sync: one fsync for the whole round). Flush
	// calls it before it returns anything to send, so that no reply or
	// vote leaves before what it depends on is durable (Figure 2), for all
	// groups at once. If it fails the host stops: Failed says why.
	Sync func() error
	// Tracer, if set, receives every group's protocol events, tagged with
	// the group (trace.ForGroup).
	Tracer trace.Tracer

	broken brokenRules
}

// brokenRules switch off rules of the host, so that the tests can show
// the simulation catches the bugs that follow. Never set otherwise.
type brokenRules struct {
	// noVoteFloor creates a joining replica without its vote floor.
	noVoteFloor bool
	// unconfirmedFloor answers VoteFloor at once with the replica's
	// position, without the round of heartbeats that shows it still leads:
	// a deposed leader gives a floor below entries committed since.
	unconfirmedFloor bool
	// heartbeatLosesCommit decodes a coalesced heartbeat without the
	// leader's commit index. (A mutant that quiesces without the caught-up
	// checks was tried too: the simulation shows it heals, since the
	// quiesce heartbeat is a real AppendEntries that a lagging follower
	// rejects, and the rejection makes the leader send the entries.)
	heartbeatLosesCommit bool
	// readAtOnce answers ReadIndex with the replica's applied index at
	// once, leader or not, without a round of heartbeats (thesis §6.4).
	readAtOnce bool
	// syncLate returns a round's batches before its Sync, which the next
	// Flush runs: a crash in between loses what they acknowledged.
	syncLate bool
	// noLivenessWake never wakes a quiesced follower whose leader's node
	// fell silent: if that node dies, the group has no leader for good.
	noLivenessWake bool
	// everyoneFirst makes every survivor of a group whose leader's node
	// fell silent stand for election first (no successor): they split
	// the vote.
	everyoneFirst bool
	// voteLeaseKept lets a quiet follower ignore a survivor's vote request
	// until its own host judges the leader's node dead.
	voteLeaseKept bool
	// noLeaderWake leaves quiet leaders quiet when a follower's node falls
	// silent: a leader cut off from its majority goes on believing it leads.
	noLeaderWake bool
}

// Host is one server's replicas of many groups.
type Host struct {
	cfg    Config
	groups map[GroupID]*group
	ticks  uint64
	// out collects what is to be sent, per destination, until Flush.
	out map[NodeID]*Batch
	// heard is the tick at which each peer node was last heard from.
	heard map[NodeID]uint64
	// peers are the nodes sharing a group with this one: each gets a batch
	// every heartbeat interval, empty or not (liveness).
	peers map[NodeID]int
	// silentPeers are the peers judged dead (silent for LivenessTicks)
	// whose quiet leaders have been woken, until they are heard again.
	silentPeers map[NodeID]bool
	dirty       []*group // groups stepped or ticked since the last Flush
	// active are the groups that tick (not quiet), in id order once
	// activeSorted; quietFollowers, the quiet followers by their leader's
	// node, to wake when it falls silent. A quiet group costs a tick
	// nothing.
	active         []*group
	activeSorted   bool
	activeStale    bool // some in active are quiet or destroyed
	quietFollowers map[NodeID]map[GroupID]*group
	stats          Stats
	failed         error
	unsynced       bool // syncLate: the last round's Sync is still due
	// deliveries are the round's applied entries and read answers, held
	// until Flush has synced what they depend on (a group of one voter
	// commits on its own Save).
	deliveries []func()
}

// group is one replica.
type group struct {
	id      GroupID
	host    *Host
	driver  *node.Driver
	storage storage.Storage
	quiet   bool // not ticked until woken
	// quietUnder is the leader's node of a quiet follower.
	quietUnder NodeID
	dirty      bool
	inActive   bool // listed in Host.active
	destroyed  bool
	// last term and leader, for the events.
	term   uint64
	leader int
	config core.Configuration
	// trace is the group's tracer on this node, for the messages the host
	// sends for the group itself (quiesce heartbeats): the driver traces
	// the rest.
	trace *trace.NodeTracer
}

// Stats count what a host did.
type Stats struct {
	Ticks          uint64
	GroupTicks     uint64 // ticks given to groups (quiet ones get none)
	Batches        uint64 // batches sent
	HeartbeatSends uint64 // batches that carried heartbeats
	Heartbeats     uint64 // heartbeats coalesced into them
	Quiesced       uint64 // times a group went quiet
	Woken          uint64 // times a quiet group woke
}

// Failed says why the host stopped (its storage failed), or nil.
func (h *Host) Failed() error { return h.failed }

// fail stops the host: nothing it has not made durable may leave it.
func (h *Host) fail(err error) {
	h.failed = fmt.Errorf("storage failed, the host stopped: %w", err)
	clear(h.out)
	h.dirty = nil
	h.deliveries = nil
}

// ErrUnknownGroup is the error of an operation on a group the host does
// not host.
var ErrUnknownGroup = errors.New("no such group on this node")

// ErrGroupExists is the error of creating a group the host already hosts.
var ErrGroupExists = errors.New("the group exists on this node")

// NewHost returns a host with no groups.
func NewHost(cfg Config) *Host {
	if cfg.LivenessTicks <= 0 {
		cfg.LivenessTicks = cfg.Core.ElectionTicksMin
	}
	cfg.Core.ID = int(cfg.ID)
	return &Host{cfg: cfg, groups: map[GroupID]*group{}, out: map[NodeID]*Batch{}, heard: map[NodeID]uint64{}, peers: map[NodeID]int{},
		silentPeers:    map[NodeID]bool{},
		quietFollowers: map[NodeID]map[GroupID]*group{}}
}

// ID returns the host's node id.
func (h *Host) ID() NodeID { return h.cfg.ID }

// Stats returns the host's counters.
func (h *Host) Stats() Stats { return h.stats }

// CreateGroup starts the host's replica of group g: from its storage if
// that holds state (a restart), else as a founding member of members.
// Every founding member creates the group with the same members.
func (h *Host) CreateGroup(g GroupID, members []NodeID) error {
	return h.createGroup(g, members, core.VoteFloor{})
}

// JoinGroup starts the host's replica of group g, which runs already
// elsewhere: from its storage if that holds state (a restart), else empty,
// to be added by the group's leader. floor is that leader's position
// when the replica is created (core.InitialState.VoteFloor): the
// replica votes for no candidate whose log ends before it.
func (h *Host) JoinGroup(g GroupID, floor core.VoteFloor) error {
	if h.cfg.broken.noVoteFloor {
		floor = core.VoteFloor{}
	}
	return h.createGroup(g, nil, floor)
}

func (h *Host) createGroup(g GroupID, members []NodeID, floor core.VoteFloor) error {
	if _, ok := h.groups[g]; ok {
		return fmt.Errorf("%w: %v", ErrGroupExists, g)
	}
	ids := make([]int, len(members))
	for i, m := range members {
		ids[i] = int(m)
	}
	gr := &group{id: g, host: h, leader: core.None}
	cc := h.cfg.Core
	cc.Seed = h.cfg.Core.Seed*1_000_003 + int64(g) // groups of one host draw different timeouts
	gr.storage = h.cfg.Storage(g)
	tracer := trace.ForGroup(h.cfg.Tracer, g.String())
	gr.trace = trace.ForNode(tracer, int(h.cfg.ID))
	d, err := node.NewDriver(node.DriverConfig{Core: cc, Members: ids, VoteFloor: floor, Storage: gr.storage, Outbox: gr, Applier: gr,
		Tracer: tracer})
	if err != nil {
		return fmt.Errorf("group %v: %w", g, err)
	}
	gr.driver = d
	h.groups[g] = gr
	h.activate(gr)
	gr.config = d.Core().Config()
	for _, id := range gr.config.Members() {
		if NodeID(id) != h.cfg.ID {
			h.peers[NodeID(id)]++
		}
	}
	h.touch(gr)
	return nil
}

// DestroyGroup removes the host's replica of g (its storage is the
// caller's to delete). Messages for g are then answered as unknown.
func (h *Host) DestroyGroup(g GroupID) error {
	gr, ok := h.groups[g]
	if !ok {
		return fmt.Errorf("%w: %v", ErrUnknownGroup, g)
	}
	for _, id := range gr.config.Members() {
		if p := NodeID(id); p != h.cfg.ID {
			if h.peers[p]--; h.peers[p] <= 0 {
				delete(h.peers, p)
			}
		}
	}
	// Its peers' replicas must not stay quiet waiting for this one.
	for _, id := range gr.config.Members() {
		if p := NodeID(id); p != h.cfg.ID {
			b := h.batch(p)
			b.Wake = append(b.Wake, g)
		}
	}
	gr.driver.Close(errors.New("group destroyed"))
	h.wake(gr, false)
	gr.destroyed = true
	h.activeStale = true
	delete(h.groups, g)
	return nil
}

// Groups lists the hosted groups, in order.
func (h *Host) Groups() []GroupID {
	ids := make([]GroupID, 0, len(h.groups))
	for g := range h.groups {
		ids = append(ids, g)
	}
	slices.Sort(ids)
	return ids
}

// Summary reports group g's core, and whether it is quiet.
func (h *Host) Summary(g GroupID) (sum core.Summary, quiet bool, err error) {
	gr, ok := h.groups[g]
	if !ok {
		return core.Summary{}, false, fmt.Errorf("%w: %v", ErrUnknownGroup, g)
	}
	return gr.driver.Summary(), gr.quiet, nil
}

// Propose proposes a command to group g, which must lead here; a quiet
// group wakes.
func (h *Host) Propose(g GroupID, data []byte) node.ProposeResult {
	gr, err := h.awake(g)
	if err != nil {
		return node.ProposeResult{Err: err}
	}
	return gr.driver.Propose(data)
}

// awake returns group g, woken and marked for the next Flush, for a
// request made here; an error if the host failed or does not host g.
func (h *Host) awake(g GroupID) (*group, error) {
	if h.failed != nil {
		return nil, h.failed
	}
	gr, ok := h.groups[g]
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrUnknownGroup, g)
	}
	h.wake(gr, false)
	h.touch(gr)
	return gr, nil
}

// ReadIndex asks group g, which must lead here, to confirm its leadership
// for a linearizable read (thesis §6.4); notify gets the index to wait for.
// A quiet group wakes: the confirmation is a round of heartbeats.
func (h *Host) ReadIndex(g GroupID, notify func(index uint64, err error)) {
	gr, ok := h.groups[g]
	if !ok {
		notify(0, fmt.Errorf("%w: %v", ErrUnknownGroup, g))
		return
	}
	h.wake(gr, false)
	h.touch(gr)
	if h.cfg.broken.readAtOnce {
		notify(gr.driver.Core().Applied(), nil)
		return
	}
	gr.driver.ReadIndex(func(index uint64, err error) {
		h.deliveries = append(h.deliveries, func() { notify(index, err) })
	})
}

// VoteFloor asks group g, which must lead here, for the vote floor of a
// replica about to be added: its position confirmed by a majority
// (node.Driver.VoteFloor). A quiet group wakes: the confirmation is a
// round of heartbeats.
func (h *Host) VoteFloor(g GroupID, notify func(core.VoteFloor, error)) {
	gr, ok := h.groups[g]
	if !ok {
		notify(core.VoteFloor{}, fmt.Errorf("%w: %v", ErrUnknownGroup, g))
		return
	}
	if c := gr.driver.Core(); h.cfg.broken.unconfirmedFloor && c.Role() == core.Leader {
		notify(core.VoteFloor{Term: c.Term(), Index: c.LastIndex()}, nil)
		return
	}
	h.wake(gr, false)
	h.touch(gr)
	gr.driver.VoteFloor(func(f core.VoteFloor, err error) {
		h.deliveries = append(h.deliveries, func() { notify(f, err) })
	})
}

// ProposeConfChanges proposes a change of group g's members, which must
// lead here: one server, or several at once through a joint configuration
// (Raft paper §6; see core.ProposeConfChanges).
func (h *Host) ProposeConfChanges(g GroupID, changes []core.ConfChange) node.ProposeResult {
	gr, err := h.awake(g)
	if err != nil {
		return node.ProposeResult{Err: err}
	}
	return gr.driver.ProposeConfChanges(changes)
}

// TransferLeadership asks group g, which must lead here, to hand its
// leadership to node to (thesis §3.10).
func (h *Host) TransferLeadership(g GroupID, to NodeID) error {
	gr, err := h.awake(g) // the transfer runs on ticks and appends
	if err != nil {
		return err
	}
	return gr.driver.TransferLeadership(int(to))
}

// Snapshot compacts group g's log through index, which its state machine
// has applied: write writes that state out into the group's storage.
func (h *Host) Snapshot(g GroupID, index uint64, app []byte, write func(io.Writer) error) error {
	if h.failed != nil {
		return h.failed
	}
	gr, ok := h.groups[g]
	if !ok {
		return fmt.Errorf("%w: %v", ErrUnknownGroup, g)
	}
	w, err := storage.WriteSnapshot(gr.storage, index, write)
	if err != nil {
		return err
	}
	h.touch(gr)
	return gr.driver.Snapshot(index, w, app)
}

// Inspect runs f with group g's core, for displays that need more than
// Summary (the log). f must only read, and must not keep what it is given.
func (h *Host) Inspect(g GroupID, f func(*core.Core)) error {
	gr, ok := h.groups[g]
	if !ok {
		return fmt.Errorf("%w: %v", ErrUnknownGroup, g)
	}
	f(gr.driver.Core())
	return nil
}

// Tick advances every group that is not quiet by one tick, wakes the quiet
// groups whose leader's node fell silent, and quiesces the leaders that
// have nothing to do.
func (h *Host) Tick() {
	h.ticks++
	h.stats.Ticks++
	if !h.cfg.broken.noLivenessWake {
		var dead []NodeID // rare: sorted only then, for a deterministic order
		for p := range h.quietFollowers {
			if !h.alive(p) {
				dead = append(dead, p)
			}
		}
		slices.Sort(dead)
		for _, p := range dead {
			for _, g := range slices.Sorted(maps.Keys(h.quietFollowers[p])) {
				gr := h.quietFollowers[p][g]
				h.wake(gr, false)
				// Its leader has been silent for LivenessTicks: that counts
				// toward its election timeout, and one survivor goes first.
				gr.driver.Core().LeaderSilent(h.cfg.broken.everyoneFirst || h.successor(gr, p) == h.cfg.ID)
				h.touch(gr)
			}
		}
	}
	if !h.cfg.broken.noLeaderWake {
		h.wakeLeadersOfSilent()
	}
	if h.activeStale {
		// Groups that went quiet or were destroyed leave the list here,
		// once per tick, not one by one.
		h.active = slices.DeleteFunc(h.active, func(gr *group) bool {
			if gr.quiet || gr.destroyed {
				gr.inActive = false
				return true
			}
			return false
		})
		h.activeStale = false
	}
	if !h.activeSorted {
		slices.SortFunc(h.active, func(a, b *group) int { return cmp.Compare(a.id, b.id) })
		h.activeSorted = true
	}
	for _, gr := range h.active {
		if gr.quiet || gr.destroyed {
			continue
		}
		h.stats.GroupTicks++
		gr.driver.Tick()
		h.touch(gr)
	}
	if h.ticks%uint64(max(1, h.cfg.Core.HeartbeatTicks)) == 0 {
		for p := range h.peers {
			h.batch(p) // a batch goes to every peer, empty or not
		}
	}
}

// Step takes a batch from another host. Messages for groups not hosted
// here are dropped and named in the next batch back. A request or a
// heartbeat not marked Quiesce wakes a quiet group.
func (h *Host) Step(b *Batch) {
	if b.To != h.cfg.ID {
		return
	}
	h.heard[b.From] = h.ticks
	// Messages first: a leader that sent a group entries and then a
	// heartbeat in one batch meant them in that order (a heartbeat ahead
	// of its entries would be rejected for nothing).
	for i := range b.Messages {
		gm := &b.Messages[i]
		gr := h.lookup(b.From, gm.Group)
		if gr == nil {
			continue
		}
		// A request wakes the group (a vote request from a replica that
		// did not quiesce, say), and the leader too if it came from
		// elsewhere; a reply is stepped and wakes nothing: a late one must
		// not undo a quiescence.
		if gm.Msg.Type.IsRequest() {
			under := gr.quietUnder
			if gr.quiet && gm.Msg.Type == core.MsgRequestVote && under >= 0 && NodeID(gm.Msg.From) != under && h.silent(under) && !h.cfg.broken.voteLeaseKept {
				// A survivor asks for its vote before this host has judged
				// the quiet leader's node dead; it has missed two liveness
				// batches already: the vote is not to be ignored (and the
				// suspect leader is not asked to wake).
				h.wake(gr, false)
				gr.driver.Core().LeaderSilent(false)
			} else {
				h.wake(gr, gm.Msg.From != gr.driver.Core().Leader())
			}
		}
		h.step(gr, gm.Msg)
	}
	for i := range b.Heartbeats {
		hb := &b.Heartbeats[i]
		gr := h.lookup(b.From, hb.Group)
		if gr == nil {
			continue
		}
		if !hb.Quiesce {
			h.wake(gr, false) // the leader is active: tick along
		}
		m := hb.message(b.From, b.To)
		if h.cfg.broken.heartbeatLosesCommit {
			m.LeaderCommit = 0
		}
		h.step(gr, m)
		if hb.Quiesce {
			if gr.quiet && gr.quietUnder != b.From {
				h.wake(gr, false) // quiet under another leader: listen to this one
			}
			h.maybeQuiesceFollower(gr, hb)
		}
	}
	for i := range b.AppendReplies {
		r := &b.AppendReplies[i]
		if gr := h.lookup(b.From, r.Group); gr != nil {
			h.step(gr, r.message(b.From, b.To))
		}
	}
	// A peer that lost its replica of a group, or asks this one to tick
	// again, wakes it here: a group must not stay quiet around a replica
	// that is gone or awake.
	for _, ids := range [][]GroupID{b.Wake, b.UnknownGroups} {
		for _, g := range ids {
			if gr, ok := h.groups[g]; ok {
				h.wake(gr, false)
				h.touch(gr)
			}
		}
	}
}

func (h *Host) lookup(from NodeID, g GroupID) *group {
	gr, ok := h.groups[g]
	if !ok {
		b := h.batch(from)
		if !slices.Contains(b.UnknownGroups, g) {
			b.UnknownGroups = append(b.UnknownGroups, g)
		}
		return nil
	}
	return gr
}

func (h *Host) step(gr *group, m core.Message) {
	h.touch(gr)
	gr.driver.Step(m, func(r *core.Message) {
		if r != nil {
			gr.Send(*r)
		}
	})
}

// Flush lets every group stepped or ticked since the last Flush persist,
// send and apply (node.Driver.ProcessReady), quiesces the leaders that
// have nothing left to do, and returns the batches to send, one per
// destination, in node order.
func (h *Host) Flush() []*Batch {
	if h.failed != nil {
		return nil
	}
	if h.unsynced {
		h.unsynced = false
		if err := h.cfg.Sync(); err != nil {
			h.fail(err)
			return nil
		}
	}
	for len(h.dirty) > 0 {
		dirty := h.dirty
		h.dirty = nil
		for _, gr := range dirty {
			gr.dirty = false
			if h.groups[gr.id] != gr {
				continue // destroyed meanwhile
			}
			gr.driver.ProcessReady()
			h.observe(gr)
			if gr.quiet && !h.stillQuiet(gr) {
				h.wake(gr, false)
			}
			h.maybeQuiesceLeader(gr)
		}
	}
	if h.cfg.Sync != nil {
		if h.cfg.broken.syncLate {
			h.unsynced = true
		} else if err := h.cfg.Sync(); err != nil {
			h.fail(err)
			return nil
		}
	}
	deliveries := h.deliveries
	h.deliveries = nil
	for _, d := range deliveries {
		d()
	}
	out := make([]*Batch, 0, len(h.out))
	for _, b := range h.out {
		out = append(out, b)
		h.stats.Batches++
		if len(b.Heartbeats) > 0 {
			h.stats.HeartbeatSends++
			h.stats.Heartbeats += uint64(len(b.Heartbeats))
		}
	}
	clear(h.out)
	slices.SortFunc(out, func(a, b *Batch) int { return cmp.Compare(a.To, b.To) })
	return out
}

// activate lists gr among the groups that tick.
func (h *Host) activate(gr *group) {
	if !gr.inActive {
		gr.inActive = true
		h.active = append(h.active, gr)
		h.activeSorted = false
	}
}

func (h *Host) touch(gr *group) {
	if !gr.dirty {
		gr.dirty = true
		h.dirty = append(h.dirty, gr)
	}
}

func (h *Host) batch(to NodeID) *Batch {
	b := h.out[to]
	if b == nil {
		b = &Batch{From: h.cfg.ID, To: to}
		h.out[to] = b
	}
	return b
}

// Send implements node.Outbox: the message joins the batch for its node.
func (gr *group) Send(m core.Message) {
	b := gr.host.batch(NodeID(m.To))
	switch {
	case isHeartbeat(&m):
		b.Heartbeats = append(b.Heartbeats, heartbeatOf(gr.id, &m))
	case m.Type == core.MsgAppendEntriesReply:
		b.AppendReplies = append(b.AppendReplies, appendReplyOf(gr.id, &m))
	default:
		b.Messages = append(b.Messages, GroupMessage{Group: gr.id, Msg: m})
	}
}

// Apply implements node.Applier: the batch reaches the application once
// the round is durable (Flush).
func (gr *group) Apply(batch []node.CommitEntry) {
	h := gr.host
	h.deliveries = append(h.deliveries, func() {
		if h.cfg.Apply != nil {
			h.cfg.Apply(gr.id, batch)
		} else {
			for _, e := range batch {
				if e.Snapshot != nil {
					e.Snapshot.Data.Close() // no state machine takes it
				}
			}
		}
		if h.cfg.Events != nil {
			for _, e := range batch {
				if e.Snapshot == nil {
					h.cfg.Events(Event{Kind: EventCommitted, Group: gr.id, Node: h.cfg.ID, Term: e.Term, Index: e.Index, Command: e.Command})
				}
			}
		}
	})
}
