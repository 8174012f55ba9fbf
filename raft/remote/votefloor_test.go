package remote

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
)

// rejoinScenario plays, on nodes of one group, a server removed while it
// is down and an id that joins again empty. Node 0 is down when the
// cluster removes it: it keeps its log and the configuration {0,1,2}.
// Node 2 is removed too, and the cluster goes on alone on node 1, which
// acknowledges a write. Node 0 comes back and campaigns in its old
// configuration, while node 2 starts again with -join on an empty data
// dir and is given its vote floor (as the add does), but not added yet. It reports whether node 0 ever led in the next 3 s (many election
// timeouts) and whether it campaigned.
func rejoinScenario(t *testing.T) (led, campaigned bool) {
	book := freeAddrs(t, 3)
	dir := t.TempDir()
	cfgOf := func(id int) NodeConfig {
		return NodeConfig{ID: id, Cluster: "rj", Peers: book, DataDir: filepath.Join(dir, fmt.Sprintf("node-%d", id)),
			ElectionTimeoutMin: 150 * time.Millisecond, ElectionTimeoutMax: 300 * time.Millisecond, HeartbeatInterval: 30 * time.Millisecond}
	}
	nodes := startNodes(t, 3, cfgOf(0), dir)
	defer func() { stopNodes(nodes) }()
	c, err := Connect(ClusterConfig{Addrs: []string{book[0], book[1], book[2]}, Cluster: "rj"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if l, _, err := c.CheckUniqueLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	} else if l != 1 {
		must(c.TransferLeadership(1))
	}
	_, err = c.Do(kv.OpSet, "k", "1", core.None)
	must(err)
	nodes[0].Stop()
	must(c.RemoveServer(0))
	must(c.RemoveServer(2))
	_, err = c.Do(kv.OpSet, "k", "2", core.None)
	must(err)

	nodes[2].Stop()
	must(os.RemoveAll(cfgOf(2).DataDir))
	if nodes[0], err = StartNode(cfgOf(0)); err != nil {
		t.Fatal(err)
	}
	joined := cfgOf(2)
	joined.Join = true
	if nodes[2], err = StartNode(joined); err != nil {
		t.Fatal(err)
	}
	must(c.giveFloors([]int{2}))
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		switch nodes[0].Server().Node().Summary().Role {
		case core.PreCandidate, core.Candidate:
			campaigned = true
		case core.Leader:
			return true, campaigned
		}
	}
	// Added for real, node 2 catches up and votes again.
	must(c.AddServer(2))
	res, err := c.Do(kv.OpGet, "k", "", core.None)
	must(err)
	if res.Value != "2" {
		t.Fatalf("after node 2 joined, k = %q, want the acknowledged \"2\"", res.Value)
	}
	return false, campaigned
}

// TestRejoinedNodeVotesForNoStaleServer: with its vote floor, the node
// that joins again empty refuses the stale server, which never leads;
// without (the broken variant) the stale server wins {0,2} of its old
// configuration and leads beside node 1.
func TestRejoinedNodeVotesForNoStaleServer(t *testing.T) {
	defer leaktest.CheckTimeout(t, 20*time.Second)()
	led, campaigned := rejoinScenario(t)
	if led {
		t.Fatal("node 0, removed while down, became leader with the vote of node 2, joined again empty")
	}
	if !campaigned {
		t.Fatal("node 0 never campaigned: the test shows nothing")
	}
	joinWithoutFloor = true
	defer func() { joinWithoutFloor = false }()
	if led, _ := rejoinScenario(t); !led {
		t.Fatal("without the vote floor, the stale node 0 never led: the test does not see the hazard")
	}
}
