package core

import (
	"fmt"
	"slices"
	"testing"
)

// testDisk is the durable state of a core in these tests: what a Storage
// would load back after a crash. (The real storages live in package storage,
// which imports this one.)
type testDisk struct {
	hard HardState
	snap *Snapshot
	ents []Entry // after the snapshot
}

func newTestDisk() *testDisk { return &testDisk{hard: HardState{VotedFor: None}} }

func (d *testDisk) Load() (HardState, *Snapshot, []Entry, error) {
	return d.hard, d.snap, slices.Clone(d.ents), nil
}

func (d *testDisk) Save(hs *HardState, ents []Entry) error {
	if hs != nil {
		d.hard = *hs
	}
	if len(ents) == 0 {
		return nil
	}
	base := uint64(0)
	if d.snap != nil {
		base = d.snap.Meta.LastIncludedIndex
	}
	first := ents[0].Index
	if first <= base {
		return fmt.Errorf("save at %d, below the snapshot at %d", first, base)
	}
	if first > base+uint64(len(d.ents))+1 {
		return fmt.Errorf("save at %d leaves a gap after %d", first, base+uint64(len(d.ents)))
	}
	d.ents = append(d.ents[:first-base-1:first-base-1], ents...)
	return nil
}

func (d *testDisk) SaveSnapshot(snap *Snapshot) error {
	base := uint64(0)
	if d.snap != nil {
		base = d.snap.Meta.LastIncludedIndex
	}
	idx := snap.Meta.LastIncludedIndex
	if idx <= base {
		return nil
	}
	if idx < base+uint64(len(d.ents))+1 && d.ents[idx-base-1].Term == snap.Meta.LastIncludedTerm {
		d.ents = slices.Clone(d.ents[idx-base:])
	} else {
		d.ents = nil
	}
	d.snap = snap
	return nil
}

// coreNet is a tiny deterministic network of cores for unit tests: no
// sockets, no goroutines, no clock. Messages are delivered in FIFO order
// unless a link is cut.
type coreNet struct {
	t        *testing.T
	cores    map[int]*Core
	storage  map[int]*testDisk
	applied  map[int][]Entry
	reads    map[int][]ReadState
	failed   map[int][]uint64
	cut      map[[2]int]bool
	queue    []Message
	delivery int
}

func testCoreConfig(id int) CoreConfig {
	return CoreConfig{
		ID: id, ElectionTicksMin: 10, ElectionTicksMax: 20, HeartbeatTicks: 2,
		PreVote: true, CheckQuorum: true, MaxInflight: 4, Seed: int64(id) + 1,
		MaxEntriesPerAppend: 64,
	}
}

func newCoreNet(t *testing.T, n int, tweak func(*CoreConfig)) *coreNet {
	t.Helper()
	net := &coreNet{t: t, cores: map[int]*Core{}, storage: map[int]*testDisk{},
		applied: map[int][]Entry{}, reads: map[int][]ReadState{}, failed: map[int][]uint64{}, cut: map[[2]int]bool{}}
	var voters []int
	for i := range n {
		voters = append(voters, i)
	}
	for i := range n {
		net.storage[i] = newTestDisk()
		net.start(i, Configuration{Voters: voters}, tweak)
	}
	return net
}

func (n *coreNet) start(id int, boot Configuration, tweak func(*CoreConfig)) {
	n.t.Helper()
	cfg := testCoreConfig(id)
	if tweak != nil {
		tweak(&cfg)
	}
	hs, snap, ents, _ := n.storage[id].Load()
	c, err := NewCore(cfg, InitialState{HardState: hs, Snapshot: snap, Entries: ents, Bootstrap: boot})
	if err != nil {
		n.t.Fatal(err)
	}
	n.cores[id] = c
	n.applied[id] = nil
	n.process(id, nil)
}

// process drives one core's Ready: persist, then send (including reply),
// then apply.
func (n *coreNet) process(id int, reply *Message) {
	c := n.cores[id]
	for c.HasReady() || reply != nil {
		rd := c.Ready()
		st := n.storage[id]
		if rd.Snapshot != nil {
			if err := st.SaveSnapshot(rd.Snapshot); err != nil {
				n.t.Fatal(err)
			}
			n.applied[id] = append(n.applied[id], Entry{Index: rd.Snapshot.Meta.LastIncludedIndex, Type: 255})
		}
		if err := st.Save(rd.HardState, rd.Entries); err != nil {
			n.t.Fatal(err)
		}
		n.queue = append(n.queue, rd.Messages...)
		if reply != nil {
			n.queue = append(n.queue, *reply)
			reply = nil
		}
		n.applied[id] = append(n.applied[id], rd.Committed...)
		n.reads[id] = append(n.reads[id], rd.ReadStates...)
		n.failed[id] = append(n.failed[id], rd.FailedReads...)
		c.Advance(rd)
	}
}

// deliver delivers queued messages until the network is quiet.
func (n *coreNet) deliver() { n.deliverUntil(func() bool { return false }) }

// deliverUntil delivers queued messages until stop returns true or the
// network is quiet.
func (n *coreNet) deliverUntil(stop func() bool) {
	for steps := 0; len(n.queue) > 0 && !stop(); steps++ {
		if steps > 100000 {
			n.t.Fatal("network never quiets down")
		}
		m := n.queue[0]
		n.queue = n.queue[1:]
		c, ok := n.cores[m.To]
		if !ok || n.cut[[2]int{m.From, m.To}] {
			continue
		}
		n.delivery++
		reply := c.Step(m)
		n.process(m.To, reply)
	}
}

func (n *coreNet) tick(ids ...int) {
	for _, id := range ids {
		n.cores[id].Tick()
		n.process(id, nil)
	}
}

func (n *coreNet) tickAll(times int) {
	for range times {
		for _, id := range n.ids() {
			n.tick(id)
		}
		n.deliver()
	}
}

func (n *coreNet) ids() []int {
	var ids []int
	for id := range n.cores {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (n *coreNet) isolate(id int) {
	for other := range n.cores {
		n.cut[[2]int{id, other}] = true
		n.cut[[2]int{other, id}] = true
	}
}

func (n *coreNet) heal() { n.cut = map[[2]int]bool{} }

// campaign makes id time out until it wins an election (or gives up).
func (n *coreNet) campaign(id int) {
	for range 200 {
		if n.cores[id].Role() == Leader {
			return
		}
		n.tick(id)
		n.deliver()
	}
}

func (n *coreNet) leader() int {
	n.t.Helper()
	leaders := map[uint64][]int{}
	for id, c := range n.cores {
		if c.Role() == Leader {
			leaders[c.Term()] = append(leaders[c.Term()], id)
		}
	}
	var maxTerm uint64
	for term, ids := range leaders {
		if len(ids) > 1 {
			n.t.Fatalf("two leaders in term %d: %v", term, ids)
		}
		maxTerm = max(maxTerm, term)
	}
	if ids, ok := leaders[maxTerm]; ok {
		return ids[0]
	}
	return None
}

func (n *coreNet) propose(id int, cmd string) uint64 {
	n.t.Helper()
	idx, _, err := n.cores[id].Propose([]byte(cmd))
	if err != nil {
		n.t.Fatalf("propose on %d: %v", id, err)
	}
	n.process(id, nil)
	n.deliver()
	return idx
}

func commands(ents []Entry) []string {
	var out []string
	for _, e := range ents {
		if e.Type == EntryNormal {
			out = append(out, string(e.Data))
		}
	}
	return out
}

func TestCoreElectsOneLeader(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.tickAll(25)
	l := n.leader()
	if l == None {
		t.Fatal("no leader after 25 election-timeout ticks")
	}
	for id, c := range n.cores {
		if c.Leader() != l {
			t.Errorf("node %d thinks the leader is %d, want %d", id, c.Leader(), l)
		}
	}
}

func TestCoreReplicatesAndCommitsInOrder(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.tickAll(25)
	l := n.leader()
	for i := range 5 {
		n.propose(l, fmt.Sprint("cmd", i))
	}
	n.tickAll(3)
	want := []string{"cmd0", "cmd1", "cmd2", "cmd3", "cmd4"}
	for id := range n.cores {
		if got := commands(n.applied[id]); !slices.Equal(got, want) {
			t.Errorf("node %d applied %v, want %v", id, got, want)
		}
	}
	// Every entry is applied with its own term and consecutive indices.
	for id, ents := range n.applied {
		for i, e := range ents {
			if e.Index != uint64(i+1) {
				t.Fatalf("node %d applied index %d at position %d", id, e.Index, i)
			}
		}
	}
}

func TestCoreBatchesProposalsIntoOneAppend(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.tickAll(25)
	l := n.leader()
	for i := range 10 {
		if _, _, err := n.cores[l].Propose([]byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	rd := n.cores[l].Ready()
	appends := 0
	for _, m := range rd.Messages {
		if m.Type == MsgAppendEntries {
			appends++
			if len(m.Entries) != 10 {
				t.Errorf("AppendEntries to %d carries %d entries, want all 10", m.To, len(m.Entries))
			}
		}
	}
	if appends != 2 {
		t.Errorf("%d AppendEntries for 10 proposals to 2 followers, want 2", appends)
	}
}

func TestCoreFollowerRejectsNonLeaderProposal(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.tickAll(25)
	l := n.leader()
	f := (l + 1) % 3
	if _, _, err := n.cores[f].Propose([]byte("x")); err != ErrNotLeader {
		t.Fatalf("follower Propose returned %v, want ErrNotLeader", err)
	}
}

func TestCoreNewLeaderAfterIsolation(t *testing.T) {
	n := newCoreNet(t, 5, nil)
	n.tickAll(25)
	old := n.leader()
	n.isolate(old)
	n.tickAll(60)
	l := n.leader()
	if l == None || l == old {
		// The isolated old leader stepped down (CheckQuorum) so leader()
		// reports the new one.
		t.Fatalf("leader %d, old %d", l, old)
	}
	if n.cores[old].Role() == Leader {
		t.Fatal("isolated leader did not step down (CheckQuorum)")
	}
	oldTerm := n.cores[l].Term()
	n.heal()
	n.tickAll(30)
	if n.cores[l].Term() != oldTerm || n.leader() != l {
		t.Fatalf("rejoining old leader disturbed the cluster: term %d→%d, leader %d", oldTerm, n.cores[l].Term(), n.leader())
	}
}

func TestCorePreVoteKeepsPartitionedNodeFromRaisingTerm(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.tickAll(25)
	l := n.leader()
	f := (l + 1) % 3
	n.isolate(f)
	n.tickAll(200)
	if got, want := n.cores[f].Term(), n.cores[l].Term(); got != want {
		t.Fatalf("partitioned follower's term %d, leader's %d: PreVote should keep them equal", got, want)
	}
}

func TestCoreFastBacktracking(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.tickAll(25)
	l := n.leader()
	f := (l + 1) % 3
	n.isolate(f)
	for i := range 200 {
		n.propose(l, fmt.Sprint(i))
	}
	n.heal()
	before := n.delivery
	n.tickAll(5)
	if got := len(commands(n.applied[f])); got != 200 {
		t.Fatalf("follower applied %d of 200", got)
	}
	if msgs := n.delivery - before; msgs > 80 {
		t.Errorf("catching up 200 entries took %d messages", msgs)
	}
}

// TestCoreFigure8 plays Figure 8 of the paper: a leader must not commit an
// entry of an earlier term by counting replicas.
func TestCoreFigure8(t *testing.T) {
	n := newCoreNet(t, 5, func(c *CoreConfig) { c.PreVote, c.CheckQuorum = false, false })
	// (a) S1 leads term 2 and replicates index 2 only to S2.
	n.campaign(0)
	if n.leader() != 0 {
		t.Fatalf("leader %d", n.leader())
	}
	n.isolate(0)
	n.cut = map[[2]int]bool{}
	for _, id := range []int{2, 3, 4} {
		n.cut[[2]int{0, id}], n.cut[[2]int{id, 0}] = true, true
	}
	n.propose(0, "a") // reaches S2 only
	// (b) S1 crashes; S5 wins term 3 with votes from S3, S4, S5, takes a
	// different entry at the same index.
	n.isolate(0)
	n.cut[[2]int{1, 4}], n.cut[[2]int{4, 1}] = true, true
	for n.cores[4].Role() == Follower {
		n.tick(4)
	}
	n.deliverUntil(func() bool { return n.cores[4].Role() == Leader })
	if n.cores[4].Role() != Leader {
		t.Fatalf("S5 should lead: %+v", n.cores[4].Status())
	}
	n.isolate(4) // before its no-op reaches anyone
	n.cores[4].Propose([]byte("b"))
	n.process(4, nil)
	// (c) S5 crashes; S1 restarts, leads term 4, replicates "a" to S3.
	n.heal()
	n.isolate(4)
	n.start(0, Configuration{Voters: []int{0, 1, 2, 3, 4}}, func(c *CoreConfig) { c.PreVote, c.CheckQuorum = false, false })
	n.campaign(0)
	if n.leader() != 0 {
		for id, c := range n.cores {
			t.Logf("%d: %+v", id, c.Status())
		}
		t.Fatalf("S1 should lead again, leader %d", n.leader())
	}
	// Even though "a" (term 2) is now on a majority, S1 may only commit it
	// together with an entry of its own term: its no-op is committed, so
	// "a" is too — and S5's "b" can never win now.
	for id := range 4 {
		if got := commands(n.applied[id]); !slices.Equal(got, []string{"a"}) {
			t.Errorf("node %d applied %v, want [a]", id, got)
		}
	}
	// (d/e) S5 comes back: its "b" must be overwritten, never applied.
	n.heal()
	n.tickAll(10)
	if got := commands(n.applied[4]); !slices.Equal(got, []string{"a"}) {
		t.Errorf("S5 applied %v, want [a]", got)
	}
}

func TestCoreReadIndexConfirmsLeadership(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.tickAll(25)
	l := n.leader()
	n.propose(l, "x")
	if err := n.cores[l].ReadIndex(7); err != nil {
		t.Fatal(err)
	}
	n.process(l, nil)
	n.deliver()
	rs := n.reads[l]
	if len(rs) != 1 || rs[0].Ctx != 7 || rs[0].Index < 2 {
		t.Fatalf("read states %v", rs)
	}
	// An isolated leader cannot confirm a read; it fails it when it steps down.
	n.isolate(l)
	n.cores[l].ReadIndex(8)
	n.process(l, nil)
	n.tickAll(60)
	if len(n.reads[l]) != 1 {
		t.Fatalf("isolated leader served a read: %v", n.reads[l])
	}
	if !slices.Contains(n.failed[l], 8) {
		t.Fatalf("isolated leader did not fail the read: %v", n.failed[l])
	}
}

func TestCoreMembershipAddLearnerPromotesAndRemoves(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.tickAll(25)
	l := n.leader()
	for i := range 20 {
		n.propose(l, fmt.Sprint(i))
	}
	n.storage[3] = newTestDisk()
	n.start(3, Configuration{}, nil)
	if _, err := n.cores[l].ProposeConfChange(AddLearner, 3); err != nil {
		t.Fatal(err)
	}
	n.process(l, nil)
	n.tickAll(20)
	cfg := n.cores[l].Config()
	if !cfg.IsVoter(3) {
		t.Fatalf("learner not promoted: %v", cfg)
	}
	if got := len(commands(n.applied[3])); got != 20 {
		t.Fatalf("new server applied %d of 20", got)
	}
	// Remove the leader itself: it steps down once that commits.
	if _, err := n.cores[l].ProposeConfChange(RemoveServer, l); err != nil {
		t.Fatal(err)
	}
	n.process(l, nil)
	n.deliver()
	n.tickAll(40)
	if n.cores[l].Role() == Leader {
		t.Fatal("removed leader still leads")
	}
	nl := n.leader()
	if nl == None || nl == l {
		t.Fatalf("no new leader after removal: %d", nl)
	}
	if n.cores[nl].Config().IsMember(l) {
		t.Fatalf("old leader still in config %v", n.cores[nl].Config())
	}
}

func TestCoreLeadershipTransfer(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.tickAll(25)
	l := n.leader()
	target := (l + 1) % 3
	n.propose(l, "x")
	if err := n.cores[l].TransferLeadership(target); err != nil {
		t.Fatal(err)
	}
	n.process(l, nil)
	n.deliver()
	if n.leader() != target {
		t.Fatalf("leader %d after transfer to %d", n.leader(), target)
	}
}

func TestCoreSnapshotCatchUp(t *testing.T) {
	n := newCoreNet(t, 3, func(c *CoreConfig) { c.SnapshotChunkBytes = 4 })
	n.tickAll(25)
	l := n.leader()
	f := (l + 1) % 3
	n.isolate(f)
	for i := range 30 {
		n.propose(l, fmt.Sprint(i))
	}
	applied := n.cores[l].Status().Applied
	snap, err := n.cores[l].Compact(applied, []byte("state-machine-image"))
	if err != nil {
		t.Fatal(err)
	}
	n.storage[l].SaveSnapshot(snap)
	n.propose(l, "after")
	n.heal()
	n.tickAll(30)
	st := n.cores[f].Status()
	if st.SnapshotIndex != applied || st.Commit != n.cores[l].Status().Commit {
		t.Fatalf("follower status %+v, leader snapshot %d", st, applied)
	}
	_, fsnap, _, _ := n.storage[f].Load()
	if fsnap == nil || string(fsnap.Data) != "state-machine-image" {
		t.Fatalf("follower snapshot %+v", fsnap)
	}
	if got := commands(n.applied[f]); !slices.Equal(got, []string{"after"}) {
		t.Fatalf("follower applied %v after the snapshot", got)
	}
}

func TestCoreRestartKeepsState(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.tickAll(25)
	l := n.leader()
	n.propose(l, "x")
	n.tickAll(2)
	term := n.cores[l].Term()
	for id := range 3 {
		n.start(id, Configuration{Voters: []int{0, 1, 2}}, nil)
	}
	for id, c := range n.cores {
		if c.Term() != term || c.Status().LastIndex < 3 {
			t.Fatalf("node %d after restart: %+v", id, c.Status())
		}
	}
	n.tickAll(40)
	l = n.leader()
	n.propose(l, "y")
	n.tickAll(2)
	for id := range n.cores {
		if got := commands(n.applied[id]); !slices.Equal(got, []string{"x", "y"}) {
			t.Errorf("node %d applied %v after restart", id, got)
		}
	}
}

// TestTruncateKeepsSentEntries: entries handed out (in a message queued for
// sending) stay as they were when a new leader's entries replace them.
func TestTruncateKeepsSentEntries(t *testing.T) {
	var l raftLog
	for i := uint64(1); i <= 10; i++ {
		l.append(Entry{Index: i, Term: 2, Data: []byte{byte(i)}})
	}
	sent := l.slice(6, 11, 0, 0)
	before := slices.Clone(sent)
	l.truncateAndAppend([]Entry{{Index: 6, Term: 3, Data: []byte("new")}, {Index: 7, Term: 3}})
	if !slices.EqualFunc(sent, before, func(a, b Entry) bool {
		return a.Index == b.Index && a.Term == b.Term && string(a.Data) == string(b.Data)
	}) {
		t.Fatalf("entries already handed out changed: %v, were %v", sent, before)
	}
	if l.lastIndex() != 7 || l.entry(6).Term != 3 || l.entry(5).Term != 2 {
		t.Fatalf("log after truncation: last %d, entry 6 term %d", l.lastIndex(), l.entry(6).Term)
	}
}
