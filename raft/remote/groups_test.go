package remote

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/lincheck"
	"raft-consensus/raft/multi"
)

// TestNodesOfManyGroups runs three nodes of 8 groups each as the node
// command does (shared log in each data dir, frame streams between them,
// clients on the same port), drives them through a GroupedCluster across
// a partition, a node stopped and started again on its data dir, and
// checks that every acknowledged write is there and the history is
// linearizable key by key.
func TestNodesOfManyGroups(t *testing.T) {
	defer leaktest.CheckTimeout(t, 15*time.Second)()
	book := freeAddrs(t, 3)
	dir := t.TempDir()
	cfg := NodeConfig{Cluster: "g", Peers: book, Groups: 8}
	nodes := startNodes(t, 3, cfg, dir)
	defer func() { stopNodes(nodes) }()
	cl, err := ConnectAny(ClusterConfig{Addrs: []string{book[0], book[1], book[2]}, Cluster: "g"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Shutdown()
	c, ok := cl.(*GroupedCluster)
	if !ok {
		t.Fatalf("ConnectAny to nodes of 8 groups gave a %T", cl)
	}
	if c.GroupCount() != 8 {
		t.Fatalf("%d groups", c.GroupCount())
	}
	if _, err := c.WaitLeaders(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	write := func(round string, n int) {
		t.Helper()
		for i := range n {
			key := fmt.Sprintf("k%d", i)
			val := fmt.Sprintf("%s-%d", round, i)
			if _, err := c.Do(kv.OpSet, key, val, core.None); err != nil {
				t.Fatalf("%s: set %s: %v", round, key, err)
			}
			want[key] = val
		}
	}
	write("first", 24)
	groupsUsed := map[uint64]bool{}
	for key := range want {
		groupsUsed[c.GroupOf(key)] = true
	}
	if len(groupsUsed) < 6 {
		t.Fatalf("24 keys went to only %d of 8 groups", len(groupsUsed))
	}

	// A partition: the majority side goes on.
	if err := c.Partition([]int{0}, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	write("partitioned", 12)
	c.Heal()

	// Node 0 stops, and starts again on its data dir: every group comes
	// back from the shared log.
	nodes[0].Stop()
	write("without-0", 12)
	n0cfg := cfg
	n0cfg.ID, n0cfg.DataDir = 0, filepath.Join(dir, "node-0")
	if nodes[0], err = StartNode(n0cfg); err != nil {
		t.Fatal(err)
	}
	write("after", 6)
	// Every replica of node 0 catches up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		reps := c.replicas(nil)
		behind := 0
		for g := range multi.GroupID(8) {
			l, lr := reps[1][g], reps[0][g]
			if lr.Applied < l.Summary.Commit && lr.Applied < reps[2][g].Summary.Commit {
				behind++
			}
		}
		if len(reps[0]) == 8 && behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 0 has %d replicas, %d behind, 10 s after its restart", len(reps[0]), behind)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for key, val := range want {
		res, err := c.Do(kv.OpGet, key, "", core.None)
		if err != nil || !res.Found || res.Value != val {
			t.Fatalf("get %s: %+v, %v; want %q", key, res, err, val)
		}
	}
	if r := lincheck.CheckLinearizable(c.History(), 10*time.Second); !r.Linearizable() {
		t.Fatal("the history is not linearizable")
	}
	for _, g := range c.Groups() {
		if g.Replicas != 3 {
			t.Errorf("group %d has %d replicas", g.ID, g.Replicas)
		}
	}

	// A command for another group than its key's is refused.
	key := "k0"
	wrong := (c.GroupOf(key) + 1) % 8
	e := &Endpoint{id: 1, addr: book[1], dialer: c.dialer, group: wrong}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := e.Do(ctx, kv.Command{Op: kv.OpGet, Key: key}); err == nil || !strings.Contains(err.Error(), "is in group") {
		t.Fatalf("a read of %s sent to group %d: %v", key, wrong, err)
	}
}

// TestNodeOfManyGroupsMisconfiguration: the number of groups is checked
// against the data dir (and between nodes), and a bad number of groups is
// refused.
func TestNodeOfManyGroupsMisconfiguration(t *testing.T) {
	defer leaktest.Check(t)()
	book := freeAddrs(t, 3)
	dir := t.TempDir()
	n, err := StartNode(NodeConfig{ID: 0, Cluster: "m", Peers: book, DataDir: filepath.Join(dir, "g8"), Groups: 8})
	if err != nil {
		t.Fatal(err)
	}
	n.Stop()
	one, err := StartNode(NodeConfig{ID: 0, Cluster: "m", Peers: book, DataDir: filepath.Join(dir, "g1")})
	if err != nil {
		t.Fatal(err)
	}
	one.Stop()
	for _, c := range []struct {
		name string
		cfg  NodeConfig
		want string
	}{
		{"another number of groups", NodeConfig{ID: 0, Cluster: "m", Peers: book, DataDir: filepath.Join(dir, "g8"), Groups: 4}, "belongs to a node of 8 groups, not 4 groups"},
		{"one group on a dir of many", NodeConfig{ID: 0, Cluster: "m", Peers: book, DataDir: filepath.Join(dir, "g8")}, "belongs to a node of 8 groups, not one group"},
		{"many groups on a dir of one", NodeConfig{ID: 0, Cluster: "m", Peers: book, DataDir: filepath.Join(dir, "g1"), Groups: 8}, "belongs to a node of one group, not 8 groups"},
		{"too many groups", NodeConfig{ID: 0, Cluster: "m", Peers: book, DataDir: filepath.Join(dir, "x"), Groups: 100000}, "the number of groups must be"},
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
	// Two nodes of one cluster started with different -groups refuse
	// each other's streams (keys would map to different groups).
	var logged logLines
	a, err := StartNode(NodeConfig{ID: 0, Cluster: "d", Peers: book, DataDir: filepath.Join(dir, "d0"), Groups: 8, Logf: logged.logf})
	if err != nil {
		t.Fatal(err)
	}
	b, err := StartNode(NodeConfig{ID: 1, Cluster: "d", Peers: book, DataDir: filepath.Join(dir, "d1"), Groups: 4, Logf: t.Logf})
	if err != nil {
		a.Stop()
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logged.text(), "node 1 hosts 4 groups (-groups 4), this node 8 groups (-groups 8)") {
		if time.Now().After(deadline) {
			t.Errorf("node 0 did not refuse node 1 of another -groups; it logged:\n%s", logged.text())
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Stop()
	a.Stop()
	// -groups 1 is the single-group node, on the same dir as no -groups.
	n1, err := StartNode(NodeConfig{ID: 0, Cluster: "m", Peers: book, DataDir: filepath.Join(dir, "g1"), Groups: 1})
	if err != nil {
		t.Fatalf("-groups 1 on a single-group dir: %v", err)
	}
	n1.Stop()
}

// TestLostIdentityIsRefused: a data dir whose log (one group's, or the
// shared log of many) outlived its identity.json is refused, not taken for
// a fresh dir (which would bootstrap a new configuration over the log).
func TestLostIdentityIsRefused(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	for _, groups := range []int{0, 4} {
		book := freeAddrs(t, 1)
		dir := t.TempDir()
		cfg := NodeConfig{ID: 0, Cluster: "l", Peers: book, DataDir: dir, Groups: groups}
		n, err := StartNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := ConnectAny(ClusterConfig{Addrs: []string{book[0]}, Cluster: "l"})
		if err != nil {
			n.Stop()
			t.Fatal(err)
		}
		_, err = cl.Do(kv.OpSet, "k", "v", core.None)
		cl.Shutdown()
		n.Stop()
		if err != nil {
			t.Fatalf("groups %d: set: %v", groups, err)
		}
		if err := os.Remove(filepath.Join(dir, identityFile)); err != nil {
			t.Fatal(err)
		}
		n, err = StartNode(cfg)
		if err == nil {
			n.Stop()
			t.Fatalf("groups %d: started on a log without its identity", groups)
		}
		if !strings.Contains(err.Error(), "holds a log") {
			t.Fatalf("groups %d: %v, want it to say the dir holds a log", groups, err)
		}
		if _, err := os.Stat(filepath.Join(dir, raftDir)); groups == 0 && err != nil {
			t.Fatalf("the refused start removed the log: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, groupsDir)); groups > 0 && err != nil {
			t.Fatalf("the refused start removed the shared log: %v", err)
		}
	}
}

// TestGroupListIsChecked: the group ids an admin call names are checked
// before the node goroutine walks them: in range, at most the number of
// groups, duplicates dropped.
func TestGroupListIsChecked(t *testing.T) {
	n := &Node{cfg: NodeConfig{Groups: 8}}
	if got, err := n.groupList([]uint64{3, 1, 3, 3}); err != nil || !slices.Equal(got, []multi.GroupID{3, 1}) {
		t.Fatalf("3 1 3 3: %v, %v", got, err)
	}
	if got, err := n.groupList(nil); err != nil || got != nil {
		t.Fatalf("nil: %v, %v", got, err)
	}
	for _, c := range []struct {
		ids  []uint64
		want string
	}{
		{[]uint64{8}, "there is no group 8 (groups 0 to 7)"},
		{[]uint64{1 << 63}, "there is no group"},
		{make([]uint64, 9), "9 group ids, and there are 8 groups"},
		{make([]uint64, 5_000_000), "5000000 group ids"},
	} {
		if _, err := n.groupList(c.ids); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%d ids: %v, want %q", len(c.ids), err, c.want)
		}
	}
}

// logLines keeps what a node logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
