package multi

import (
	"runtime"
	"testing"

	"raft-consensus/raft/core"
)

// idleWorld is a healthy 3-node world of groups that has gone quiet.
func idleWorld(t testing.TB, groups int) *simWorld { return idleWorldBroken(t, groups, brokenRules{}) }

func idleWorldBroken(t testing.TB, groups int, broken brokenRules) *simWorld {
	return idleWorldOf(t, simParams{seed: 7, nodes: 3, groups: groups, broken: broken})
}

func idleWorldOf(t testing.TB, p simParams) *simWorld {
	t.Helper()
	groups := p.groups
	w := newSimWorld(t, p)
	for range groups {
		w.propose() // something to replicate first: quiescence follows work
	}
	for i := 0; ; i++ {
		w.step()
		if i > 2000 {
			t.Fatalf("%d groups not all quiet after 2000 ticks", groups)
		}
		if i%20 == 0 && w.allQuiet() {
			break
		}
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
	return w
}

func (w *simWorld) allQuiet() bool {
	for g := range GroupID(w.p.groups) {
		for _, n := range w.members[g] {
			if _, q, _ := w.hosts[n].Summary(g); !q {
				return false
			}
		}
	}
	return true
}

type idleCounts struct {
	batchesPerPairTick, heartbeatSendsPerPairTick float64
	groupTicks                                    uint64
}

// measureIdle runs ticks idle ticks and counts, per ordered node pair and
// tick, the batches and the batches that carried heartbeats.
func measureIdle(w *simWorld, ticks int) idleCounts {
	before := map[NodeID]Stats{}
	for n, h := range w.hosts {
		before[n] = h.Stats()
	}
	for range ticks {
		w.step()
	}
	var c idleCounts
	var batches, hbSends uint64
	for n, h := range w.hosts {
		s := h.Stats()
		batches += s.Batches - before[n].Batches
		hbSends += s.HeartbeatSends - before[n].HeartbeatSends
		c.groupTicks += s.GroupTicks - before[n].GroupTicks
	}
	pairs := float64(w.p.nodes * (w.p.nodes - 1))
	c.batchesPerPairTick = float64(batches) / pairs / float64(ticks)
	c.heartbeatSendsPerPairTick = float64(hbSends) / pairs / float64(ticks)
	return c
}

// TestIdleGroupsCostNothing: quiet groups get no ticks and send no
// heartbeats; the hosts' traffic per node pair is the same with one group
// and with two thousand (one liveness batch per heartbeat interval).
func TestIdleGroupsCostNothing(t *testing.T) {
	one := measureIdle(idleWorld(t, 1), 500)
	many := measureIdle(idleWorld(t, 2000), 500)
	t.Logf("1 group: %+v; 2000 groups: %+v", one, many)
	if many.groupTicks != 0 || one.groupTicks != 0 {
		t.Errorf("quiet groups were ticked: %d and %d group ticks", one.groupTicks, many.groupTicks)
	}
	if many.heartbeatSendsPerPairTick != 0 {
		t.Errorf("quiet groups sent heartbeats: %.3f batches with heartbeats per pair and tick", many.heartbeatSendsPerPairTick)
	}
	if one.batchesPerPairTick == 0 || many.batchesPerPairTick > 1.1*one.batchesPerPairTick {
		t.Errorf("batches per node pair and tick: %.3f with 2000 groups, %.3f with 1 (want at most 1.1×)",
			many.batchesPerPairTick, one.batchesPerPairTick)
	}
}

// TestActiveGroupsShareBatches: with every group busy, what one host sends
// another in a tick is one batch, however many groups: per pair and tick
// at most one batch.
func TestActiveGroupsShareBatches(t *testing.T) {
	w := newSimWorld(t, simParams{seed: 9, nodes: 3, groups: 200})
	for range 50 {
		w.step()
	}
	before := map[NodeID]Stats{}
	for n, h := range w.hosts {
		before[n] = h.Stats()
	}
	const ticks = 100
	for range ticks {
		for range 50 {
			w.propose()
		}
		w.step()
	}
	var batches, heartbeats uint64
	for n, h := range w.hosts {
		batches += h.Stats().Batches - before[n].Batches
		heartbeats += h.Stats().Heartbeats - before[n].Heartbeats
	}
	perPairTick := float64(batches) / 6 / ticks
	t.Logf("%.2f batches per node pair and tick, %d heartbeats coalesced, with 200 groups and 50 proposals a tick", perPairTick, heartbeats)
	if perPairTick > 1 {
		t.Errorf("%.2f batches per node pair and tick, want at most 1", perPairTick)
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
}

// BenchmarkIdleTick is the cost of one tick of 3 hosts whose groups are
// all quiet (an op: every host ticks, sends and steps its liveness
// batches), and the heap each replica takes.
func BenchmarkIdleTick(b *testing.B) {
	for _, groups := range []int{1, 10000} {
		b.Run(itoa(groups)+"groups", func(b *testing.B) {
			w, heap := measuredIdleWorld(b, groups)
			b.ResetTimer()
			for range b.N {
				w.step() // a tick of the 3 hosts, with their liveness batches
			}
			b.StopTimer()
			if !w.allQuiet() {
				b.Fatal("groups woke while idle")
			}
			b.ReportMetric(heap, "heap-B/replica")
		})
	}
}

// measuredIdleWorld makes an idle world of groups groups on 3 hosts, and
// reports the heap it took per replica (its own bookkeeping included).
func measuredIdleWorld(t testing.TB, groups int) (*simWorld, float64) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	w := idleWorld(t, groups)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	return w, float64(m1.HeapAlloc-m0.HeapAlloc) / float64(3*groups)
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// TestDestroyedLeaderReplicaWakesItsFollowers: a quiet group whose leader's
// replica is destroyed (its host running on) elects another leader: the
// host tells the followers to wake.
func TestDestroyedLeaderReplicaWakesItsFollowers(t *testing.T) {
	w := idleWorld(t, 4)
	l := w.leader(0)
	if err := w.hosts[l].DestroyGroup(0); err != nil {
		t.Fatal(err)
	}
	for range 300 {
		w.step()
	}
	if nl := w.leader(0); nl < 0 || nl == l {
		t.Fatalf("group 0 has leader %d after its leader's replica on %d was destroyed", nl, l)
	}
}

// TestWokenFollowerWakesItsLeader: a quiet follower woken as by a vote
// request from another replica does not campaign against its leader, which
// is alive: it asks the leader to heartbeat (and PreVote would keep the
// term if that were lost).
func TestWokenFollowerWakesItsLeader(t *testing.T) {
	w := idleWorld(t, 4)
	terms := map[GroupID]uint64{}
	for g := range GroupID(4) {
		sum, _, _ := w.hosts[w.leader(g)].Summary(g)
		terms[g] = sum.Term
	}
	// Wake one follower of each group as a vote request would.
	for g := range GroupID(4) {
		l := w.leader(g)
		for _, n := range w.members[g] {
			if n != l {
				h := w.hosts[n]
				h.wake(h.groups[g], true)
				break
			}
		}
	}
	for range 300 {
		w.step()
	}
	for g := range GroupID(4) {
		sum, _, _ := w.hosts[w.leader(g)].Summary(g)
		if sum.Term != terms[g] {
			t.Errorf("group %v: term %d after a follower woke, was %d: it campaigned against its leader", g, sum.Term, terms[g])
		}
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
}

// quietFailover crashes the node leading the most groups of a quiet world
// and returns, for the groups it led, the ticks until each had a new
// leader and how many more terms that took than one election.
func quietFailover(t *testing.T, w *simWorld) (worst uint64, extraTerms int, led int) {
	t.Helper()
	count := map[NodeID]int{}
	for g := range GroupID(w.p.groups) {
		count[w.leader(g)]++
	}
	victim := NodeID(0)
	for n, k := range count {
		if k > count[victim] {
			victim = n
		}
	}
	terms := map[GroupID]uint64{}
	for g := range GroupID(w.p.groups) {
		if w.leader(g) == victim {
			sum, _, _ := w.hosts[victim].Summary(g)
			terms[g] = sum.Term
		}
	}
	w.crash(victim)
	start := w.tick
	for len(terms) > 0 {
		if w.tick-start > 400 {
			t.Fatalf("%d groups without a leader 400 ticks after node %d died", len(terms), victim)
		}
		w.step()
		for g, term := range terms {
			if l := w.leader(g); l >= 0 && l != victim {
				sum, _, _ := w.hosts[l].Summary(g)
				extraTerms += int(sum.Term - term - 1)
				worst = max(worst, w.tick-start)
				delete(terms, g)
				led++
			}
		}
	}
	return worst, extraTerms, led
}

// TestQuietGroupsFailOverFast: when the node leading many quiet groups
// dies, each group's survivors learn of it from its silence (LivenessTicks),
// count that silence toward their election timeouts, and let one of them
// (successor) stand first: every group elects within one election of
// detecting it, without a split vote.
func TestQuietGroupsFailOverFast(t *testing.T) {
	for slow := range 4 {
		w := idleWorldOf(t, simParams{seed: 7, nodes: 3, groups: 300, slow: slow})
		worst, extra, led := quietFailover(t, w)
		t.Logf("slow host %d: %d groups failed over within %d ticks (bound %d), %d extra terms", slow-1, led, worst, failoverBound, extra)
		if worst > failoverBound || extra > 0 {
			t.Fatalf("slow host %d: %d groups: the slowest took %d ticks (bound %d), %d extra terms (split votes)", slow-1, led, worst, failoverBound, extra)
		}
	}
}

// failoverBound: detection (LivenessTicks, plus the last batch's interval
// and delay), the successor's wait of a heartbeat interval, then a PreVote
// and a vote round trip of at most 3 ticks a hop; a slow host's view of
// the silence takes a third longer.
var failoverBound = func() uint64 {
	cc := simCoreConfig()
	return uint64((cc.ElectionTicksMin+cc.HeartbeatTicks+3)*4/3 + cc.HeartbeatTicks + 1 + 4*3 + 1)
}()

// TestQuietFailoverCatchesBrokenRules: without a successor the survivors
// split votes; with a quiet follower keeping its lease, the first
// survivor's vote is ignored and it waits a whole timeout more.
func TestQuietFailoverCatchesBrokenRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		broken brokenRules
	}{
		{"every survivor stands first", brokenRules{everyoneFirst: true}},
		{"a quiet follower ignores votes until its own host judges the leader dead", brokenRules{voteLeaseKept: true}},
	} {
		caught := false
		for slow := range 4 {
			w := idleWorldOf(t, simParams{seed: 7, nodes: 3, groups: 300, slow: slow, broken: tc.broken})
			worst, extra, led := quietFailover(t, w)
			if worst > failoverBound || extra > 0 {
				t.Logf("%s: caught with slow host %d: the slowest of %d groups took %d ticks (bound %d), %d extra terms", tc.name, slow-1, led, worst, failoverBound, extra)
				caught = true
				break
			}
		}
		if !caught {
			t.Errorf("%s: every group failed over in time with no split vote: not caught", tc.name)
		}
	}
}

// cutOffLeaders isolates the node leading the most groups of a quiet world
// and returns how many groups it still believes it leads after ticks.
func cutOffLeaders(t *testing.T, w *simWorld, ticks int) (victim NodeID, led, still int) {
	t.Helper()
	count := map[NodeID]int{}
	for g := range GroupID(w.p.groups) {
		count[w.leader(g)]++
	}
	for n, k := range count {
		if k > count[victim] {
			victim = n
		}
	}
	w.side[victim] = 1 // a partition: it alone on its side
	for range ticks {
		w.step()
	}
	for g := range GroupID(w.p.groups) {
		if sum, _, err := w.hosts[victim].Summary(g); err == nil && sum.Role == core.Leader {
			still++
		}
	}
	return victim, count[victim], still
}

// TestCutOffQuietLeadersStepDown: a node cut off by a partition while its
// groups are quiet hears nothing and is heard by nobody; its quiet leaders
// wake when their followers' nodes fall silent, and CheckQuorum makes them
// step down within an election timeout (thesis §6.2), as an active
// leader would. Without the wake (noLeaderWake) they lead on, quiet, for
// ever.
func TestCutOffQuietLeadersStepDown(t *testing.T) {
	cc := simCoreConfig()
	ticks := cc.ElectionTicksMin + 3*cc.ElectionTicksMax
	victim, led, still := cutOffLeaders(t, idleWorld(t, 100), ticks)
	t.Logf("node %d, cut off, led %d quiet groups; %d ticks later it believes it leads %d", victim, led, ticks, still)
	if led == 0 || still > 0 {
		t.Fatalf("node %d, cut off, led %d groups and still leads %d after %d ticks", victim, led, still, ticks)
	}
	_, led, still = cutOffLeaders(t, idleWorldBroken(t, 100, brokenRules{noLeaderWake: true}), ticks)
	if still == 0 {
		t.Fatalf("with noLeaderWake, the cut-off node's %d quiet leaders stepped down anyway: the test cannot tell", led)
	}
	t.Logf("noLeaderWake: caught, %d of %d quiet leaders lead on", still, led)
}
