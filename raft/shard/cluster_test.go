package shard

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/lincheck"
)

func newTestCluster(t *testing.T, nodes, groups int, dir string) *Cluster {
	t.Helper()
	c, err := New(Config{Nodes: nodes, Groups: groups, DataDir: dir, Tick: 5 * time.Millisecond, Seed: 1,
		// A loaded machine under -race stalls a server now and then: the
		// liveness wake must not take that for a death.
		LivenessTicks: 100, ClientTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustSet(t *testing.T, c *Cluster, key, value string) {
	t.Helper()
	if _, err := c.Do(kv.OpSet, key, value, core.None); err != nil {
		t.Fatalf("set %s: %v", key, err)
	}
}

func mustGet(t *testing.T, c *Cluster, key, want string) {
	t.Helper()
	res, err := c.Do(kv.OpGet, key, "", core.None)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if !res.Found || res.Value != want {
		t.Fatalf("get %s = %q (found %v), want %q", key, res.Value, res.Found, want)
	}
}

// The keys spread over the groups, every group elects, and a crash of the
// server leading the most groups moves all of them.
func TestClusterRoutesKeysAndSurvivesACrash(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	for _, dir := range []string{"", t.TempDir()} {
		c := newTestCluster(t, 3, 16, dir)
		if _, err := c.WaitLeaders(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		used := map[uint64]bool{}
		for i := range 40 {
			key := fmt.Sprintf("k%d", i)
			used[c.GroupOf(key)] = true
			mustSet(t, c, key, fmt.Sprint(i))
		}
		if len(used) < 10 {
			t.Errorf("40 keys landed in %d of 16 groups", len(used))
		}
		led, err := c.WaitLeaders(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		top := 0
		for id, n := range led {
			if n > led[top] {
				top = id
			}
		}
		if err := c.CrashPeer(top); err != nil {
			t.Fatal(err)
		}
		after, err := c.WaitLeaders(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if after[top] != 0 {
			t.Fatalf("crashed node %d still leads %d groups", top, after[top])
		}
		for i := range 40 {
			mustGet(t, c, fmt.Sprintf("k%d", i), fmt.Sprint(i))
		}
		if err := c.RestartPeer(top); err != nil {
			t.Fatal(err)
		}
		mustSet(t, c, "k0", "again")
		mustGet(t, c, "k0", "again")
		// Stale reads at the restarted node catch up with what it replays.
		waitFor(t, 10*time.Second, func() bool {
			r, err := c.ReadStale("k0", top)
			return err == nil && r.Value == "again"
		})
		if r := lincheck.CheckLinearizable(c.History(), 10*time.Second); !r.Linearizable() {
			t.Fatalf("history not linearizable: %v", r.Result)
		}
		c.Shutdown()
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Membership per group and for the whole server, a joint change of one
// group, a transfer, and the groups going quiet.
func TestClusterChangesGroupsMembers(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	c := newTestCluster(t, 3, 4, "")
	defer c.Shutdown()
	if _, err := c.WaitLeaders(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	mustSet(t, c, "a", "1")
	if err := c.AddServer(3); err != nil {
		t.Fatal(err)
	}
	for _, gs := range c.Groups() {
		if !gs.Config.IsVoter(3) {
			t.Fatalf("group %d: node 3 not a voter after add: %v", gs.ID, gs.Config)
		}
	}
	// Replace 0 and 1 by 3 in group 2 only: a joint change.
	if err := c.ChangeGroup(2, nil, []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	g2 := c.Groups()[2]
	if g2.Config.IsMember(0) || g2.Config.IsMember(1) || !g2.Config.IsVoter(3) || g2.Replicas != 2 {
		t.Fatalf("group 2 after the change: %v, %d replicas", g2.Config, g2.Replicas)
	}
	if err := c.ChangeGroup(2, []int{0, 1}, []int{3}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveFromGroup(2, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.AddToGroup(2, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.TransferGroup(2, 1); err != nil {
		t.Fatal(err)
	}
	if c.Groups()[1].Leader != 2 {
		t.Fatalf("group 1's leader is %d after transfer to 2", c.Groups()[1].Leader)
	}
	if err := c.RemoveServer(0); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, "a", "1")
	if err := c.TransferLeadership(1); err != nil {
		t.Fatal(err)
	}
	for _, gs := range c.Groups() {
		if gs.Config.IsMember(0) {
			t.Fatalf("group %d still has node 0: %v", gs.ID, gs.Config)
		}
		if gs.Config.IsVoter(1) && gs.Leader != 1 {
			t.Fatalf("group %d led by %d after transfer to 1", gs.ID, gs.Leader)
		}
	}
	waitFor(t, 10*time.Second, func() bool {
		for _, ng := range c.NodeGroups() {
			if ng.Active > 0 {
				return false
			}
		}
		return true
	})
	if _, err := c.Snapshot(1); err != nil {
		t.Fatal(err)
	}
	// Bad input is refused with a reason.
	for _, err := range []error{c.TransferGroup(1, 99), c.AddToGroup(7, 0), c.ChangeGroup(0, []int{1}, nil), c.RemoveFromGroup(0, 1)} {
		if err == nil {
			t.Fatal("a bad change was accepted")
		}
		t.Log(err)
	}
}

// A change that timed out and committed later is seen: removing the
// server then takes it out of that group too. And an add that reached
// only some groups (one had no leader) is finished by adding again.
func TestClusterFinishesHalfDoneChanges(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	c, err := New(Config{Nodes: 3, Groups: 3, Tick: 5 * time.Millisecond, Seed: 1, LivenessTicks: 100,
		ClientTimeout: 2 * time.Second, ChangeTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if _, err := c.WaitLeaders(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.AddServer(3); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveFromGroup(3, 1); err != nil {
		t.Fatal(err)
	}
	// Cut off, node 3 cannot catch up: the add times out, proposed.
	if err := c.DisconnectPeer(3); err != nil {
		t.Fatal(err)
	}
	if err := c.AddToGroup(3, 1); err == nil {
		t.Fatal("an add to a cut-off server succeeded")
	} else {
		t.Log(err)
	}
	if err := c.ReconnectPeer(3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return c.Groups()[1].Config.IsVoter(3) }) // the leader promotes it
	if err := c.RemoveServer(3); err != nil {
		t.Fatal(err)
	}
	for _, gs := range c.Groups() {
		if gs.Config.IsMember(3) {
			t.Fatalf("group %d still has node 3 after its removal: %v", gs.ID, gs.Config)
		}
	}

	// Group 2 on node 0 only, then node 0 down: an add reaches groups 0
	// and 1 and not 2.
	if err := c.ChangeGroup(2, nil, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.CrashPeer(0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		gs := c.Groups()
		return gs[0].Leader != core.None && gs[0].Leader != 0 && gs[1].Leader != core.None && gs[1].Leader != 0
	})
	if err := c.AddServer(4); err == nil || !strings.Contains(err.Error(), "node 4 joined some groups and stays") {
		t.Fatalf("adding node 4 with group 2 down: %v", err)
	} else {
		t.Log(err)
	}
	if gs := c.Groups(); !gs[0].Config.IsVoter(4) || gs[2].Config.IsMember(4) {
		t.Fatalf("after the half-done add: group 0 %v, group 2 %v", gs[0].Config, gs[2].Config)
	}
	if err := c.RestartPeer(0); err != nil {
		t.Fatal(err)
	}
	if err := c.AddServer(4); err != nil {
		t.Fatalf("adding node 4 again: %v", err)
	}
	for _, gs := range c.Groups() {
		if !gs.Config.IsVoter(4) {
			t.Fatalf("group %d: node 4 not a voter after the second add: %v", gs.ID, gs.Config)
		}
	}
	if err := c.AddServer(4); err == nil {
		t.Fatal("node 4 added a third time")
	}
}
