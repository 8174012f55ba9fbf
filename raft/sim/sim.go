package sim

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand"
	"slices"
	"strconv"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/lincheck"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/trace"
)

// dsim is a deterministic simulation of a cluster: the same protocol Core
// as the real servers, driven by a virtual clock and a seeded network that
// drops, delays, reorders and duplicates messages, partitions, crashes and
// restarts servers, and serves concurrent KV clients. Every random choice
// comes from one seeded source and every event is ordered by (time,
// sequence), so a seed replays the same run exactly.
type dsim struct {
	p     simParams
	rng   *rand.Rand
	now   time.Duration
	seq   uint64
	queue eventQueue

	nodes   map[int]*dnode
	clients []*dclient
	net     dnet

	checker  *safetyChecker
	history  []kv.Operation
	stats    simStats
	err      error
	trace    trace.Tracer
	nextID   int // next id for a server added by a membership change
	removals []removal
	healed   bool
}

// simParams are the knobs of one run, all drawn from the seed.
type simParams struct {
	seed          int64
	nodes         int
	clients       int
	opsPerClient  int
	keys          int
	faultPhase    time.Duration // faults happen during [0, faultPhase)
	minFaults     int
	livenessLimit time.Duration // after faults stop, everything must finish within this
	tick          time.Duration
	snapshotEvery uint64 // 0: no snapshots
	membership    bool
	// asyncWrites: a leader's new entries are written after a random
	// delay, in parallel with replication (AdvanceAsync, StableTo), as
	// RaftNode does with AsyncLeaderWrites; a crash loses those not yet
	// written.
	asyncWrites bool
	maxWrite    time.Duration // the longest an asynchronous write takes
	core        core.CoreConfig
}

type simStats struct {
	events, messages, dropped, duplicated, faults, ops, elections, snapshots, confChanges int
}

type dnode struct {
	id          int
	core        *core.Core // nil while crashed
	storage     *storage.MemoryStorage
	kv          *kv.Store
	applied     uint64
	snapIndex   uint64
	incarnation int
	removed     bool
	role        core.Role
	lastChecked uint64 // commit index up to which entries were checked

	writes      map[uint64]pendingWrite // by log index
	reads       map[uint64]pendingRead2 // by read context
	readyReads  []core.ReadState
	nextReadCtx uint64

	unwritten    [][]core.Entry // asynchronous writes not yet done, oldest first
	writePending bool           // an evWriteDone is scheduled
}

type pendingWrite struct {
	term    uint64
	client  int
	attempt uint64
	seq     uint64
}

type pendingRead2 struct {
	client  int
	attempt uint64
}

type dnet struct {
	dropRate, dupRate  float64
	minDelay, maxDelay time.Duration
	group              map[int]int // partition group; nil: no partition
}

type dclient struct {
	id       int
	clientID uint64
	seq      uint64
	leader   int
	op       *clientOp
	attempt  uint64
	done     int
	next     int // round-robin target when the leader is unknown
}

type clientOp struct {
	cmd  kv.Command
	call time.Duration
}

// Events.
type eventKind uint8

const (
	evTick eventKind = iota
	evDeliver
	evClientRequest
	evClientResponse
	evClientTimeout
	evClientNext
	evFault
	evWriteDone
)

type event struct {
	at   time.Duration
	seq  uint64
	kind eventKind
	node int
	inc  int // node incarnation, for ticks
	msg  core.Message
	// client events
	client  int
	attempt uint64
	resp    clientResp
	fn      func()
}

type clientResp struct {
	ok        bool
	res       kv.Result
	notLeader bool
	leader    int
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

func (s *dsim) schedule(after time.Duration, e *event) {
	s.seq++
	e.at = s.now + after
	e.seq = s.seq
	heap.Push(&s.queue, e)
}

// drawParams derives a run's parameters from its seed.
func drawParams(seed int64) simParams {
	r := rand.New(rand.NewSource(seed))
	p := simParams{
		seed:          seed,
		nodes:         []int{3, 5}[r.Intn(2)],
		clients:       3 + r.Intn(3),
		keys:          2 + r.Intn(4),
		faultPhase:    time.Duration(2000+r.Intn(2000)) * time.Millisecond,
		minFaults:     10,
		livenessLimit: 20 * time.Second,
		tick:          10 * time.Millisecond,
	}
	p.opsPerClient = (200 + p.clients - 1) / p.clients
	if r.Intn(2) == 0 {
		p.snapshotEvery = uint64(10 + r.Intn(40))
	}
	p.membership = r.Intn(2) == 0
	// Drawn from a source of its own, so that the other parameters of a
	// seed stay what they were before this knob existed.
	wr := rand.New(rand.NewSource(seed ^ 0x5eed))
	p.asyncWrites = wr.Intn(2) == 0
	p.maxWrite = []time.Duration{time.Millisecond, 5 * time.Millisecond, 30 * time.Millisecond}[wr.Intn(3)]
	p.core = core.CoreConfig{
		ElectionTicksMin: 15, ElectionTicksMax: 30, HeartbeatTicks: 5,
		PreVote: r.Intn(4) != 0, CheckQuorum: r.Intn(4) != 0,
		MaxEntriesPerAppend: 1 + r.Intn(64), MaxInflight: 1 + r.Intn(8),
		SnapshotChunkBytes: 16 + r.Intn(256),
	}
	return p
}

func newDsim(p simParams, trace trace.Tracer) *dsim {
	s := &dsim{
		p:       p,
		rng:     rand.New(rand.NewSource(p.seed)),
		nodes:   map[int]*dnode{},
		checker: newSafetyChecker(),
		trace:   trace,
		net:     dnet{minDelay: 100 * time.Microsecond, maxDelay: 3 * time.Millisecond},
		nextID:  p.nodes,
	}
	voters := make([]int, p.nodes)
	for i := range voters {
		voters[i] = i
	}
	for _, id := range voters {
		n := &dnode{id: id, storage: storage.NewMemoryStorage()}
		s.nodes[id] = n
		s.startNode(n, core.Configuration{Voters: voters})
	}
	for i := range p.clients {
		c := &dclient{id: i, clientID: uint64(i + 1), leader: core.None}
		s.clients = append(s.clients, c)
		s.schedule(time.Duration(s.rng.Intn(20))*time.Millisecond, &event{kind: evClientNext, client: i})
	}
	s.scheduleFaults()
	return s
}

func (s *dsim) ids() []int {
	ids := make([]int, 0, len(s.nodes))
	for id, n := range s.nodes {
		if !n.removed {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func (s *dsim) tracef(node string, format string, args ...any) {
	if s.trace != nil {
		s.trace.Trace(node, fmt.Sprintf(format, args...))
	}
}

func (s *dsim) fail(err error) {
	if s.err == nil {
		s.err = fmt.Errorf("at %v: %w", s.now, err)
	}
}

// startNode (re)starts a server from its storage.
func (s *dsim) startNode(n *dnode, boot core.Configuration) {
	cfg := s.p.core
	cfg.ID = n.id
	cfg.Seed = s.p.seed*1000 + int64(n.id)*17 + int64(n.incarnation)
	if s.trace != nil {
		node := strconv.Itoa(n.id)
		cfg.Trace = func(msg string) { s.trace.Trace(node, msg) }
	}
	hs, snap, ents, err := n.storage.Load()
	if err != nil {
		s.fail(err)
		return
	}
	c, err := core.NewCore(cfg, core.InitialState{HardState: hs, Snapshot: snap, Entries: ents, Bootstrap: boot})
	if err != nil {
		s.fail(err)
		return
	}
	n.incarnation++
	n.core = c
	n.kv = kv.NewStore()
	n.applied, n.snapIndex, n.lastChecked, n.role = 0, 0, 0, core.Follower
	n.writes = map[uint64]pendingWrite{}
	n.reads = map[uint64]pendingRead2{}
	n.readyReads = nil
	if snap != nil {
		if err := n.kv.Restore(bytes.NewReader(snap.Data)); err != nil {
			s.fail(fmt.Errorf("node %d: restoring snapshot: %w", n.id, err))
		}
		n.applied, n.snapIndex, n.lastChecked = snap.Meta.LastIncludedIndex, snap.Meta.LastIncludedIndex, snap.Meta.LastIncludedIndex
	}
	// A random phase, so the servers' ticks do not march in lockstep.
	s.schedule(time.Duration(s.rng.Int63n(int64(s.p.tick))), &event{kind: evTick, node: n.id, inc: n.incarnation})
	s.process(n, nil)
}

func (s *dsim) crash(n *dnode) {
	n.core = nil
	n.writes, n.reads, n.readyReads = nil, nil, nil
	n.unwritten, n.writePending = nil, false // lost with the crash
	s.tracef(strconv.Itoa(n.id), "fault: crash")
}

// process does what a node's Ready asks, as the real driver does: persist,
// then send, then apply; and checks the safety properties on the way.
func (s *dsim) process(n *dnode, reply *core.Message) {
	c := n.core
	for c.HasReady() || reply != nil {
		if len(n.unwritten) > 0 && c.Role() != core.Leader {
			s.flushWrites(n)
		}
		rd := c.Ready()
		async := s.p.asyncWrites && c.Role() == core.Leader && rd.HardState == nil && rd.Snapshot == nil
		if !async && len(n.unwritten) > 0 {
			s.fail(fmt.Errorf("node %d: a synchronous Ready while asynchronous writes are pending", n.id))
		}
		if rd.Snapshot != nil {
			if err := n.storage.SaveSnapshot(rd.Snapshot); err != nil {
				s.fail(err)
			}
			if err := n.kv.Restore(bytes.NewReader(rd.Snapshot.Data)); err != nil {
				s.fail(fmt.Errorf("node %d: restoring snapshot: %w", n.id, err))
			}
			n.applied = rd.Snapshot.Meta.LastIncludedIndex
			n.snapIndex = n.applied
			n.lastChecked = max(n.lastChecked, n.applied)
			for idx, w := range n.writes {
				if idx <= n.applied {
					delete(n.writes, idx)
					seq, res := n.kv.Session(s.clients[w.client].clientID)
					s.respond(w.client, w.attempt, clientResp{ok: seq >= w.seq, res: res})
				}
			}
		}
		for i := range rd.Entries {
			if err := s.checker.observeEntry(n.id, &rd.Entries[i]); err != nil {
				s.fail(err)
			}
		}
		if async {
			if len(rd.Entries) > 0 {
				n.unwritten = append(n.unwritten, slices.Clone(rd.Entries))
				s.scheduleWrite(n)
			}
		} else if err := n.storage.Save(rd.HardState, rd.Entries); err != nil {
			s.fail(err)
		}
		for _, m := range rd.Messages {
			s.send(m)
		}
		if reply != nil {
			s.send(*reply)
			reply = nil
		}
		for i := range rd.Committed {
			s.apply(n, &rd.Committed[i])
		}
		n.readyReads = append(n.readyReads, rd.ReadStates...)
		for _, ctx := range rd.FailedReads {
			if r, ok := n.reads[ctx]; ok {
				delete(n.reads, ctx)
				s.respond(r.client, r.attempt, clientResp{notLeader: true, leader: core.None})
			}
		}
		if async {
			c.AdvanceAsync(rd)
		} else {
			c.Advance(rd)
		}
	}
	s.serveReads(n)
	s.checkNode(n)
	s.maybeSnapshot(n)
	s.finishRemovals(n)
}

func (s *dsim) checkNode(n *dnode) {
	c := n.core
	if c.Role() == core.Leader {
		if err := s.checker.observeLeader(n.id, c.Term()); err != nil {
			s.fail(err)
		}
		if n.role != core.Leader {
			s.stats.elections++
			if err := s.checker.checkLeaderCompleteness(n.id, c.Term(), c); err != nil {
				s.fail(err)
			}
		}
	}
	n.role = c.Role()
	for idx := max(n.lastChecked+1, c.FirstIndex()); idx <= c.Committed(); idx++ {
		e, _ := c.EntryAt(idx)
		if err := s.checker.observeCommitted(n.id, &e); err != nil {
			s.fail(err)
		}
	}
	n.lastChecked = max(n.lastChecked, c.Committed())
}

func (s *dsim) apply(n *dnode, e *core.Entry) {
	if err := s.checker.observeCommitted(n.id, e); err != nil {
		s.fail(err)
	}
	if e.Index != n.applied+1 {
		s.fail(fmt.Errorf("node %d applied index %d after %d", n.id, e.Index, n.applied))
	}
	n.applied = e.Index
	if e.Type != core.EntryNormal {
		return
	}
	cmd, err := kv.DecodeCommand(e.Data)
	if err != nil {
		s.fail(fmt.Errorf("node %d: undecodable command at %d", n.id, e.Index))
		return
	}
	res := n.kv.ApplyCommand(cmd)
	if w, ok := n.writes[e.Index]; ok {
		delete(n.writes, e.Index)
		if w.term == e.Term {
			s.respond(w.client, w.attempt, clientResp{ok: true, res: res})
		} else {
			s.respond(w.client, w.attempt, clientResp{notLeader: true, leader: core.None})
		}
	}
}

func (s *dsim) serveReads(n *dnode) {
	keep := n.readyReads[:0]
	for _, rs := range n.readyReads {
		r, ok := n.reads[rs.Ctx]
		if !ok {
			continue
		}
		if rs.Index > n.applied {
			keep = append(keep, rs)
			continue
		}
		delete(n.reads, rs.Ctx)
		c := s.clients[r.client]
		if c.op == nil {
			continue
		}
		v, found := n.kv.Get(c.op.cmd.Key)
		s.respond(r.client, r.attempt, clientResp{ok: true, res: kv.Result{Value: v, Found: found}})
	}
	n.readyReads = keep
}

func (s *dsim) maybeSnapshot(n *dnode) {
	if s.p.snapshotEvery == 0 || n.applied-n.snapIndex < s.p.snapshotEvery {
		return
	}
	if len(n.unwritten) > 0 {
		// As RaftNode.Snapshot: the snapshot reaches storage after them.
		s.flushWrites(n)
		if s.p.snapshotEvery == 0 || n.applied-n.snapIndex < s.p.snapshotEvery || n.core == nil {
			return
		}
	}
	snap, err := n.core.Compact(n.applied, n.kv.Encode())
	if err != nil {
		s.fail(fmt.Errorf("node %d: compact at %d: %w", n.id, n.applied, err))
		return
	}
	if err := n.storage.SaveSnapshot(snap); err != nil {
		s.fail(err)
	}
	n.snapIndex = n.applied
	s.stats.snapshots++
}

// scheduleWrite makes the oldest asynchronous writes of n complete later.
func (s *dsim) scheduleWrite(n *dnode) {
	if n.writePending {
		return
	}
	n.writePending = true
	s.schedule(time.Duration(s.rng.Int63n(int64(s.p.maxWrite))), &event{kind: evWriteDone, node: n.id, inc: n.incarnation})
}

// writeDone completes some of n's pending writes, oldest first, as one
// Save (group commit), and tells the core.
func (s *dsim) writeDone(n *dnode) {
	n.writePending = false
	if len(n.unwritten) == 0 {
		return
	}
	k := 1 + s.rng.Intn(len(n.unwritten))
	s.completeWrites(n, k)
	if len(n.unwritten) > 0 {
		s.scheduleWrite(n)
	}
	s.process(n, nil)
}

// flushWrites completes every pending write of n at once.
func (s *dsim) flushWrites(n *dnode) {
	s.completeWrites(n, len(n.unwritten))
}

func (s *dsim) completeWrites(n *dnode, k int) {
	var ents []core.Entry
	for _, b := range n.unwritten[:k] {
		ents = append(ents, b...)
	}
	n.unwritten = n.unwritten[k:]
	if err := n.storage.Save(nil, ents); err != nil {
		s.fail(err)
		return
	}
	last := ents[len(ents)-1]
	n.core.StableTo(last.Index, last.Term)
}

// send puts a message on the network: maybe lost, maybe duplicated, each
// copy delayed at random (which reorders them).
func (s *dsim) send(m core.Message) {
	s.stats.messages++
	if s.trace != nil {
		s.trace.Trace(strconv.Itoa(m.From), "send "+m.String())
	}
	if s.rng.Float64() < s.net.dropRate {
		s.stats.dropped++
		return
	}
	copies := 1
	if s.rng.Float64() < s.net.dupRate {
		copies = 2
		s.stats.duplicated++
	}
	for range copies {
		s.schedule(s.delay(), &event{kind: evDeliver, node: m.To, msg: m})
	}
}

func (s *dsim) delay() time.Duration {
	return s.net.minDelay + time.Duration(s.rng.Int63n(int64(s.net.maxDelay-s.net.minDelay)+1))
}

func (s *dsim) linked(a, b int) bool {
	if s.net.group == nil {
		return true
	}
	ga, oka := s.net.group[a]
	gb, okb := s.net.group[b]
	return oka && okb && ga == gb
}

// run executes events until the clients are done and the faults over.
func (s *dsim) run() error {
	end := s.p.faultPhase + s.p.livenessLimit
	for s.queue.Len() > 0 && s.err == nil {
		e := heap.Pop(&s.queue).(*event)
		s.now = e.at
		s.stats.events++
		if s.now > end {
			return s.livenessFailure()
		}
		s.handle(e)
		if s.healed && s.allClientsDone() {
			break
		}
	}
	if s.err != nil {
		return s.err
	}
	if !s.allClientsDone() {
		return s.livenessFailure()
	}
	return s.finalChecks()
}

func (s *dsim) livenessFailure() error {
	var pending []string
	for _, c := range s.clients {
		if c.done < s.p.opsPerClient {
			pending = append(pending, fmt.Sprintf("client %d at op %d/%d", c.id, c.done, s.p.opsPerClient))
		}
	}
	return fmt.Errorf("liveness: %v after the faults stopped, still pending: %v (%s)", s.p.livenessLimit, pending, s.describeNodes())
}

func (s *dsim) describeNodes() string {
	var parts []string
	for _, id := range s.ids() {
		n := s.nodes[id]
		if n.core == nil {
			parts = append(parts, fmt.Sprintf("%d: crashed", id))
			continue
		}
		st := n.core.Status()
		parts = append(parts, fmt.Sprintf("%d: %v t%d commit %d last %d cfg %v", id, st.Role, st.Term, st.Commit, st.LastIndex, st.Config))
	}
	return fmt.Sprint(parts)
}

func (s *dsim) allClientsDone() bool {
	for _, c := range s.clients {
		if c.done < s.p.opsPerClient {
			return false
		}
	}
	return true
}

func (s *dsim) handle(e *event) {
	switch e.kind {
	case evTick:
		n := s.nodes[e.node]
		if n.core == nil || n.removed || n.incarnation != e.inc {
			return
		}
		n.core.Tick()
		s.process(n, nil)
		s.schedule(s.p.tick, &event{kind: evTick, node: n.id, inc: n.incarnation})
	case evDeliver:
		n := s.nodes[e.node]
		if n == nil || n.core == nil || n.removed || !s.linked(e.msg.From, e.msg.To) {
			s.stats.dropped++
			return
		}
		if s.trace != nil {
			s.trace.Trace(strconv.Itoa(n.id), "recv "+e.msg.String())
		}
		reply := n.core.Step(e.msg)
		s.process(n, reply)
	case evClientNext:
		s.clientNext(s.clients[e.client])
	case evClientRequest:
		s.clientRequest(e)
	case evClientResponse:
		s.clientResponse(e)
	case evClientTimeout:
		c := s.clients[e.client]
		if c.op != nil && c.attempt == e.attempt {
			c.leader = core.None
			c.next++
			s.clientSend(c)
		}
	case evFault:
		e.fn()
	case evWriteDone:
		n := s.nodes[e.node]
		if n.core == nil || n.removed || n.incarnation != e.inc {
			return
		}
		s.writeDone(n)
	}
}

// Clients.

func (s *dsim) clientNext(c *dclient) {
	if c.done >= s.p.opsPerClient {
		return
	}
	key := "k" + strconv.Itoa(s.rng.Intn(s.p.keys))
	cmd := kv.Command{ClientID: c.clientID, Key: key}
	switch r := s.rng.Intn(10); {
	case r < 5:
		cmd.Op = kv.OpSet
		cmd.Value = fmt.Sprintf("c%d-%d", c.id, c.done)
	case r < 8:
		cmd.Op = kv.OpGet
	default:
		cmd.Op = kv.OpDelete
	}
	if cmd.Op != kv.OpGet {
		c.seq++
		cmd.Seq = c.seq
	}
	c.op = &clientOp{cmd: cmd, call: s.now}
	s.clientSend(c)
}

// thinkTime spreads each client's operations over the fault phase, so that
// the faults hit a cluster under load.
func (s *dsim) thinkTime() time.Duration {
	mean := s.p.faultPhase / time.Duration(s.p.opsPerClient)
	return time.Duration(s.rng.Int63n(int64(2 * mean)))
}

// clientTimeout is how long a client waits for one server before trying
// another.
const clientTimeout = 500 * time.Millisecond

func (s *dsim) clientSend(c *dclient) {
	c.attempt++
	target := c.leader
	if target == core.None || s.nodes[target] == nil || s.nodes[target].removed {
		ids := s.ids()
		target = ids[c.next%len(ids)]
	}
	s.schedule(s.clientDelay(), &event{kind: evClientRequest, node: target, client: c.id, attempt: c.attempt})
	s.schedule(clientTimeout, &event{kind: evClientTimeout, client: c.id, attempt: c.attempt})
}

func (s *dsim) clientDelay() time.Duration {
	return time.Duration(50+s.rng.Intn(500)) * time.Microsecond
}

func (s *dsim) clientRequest(e *event) {
	n := s.nodes[e.node]
	c := s.clients[e.client]
	if n == nil || n.core == nil || n.removed || c.op == nil || c.attempt != e.attempt {
		return // a crashed server answers nothing; the client times out
	}
	cmd := c.op.cmd
	if cmd.Op == kv.OpGet {
		n.nextReadCtx++
		if err := n.core.ReadIndex(n.nextReadCtx); err != nil {
			s.respond(c.id, e.attempt, clientResp{notLeader: true, leader: n.core.Leader()})
			return
		}
		n.reads[n.nextReadCtx] = pendingRead2{client: c.id, attempt: e.attempt}
	} else {
		idx, term, err := n.core.Propose(kv.EncodeCommand(cmd))
		if err != nil {
			s.respond(c.id, e.attempt, clientResp{notLeader: true, leader: n.core.Leader()})
			return
		}
		n.writes[idx] = pendingWrite{term: term, client: c.id, attempt: e.attempt, seq: cmd.Seq}
	}
	s.process(n, nil)
}

func (s *dsim) respond(client int, attempt uint64, r clientResp) {
	s.schedule(s.clientDelay(), &event{kind: evClientResponse, client: client, attempt: attempt, resp: r})
}

func (s *dsim) clientResponse(e *event) {
	c := s.clients[e.client]
	if c.op == nil || c.attempt != e.attempt {
		return
	}
	r := e.resp
	if !r.ok {
		if hint := s.nodes[r.leader]; r.notLeader && r.leader != core.None && hint != nil && !hint.removed {
			c.leader = r.leader
		} else {
			c.leader = core.None
			c.next++
		}
		c.attempt++ // cancel this attempt's timeout
		after := time.Duration(0)
		if c.leader == core.None {
			after = 5 * time.Millisecond
		}
		s.schedule(after, &event{kind: evFault, fn: func() {
			if c.op != nil {
				s.clientSend(c)
			}
		}})
		return
	}
	s.history = append(s.history, kv.Operation{
		ClientID: c.clientID, Input: c.op.cmd, Call: c.op.call, Return: s.now, Output: r.res,
	})
	s.stats.ops++
	c.op = nil
	c.done++
	c.attempt++
	s.schedule(s.thinkTime(), &event{kind: evClientNext, client: c.id})
}

// Faults.

func (s *dsim) scheduleFaults() {
	n := s.p.minFaults + s.rng.Intn(20)
	for range n {
		at := time.Duration(s.rng.Int63n(int64(s.p.faultPhase)))
		s.schedule(at, &event{kind: evFault, fn: s.randomFault})
	}
	s.schedule(s.p.faultPhase, &event{kind: evFault, fn: s.healAll})
}

func (s *dsim) randomFault() {
	if s.healed {
		return
	}
	s.stats.faults++
	ids := s.ids()
	pick := func() *dnode { return s.nodes[ids[s.rng.Intn(len(ids))]] }
	switch r := s.rng.Intn(100); {
	case r < 15: // crash a server, restart it later
		if n := pick(); n.core != nil {
			s.crashFor(n)
		}
	case r < 30: // crash the leader
		if l := s.leader(); l != nil {
			s.crashFor(l)
		}
	case r < 40: // random partition into two groups
		s.net.group = map[int]int{}
		for _, id := range ids {
			s.net.group[id] = s.rng.Intn(2)
		}
		s.tracef(trace.SimNode, "fault: partition %v", s.net.group)
	case r < 50: // isolate the leader
		if l := s.leader(); l != nil {
			s.net.group = map[int]int{}
			for _, id := range ids {
				s.net.group[id] = 0
			}
			s.net.group[l.id] = 1
			s.tracef(trace.SimNode, "fault: isolate leader %d", l.id)
		}
	case r < 58:
		s.net.group = nil
		s.tracef(trace.SimNode, "fault: heal")
	case r < 66:
		s.net.dropRate = s.rng.Float64() * 0.3
		s.tracef(trace.SimNode, "fault: drop rate %.2f", s.net.dropRate)
	case r < 72:
		s.net.dupRate = s.rng.Float64() * 0.2
		s.tracef(trace.SimNode, "fault: duplicate rate %.2f", s.net.dupRate)
	case r < 80:
		s.net.maxDelay = time.Duration(1+s.rng.Intn(80)) * time.Millisecond
		s.tracef(trace.SimNode, "fault: delay up to %v", s.net.maxDelay)
	default:
		s.membershipFault()
	}
}

// crashFor crashes a server and schedules its restart.
func (s *dsim) crashFor(n *dnode) {
	s.crash(n)
	down := time.Duration(50+s.rng.Intn(1000)) * time.Millisecond
	s.schedule(down, &event{kind: evFault, fn: func() { s.restart(n) }})
}

func (s *dsim) leader() *dnode {
	var best *dnode
	for _, id := range s.ids() {
		n := s.nodes[id]
		if n.core != nil && n.core.Role() == core.Leader && (best == nil || n.core.Term() > best.core.Term()) {
			best = n
		}
	}
	return best
}

func (s *dsim) restart(n *dnode) {
	if n.core != nil || n.removed {
		return
	}
	s.tracef(strconv.Itoa(n.id), "fault: restart")
	s.startNode(n, core.Configuration{})
}

// membershipFault adds or removes a server, one at a time (thesis §4.1),
// or transfers leadership (thesis §3.10).
func (s *dsim) membershipFault() {
	l := s.leader()
	if l == nil {
		return
	}
	r := s.rng.Intn(3)
	if !s.p.membership {
		r = 2
	}
	switch r {
	case 0:
		if len(s.ids()) >= 7 {
			return
		}
		id := s.nextID
		if _, err := l.core.ProposeConfChange(core.AddLearner, id); err != nil {
			return
		}
		s.nextID++
		s.stats.confChanges++
		s.tracef(strconv.Itoa(l.id), "fault: add server %d", id)
		n := &dnode{id: id, storage: storage.NewMemoryStorage()}
		s.nodes[id] = n
		s.startNode(n, core.Configuration{})
	case 1:
		members := l.core.Config().Members()
		target := members[s.rng.Intn(len(members))]
		idx, err := l.core.ProposeConfChange(core.RemoveServer, target)
		if err != nil {
			return
		}
		s.stats.confChanges++
		s.tracef(strconv.Itoa(l.id), "fault: remove server %d", target)
		s.removals = append(s.removals, removal{id: target, index: idx})
	case 2:
		voters := l.core.Config().Voters
		target := voters[s.rng.Intn(len(voters))]
		if target == l.id || l.core.TransferLeadership(target) != nil {
			return
		}
		s.tracef(strconv.Itoa(l.id), "fault: transfer leadership to %d", target)
	}
	s.process(l, nil)
}

type removal struct {
	id    int
	index uint64
}

// finishRemovals shuts a removed server down once some server has
// committed a configuration without it, as the real simulator does.
func (s *dsim) finishRemovals(n *dnode) {
	if len(s.removals) == 0 || n.core == nil {
		return
	}
	c := n.core
	keep := s.removals[:0]
	for _, r := range s.removals {
		gone := s.nodes[r.id]
		if gone == nil || gone.removed {
			continue
		}
		if c.ConfigIndex() <= c.Committed() && c.ConfigIndex() >= r.index && !c.Config().IsMember(r.id) {
			gone.core = nil
			gone.removed = true
			s.tracef(strconv.Itoa(r.id), "fault: removed")
			continue
		}
		keep = append(keep, r)
	}
	s.removals = keep
}

// healAll ends the fault phase: every server runs and every link works.
func (s *dsim) healAll() {
	s.healed = true
	s.net = dnet{minDelay: 100 * time.Microsecond, maxDelay: 3 * time.Millisecond}
	s.tracef(trace.SimNode, "fault: heal all")
	for _, id := range s.ids() {
		s.restart(s.nodes[id])
	}
}

// finalChecks compares every pair of logs in full and checks the client
// history for linearizability.
func (s *dsim) finalChecks() error {
	ids := s.ids()
	for i, a := range ids {
		for _, b := range ids[i+1:] {
			na, nb := s.nodes[a], s.nodes[b]
			if na.core == nil || nb.core == nil {
				continue
			}
			if err := checkLogMatching(a, b, na.core, nb.core); err != nil {
				return err
			}
		}
	}
	res := lincheck.CheckLinearizable(s.history, 10*time.Second)
	if !res.Linearizable() {
		return fmt.Errorf("linearizability: porcupine says %v for %d operations", res.Result, res.Ops)
	}
	return nil
}

// summary describes the run; it is identical every time a seed replays.
func (s *dsim) summary() string {
	h := fnv.New64a()
	for _, id := range s.ids() {
		n := s.nodes[id]
		if n.core == nil {
			continue
		}
		fmt.Fprintf(h, "%d:%d:%d:%d;", id, n.core.Term(), n.core.Committed(), n.core.FirstIndex()-1)
		for _, e := range n.core.Entries(0, n.core.LastIndex()+1) {
			fmt.Fprintf(h, "%d/%d/%x,", e.Index, e.Term, entryDigest(&e))
		}
	}
	st := s.stats
	return fmt.Sprintf("seed %d: %d nodes, %v virtual, %d events, %d messages (%d dropped, %d duplicated), %d faults, %d elections, %d snapshots, %d membership changes, %d ops, log hash %016x",
		s.p.seed, s.p.nodes, s.now.Round(time.Millisecond), st.events, st.messages, st.dropped, st.duplicated, st.faults, st.elections, st.snapshots, st.confChanges, st.ops, h.Sum64())
}

// runSeed runs one seed and returns its summary and the first failure.
func runSeed(seed int64, traceOut io.Writer) (string, error) {
	return runSeedWith(seed, traceOut, nil)
}

// Options change a run: for the tests of other packages.
type Options struct {
	// Trace, if set, receives the run's trace, stamped in virtual time.
	Trace io.Writer
	// Core, if set, changes every server's core configuration.
	Core func(*core.CoreConfig)
}

// RunSeed runs one seed and returns its summary and the first failure.
func RunSeed(seed int64, opts Options) (string, error) {
	return runSeedWith(seed, opts.Trace, func(p *simParams) {
		if opts.Core != nil {
			opts.Core(&p.core)
		}
	})
}

// runSeedWith runs a seed with its parameters changed by tweak.
func runSeedWith(seed int64, traceOut io.Writer, tweak func(*simParams)) (string, error) {
	var s *dsim
	var tracer trace.Tracer
	if traceOut != nil {
		// Stamp each line with the virtual time, from midnight.
		tracer = trace.NewTextTracer(traceOut, func() time.Time { return time.Unix(0, 0).UTC().Add(s.now) })
	}
	p := drawParams(seed)
	if tweak != nil {
		tweak(&p)
	}
	s = newDsim(p, tracer)
	err := s.run()
	if err == nil && s.stats.faults < s.p.minFaults {
		err = fmt.Errorf("only %d faults injected, want at least %d", s.stats.faults, s.p.minFaults)
	}
	if err == nil && s.stats.ops < 200 {
		err = errors.New("fewer than 200 client operations completed")
	}
	return s.summary(), err
}
