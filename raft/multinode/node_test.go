package multinode

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/storage/vfs"
)

func testCore() core.CoreConfig {
	return core.CoreConfig{ElectionTicksMin: 15, ElectionTicksMax: 30, HeartbeatTicks: 5, PreVote: true, CheckQuorum: true,
		MaxInflight: 8, MaxEntriesPerAppend: 64, MaxBytesPerAppend: 1 << 20, SnapshotChunkBytes: 1 << 16}
}

// Cluster is nodes on one LocalNetwork, every group on all of them.
type Cluster struct {
	Nodes []*Node
}

func startCluster(t *testing.T, nodes, groups int) *Cluster {
	return startClusterOn(t, nodes, groups, nil)
}

// startClusterOn starts the nodes, each on logs[i] if logs is set.
func startClusterOn(t *testing.T, nodes, groups int, logs []*storage.SharedLog) *Cluster {
	t.Helper()
	net := NewLocalNetwork()
	c := &Cluster{}
	var ids []multi.NodeID
	for i := range nodes {
		ids = append(ids, multi.NodeID(i))
	}
	for i := range nodes {
		cc := testCore()
		cc.Seed = int64(i + 1)
		cfg := Config{ID: multi.NodeID(i), Core: cc, Tick: 5 * time.Millisecond, Transport: net.Transport(),
			// A node stalled for a second (a loaded machine under -race) is
			// still alive: these tests count ticks, not failures.
			LivenessTicks: 200}
		if logs != nil {
			cfg.Log = logs[i]
		}
		n := New(cfg)
		net.Add(n)
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		for g := range multi.GroupID(groups) {
			if err := n.CreateGroup(g, ids); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c
}

// stop stops every node (deferred after leaktest's check is set up, so it
// runs before the check).
func (c *Cluster) stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// propose proposes at g's leader, finding it, until ctx is done.
func (c *Cluster) propose(ctx context.Context, g multi.GroupID, data []byte) error {
	return ProposeAtLeader(ctx, c.Nodes, g, data, 200*time.Millisecond)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNodesCommitAndGoQuiet: every group commits a proposal on real time,
// then all of them go quiet, and a proposal wakes its group again.
func TestNodesCommitAndGoQuiet(t *testing.T) {
	defer leaktest.CheckTimeout(t, 5*time.Second)()
	c := startCluster(t, 3, 40)
	defer c.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for g := range multi.GroupID(40) {
		if err := c.propose(ctx, g, []byte("x")); err != nil {
			t.Fatalf("group %v: %v", g, err)
		}
	}
	waitFor(t, 10*time.Second, "every replica quiet", func() bool {
		for _, n := range c.Nodes {
			if q, all, err := n.Quiet(); err != nil || q != all {
				return false
			}
		}
		return true
	})
	before := c.Nodes[0].Stats()
	waitFor(t, 5*time.Second, "ten ticks", func() bool { return c.Nodes[0].Stats().Ticks >= before.Ticks+10 })
	if after := c.Nodes[0].Stats().GroupTicks; after != before.GroupTicks {
		t.Errorf("quiet groups got %d ticks in ten ticks of the node", after-before.GroupTicks)
	}
	if err := c.propose(ctx, 7, []byte("y")); err != nil {
		t.Fatalf("a proposal to a quiet group: %v", err)
	}
}

// TestNodesKeepGroupsInASharedLog: nodes whose groups live in one shared
// log per node commit, stop, and come back with every entry.
func TestNodesKeepGroupsInASharedLog(t *testing.T) {
	defer leaktest.CheckTimeout(t, 5*time.Second)()
	dir := t.TempDir()
	const groups = 10
	start := func() (*Cluster, []*storage.SharedLog) {
		var logs []*storage.SharedLog
		for i := range 3 {
			l, err := storage.OpenSharedLog(vfs.OS{}, filepath.Join(dir, fmt.Sprint(i)), storage.SharedOptions{})
			if err != nil {
				t.Fatal(err)
			}
			logs = append(logs, l)
		}
		return startClusterOn(t, 3, groups, logs), logs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, logs := start()
	for g := range multi.GroupID(groups) {
		if err := c.propose(ctx, g, []byte(fmt.Sprint("before-", g))); err != nil {
			t.Fatalf("group %v: %v", g, err)
		}
	}
	c.stop()
	for _, l := range logs {
		if l.Stats().Syncs == 0 {
			t.Fatal("a node never synced its shared log")
		}
		l.Close()
	}
	c, logs = start()
	defer func() {
		c.stop()
		for _, l := range logs {
			l.Close()
		}
	}()
	for g := range multi.GroupID(groups) {
		// Applied here only after it is durable everywhere it counts.
		if err := c.propose(ctx, g, []byte(fmt.Sprint("after-", g))); err != nil {
			t.Fatalf("group %v after the restart: %v", g, err)
		}
		found := 0
		for _, l := range logs {
			_, _, ents, _ := l.Group(uint64(g)).Load()
			for _, e := range ents {
				if string(e.Data) == fmt.Sprint("before-", g) {
					found++
				}
			}
		}
		if found < 2 {
			t.Errorf("group %v: the entry committed before the restart is on %d nodes, want a majority", g, found)
		}
	}
}
