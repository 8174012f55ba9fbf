package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/remote"
)

// launchedGroups is a cluster of node processes that host many groups
// each, with its launcher.
type launchedGroups struct {
	*remote.GroupedCluster
	dir string
}

func (c *launchedGroups) newClient() workloadClient { return c.NewShardClient() }

func (c *launchedGroups) logs() string { return (&launched{dir: c.dir, Cluster: c.Cluster}).logs() }

// waitLeaders waits until every group has a leader.
func (c *launchedGroups) waitLeaders(t *testing.T) {
	t.Helper()
	if _, err := c.WaitLeaders(20 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, c.logs())
	}
}

// TestManyGroupsProcessesUnderFaults: 3 node processes of 8 groups each
// (go run . node -groups 8) under 4 clients over many keys: SIGKILL of
// the node leading the most groups, rounds of SIGKILL of every node at
// once, a node stopped past the election timeout, a node partitioned
// away, a node added to every group and another removed; each is
// followed by progress, every acknowledged write is there at the end, and
// the history is linearizable key by key.
func TestManyGroupsProcessesUnderFaults(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	dir := t.TempDir()
	l, err := remote.Launch(remote.LauncherConfig{Dir: dir, Nodes: 3, Cluster: "test", Binary: os.Args[0],
		Env: []string{nodeEnv + "=1"}, StartTimeout: 30 * time.Second, NodeArgs: []string{"-groups", "8"}})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := remote.ConnectAny(remote.ClusterConfig{Addrs: l.Addrs(), Cluster: "test", Processes: l, Timeout: 5 * time.Second})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	defer rc.Shutdown()
	gc, ok := rc.(*remote.GroupedCluster)
	if !ok {
		t.Fatalf("nodes of 8 groups gave a %T", rc)
	}
	c := &launchedGroups{GroupedCluster: gc, dir: dir}
	c.waitLeaders(t)
	w := startWorkload(c, 4)
	defer w.finish()
	w.waitProgress(t, c, 50, "before the faults")

	most := func() int {
		led, err := c.WaitLeaders(20 * time.Second)
		if err != nil {
			t.Fatalf("%v\n%s", err, c.logs())
		}
		best := 0
		for id, n := range led {
			if n > led[best] {
				best = id
			}
		}
		return best
	}
	victim := most()
	must(t, c.CrashPeer(victim))
	w.waitProgress(t, c, 20, fmt.Sprintf("after SIGKILL of node %d, which led the most groups", victim))
	must(t, c.RestartPeer(victim))

	for round := range 5 {
		for _, id := range c.IDs() {
			must(t, c.CrashPeer(id))
		}
		for _, id := range c.IDs() {
			if err := c.RestartPeer(id); err != nil {
				t.Fatalf("round %d: %v\n%s", round, err, c.logs())
			}
		}
		w.waitProgress(t, c, 10, fmt.Sprintf("after SIGKILL of every node, round %d", round))
	}

	victim = most()
	must(t, c.Pause(victim))
	w.waitProgress(t, c, 20, fmt.Sprintf("with node %d stopped (SIGSTOP)", victim))
	withoutWaitingForPaused(t, "GroupLeader, Status and GroupLogs", func() { c.GroupLeader(0); c.Status(); _, _ = c.GroupLogs(0, 10) })
	must(t, c.Resume(victim))

	victim = most()
	var others []int
	for _, id := range c.IDs() {
		if id != victim {
			others = append(others, id)
		}
	}
	must(t, c.Partition([]int{victim}, others))
	w.waitProgress(t, c, 20, fmt.Sprintf("with node %d partitioned away", victim))
	c.Heal()
	w.waitProgress(t, c, 20, "after the heal")

	// Membership under load: the launcher starts node 3 (-join -groups
	// 8), every group adds it; then node 0 leaves every group, and the
	// launcher stops it.
	if err := c.AddServer(3); err != nil {
		t.Fatalf("add 3: %v\n%s", err, c.logs())
	}
	w.waitProgress(t, c, 20, "after node 3 joined every group")
	if err := c.RemoveServer(0); err != nil {
		t.Fatalf("remove 0: %v\n%s", err, c.logs())
	}
	w.waitProgress(t, c, 20, "after node 0 left every group")
	for _, g := range c.Groups() {
		if g.Config.IsMember(0) || !g.Config.IsVoter(3) || g.Leader == 0 {
			t.Fatalf("group %d after add 3, remove 0: %v, leader %d", g.ID, g.Config, g.Leader)
		}
	}
	w.finish()

	c.waitLeaders(t)
	checkAcked(t, c, w)
	checkHistory(t, c.History())
}
