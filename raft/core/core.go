package core

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Core is the deterministic Raft protocol state machine: Figure 2 of the
// paper plus PreVote, CheckQuorum, membership changes, snapshots, ReadIndex
// and leadership transfer. It has no goroutines, no clock, no I/O and no
// global randomness. A driver feeds it ticks, incoming messages and client
// requests, then collects a Ready (what to persist, what to send, what to
// apply), acts on it in that order and calls Advance.
//
// The same inputs always give the same outputs; that is what lets the
// deterministic simulation replay a failing run from its seed.
type Core struct {
	cfg  CoreConfig
	id   int
	rand *rand.Rand

	// Persistent state (Figure 2).
	term     uint64
	votedFor int
	log      raftLog
	// voteFloor: see InitialState.VoteFloor.
	voteFloor VoteFloor

	role   Role
	leader int

	// Membership (thesis §4.1): the latest configuration in the log, in use
	// as soon as it is appended.
	config      Configuration
	configIndex uint64

	// Leader state.
	prs             map[int]*progress
	peerIDs         []int // the keys of prs in order; nil when prs changed
	committedInTerm bool  // an entry of the current term is committed (§5.4.2, thesis §6.4)
	transferee      int   // target of a leadership transfer in progress, or None
	transferElapsed int

	// Candidate state.
	votes map[int]bool

	ticks            uint64 // Tick calls since start: the core's only clock
	electionElapsed  int
	heartbeatElapsed int
	electionTimeout  int // randomized in [ElectionTicksMin, ElectionTicksMax)

	needBroadcast bool // proposals appended since the last Ready

	reads readIndexState
	snap  snapshotState

	// Outputs collected for the next Ready.
	msgs        []Message
	readStates  []ReadState
	failedReads []uint64
	prevHard    HardState

	scratch []uint64
}

// CoreConfig holds the protocol parameters, in ticks.
type CoreConfig struct {
	ID int
	// A follower that hears from no leader for a random number of ticks in
	// [ElectionTicksMin, ElectionTicksMax) starts an election (§5.2).
	ElectionTicksMin int
	ElectionTicksMax int
	// HeartbeatTicks is the leader's heartbeat period.
	HeartbeatTicks int
	// PreVote: a server first asks whether it could win before it raises its
	// term (thesis §9.6), so a rejoining partitioned server does not depose
	// a healthy leader.
	PreVote bool
	// CheckQuorum: a leader that has not heard from a majority for an
	// election timeout steps down; followers that heard from a leader within
	// the minimum election timeout ignore vote requests (thesis §4.2.3, §6.2).
	CheckQuorum bool
	// MaxEntriesPerAppend and MaxBytesPerAppend cap one AppendEntries.
	MaxEntriesPerAppend int
	MaxBytesPerAppend   int
	// MaxInflight is how many AppendEntries may await a reply per follower.
	MaxInflight int
	// SnapshotChunkBytes is the size of one InstallSnapshot chunk.
	SnapshotChunkBytes int
	// Seed seeds the election timeout randomization.
	Seed int64
	// Trace, if set, receives every protocol event.
	Trace func(Event)
	// OnViolation, if set, is called when an invariant breaks (a committed
	// entry about to be overwritten, an undecodable configuration): a bug
	// that no input may cause. The core then goes on as best it can; the
	// caller should stop the server. If nil, the core panics.
	OnViolation func(InvariantViolation)

	// broken switches off safety rules, so that tests can check that the
	// simulation's checkers catch the bugs that follow. Never set otherwise.
	broken brokenRules
}

type brokenRules struct {
	// voteForStaleLogs grants votes without the election restriction (§5.4.1).
	voteForStaleLogs bool
	// commitOldTerms commits entries of earlier terms by counting (§5.4.2).
	commitOldTerms bool
	// truncateStaleSuffix makes a follower cut its log after the last entry
	// of every AppendEntries it accepts, as if the message were the whole
	// truth: a stale message that arrives after a newer one (pipelining
	// reorders them) then erases entries the follower already acknowledged.
	truncateStaleSuffix bool
	// newVotersOnly counts only C_new's voters in a joint configuration, as
	// if C_old had no say during the change (against Raft paper §6).
	newVotersOnly bool
	// ignoreVoteFloor votes as if InitialState.VoteFloor were zero.
	ignoreVoteFloor bool
	// stagedVote counts staged learners as voters in the decisions, as if
	// staging them had already promoted them (against Raft paper §6: a
	// non-voting member is not counted for majorities).
	stagedVote bool
	// unstableToChunkEnd hands out in a Ready only the unstable entries up
	// to the end of the log's chunk they start in (saving the copy of
	// entries that cross two chunks), the rest in the next Ready. A
	// follower's reply in the same Ready then acknowledges entries that
	// are not yet durable: a crash loses them though they count toward a
	// majority (Figure 2: respond after persisting).
	unstableToChunkEnd bool
}

// InitialState is what a restarting server read back from its Storage.
type InitialState struct {
	HardState HardState
	Snapshot  *SnapshotMeta // nil if none
	Entries   []Entry       // the log after the snapshot
	// Bootstrap is the initial membership, used only when the storage is
	// empty: it becomes entry 1 of every founding member's log.
	Bootstrap Configuration
	// VoteFloor, for a replica created empty to be added to a running
	// group, is the position (term, index) of the group's leader when it
	// was created: its current term and its last index. Until the
	// replica's own log passes it, it votes (and pre-votes) only for
	// candidates whose log is at least as up-to-date as that position
	// (§5.4.1, as if its own log ended there). An empty log is behind
	// every candidate, so without a floor the replica would vote for a
	// stale one: a server removed while down that still holds an old
	// configuration naming this node id from an earlier time it was a
	// member, and that could then win an election in that configuration
	// beside the group's real leader. A stale candidate's log lacks a
	// committed entry at or below the floor's index (a removal), so it
	// is behind the floor; a legitimate one holds the entry that adds
	// this replica, appended after the floor. (Systems that never reuse
	// an id in a group, as etcd and dragonboat, need no floor; here a
	// node is its id in every group.)
	VoteFloor VoteFloor
}

// VoteFloor is a log position a replica treats its log as reaching, for
// votes only (InitialState.VoteFloor). The zero value is no floor.
type VoteFloor struct {
	Term  uint64 `json:"term"`
	Index uint64 `json:"index"`
}

// NoVotes is a floor no candidate reaches: the replica votes for no one.
var NoVotes = VoteFloor{Term: ^uint64(0), Index: ^uint64(0)}

// Errors returned to callers of the core's client API.
var (
	ErrNotLeader      = errors.New("not the leader")
	ErrTransferring   = errors.New("leadership transfer in progress")
	ErrConfigPending  = errors.New("a membership change is still in progress")
	ErrNotReady       = errors.New("the leader has not committed an entry of its term yet")
	ErrBadMember      = errors.New("invalid membership change")
	ErrSnapshotTooOld = errors.New("snapshot index not newer than the current one")
	ErrSnapshotAhead  = errors.New("snapshot index not yet applied")
	ErrBadTransfer    = errors.New("invalid leadership transfer target")
)

// The protocol's defaults, in ticks of 10 ms: the paper's 150–300 ms
// election timeout and a 50 ms heartbeat.
const (
	DefaultElectionTicksMin    = 15
	DefaultElectionTicksMax    = 30
	DefaultHeartbeatTicks      = 5
	DefaultMaxEntriesPerAppend = 4096
	DefaultMaxBytesPerAppend   = 4 << 20
	DefaultMaxInflight         = 8
	DefaultSnapshotChunkBytes  = 64 << 10
)

// DefaultConfig returns the configuration RaftNode uses by default for
// server id (with 10 ms ticks): the paper's timeouts, PreVote and
// CheckQuorum on, and the seed given.
func DefaultConfig(id int, seed int64) CoreConfig {
	return CoreConfig{
		ID: id, ElectionTicksMin: DefaultElectionTicksMin, ElectionTicksMax: DefaultElectionTicksMax,
		HeartbeatTicks: DefaultHeartbeatTicks, PreVote: true, CheckQuorum: true,
		MaxEntriesPerAppend: DefaultMaxEntriesPerAppend, MaxBytesPerAppend: DefaultMaxBytesPerAppend,
		MaxInflight: DefaultMaxInflight, SnapshotChunkBytes: DefaultSnapshotChunkBytes, Seed: seed,
	}
}

func (cfg *CoreConfig) validate() error {
	switch {
	case cfg.ElectionTicksMin <= 0 || cfg.ElectionTicksMax <= cfg.ElectionTicksMin:
		return fmt.Errorf("election ticks must satisfy 0 < min < max, got [%d, %d)", cfg.ElectionTicksMin, cfg.ElectionTicksMax)
	case cfg.HeartbeatTicks <= 0 || cfg.HeartbeatTicks >= cfg.ElectionTicksMin:
		return fmt.Errorf("heartbeat ticks must satisfy 0 < heartbeat < election min, got %d", cfg.HeartbeatTicks)
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 1
	}
	if cfg.SnapshotChunkBytes <= 0 {
		cfg.SnapshotChunkBytes = DefaultSnapshotChunkBytes
	}
	return nil
}

// NewCore restores a core from what its storage held.
func NewCore(cfg CoreConfig, st InitialState) (*Core, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Core{
		cfg: cfg,
		id:  cfg.ID,
		// PCG keeps 16 bytes of state where math/rand's source keeps 4.9
		// KiB: a host of ten thousand groups keeps ten thousand of them.
		rand:       rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		term:       st.HardState.Term,
		votedFor:   st.HardState.VotedFor,
		leader:     None,
		transferee: None,
	}
	if c.term == 0 {
		// A zero HardState is an empty disk: no vote (id 0 is a real node).
		c.votedFor = None
	}
	if st.Snapshot != nil {
		meta := *st.Snapshot
		c.log.snapIndex, c.log.snapTerm = meta.LastIncludedIndex, meta.LastIncludedTerm
		c.log.committed, c.log.applied = meta.LastIncludedIndex, meta.LastIncludedIndex
		c.config, c.configIndex = meta.Config.Clone(), meta.LastIncludedIndex
		c.snap.latest = &meta
	}
	for i, e := range st.Entries {
		if e.Index != c.log.snapIndex+1+uint64(i) {
			return nil, fmt.Errorf("storage log is not contiguous: entry %d at position %d after snapshot %d", e.Index, i, c.log.snapIndex)
		}
	}
	c.log.entries.push(st.Entries)
	c.log.stabled = c.log.lastIndex()
	if st.Snapshot == nil && len(st.Entries) == 0 && st.HardState.Term == 0 && len(st.Bootstrap.Voters) > 0 {
		// Every founding member starts from the same entry 1 holding the
		// initial configuration; it is committed by construction.
		boot := Entry{Index: 1, Term: 1, Type: EntryConfig, Data: EncodeConfiguration(st.Bootstrap)}
		c.log.entries.push([]Entry{boot})
		c.term = 1
		c.votedFor = None
		c.log.committed = 1
	}
	c.config, c.configIndex = c.configFromLog()
	c.prevHard = st.HardState
	c.voteFloor = st.VoteFloor
	c.becomeFollower(c.term, None)
	return c, nil
}

// SetVoteFloor replaces the vote floor (InitialState.VoteFloor): for a
// server started empty to join a running group, which votes for no one
// (NoVotes) until the change that adds it brings the floor.
func (c *Core) SetVoteFloor(f VoteFloor) { c.voteFloor = f }

// ID returns the server's id.
func (c *Core) ID() int { return c.id }

// Term returns the current term.
func (c *Core) Term() uint64 { return c.term }

// Role returns the current role.
func (c *Core) Role() Role { return c.role }

// Leader returns the leader this server knows of, or None.
func (c *Core) Leader() int { return c.leader }

// Config returns the configuration in use (the latest in the log).
func (c *Core) Config() Configuration { return c.config.Clone() }

// HardState returns the current term and vote.
func (c *Core) HardState() HardState { return c.hardState() }

// ConfigIndex is the index of the entry that holds the configuration in
// use (the snapshot's index if it came from the snapshot, 0 if none).
func (c *Core) ConfigIndex() uint64 { return c.configIndex }

// Read access to the log, for drivers, tools and tests. The core keeps
// every entry after its snapshot in memory.

// FirstIndex is the first index the log holds (the snapshot's index + 1).
func (c *Core) FirstIndex() uint64 { return c.log.firstIndex() }

// LastIndex is the last index of the log (the snapshot's if it is empty).
func (c *Core) LastIndex() uint64 { return c.log.lastIndex() }

// Committed is the commit index (Figure 2, commitIndex).
func (c *Core) Committed() uint64 { return c.log.committed }

// Applied is the last index handed to the driver to apply (lastApplied).
func (c *Core) Applied() uint64 { return c.log.applied }

// Stable is the last index the core knows to be durable as it is in its log.
func (c *Core) Stable() uint64 { return c.log.stabled }

// TermAt returns the term of the entry at i, and false if the log does not
// know it (compacted into the snapshot, or beyond the end). At the
// snapshot's index it returns the snapshot's term.
func (c *Core) TermAt(i uint64) (uint64, bool) { return c.log.term(i) }

// EntryAt returns the entry at i, if the log holds it (FirstIndex ≤ i ≤
// LastIndex). Its Data is the log's: never modify it.
func (c *Core) EntryAt(i uint64) (Entry, bool) {
	if i < c.log.firstIndex() || i > c.log.lastIndex() {
		return Entry{}, false
	}
	return *c.log.entry(i), true
}

// Entries returns a copy of the entries in [lo, hi), clipped to the log.
func (c *Core) Entries(lo, hi uint64) []Entry {
	lo = max(lo, c.log.firstIndex())
	hi = min(hi, c.log.lastIndex()+1)
	if lo >= hi {
		return nil
	}
	return slices.Clone(c.log.slice(lo, hi, 0, 0))
}

func (c *Core) tracing() bool { return c.cfg.Trace != nil }

// emit reports an event to the tracer, if there is one. Callers that
// would build an expensive event check tracing first.
func (c *Core) emit(e Event) {
	if c.cfg.Trace != nil {
		c.cfg.Trace(e)
	}
}

// InvariantViolation reports a broken invariant of the protocol.
type InvariantViolation struct {
	Node int
	What string
}

func (v InvariantViolation) Error() string {
	return fmt.Sprintf("raft: invariant violated on node %d: %s", v.Node, v.What)
}

// violated reports a broken invariant: to the tracer (always, whatever
// else happens), then to the OnViolation hook, or as a panic.
func (c *Core) violated(what string) {
	c.emit(Event{Kind: EventSafety, Term: c.term, Peer: None, Detail: what})
	v := InvariantViolation{Node: c.id, What: what}
	if c.cfg.OnViolation == nil {
		panic(v)
	}
	c.cfg.OnViolation(v)
}

// ev returns an event of kind k about the current term, with no peer.
func (c *Core) ev(k EventKind) Event { return Event{Kind: k, Term: c.term, Peer: None} }

func (c *Core) send(m Message) {
	m.From = c.id
	if m.Term == 0 {
		m.Term = c.term
	}
	c.msgs = append(c.msgs, m)
}

// Tick advances the core's clock by one tick.
func (c *Core) Tick() {
	c.ticks++
	if c.role == Leader {
		c.tickLeader()
		return
	}
	c.electionElapsed++
	if c.electionElapsed >= c.electionTimeout && c.promotable() {
		c.electionElapsed = 0
		if c.tracing() {
			e := c.ev(EventElectionTimeout)
			e.Count = c.electionTimeout
			c.emit(e)
		}
		c.campaign(c.cfg.PreVote, false)
	}
}

func (c *Core) tickLeader() {
	c.heartbeatElapsed++
	c.electionElapsed++
	if c.transferee != None {
		c.transferElapsed++
		if c.transferElapsed >= c.cfg.ElectionTicksMax {
			if c.tracing() {
				e := c.ev(EventTransferTimeout)
				e.Peer = c.transferee
				c.emit(e)
			}
			c.transferee = None
		}
	}
	if c.electionElapsed >= c.cfg.ElectionTicksMax {
		c.electionElapsed = 0
		if c.cfg.CheckQuorum && !c.quorumActive() {
			if c.tracing() {
				c.emit(c.ev(EventCheckQuorum))
			}
			c.becomeFollower(c.term, None)
			return
		}
	}
	if c.role != Leader {
		return
	}
	if c.heartbeatElapsed >= c.cfg.HeartbeatTicks {
		c.heartbeatElapsed = 0
		c.broadcastHeartbeat()
	}
	c.maybeLeaveJoint()
	c.maybePromoteLearner()
	c.tickSnapshotSend()
}

// quorumActive reports whether a majority of voters answered since the last
// check, and clears the marks for the next period.
func (c *Core) quorumActive() bool {
	active := c.quorumConfig().HasQuorum(func(id int) bool {
		if id == c.id {
			return true
		}
		pr := c.prs[id]
		return pr != nil && pr.recentActive
	})
	for _, pr := range c.prs {
		pr.recentActive = false
	}
	return active
}

// promotable reports whether this server may stand for election: a voter
// of its latest configuration, or a voter being removed by a configuration
// entry not yet committed. The latter matters: if the leader that appended
// the removal fails, this server may hold the only up-to-date log, and the
// others cannot win without its vote. Votes are counted in the candidate's
// latest configuration (thesis §4.1: the caller's configuration is used),
// and once it commits that configuration it steps down (thesis §4.2.2).
func (c *Core) promotable() bool {
	if c.config.IsVoter(c.id) {
		return true
	}
	return c.configIndex > c.log.committed && c.configAt(c.configIndex-1).IsVoter(c.id)
}

func (c *Core) resetElectionTimer() {
	c.electionElapsed = 0
	c.heartbeatElapsed = 0
	c.electionTimeout = c.cfg.ElectionTicksMin + c.rand.IntN(c.cfg.ElectionTicksMax-c.cfg.ElectionTicksMin)
}

func (c *Core) setRole(r Role) {
	if c.role != r && c.tracing() {
		e := c.ev(EventRole)
		e.PrevRole, e.Role = c.role, r
		c.emit(e)
	}
	c.role = r
}

func (c *Core) becomeFollower(term uint64, leader int) { c.enterTerm(term, leader, Follower) }

// enterTerm moves to term (if newer: the vote is cleared), under leader,
// in role (a follower, or a candidate starting its election: one role
// change, so that the trace never shows a step down that did not happen).
func (c *Core) enterTerm(term uint64, leader int, role Role) {
	if term > c.term {
		if c.tracing() {
			c.emit(Event{Kind: EventTerm, PrevTerm: c.term, Term: term, Peer: None})
		}
		c.term = term
		c.votedFor = None
		c.dropStaleRequests()
	}
	c.setRole(role)
	c.setLeader(leader)
	c.resetElectionTimer()
	c.prs, c.peerIDs = nil, nil
	c.votes = nil
	c.transferee = None
	c.committedInTerm = false
	c.failPendingReads()
}

// dropStaleRequests forgets the requests not yet handed to the driver that
// were made in an older term: a leader or candidate that has learned of a
// newer term must not act in its old one any more (its AppendEntries would
// only be refused, or worse, accepted by a server still behind).
func (c *Core) dropStaleRequests() {
	c.msgs = slices.DeleteFunc(c.msgs, func(m Message) bool { return m.Type.IsRequest() && m.Term < c.term })
}

func (c *Core) setLeader(id int) {
	if c.leader != id && id != None && id != c.id {
		if c.tracing() {
			e := c.ev(EventLeader)
			e.Peer = id
			c.emit(e)
		}
	}
	c.leader = id
}

func (c *Core) becomeLeader() {
	c.setRole(Leader)
	c.leader = c.id
	c.votes = nil
	c.transferee = None
	c.committedInTerm = false
	c.resetElectionTimer()
	c.prs, c.peerIDs = make(map[int]*progress), nil
	for _, id := range c.config.Members() {
		c.addProgress(id)
	}
	if c.tracing() {
		c.emit(c.ev(EventElectionWon))
	}
	// §5.4.2 and thesis §6.4: a no-op of the new term lets the leader commit
	// (and learn the commit index) without waiting for a client.
	c.appendEntry(EntryNoop, nil)
}

func (c *Core) addProgress(id int) {
	if id == c.id {
		return
	}
	c.peerIDs = nil
	c.prs[id] = &progress{next: c.log.lastIndex() + 1, roundTarget: c.log.lastIndex(), roundStart: c.ticks, recentActive: true, heardAt: c.ticks}
}

// appendEntry appends one entry of the current term to the leader's log and
// returns its index; the replication happens when the Ready is collected,
// so every proposal of one driver round travels in one AppendEntries.
func (c *Core) appendEntry(t EntryType, data []byte) uint64 {
	idx := c.log.lastIndex() + 1
	c.log.append(Entry{Index: idx, Term: c.term, Type: t, Data: data})
	if t == EntryConfig {
		c.applyConfigEntry(idx, data)
	}
	c.needBroadcast = true
	return idx
}

// Propose appends a client command to the leader's log (Figure 2, "Rules
// for Servers", Leaders). It returns the index and term the entry will have
// if it commits.
func (c *Core) Propose(data []byte) (index, term uint64, err error) {
	if c.role != Leader {
		return 0, 0, ErrNotLeader
	}
	if c.transferee != None {
		return 0, 0, ErrTransferring
	}
	return c.appendEntry(EntryNormal, data), c.term, nil
}

// Step feeds the core one incoming message. For a request it returns the
// reply, which the driver must send only after it has persisted the Ready
// that follows (Figure 2: respond after updating stable storage). It
// returns nil for replies and for messages it drops.
func (c *Core) Step(m Message) *Message {
	if m.To != c.id || m.From == c.id || m.From < 0 {
		return nil
	}
	switch {
	case m.Term > c.term:
		if m.Type == MsgRequestVote && !m.Transfer && c.inLease() {
			// Thesis §4.2.3: a server that heard from a current leader within
			// the minimum election timeout neither updates its term nor
			// grants its vote, so a removed or partitioned server cannot
			// depose a healthy leader.
			if c.tracing() {
				e := c.ev(EventVoteIgnored)
				e.RPC, e.Peer, e.Count = m.Summary(), c.leader, c.electionElapsed
				c.emit(e)
			}
			return &Message{Type: MsgRequestVoteReply, From: c.id, To: m.From, Term: c.term, PreVote: m.PreVote}
		}
		switch {
		case m.Type == MsgRequestVote && m.PreVote:
			// A PreVote changes nobody's term.
		case m.Type == MsgRequestVoteReply && m.PreVote && m.VoteGranted:
			// A granted PreVote carries the term we would campaign in.
		default:
			leader := None
			if m.Type == MsgAppendEntries || m.Type == MsgInstallSnapshot || m.Type == MsgTimeoutNow {
				leader = m.From
			}
			c.becomeFollower(m.Term, leader)
		}
	case m.Term < c.term:
		// Figure 2: reply false to a request from an older term, with our
		// term so that the sender steps down. Old replies are dropped.
		return c.rejectStale(m)
	}

	switch m.Type {
	case MsgRequestVote:
		return c.handleRequestVote(m)
	case MsgRequestVoteReply:
		c.handleVoteReply(m)
	case MsgAppendEntries:
		return c.handleAppendEntries(m)
	case MsgAppendEntriesReply:
		c.handleAppendReply(m)
	case MsgInstallSnapshot:
		return c.handleInstallSnapshot(m)
	case MsgInstallSnapshotReply:
		c.handleInstallSnapshotReply(m)
	case MsgTimeoutNow:
		return c.handleTimeoutNow(m)
	}
	return nil
}

// inLease reports whether this server has heard from a current leader
// within the minimum election timeout (or is that leader).
func (c *Core) inLease() bool {
	if !c.cfg.CheckQuorum {
		return false
	}
	if c.role == Leader {
		// A leader hears from the current leader, itself, all the time:
		// it lets no vote through while it leads, and CheckQuorum makes
		// it step down once a majority has not answered within an
		// election timeout. Its election counter only times that check:
		// taken for a follower's, it let votes through in the second half
		// of every check, and a server cut off for a while deposed a
		// healthy leader when healed.
		return true
	}
	return c.leader != None && c.electionElapsed < c.cfg.ElectionTicksMin
}

func (c *Core) rejectStale(m Message) *Message {
	if c.tracing() {
		e := c.ev(EventStale)
		e.RPC = m.Summary()
		c.emit(e)
	}
	switch m.Type {
	case MsgRequestVote:
		return &Message{Type: MsgRequestVoteReply, From: c.id, To: m.From, Term: c.term, PreVote: m.PreVote}
	case MsgAppendEntries:
		return &Message{Type: MsgAppendEntriesReply, From: c.id, To: m.From, Term: c.term, PrevLogIndex: m.PrevLogIndex}
	case MsgInstallSnapshot:
		return &Message{Type: MsgInstallSnapshotReply, From: c.id, To: m.From, Term: c.term}
	case MsgTimeoutNow:
		return &Message{Type: MsgTimeoutNowReply, From: c.id, To: m.From, Term: c.term}
	}
	return nil
}

// HasReady reports whether the core has anything for the driver.
func (c *Core) HasReady() bool {
	return c.needBroadcast || c.readRoundStartable() || len(c.msgs) > 0 || c.hardState() != c.prevHard ||
		c.log.hasUnstable() || c.log.committed > c.log.applied || len(c.readStates) > 0 ||
		len(c.failedReads) > 0 || c.snap.installed != nil || len(c.snap.chunks) > 0
}

// unstableForReady is what a Ready hands out to be persisted: every
// unstable entry, since the replies in the same Ready acknowledge them all.
func (c *Core) unstableForReady() []Entry {
	ents := c.log.unstable()
	if c.cfg.broken.unstableToChunkEnd && len(ents) > 0 {
		start := c.log.entries.head + int(ents[0].Index-c.log.snapIndex-1)
		ents = ents[:min(len(ents), logChunk-start%logChunk)]
	}
	return ents
}

func (c *Core) hardState() HardState { return HardState{Term: c.term, VotedFor: c.votedFor} }

// Ready is a batch of work for the driver, to be done in this order:
// persist Snapshot, HardState and Entries (one sync covers all); then send
// Messages (and the replies Step returned); then apply Committed and serve
// ReadStates once applied; then call Advance.
type Ready struct {
	// HardState is set when term or vote changed.
	HardState *HardState
	// SnapshotChunks are chunks of a snapshot received from the leader, to
	// write to storage, in order, before the replies are sent.
	SnapshotChunks []SnapshotChunk
	// Snapshot is a snapshot received from the leader, complete: once its
	// chunks are written, storage makes it the snapshot (it replaces the
	// log up to its index), and the state machine is reset from it.
	Snapshot *SnapshotMeta
	// Entries must be written to Storage, replacing any stored entries from
	// Entries[0].Index on.
	Entries []Entry
	// Messages are requests to other servers.
	Messages []Message
	// Committed entries to apply, in order.
	Committed []Entry
	// ReadStates are reads confirmed by ReadIndex.
	ReadStates []ReadState
	// FailedReads are read contexts that can no longer be confirmed here.
	FailedReads []uint64
}

// Ready collects the core's outputs. The driver must not Step the core
// between Ready and Advance, nor use the Ready after Advance (copy what it
// keeps: Messages' array is reused, Entries and Committed alias the log).
func (c *Core) Ready() Ready {
	if c.needBroadcast {
		c.needBroadcast = false
		c.broadcastAppend(false)
	}
	c.maybeStartReadRound()
	rd := Ready{
		Snapshot:       c.snap.installed,
		SnapshotChunks: c.snap.chunks,
		Entries:        c.unstableForReady(),
		Messages:       c.msgs,
		Committed:      c.log.toApply(0),
		ReadStates:     c.readStates,
		FailedReads:    c.failedReads,
	}
	if hs := c.hardState(); hs != c.prevHard {
		rd.HardState = &hs
	}
	c.msgs, c.readStates, c.failedReads = nil, nil, nil
	return rd
}

// Advance tells the core that the driver has done what rd asked. The
// driver must not use rd's slices afterwards: the core reuses them.
func (c *Core) Advance(rd Ready) { c.advance(rd, false) }

// AdvanceAsync is Advance for a driver that has done what rd asked except
// that rd.Entries are still being written, on another goroutine: they are
// not handed out again, but they count as durable (a leader's own copy
// toward a majority) only once the driver calls StableTo. The hard state
// and snapshot, if any, must be durable already. Writes must reach Storage
// in the order of the Readys that handed them out.
func (c *Core) AdvanceAsync(rd Ready) { c.advance(rd, true) }

// StableTo tells the core that the log through index, whose entry there has
// term, is durable in Storage (an asynchronous write handed out by a Ready
// has completed). If the log has changed at index since, it does nothing:
// the replacements are written after that write.
func (c *Core) StableTo(index, term uint64) {
	if index <= c.log.stabled || !c.log.matchTerm(index, term) {
		return
	}
	c.log.stabled = index
	if c.role == Leader && c.maybeCommit() {
		c.broadcastAppend(true)
	}
}

func (c *Core) advance(rd Ready, async bool) {
	if c.msgs == nil && cap(rd.Messages) > 0 {
		clear(rd.Messages)
		c.msgs = rd.Messages[:0]
	}
	if rd.HardState != nil {
		c.prevHard = *rd.HardState
	}
	if rd.Snapshot != nil && c.snap.installed == rd.Snapshot {
		c.snap.installed = nil
	}
	if len(rd.SnapshotChunks) > 0 {
		clear(c.snap.chunks)
		c.snap.chunks = c.snap.chunks[:0]
	}
	if n := len(rd.Entries); n > 0 {
		last := rd.Entries[n-1]
		// Entries may have been replaced since Ready only by a Step, which
		// the contract forbids; still, only mark stable what still matches.
		if async {
			if c.log.matchTerm(last.Index, last.Term) && last.Index > c.log.inProgress {
				c.log.inProgress = last.Index
			}
		} else if c.log.matchTerm(last.Index, last.Term) && last.Index > c.log.stabled {
			c.log.stabled = last.Index
		}
	}
	if n := len(rd.Committed); n > 0 {
		c.log.applied = max(c.log.applied, rd.Committed[n-1].Index)
	}
	if c.role == Leader && len(rd.Entries) > 0 && !async {
		// The leader's own entries count toward a majority only once durable.
		if c.maybeCommit() {
			c.broadcastAppend(true)
		}
	}
}

// Summary is the core's state in brief, cheap enough to take after every
// Ready. Its Config shares the core's slices: never modify them.
type Summary struct {
	Role          Role
	Term          uint64
	Leader        int
	Commit        uint64
	LastIndex     uint64
	SnapshotIndex uint64
	// Config is the configuration in use, from the entry at ConfigIndex.
	Config      Configuration
	ConfigIndex uint64
	// NoVotes: the replica votes for no one (its vote floor is NoVotes),
	// until it is given a floor.
	NoVotes bool `json:",omitempty"`
	// Ready are, at a leader, the staged learners (Configuration.Staged)
	// that have caught up with it: their change may promote them.
	Ready []int `json:",omitempty"`
}

// Summary returns the core's state in brief.
func (c *Core) Summary() Summary {
	s := Summary{Role: c.role, Term: c.term, Leader: c.leader, Commit: c.log.committed,
		LastIndex: c.log.lastIndex(), SnapshotIndex: c.log.snapIndex, Config: c.config, ConfigIndex: c.configIndex,
		NoVotes: c.voteFloor == NoVotes}
	if c.role == Leader {
		for _, id := range c.config.Staged {
			if c.stagedReady(c.prs[id]) {
				s.Ready = append(s.Ready, id)
			}
		}
	}
	return s
}

// Timers are a core's clocks, in ticks: how long since it last heard of a
// leader (or, leading, since its quorum last answered) against the timeout
// it drew (§5.2), and, leading, how long since its last heartbeat.
type Timers struct {
	ElectionElapsed, ElectionTimeout int
	HeartbeatElapsed, HeartbeatTicks int
}

// Timers reports the core's clocks.
func (c *Core) Timers() Timers {
	t := Timers{ElectionElapsed: c.electionElapsed, ElectionTimeout: c.electionTimeout,
		HeartbeatElapsed: c.heartbeatElapsed, HeartbeatTicks: c.cfg.HeartbeatTicks}
	if c.role == Leader {
		t.ElectionTimeout = c.cfg.ElectionTicksMax // the check-quorum period (§6.2 of the thesis)
	}
	return t
}

// Status is a snapshot of a core's state, for the REPL and tests.
type Status struct {
	ID            int
	Role          Role
	Term          uint64
	VotedFor      int
	Leader        int
	Commit        uint64
	Applied       uint64
	LastIndex     uint64
	LastTerm      uint64
	SnapshotIndex uint64
	Config        Configuration
	// Match is the leader's matchIndex per peer (nil on followers).
	Match map[int]uint64
}

// Status reports the core's state.
func (c *Core) Status() Status {
	s := Status{
		ID: c.id, Role: c.role, Term: c.term, VotedFor: c.votedFor, Leader: c.leader,
		Commit: c.log.committed, Applied: c.log.applied, LastIndex: c.log.lastIndex(),
		LastTerm: c.log.lastTerm(), SnapshotIndex: c.log.snapIndex, Config: c.config.Clone(),
	}
	if c.role == Leader {
		s.Match = make(map[int]uint64, len(c.prs))
		for id, pr := range c.prs {
			s.Match[id] = pr.match
		}
	}
	return s
}
