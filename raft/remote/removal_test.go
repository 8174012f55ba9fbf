package remote

import (
	"strings"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
)

// TestRemovalThatWouldStopTheClusterIsRefused: across processes too, a
// removal that would leave the remaining voters without a majority up is
// refused before it is proposed (cluster.CheckUpMajority), and the cluster
// goes on taking writes; before, "remove 0" with node 2 down left voters
// {1, 2} with one of them up (found in review).
func TestRemovalThatWouldStopTheClusterIsRefused(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	book := freeAddrs(t, 3)
	dir := t.TempDir()
	cfg := NodeConfig{Cluster: "rm", Peers: book, // startNodes gives each its data dir under dir
		ElectionTimeoutMin: 150 * time.Millisecond, ElectionTimeoutMax: 300 * time.Millisecond, HeartbeatInterval: 30 * time.Millisecond}
	nodes := startNodes(t, 3, cfg, dir)
	defer func() { stopNodes(nodes) }()
	c, err := Connect(ClusterConfig{Addrs: []string{book[0], book[1], book[2]}, Cluster: "rm"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if _, _, err := c.CheckUniqueLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(kv.OpSet, "k", "1", core.None); err != nil {
		t.Fatal(err)
	}
	nodes[2].Stop()
	err = c.RemoveServer(0)
	if err == nil || !strings.Contains(err.Error(), "would leave voters 1, 2, of which node 2 is down") {
		t.Fatalf("remove 0 with node 2 down: %v, want a refusal naming node 2", err)
	}
	if _, err := c.Do(kv.OpSet, "k", "2", core.None); err != nil {
		t.Fatalf("after the refusal the cluster takes no write: %v", err)
	}
}
