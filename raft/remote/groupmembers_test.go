package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/lincheck"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/shard"
)

// TestMembershipOfManyGroupsAcrossNodes: on node processes' servers of 4
// groups, a node started with -join is added to every group, a joint
// change replaces a server in one group, a node is removed from every
// group (its replicas dropped), and nodes restarted on their data dirs
// hold exactly the replicas the changes left them; every acknowledged
// write is still there and the history is linearizable.
func TestMembershipOfManyGroupsAcrossNodes(t *testing.T) {
	defer leaktest.CheckTimeout(t, 15*time.Second)()
	const groups = 4
	book := freeAddrs(t, 4)
	founders := map[int]string{0: book[0], 1: book[1], 2: book[2]}
	dir := t.TempDir()
	cfgOf := func(id int) NodeConfig {
		c := NodeConfig{ID: id, Cluster: "mg", Peers: founders, DataDir: filepath.Join(dir, fmt.Sprintf("node-%d", id)), Groups: groups,
			ElectionTimeoutMin: 150 * time.Millisecond, ElectionTimeoutMax: 300 * time.Millisecond, HeartbeatInterval: 30 * time.Millisecond}
		if id == 3 {
			c.Peers, c.Join = book, true
		}
		return c
	}
	nodes := map[int]*Node{}
	start := func(id int) {
		t.Helper()
		n, err := StartNode(cfgOf(id))
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = n
	}
	stop := func(id int) {
		if n := nodes[id]; n != nil {
			n.Stop()
			delete(nodes, id)
		}
	}
	defer func() {
		for id := range nodes {
			stop(id)
		}
	}()
	for id := range 3 {
		start(id)
	}
	c := connectGrouped(t, book, "mg")
	defer c.Shutdown()
	want := map[string]string{}
	write := func(round string) {
		t.Helper()
		for i := range 12 {
			key, val := fmt.Sprintf("k%d", i), fmt.Sprintf("%s-%d", round, i)
			if _, err := c.Do(kv.OpSet, key, val, core.None); err != nil {
				t.Fatalf("%s: set %s: %v", round, key, err)
			}
			want[key] = val
		}
	}
	// hosted are the groups node id holds a replica of, as it reports.
	hosted := func(id int) []multi.GroupID {
		g := groupServers{c}.Hosted(id)
		slices.Sort(g)
		return g
	}
	configOf := func(g uint64) core.Configuration {
		t.Helper()
		for _, gs := range c.Groups() {
			if gs.ID == g {
				return gs.Config
			}
		}
		t.Fatalf("no group %d", g)
		return core.Configuration{}
	}
	write("first")

	// Node 3 started to join hosts nothing until it is added.
	if err := c.AddServer(3); err == nil {
		t.Fatal("node 3 added before it was started")
	}
	start(3)
	if got := hosted(3); len(got) != 0 {
		t.Fatalf("a node started with -join holds replicas %v", got)
	}
	// It tells the founders where it listens (its announce loop).
	deadline := time.Now().Add(10 * time.Second)
	for nodes[0].Book()[3] == "" || nodes[1].Book()[3] == "" || nodes[2].Book()[3] == "" {
		if time.Now().After(deadline) {
			t.Fatal("node 3 did not announce itself to the founders")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.AddServer(3); err != nil {
		t.Fatalf("add 3: %v", err)
	}
	for g := range uint64(groups) {
		if cfg := configOf(g); !cfg.IsVoter(3) {
			t.Fatalf("group %d after add 3: %v", g, cfg)
		}
	}
	write("after-add")

	// A joint change in group 2: node 0 out, in one step with nothing in;
	// then a replacement (3 in, 0 out) is refused as 3 is in already.
	if err := c.ChangeGroup(2, nil, []int{0}); err != nil {
		t.Fatalf("change 2 -0: %v", err)
	}
	if cfg := configOf(2); cfg.IsMember(0) {
		t.Fatalf("group 2 still has node 0: %v", cfg)
	}
	if got := hosted(0); slices.Contains(got, 2) {
		t.Fatalf("node 0 still holds group 2 after leaving it: %v", got)
	}
	if err := c.ChangeGroup(2, []int{3}, []int{0}); err == nil {
		t.Fatal("change 2 +3 -0 accepted with 3 in group 2 and 0 out")
	}
	if err := c.ChangeGroup(9, nil, []int{0}); err == nil {
		t.Fatal("a change of group 9 of 4 accepted")
	}

	// Node 1 leaves every group: its replicas go.
	if err := c.RemoveServer(1); err != nil {
		t.Fatalf("remove 1: %v", err)
	}
	if got := hosted(1); len(got) != 0 {
		t.Fatalf("node 1 removed from every group still holds %v", got)
	}
	if slices.Contains(c.IDs(), 1) {
		t.Fatalf("node 1 is still a node of the cluster: %v", c.IDs())
	}
	stop(1)
	write("without-1")

	// Restarts: node 3 holds every group again (it joined them: its
	// record says so), node 0 every group but 2.
	stop(3)
	stop(0)
	start(0)
	start(3)
	if got := hosted(3); len(got) != groups {
		t.Fatalf("node 3 after its restart holds %v", got)
	}
	if got := hosted(0); !slices.Equal(got, []multi.GroupID{0, 1, 3}) {
		t.Fatalf("node 0 after its restart holds %v, want 0 1 3", got)
	}
	var rec replicaRecord
	if b, err := os.ReadFile(filepath.Join(dir, "node-3", replicasFile)); err != nil || json.Unmarshal(b, &rec) != nil || len(rec.Joined) != groups {
		t.Fatalf("node 3's %s: %+v, %v", replicasFile, rec, err)
	}
	write("after-restarts")
	for key, val := range want {
		res, err := c.Do(kv.OpGet, key, "", core.None)
		if err != nil || !res.Found || res.Value != val {
			t.Fatalf("get %s: %+v, %v; want %q", key, res, err, val)
		}
	}
	if r := lincheck.CheckLinearizable(c.History(), 10*time.Second); !r.Linearizable() {
		t.Fatal("the history is not linearizable")
	}
}

// TestReaddedReplicaNeverBootstraps: a founder whose replica of a group
// was dropped and created again (removed, then added back) and that
// restarts before the leader has sent it anything holds an empty replica
// that waits for the leader: it does not bootstrap the founders'
// configuration again (which could elect a second leader among founders
// that all left the group). Its other groups restart from their logs.
func TestReaddedReplicaNeverBootstraps(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	book := freeAddrs(t, 3) // nodes 1 and 2 never start: nothing reaches node 0
	cfg := NodeConfig{ID: 0, Cluster: "rb", Peers: book, DataDir: t.TempDir(), Groups: 4}
	n, err := StartNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := &Admin{node: n}
	if err := a.DropReplica(&GroupArgs{Group: 2}, &struct{}{}); err != nil {
		n.Stop()
		t.Fatal(err)
	}
	if err := a.CreateReplica(&GroupArgs{Group: 2}, &struct{}{}); err != nil {
		n.Stop()
		t.Fatal(err)
	}
	n.Stop()
	if n, err = StartNode(cfg); err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	srv, err := n.shardServer()
	if err != nil {
		t.Fatal(err)
	}
	reps, err := srv.Replicas(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 4 {
		t.Fatalf("%d replicas after the restart, want 4", len(reps))
	}
	for g, r := range reps {
		voters := r.Summary.Config.Voters
		switch {
		case g == 2 && (r.Summary.LastIndex != 0 || len(voters) != 0):
			t.Errorf("the re-added replica of group 2 bootstrapped: last index %d, voters %v", r.Summary.LastIndex, voters)
		case g != 2 && (r.Summary.LastIndex == 0 || len(voters) != 3):
			t.Errorf("group %d lost its founding configuration: last index %d, voters %v", g, r.Summary.LastIndex, voters)
		}
	}
}

// TestStaleReplicaWinsNoVote: the reviewer's scenario. Node 0 is down
// when group g removes it, so it keeps its replica with the old
// configuration {0,1,2}; node 2 is removed too, g goes on alone on node 1
// and acknowledges a write. Node 0 comes back and campaigns in its old
// configuration while node 2 gets an empty replica of g again, which the
// leader cannot reach yet (a cut link). The empty replica's vote floor
// (the leader's term when it was created) refuses node 0, whose log ends
// in an older term: without it, node 0 would win {0,2} of {0,1,2}, lead
// g beside node 1, and lose the acknowledged write.
func TestStaleReplicaWinsNoVote(t *testing.T) {
	defer leaktest.CheckTimeout(t, 15*time.Second)()
	const groups = 4
	book := freeAddrs(t, 3)
	dir := t.TempDir()
	var logged logLines
	cfgOf := func(id int) NodeConfig {
		return NodeConfig{ID: id, Cluster: "st", Peers: book, DataDir: filepath.Join(dir, fmt.Sprintf("node-%d", id)), Groups: groups,
			ElectionTimeoutMin: 150 * time.Millisecond, ElectionTimeoutMax: 300 * time.Millisecond, HeartbeatInterval: 30 * time.Millisecond,
			Logf: logged.logf}
	}
	nodes := startNodes(t, 3, cfgOf(0), dir) // node-<id> dirs, as cfgOf
	defer func() { stopNodes(nodes) }()
	c := connectGrouped(t, book, "st")
	defer c.Shutdown()
	key := "b"
	g := c.GroupOf(key)
	if err := c.TransferGroup(1, g); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(kv.OpSet, key, "1", core.None); err != nil {
		t.Fatal(err)
	}
	nodes[0].Stop()
	if err := c.RemoveFromGroup(0, g); err == nil || !strings.Contains(err.Error(), "its replica there stays") {
		t.Fatalf("removing node 0, which is down, from group %d: %v, want it to say the replica stays", g, err)
	}
	if err := c.RemoveFromGroup(2, g); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(kv.OpSet, key, "2", core.None); err != nil {
		t.Fatal(err)
	}
	var err error
	if nodes[0], err = StartNode(cfgOf(0)); err != nil {
		t.Fatal(err)
	}
	if err := c.CutLink(1, 2); err != nil {
		t.Fatal(err)
	}
	l, sum := groupServers{c}.Leader(multi.GroupID(g))
	if l != 1 {
		t.Fatalf("group %d is led by %d", g, l)
	}
	floor, err := groupServers{c}.VoteFloor(context.Background(), l, multi.GroupID(g))
	if err != nil || floor != (core.VoteFloor{Term: sum.Term, Index: sum.LastIndex}) {
		t.Fatalf("the leader's vote floor: %+v, %v; want its position (term %d, index %d)", floor, err, sum.Term, sum.LastIndex)
	}
	if _, err := (groupServers{c}).VoteFloor(context.Background(), 0, multi.GroupID(g)); err == nil {
		t.Fatal("node 0, not a member of the group, gave a vote floor")
	}
	if err := (groupServers{c}).CreateReplica(2, multi.GroupID(g), floor); err != nil {
		t.Fatal(err)
	}
	// Node 0 campaigns (a pre-candidate: nobody grants its pre-vote) and
	// never leads, for many election timeouts.
	replica := func(id int) (shard.Replica, bool) {
		srv, err := nodes[id].shardServer()
		if err != nil {
			return shard.Replica{}, false
		}
		reps, err := srv.Replicas([]multi.GroupID{multi.GroupID(g)})
		r, ok := reps[multi.GroupID(g)]
		return r, err == nil && ok
	}
	campaigning := false
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		r, ok := replica(0)
		if !ok {
			t.Fatalf("node 0 lost its stale replica of group %d", g)
		}
		switch r.Summary.Role {
		case core.PreCandidate, core.Candidate:
			campaigning = true
		case core.Leader:
			t.Fatalf("node 0's stale replica of group %d became leader in term %d with the vote of node 2's empty replica", g, r.Summary.Term)
		}
	}
	if !campaigning {
		t.Fatalf("node 0's stale replica of group %d never campaigned: the test shows nothing", g)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.RestoreLink(1, 2))
	must(c.AddToGroup(2, g))
	res, err := c.Do(kv.OpGet, key, "", core.None)
	if err != nil || res.Value != "2" {
		t.Fatalf("get %s: %+v, %v; want the acknowledged 2", key, res, err)
	}
	// The stale replica goes once node 0 answers.
	must(c.RemoveFromGroup(0, g))
	if _, ok := replica(0); ok {
		t.Fatalf("node 0 still holds group %d", g)
	}
	if strings.Contains(logged.text(), "SAFETY VIOLATION") {
		t.Fatalf("a safety violation:\n%s", logged.text())
	}
}

// connectGrouped connects to nodes 0–2 of book, nodes of many groups, and
// waits for every group's leader.
func connectGrouped(t *testing.T, book map[int]string, cluster string) *GroupedCluster {
	t.Helper()
	cl, err := ConnectAny(ClusterConfig{Addrs: []string{book[0], book[1], book[2]}, Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := cl.(*GroupedCluster)
	if !ok {
		cl.Shutdown()
		t.Fatalf("nodes of many groups gave a %T", cl)
	}
	if _, err := c.WaitLeaders(10 * time.Second); err != nil {
		c.Shutdown()
		t.Fatal(err)
	}
	return c
}

// TestNewestMembersLeaveRemovedNodesOut: with no leader to ask (nodes
// just started), the cluster's nodes are guessed from each group's
// latest configuration among the replicas that answered — a node that
// an earlier change removed from every group (0 here) is not one of
// them, though the address books still name it.
func TestNewestMembersLeaveRemovedNodesOut(t *testing.T) {
	rep := func(index uint64, voters ...int) shard.Replica {
		return shard.Replica{Summary: core.Summary{ConfigIndex: index, Config: core.Configuration{Voters: voters}}}
	}
	reps := map[int]map[multi.GroupID]shard.Replica{
		// Node 1 missed group 0's last change (0 out, 3 in); node 2 has it.
		1: {0: rep(4, 0, 1, 2), 1: rep(6, 1, 2, 3)},
		2: {0: rep(7, 1, 2, 3), 1: rep(6, 1, 2, 3)},
		3: {1: rep(6, 1, 2, 3)}, // group 0's replica not created yet
	}
	got := slices.Sorted(maps.Keys(newestMembers(2, reps)))
	if want := []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("newestMembers = %v, want %v", got, want)
	}
	if got := newestMembers(2, nil); len(got) != 0 {
		t.Fatalf("newestMembers of no answers = %v, want none", got)
	}
}
