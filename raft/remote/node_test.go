package remote

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
)

func freeAddrs(t *testing.T, n int) map[int]string {
	t.Helper()
	book := map[int]string{}
	for id := range n {
		addr, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		book[id] = addr
	}
	return book
}

// TestNodeMisconfiguration: each misconfiguration is refused with a
// message that names it, and starts nothing.
func TestNodeMisconfiguration(t *testing.T) {
	defer leaktest.Check(t)()
	book := freeAddrs(t, 3)
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	// A data dir of node 0 of cluster "a", and one of node 1 of it.
	n0, err := StartNode(NodeConfig{ID: 0, Cluster: "a", Peers: book, DataDir: filepath.Join(dir, "n0")})
	if err != nil {
		t.Fatal(err)
	}
	n0.Stop()
	for _, c := range []struct {
		name string
		cfg  NodeConfig
		want string
	}{
		{"no data dir", NodeConfig{ID: 0, Peers: book}, "a data dir is required"},
		{"own id not in the peers", NodeConfig{ID: 5, Peers: book, DataDir: filepath.Join(dir, "x")}, "node 5 is not in the peers"},
		{"a data dir that is a file", NodeConfig{ID: 0, Peers: book, DataDir: file}, "is a file"},
		{"another cluster's data dir", NodeConfig{ID: 0, Cluster: "b", Peers: book, DataDir: filepath.Join(dir, "n0")}, `belongs to cluster "a", not "b"`},
		{"another node's data dir", NodeConfig{ID: 1, Cluster: "a", Peers: book, DataDir: filepath.Join(dir, "n0")}, "belongs to node 0, not node 1"},
		{"an address in use", NodeConfig{ID: 0, Cluster: "a", Peers: map[int]string{0: busy.Addr().String()}, DataDir: filepath.Join(dir, "busy")}, "address already in use"},
		{"beyond loopback without TLS", NodeConfig{ID: 0, Listen: "0.0.0.0:0", AllowRemote: true, Peers: book, DataDir: filepath.Join(dir, "y")}, "needs TLS"},
		{"beyond loopback without the flag", NodeConfig{ID: 0, Listen: "0.0.0.0:0", Peers: book, DataDir: filepath.Join(dir, "y")}, "only 127.0.0.1"},
	} {
		n, err := StartNode(c.cfg)
		if err == nil {
			n.Stop()
			t.Errorf("%s: started", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", c.name, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "busy", identityFile)); err == nil {
		t.Error("a first start that failed (the address in use) left an identity in its data dir")
	}
	for _, bad := range []string{"", "0=a", "0=127.0.0.1:1,0=127.0.0.1:2", "x=127.0.0.1:1", "1000=127.0.0.1:1"} {
		if _, err := ParsePeers(bad); err == nil {
			t.Errorf("ParsePeers(%q) accepted it", bad)
		}
	}
}

// TestOneProcessPerDataDir: a second node on a data dir in use is refused.
func TestOneProcessPerDataDir(t *testing.T) {
	defer leaktest.Check(t)()
	book := freeAddrs(t, 1)
	dir := t.TempDir()
	n, err := StartNode(NodeConfig{ID: 0, Peers: book, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if m, err := StartNode(NodeConfig{ID: 0, Peers: freeAddrs(t, 1), DataDir: dir}); err == nil {
		m.Stop()
		t.Fatal("a second node started on the same data dir")
	} else if !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("got %v", err)
	}
}

// TestJoinAndAddWithoutALauncher: nodes started on their own (as "go run
// . node" does), a client connected to them, and a fourth node started
// with Join: it tells the others where it listens, and "add" makes it a
// voter that holds the data.
func TestJoinAndAddWithoutALauncher(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	book := freeAddrs(t, 4)
	founders := map[int]string{0: book[0], 1: book[1], 2: book[2]}
	dir := t.TempDir()
	nodes := startNodes(t, 3, NodeConfig{Cluster: "j", Peers: founders}, dir)
	defer stopNodes(nodes)
	c, err := Connect(ClusterConfig{Addrs: []string{book[1]}, Cluster: "j"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if got := c.IDs(); len(got) != 3 {
		t.Fatalf("connected to one node, the cluster has %v", got)
	}
	if _, _, err := c.CheckUniqueLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.CrashPeer(0); err != ErrNeedsLauncher {
		t.Fatalf("crash without a launcher: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.client.Set(ctx, "x", "1"); err != nil {
		t.Fatal(err)
	}
	if err := c.AddServer(3); err == nil || !strings.Contains(err.Error(), "start it first") {
		t.Fatalf("adding a node not started: %v", err)
	}
	joinPeers := map[int]string{0: book[0], 1: book[1], 2: book[2], 3: book[3]}
	// The add asked as the node starts (as after "docker compose up -d
	// node-3"): it waits for the node to tell the founders where it is.
	added := make(chan error, 1)
	go func() { added <- c.AddServer(3) }()
	n3, err := StartNode(NodeConfig{ID: 3, Cluster: "j", Peers: joinPeers, Join: true, DataDir: filepath.Join(dir, "n3")})
	if err != nil {
		t.Fatal(err)
	}
	defer n3.Stop()
	if err := <-added; err != nil {
		t.Fatalf("add 3 asked as it started: %v", err)
	}
	if !nodes[0].known(3) || !nodes[1].known(3) || !nodes[2].known(3) {
		t.Fatal("node 3 was added, and not every founder knows where it listens")
	}
	var st *NodeInfo
	deadline := time.Now().Add(10 * time.Second)
	for {
		st = c.infos()[3]
		if st != nil && st.Summary.Config.IsVoter(3) && st.Keys == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 3 did not become a voter holding the key: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.Summary.Role == core.Leader {
		t.Log("node 3 leads")
	}

	// Its floor file lost, node 3 restarts with a log and votes for no
	// one (the log may be behind the lost floor); the status says so, and
	// "add 3" (GiveVoteFloor) gives it a floor again.
	n3.Stop()
	if err := os.Remove(filepath.Join(dir, "n3", voteFloorFile)); err != nil {
		t.Fatal(err)
	}
	if n3, err = StartNode(NodeConfig{ID: 3, Cluster: "j", Peers: joinPeers, Join: true, DataDir: filepath.Join(dir, "n3")}); err != nil {
		t.Fatal(err)
	}
	defer n3.Stop()
	mute := func() bool {
		for _, st := range c.Status() {
			if st.ID == 3 {
				return st.NoVotes
			}
		}
		t.Fatal("node 3 is not in the status")
		return false
	}
	if !mute() {
		t.Fatal("node 3, restarted without its floor file, is not shown to vote for no one")
	}
	if given, err := c.GiveVoteFloor(3); err != nil || !given {
		t.Fatalf("GiveVoteFloor(3) = %v, %v; want a floor given", given, err)
	}
	if mute() {
		t.Fatal("node 3, given a floor, still votes for no one")
	}
	if given, err := c.GiveVoteFloor(3); err != nil || given {
		t.Fatalf("GiveVoteFloor(3) again = %v, %v; want nothing to do", given, err)
	}
}

// TestFoundersAndLaterNodes: with Founders, the address book lists a node
// to be added later; started with the same flags, it joins instead of
// founding a cluster of its own, and is added.
func TestFoundersAndLaterNodes(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	book := freeAddrs(t, 3)
	founders := []int{0, 1}
	dir := t.TempDir()
	nodes := startNodes(t, 3, NodeConfig{Cluster: "f", Peers: book, Founders: founders}, dir)
	defer stopNodes(nodes)
	c, err := Connect(ClusterConfig{Addrs: []string{book[0], book[1], book[2]}, Cluster: "f"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if _, _, err := c.CheckUniqueLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := c.IDs(); len(got) != 2 {
		t.Fatalf("the founders are %v, want 0 and 1", got)
	}
	if sum := nodes[2].Server().Node().Summary(); len(sum.Config.Voters) != 0 {
		t.Fatalf("node 2, not a founder, founded a configuration: %+v", sum.Config)
	}
	if err := c.AddServer(2); err != nil {
		t.Fatal(err)
	}
	if got := c.IDs(); len(got) != 3 {
		t.Fatalf("after add 2 the cluster is %v", got)
	}
	if _, err := StartNode(NodeConfig{ID: 0, Peers: book, Founders: []int{7}, DataDir: filepath.Join(dir, "x")}); err == nil || !strings.Contains(err.Error(), "founder 7 is not in the peers") {
		t.Fatalf("a founder outside the peers: %v", err)
	}
}

// startNodes starts nodes 0..n-1 configured as cfg, each with a data dir
// in dir; the caller stops them (stopNodes, deferred after leaktest's
// check, so that it runs first).
func startNodes(t *testing.T, n int, cfg NodeConfig, dir string) []*Node {
	t.Helper()
	var nodes []*Node
	for id := range n {
		c := cfg
		c.ID, c.DataDir = id, filepath.Join(dir, fmt.Sprintf("node-%d", id))
		node, err := StartNode(c)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, node)
	}
	return nodes
}

func stopNodes(nodes []*Node) {
	for _, n := range nodes {
		n.Stop()
	}
}

// TestConnectWaitsForANodeStarting: a node that starts a moment after the
// client still answers its Connect; a node of another cluster is refused
// at once, not waited for.
func TestConnectWaitsForANodeStarting(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	book := freeAddrs(t, 1)
	dir := t.TempDir()
	started := make(chan *Node, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // the node comes up after the client tries
		n, err := StartNode(NodeConfig{ID: 0, Cluster: "w", Peers: book, DataDir: dir})
		if err != nil {
			t.Error(err)
		}
		started <- n
	}()
	c, err := Connect(ClusterConfig{Addrs: []string{book[0]}, Cluster: "w"})
	n := <-started
	if n == nil {
		t.FailNow()
	}
	defer n.Stop()
	if err != nil {
		t.Fatalf("connecting to a node starting: %v", err)
	}
	c.Shutdown()
	t0 := time.Now()
	if _, err := Connect(ClusterConfig{Addrs: []string{book[0]}, Cluster: "other"}); err == nil || !strings.Contains(err.Error(), "is not this node's cluster") {
		t.Fatalf("another cluster: %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("a refusal was waited on for %v", d)
	}
}

// TestFaultsOutliveTheREPL: faults set by one connection are in force in
// the nodes after it leaves; the next connection sees them and heals them.
func TestFaultsOutliveTheREPL(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	book := freeAddrs(t, 3)
	nodes := startNodes(t, 3, NodeConfig{Cluster: "h", Peers: book}, t.TempDir())
	defer stopNodes(nodes)
	addrs := []string{book[0], book[1], book[2]}
	c, err := Connect(ClusterConfig{Addrs: addrs, Cluster: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Partition([]int{0}, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetMaxDelay(5 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	c.Shutdown()
	c2, err := Connect(ClusterConfig{Addrs: addrs, Cluster: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Shutdown()
	if _, delay := c2.NetworkSettings(); delay != 5*time.Millisecond {
		t.Fatalf("the second connection sees a delay of %v", delay)
	}
	if nodes[1].faults.Linked(0, 1) {
		t.Fatal("the partition was not in force in node 1")
	}
	c2.Heal()
	for _, n := range nodes {
		if !n.faults.Linked(0, 1) || !n.faults.Linked(1, 0) {
			t.Fatal("heal from the second connection left the partition in a node")
		}
	}
}

// forward relays every connection to ln to target, as a published port
// of a container does; it stops with ln.
func forward(t *testing.T, ln net.Listener, target string) {
	t.Helper()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			go func() { io.Copy(out, in); out.Close() }() //nolint:errcheck // a relay: either side may close
			go func() { io.Copy(in, out); in.Close() }()  //nolint:errcheck
		}
	}()
}

// TestAddFindsNodeAtSpareAddress: the client reaches the node it adds at
// an address of its own (given to Connect before the node ran, as the
// host port of a container), while the peers keep the address the node
// gives them, also when the add is tried again.
func TestAddFindsNodeAtSpareAddress(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	book := freeAddrs(t, 4)
	founders := map[int]string{0: book[0], 1: book[1], 2: book[2]}
	dir := t.TempDir()
	nodes := startNodes(t, 3, NodeConfig{Cluster: "sp", Peers: founders}, dir)
	defer stopNodes(nodes)
	published, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer published.Close()
	c, err := Connect(ClusterConfig{Addrs: []string{book[0], book[1], book[2], published.Addr().String()}, Cluster: "sp"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if _, _, err := c.CheckUniqueLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	n3, err := StartNode(NodeConfig{ID: 3, Cluster: "sp", Peers: book, Join: true, DataDir: filepath.Join(dir, "n3")})
	if err != nil {
		t.Fatal(err)
	}
	defer n3.Stop()
	forward(t, published, book[3])
	// A first add that fails after the node was found (as a vote floor
	// that times out would): the add again must still give the peers the
	// node's own address, not the one this client reaches it at.
	if err := c.prepareNew(3); err != nil {
		t.Fatal(err)
	}
	c.forget([]int{3})
	if err := c.AddServer(3); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	reach := c.book[3]
	c.mu.Unlock()
	if reach != published.Addr().String() {
		t.Errorf("the client reaches node 3 at %s, want the spare address %s", reach, published.Addr())
	}
	for id, n := range nodes {
		n.mu.Lock()
		got := n.book[3]
		n.mu.Unlock()
		if got != book[3] {
			t.Errorf("node %d knows node 3 at %s, want the address node 3 gives, %s", id, got, book[3])
		}
	}
}
