package core_test

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"raft-consensus/raft/core"
	"raft-consensus/raft/node"
	"raft-consensus/raft/storage"
)

// coreNet is a tiny deterministic network of cores for unit tests: no
// sockets, no goroutines, no clock. Each core is driven by the shipped
// node.Driver on a MemoryStorage; messages are delivered in FIFO order
// unless a link is cut.
type coreNet struct {
	t        *testing.T
	drivers  map[int]*node.Driver
	cores    map[int]*core.Core // the drivers' cores, to read and to propose to
	storage  map[int]*storage.MemoryStorage
	applied  map[int][]core.Entry
	reads    map[int][]core.ReadState
	failed   map[int][]uint64
	cut      map[[2]int]bool
	queue    []core.Message
	delivery int
	drop     func(core.Message) bool // if set, the messages it picks are lost
}

func testCoreConfig(id int) core.CoreConfig {
	return core.CoreConfig{
		ID: id, ElectionTicksMin: 10, ElectionTicksMax: 20, HeartbeatTicks: 2,
		PreVote: true, CheckQuorum: true, MaxInflight: 4, Seed: int64(id) + 1,
		MaxEntriesPerAppend: 64,
	}
}

func newCoreNet(t *testing.T, n int, tweak func(*core.CoreConfig)) *coreNet {
	t.Helper()
	net := &coreNet{t: t, drivers: map[int]*node.Driver{}, cores: map[int]*core.Core{}, storage: map[int]*storage.MemoryStorage{},
		applied: map[int][]core.Entry{}, reads: map[int][]core.ReadState{}, failed: map[int][]uint64{}, cut: map[[2]int]bool{}}
	var voters []int
	for i := range n {
		voters = append(voters, i)
	}
	for i := range n {
		net.storage[i] = storage.NewMemoryStorage()
		net.start(i, core.Configuration{Voters: voters}, tweak)
	}
	return net
}

// netPort is one server's outbox and applier in a coreNet.
type netPort struct {
	n  *coreNet
	id int
}

func (p netPort) Send(m core.Message) { p.n.queue = append(p.n.queue, m) }

func (p netPort) Apply(batch []node.CommitEntry) {
	for _, e := range batch {
		if e.Snapshot != nil {
			e.Snapshot.Data.Close()
			p.n.applied[p.id] = append(p.n.applied[p.id], core.Entry{Index: e.Index, Type: 255})
			continue
		}
		p.n.applied[p.id] = append(p.n.applied[p.id], core.Entry{Index: e.Index, Term: e.Term, Type: e.Type, Data: e.Command})
	}
}

func (n *coreNet) start(id int, boot core.Configuration, tweak func(*core.CoreConfig)) {
	n.t.Helper()
	cfg := testCoreConfig(id)
	if tweak != nil {
		tweak(&cfg)
	}
	n.applied[id] = nil
	d, err := node.NewDriver(node.DriverConfig{Core: cfg, Members: boot.Voters, Storage: n.storage[id], Outbox: netPort{n, id}, Applier: netPort{n, id}})
	if err != nil {
		n.t.Fatal(err)
	}
	n.drivers[id], n.cores[id] = d, d.Core()
	n.process(id)
}

// process lets id's driver do what its core asks: persist, then send
// (replies included), then apply.
func (n *coreNet) process(id int) {
	d := n.drivers[id]
	d.ProcessReady()
	if err := d.Failed(); err != nil {
		n.t.Fatalf("node %d: %v", id, err)
	}
}

// readIndex asks id for a read with the driver; the answer lands in
// reads or failed under ctx.
func (n *coreNet) readIndex(id int, ctx uint64) error {
	var refused error
	n.drivers[id].ReadIndex(func(index uint64, err error) {
		switch {
		case err == nil:
			n.reads[id] = append(n.reads[id], core.ReadState{Index: index, Ctx: ctx})
		case errors.Is(err, node.ErrReadLost):
			n.failed[id] = append(n.failed[id], ctx)
		default:
			refused = err
		}
	})
	n.process(id)
	return refused
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
		d, ok := n.drivers[m.To]
		if !ok || n.cut[[2]int{m.From, m.To}] || n.drop != nil && n.drop(m) {
			continue
		}
		n.delivery++
		d.Step(m, func(r *core.Message) {
			if r != nil {
				n.queue = append(n.queue, *r)
			}
		})
		n.process(m.To)
	}
}

func (n *coreNet) tick(ids ...int) {
	for _, id := range ids {
		n.drivers[id].Tick()
		n.process(id)
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
		if n.cores[id].Role() == core.Leader {
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
		if c.Role() == core.Leader {
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
	return core.None
}

func (n *coreNet) propose(id int, cmd string) uint64 {
	n.t.Helper()
	idx, _, err := n.cores[id].Propose([]byte(cmd))
	if err != nil {
		n.t.Fatalf("propose on %d: %v", id, err)
	}
	n.process(id)
	n.deliver()
	return idx
}

func commands(ents []core.Entry) []string {
	var out []string
	for _, e := range ents {
		if e.Type == core.EntryNormal {
			out = append(out, string(e.Data))
		}
	}
	return out
}

func TestCoreElectsOneLeader(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.tickAll(25)
	l := n.leader()
	if l == core.None {
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
		if m.Type == core.MsgAppendEntries {
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
	if _, _, err := n.cores[f].Propose([]byte("x")); err != core.ErrNotLeader {
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
	if l == core.None || l == old {
		// The isolated old leader stepped down (CheckQuorum) so leader()
		// reports the new one.
		t.Fatalf("leader %d, old %d", l, old)
	}
	if n.cores[old].Role() == core.Leader {
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
	n := newCoreNet(t, 5, func(c *core.CoreConfig) { c.PreVote, c.CheckQuorum = false, false })
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
	for n.cores[4].Role() == core.Follower {
		n.tick(4)
	}
	n.deliverUntil(func() bool { return n.cores[4].Role() == core.Leader })
	if n.cores[4].Role() != core.Leader {
		t.Fatalf("S5 should lead: %+v", n.cores[4].Status())
	}
	n.isolate(4) // before its no-op reaches anyone
	n.cores[4].Propose([]byte("b"))
	n.process(4)
	// (c) S5 crashes; S1 restarts, leads term 4, replicates "a" to S3.
	n.heal()
	n.isolate(4)
	n.start(0, core.Configuration{Voters: []int{0, 1, 2, 3, 4}}, func(c *core.CoreConfig) { c.PreVote, c.CheckQuorum = false, false })
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
	if err := n.readIndex(l, 7); err != nil {
		t.Fatal(err)
	}
	n.deliver()
	rs := n.reads[l]
	if len(rs) != 1 || rs[0].Ctx != 7 || rs[0].Index < 2 {
		t.Fatalf("read states %v", rs)
	}
	// An isolated leader cannot confirm a read; it fails it when it steps down.
	n.isolate(l)
	n.readIndex(l, 8)
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
	n.storage[3] = storage.NewMemoryStorage()
	n.start(3, core.Configuration{}, nil)
	if _, err := n.cores[l].ProposeConfChange(core.AddLearner, 3); err != nil {
		t.Fatal(err)
	}
	n.process(l)
	n.tickAll(20)
	cfg := n.cores[l].Config()
	if !cfg.IsVoter(3) {
		t.Fatalf("learner not promoted: %v", cfg)
	}
	if got := len(commands(n.applied[3])); got != 20 {
		t.Fatalf("new server applied %d of 20", got)
	}
	// Remove the leader itself: it steps down once that commits.
	if _, err := n.cores[l].ProposeConfChange(core.RemoveServer, l); err != nil {
		t.Fatal(err)
	}
	n.process(l)
	n.deliver()
	n.tickAll(40)
	if n.cores[l].Role() == core.Leader {
		t.Fatal("removed leader still leads")
	}
	nl := n.leader()
	if nl == core.None || nl == l {
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
	n.process(l)
	n.deliver()
	if n.leader() != target {
		t.Fatalf("leader %d after transfer to %d", n.leader(), target)
	}
}

func TestCoreSnapshotCatchUp(t *testing.T) {
	n := newCoreNet(t, 3, func(c *core.CoreConfig) { c.SnapshotChunkBytes = 4 })
	n.tickAll(25)
	l := n.leader()
	f := (l + 1) % 3
	n.isolate(f)
	for i := range 30 {
		n.propose(l, fmt.Sprint(i))
	}
	applied := n.cores[l].Status().Applied
	w, err := n.storage[l].CreateSnapshot(applied)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "state-machine-image")
	w.Close()
	if err := n.drivers[l].Snapshot(applied, w, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	n.propose(l, "after")
	n.heal()
	n.tickAll(30)
	st := n.cores[f].Status()
	if st.SnapshotIndex != applied || st.Commit != n.cores[l].Status().Commit {
		t.Fatalf("follower status %+v, leader snapshot %d", st, applied)
	}
	r, err := n.storage[f].OpenSnapshot()
	if err != nil || r == nil {
		t.Fatalf("follower has no snapshot: %v", err)
	}
	data, _ := io.ReadAll(storage.NewSnapshotReaderSection(r))
	r.Close()
	if string(data) != "state-machine-image" || string(r.Meta().App) != "v1" || r.Meta().LastIncludedIndex != applied {
		t.Fatalf("follower snapshot %+v: %q", r.Meta(), data)
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
		n.start(id, core.Configuration{Voters: []int{0, 1, 2}}, nil)
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
