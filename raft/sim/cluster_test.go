package sim

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/lincheck"
	"raft-consensus/raft/trace"
)

func newTestCluster(t *testing.T, nodes int, seed int64, tr trace.Tracer) *Cluster {
	t.Helper()
	c, err := NewCluster(ClusterConfig{Nodes: nodes, Seed: seed, Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Shutdown)
	return c
}

func mustLeader(t *testing.T, c *Cluster) int {
	t.Helper()
	l, _, err := c.CheckUniqueLeader(3 * time.Second)
	if err != nil {
		t.Fatalf("no leader: %v", err)
	}
	return l
}

// TestClusterStandsStill: time moves only when asked.
func TestClusterStandsStill(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, 1, nil)
	if c.Now() != 0 {
		t.Fatalf("a new cluster is at %v, want 0", c.Now())
	}
	c.Status()
	c.Logs(cluster.MaxLogEntries)
	if c.Now() != 0 {
		t.Fatalf("looking moved time to %v", c.Now())
	}
	if l, _ := c.Leader(); l != core.None {
		t.Fatalf("a leader at time 0: %d", l)
	}
	if err := c.Run(500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if c.Now() != 500*time.Millisecond {
		t.Fatalf("after run 500ms the time is %v", c.Now())
	}
	if l, _ := c.Leader(); l == core.None {
		t.Fatal("no leader after 500 ms of virtual time")
	}
}

// TestClusterCrashPartitionAndReads drives a cluster through a leader
// crash and a partition with a minority leader; the linearizable read
// never answers an old value, the stale read at the old leader does.
func TestClusterCrashPartitionAndReads(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 5, 7, nil)
	leader := mustLeader(t, c)
	if _, err := c.Do(kv.OpSet, "x", "1", core.None); err != nil {
		t.Fatal(err)
	}
	if err := c.CrashPeer(leader); err != nil {
		t.Fatal(err)
	}
	res, err := c.Do(kv.OpGet, "x", "", core.None)
	if err != nil || res.Value != "1" {
		t.Fatalf("get after the leader crashed: %+v, %v", res, err)
	}
	if err := c.RestartPeer(leader); err != nil {
		t.Fatal(err)
	}
	old := mustLeader(t, c)
	var rest []int
	for _, id := range c.IDs() {
		if id != old {
			rest = append(rest, id)
		}
	}
	if err := c.Partition([]int{old}, rest); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(kv.OpSet, "x", "2", core.None); err != nil {
		t.Fatalf("set in the majority: %v", err)
	}
	stale, err := c.ReadStale("x", old)
	if err != nil {
		t.Fatal(err)
	}
	if stale.Value != "1" {
		t.Fatalf("the cut-off old leader's state machine says %q, want the old value 1", stale.Value)
	}
	if _, err := c.Do(kv.OpGet, "x", "", old); err == nil {
		t.Fatal("a linearizable read at the cut-off old leader answered")
	}
	c.Heal()
	res, err = c.Do(kv.OpGet, "x", "", core.None)
	if err != nil || res.Value != "2" {
		t.Fatalf("get after heal: %+v, %v", res, err)
	}
	if r := lincheck.CheckLinearizable(c.History(), 10*time.Second); !r.Linearizable() {
		t.Fatalf("history not linearizable: %v", r.Result)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestClusterMembershipTransferSnapshot adds, removes, transfers and
// snapshots.
func TestClusterMembershipTransferSnapshot(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, 3, nil)
	mustLeader(t, c)
	for i := range 20 {
		if _, err := c.Do(kv.OpSet, "k", string(rune('a'+i)), core.None); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.AddServer(3); err != nil {
		t.Fatalf("add 3: %v", err)
	}
	if st := c.Status()[3]; st.Member != "voter" || st.Applied < 20 {
		t.Fatalf("node 3 after add: %+v", st)
	}
	if err := c.AddServer(3); err == nil {
		t.Fatal("adding a member again succeeded")
	}
	if err := c.TransferLeadership(3); err != nil {
		t.Fatalf("transfer to 3: %v", err)
	}
	if l, _ := c.Leader(); l != 3 {
		t.Fatalf("leader after transfer is %d", l)
	}
	idx, err := c.Snapshot(0)
	if err != nil || idx < 20 {
		t.Fatalf("snapshot: %d, %v", idx, err)
	}
	logs := c.Logs(cluster.MaxLogEntries)
	if logs[0].SnapshotIndex != idx {
		t.Fatalf("node 0's log starts after %d, want the snapshot %d", logs[0].SnapshotIndex, idx)
	}
	if err := c.RemoveServer(0); err != nil {
		t.Fatalf("remove 0: %v", err)
	}
	if ids := c.IDs(); len(ids) != 3 || ids[0] != 1 {
		t.Fatalf("ids after remove: %v", ids)
	}
	if _, err := c.Do(kv.OpSet, "k", "z", core.None); err != nil {
		t.Fatal(err)
	}
	if err := c.CrashPeer(0); !errors.Is(err, cluster.ErrNoSuchNode) {
		t.Fatalf("crash of a removed node: %v", err)
	}
}

// TestClusterIsDeterministic: the same seed and calls give the same trace.
func TestClusterIsDeterministic(t *testing.T) {
	defer leaktest.Check(t)()
	run := func(seed int64) []byte {
		var buf bytes.Buffer
		var c *Cluster
		tr := trace.Func(func(node string, e core.Event) {
			at := "start" // NewCluster traces the first steps before it returns
			if c != nil {
				at = c.Clock().Format("15:04:05.000000")
			}
			buf.WriteString(at + " " + node + " " + e.Text() + "\n")
		})
		c = newTestCluster(t, 3, seed, tr)
		l := mustLeader(t, c)
		c.Do(kv.OpSet, "a", "1", core.None)
		c.CrashPeer(l)
		c.DropNext((l+1)%3, (l+2)%3)
		c.Do(kv.OpSet, "a", "2", core.None)
		c.Step(25)
		c.Run(300 * time.Millisecond)
		c.Shutdown()
		return buf.Bytes()
	}
	a, b := run(11), run(11)
	if !bytes.Equal(a, b) {
		t.Fatalf("two runs of seed 11 differ (%d and %d bytes of trace)", len(a), len(b))
	}
	if len(a) < 1000 {
		t.Fatalf("only %d bytes of trace", len(a))
	}
	if bytes.Equal(a, run(12)) {
		t.Fatal("seeds 11 and 12 traced the same run")
	}
}

// TestClusterStepTracesEvents: step returns at least n events, in time order.
func TestClusterStepTracesEvents(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, 5, trace.Func(func(string, core.Event) {}))
	evs, err := c.Step(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 10 {
		t.Fatalf("step 10 returned %d events", len(evs))
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Time.Before(evs[i-1].Time) {
			t.Fatalf("events out of order: %v then %v", evs[i-1].Time, evs[i].Time)
		}
	}
	// Everyone crashed: nothing happens; step gives up after stepLimit.
	for _, id := range c.IDs() {
		c.CrashPeer(id)
	}
	before := c.Now()
	evs, _ = c.Step(5)
	if len(evs) != 0 || c.Now()-before != stepLimit {
		t.Fatalf("step in a dead cluster: %d events, %v passed", len(evs), c.Now()-before)
	}
}

// TestClusterPlays: Play moves time on by itself; a call made meanwhile
// waits for its answer; Pause stops the clock.
func TestClusterPlays(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, 9, nil)
	if err := c.Play(0, nil); err == nil {
		t.Fatal("play at speed 0 accepted")
	}
	if err := c.Play(5, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Now() < 400*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("playing at 5× for 10 s reached only %v", c.Now())
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Do(kv.OpSet, "p", "1", core.None); err != nil {
		t.Fatalf("set while playing: %v", err)
	}
	c.Pause() // returns once the player has stopped
	if playing, _ := c.Playing(); playing {
		t.Fatal("still playing after Pause")
	}
	at := c.Now()
	c.Status()
	if c.Now() != at {
		t.Fatalf("time moved while paused: %v → %v", at, c.Now())
	}
}

// TestInterruptCutsOnlyTheWaitingCall: an interrupt ends the call waiting
// now; it does not freeze the player, nor cut the calls after it short.
func TestInterruptCutsOnlyTheWaitingCall(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, 21, nil)
	mustLeader(t, c)
	c.Interrupt() // nothing waits: nothing to cut
	if _, err := c.Do(kv.OpSet, "a", "1", core.None); err != nil {
		t.Fatalf("a call after a stray interrupt: %v", err)
	}
	for _, id := range c.IDs()[:2] {
		c.CrashPeer(id)
	}
	if err := c.Play(10, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.Do(kv.OpSet, "b", "2", core.None); done <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.Interrupt()
		select {
		case err := <-done:
			if !errors.Is(err, cluster.ErrInterrupted) {
				t.Fatalf("the interrupted set: %v", err)
			}
		case <-time.After(5 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the set was never interrupted")
			}
			continue
		}
		break
	}
	at := c.Now()
	for c.Now() < at+200*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("after the interrupt the player stands still at %v", c.Now())
		}
		time.Sleep(time.Millisecond)
	}
	c.Pause()
}

// TestElectionTraceHasNoFalseStepDown: a pre-candidate that wins its
// pre-vote becomes a candidate at once; the trace must not show it
// stepping down to follower on the way (a student would read it so).
func TestElectionTraceHasNoFalseStepDown(t *testing.T) {
	defer leaktest.Check(t)()
	var roles []core.Event
	c := newTestCluster(t, 3, 13, trace.Func(func(_ string, e core.Event) {
		if e.Kind == core.EventRole {
			roles = append(roles, e)
		}
	}))
	mustLeader(t, c)
	sawCandidate := false
	for _, e := range roles {
		if e.PrevRole == core.PreCandidate && e.Role == core.Follower && !sawCandidate {
			t.Errorf("a pre-candidate stepped down before any candidate: %s", e.Text())
		}
		if e.Role == core.Candidate {
			sawCandidate = true
			if e.PrevRole != core.PreCandidate {
				t.Errorf("a candidate came from %v, not from its pre-vote: %s", e.PrevRole, e.Text())
			}
		}
	}
	if !sawCandidate {
		t.Fatal("no candidate in the trace")
	}
}

// TestClusterJointChange replaces two of three voters, the leader among
// them, in one step: every server passes through the joint configuration
// (Raft paper §6) and then holds C_new, and a write after it commits on
// the new voters. A change that no leader can commit is refused in time,
// and the servers it started go.
func TestClusterJointChange(t *testing.T) {
	defer leaktest.Check(t)()
	var joint []string // servers that took the joint configuration
	c := newTestCluster(t, 3, 4, trace.Func(func(node string, e core.Event) {
		if e.Kind == core.EventConfig && len(e.Groups) == 3 {
			joint = append(joint, node)
		}
	}))
	leader := mustLeader(t, c)
	if _, err := c.Do(kv.OpSet, "k", "before", core.None); err != nil {
		t.Fatal(err)
	}
	other := (leader + 1) % 3
	if err := c.ChangeMembers([]int{3, 4}, []int{leader, other}); err != nil {
		t.Fatalf("change: %v", err)
	}
	slices.Sort(joint)
	if joint = slices.Compact(joint); len(joint) != 5 {
		t.Fatalf("servers that took the joint configuration: %v, want all five", joint)
	}
	want := []int{3 - leader - other, 3, 4}
	slices.Sort(want)
	if ids := c.IDs(); !slices.Equal(ids, want) {
		t.Fatalf("ids after the change: %v, want %v", ids, want)
	}
	if _, err := c.Do(kv.OpSet, "k", "after", core.None); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(200 * time.Millisecond); err != nil { // the followers hear the commit
		t.Fatal(err)
	}
	for _, id := range []int{3, 4} {
		if r, err := c.ReadStale("k", id); err != nil || r.Value != "after" {
			t.Fatalf("node %d reads %+v, %v", id, r, err)
		}
	}
	// Two of the three voters down: no leader can commit a change.
	if err := c.CrashPeer(3); err != nil {
		t.Fatal(err)
	}
	if err := c.CrashPeer(4); err != nil {
		t.Fatal(err)
	}
	if err := c.ChangeMembers([]int{5, 6}, []int{3}); err == nil {
		t.Fatal("a change committed with two of three voters down")
	} else if !strings.Contains(err.Error(), "were not added") {
		t.Fatalf("the refused change: %v", err)
	}
	if ids := c.IDs(); !slices.Equal(ids, want) {
		t.Fatalf("ids after the refused change: %v, want %v", ids, want)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}
