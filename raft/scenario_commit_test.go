package raft

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"raft-consensus/raft/node"

	"github.com/fortytw2/leaktest"
)

// The original prototype's commit scenarios, over real TCP.

func TestCommitOneCommand(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	if !h.submit(leader, 42) {
		t.Fatalf("leader %d refused the command", leader)
	}
	h.checkCommittedN(42, 3)
}

func TestTryCommitToNonLeader(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	follower := (leader + 1) % 3
	if h.submit(follower, 42) {
		t.Fatalf("follower %d accepted a command", follower)
	}
	h.checkNotCommitted(42)
}

func TestCommitThenLeaderDisconnect(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	h.submit(leader, 5)
	h.submit(leader, 6)
	h.checkCommittedN(6, 3)
	h.must(h.DisconnectPeer(leader))
	newLeader, _ := h.checkSingleLeader()
	if !h.submit(newLeader, 7) {
		t.Fatal("new leader refused a command")
	}
	h.checkCommittedN(7, 2)
}

func TestCommitMultipleCommands(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	for _, c := range []int{42, 55, 81} {
		if !h.submit(leader, c) {
			t.Fatalf("leader refused command %d", c)
		}
	}
	i1, i2, i3 := h.checkCommittedN(42, 3), h.checkCommittedN(55, 3), h.checkCommittedN(81, 3)
	if !(i1 < i2 && i2 < i3) {
		t.Fatalf("commands committed at indices %d, %d, %d: out of order", i1, i2, i3)
	}
	// Every server applied the same sequence.
	want := h.Applied(0)
	for id := 1; id < 3; id++ {
		got := h.Applied(id)
		if !slices.EqualFunc(got, want, sameEntry) {
			t.Fatalf("node %d applied %v, node 0 applied %v", id, got, want)
		}
	}
}

func sameEntry(a, b node.CommitEntry) bool {
	return a.Index == b.Index && a.Term == b.Term && string(a.Command) == string(b.Command)
}

func TestCommitWithDisconnectionAndRecover(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	h.submit(leader, 5)
	h.submit(leader, 6)
	h.checkCommittedN(6, 3)
	follower := (leader + 1) % 3
	h.must(h.DisconnectPeer(follower))
	h.submitToLeader(7)
	h.checkCommittedN(7, 2)
	h.must(h.ReconnectPeer(follower))
	h.checkSingleLeader()
	h.checkCommittedN(7, 3)
	h.submitToLeader(8)
	h.checkCommittedN(8, 3)
}

func TestTryCommitMajorityFailure(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	h.submit(leader, 5)
	h.submit(leader, 6)
	h.checkCommittedN(6, 3)
	f1, f2 := (leader+1)%3, (leader+2)%3
	h.must(h.DisconnectPeer(f1))
	h.must(h.DisconnectPeer(f2))
	h.submit(leader, 8) // accepted or not, it cannot commit without a majority
	h.checkNotCommitted(8)
	h.must(h.ReconnectPeer(f1))
	h.must(h.ReconnectPeer(f2))
	h.submitToLeader(9)
	h.checkCommittedN(9, 3)
}

func TestTryCommitToDCLeader(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	h.submit(leader, 5)
	h.checkCommittedN(5, 3)
	h.must(h.DisconnectPeer(leader))
	// The cut-off leader may still believe it leads: it takes the command,
	// which can never commit.
	h.submit(leader, 6)
	h.checkCommittedN(5, 2)
	newLeader, _ := h.checkSingleLeader()
	if !h.submit(newLeader, 7) {
		t.Fatal("new leader refused a command")
	}
	h.checkCommittedN(7, 2)
	h.must(h.ReconnectPeer(leader))
	h.checkSingleLeader()
	h.checkCommittedN(7, 3)
	// Command 6 was overwritten on the old leader and never applied.
	h.checkNotCommitted(6)
}

func TestTryCommitLeaderDisconnectsShortTime(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	h.submit(leader, 5)
	h.checkCommittedN(5, 3)
	h.must(h.DisconnectPeer(leader))
	sleepMs(90) // shorter than any election timeout
	h.must(h.ReconnectPeer(leader))
	h.submitToLeader(6)
	h.checkCommittedN(6, 3)
}

func TestElectionFollowerDisconnectReconnectAfterLongCommitDone(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, term := h.checkSingleLeader()
	h.submit(leader, 5)
	h.checkCommittedN(5, 3)
	follower := (leader + 1) % 3
	h.must(h.DisconnectPeer(follower))
	for c := 6; c < 16; c++ {
		h.submitToLeader(c)
	}
	h.checkCommittedN(15, 2)
	sleepMs(1200)
	h.must(h.ReconnectPeer(follower))
	h.checkCommittedN(15, 3)
	again, againTerm := h.checkSingleLeader()
	if again != leader || againTerm != term {
		t.Fatalf("leader %d term %d after the follower returned, want %d term %d", again, againTerm, leader, term)
	}
}

func TestCrashFollowerThenLeader(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 5)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	for _, c := range []int{5, 6, 7} {
		h.submit(leader, c)
	}
	h.checkCommittedN(7, 5)
	follower := (leader + 1) % 5
	h.must(h.CrashPeer(follower))
	h.must(h.CrashPeer(leader))
	h.submitToLeader(8)
	h.checkCommittedN(8, 3)
	h.must(h.RestartPeer(follower))
	h.must(h.RestartPeer(leader))
	h.submitToLeader(9)
	h.checkCommittedN(9, 5)
	// The restarted servers replayed everything: 5..9 at the same indices.
	for _, c := range []int{5, 6, 7, 8} {
		h.checkCommittedN(c, 5)
	}
}

// TestCrashAllThenRestart crashes every server of a cluster with durable
// storage and restarts them: every committed entry survives, at its index.
func TestCrashAllThenRestart(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarnessWith(t, SimConfig{Nodes: 3, DataDir: t.TempDir()})
	defer h.Shutdown()
	h.checkSingleLeader()
	indexes := map[int]uint64{}
	for c := 1; c <= 20; c++ {
		h.submitToLeader(c)
	}
	for c := 1; c <= 20; c++ {
		indexes[c] = h.checkCommittedN(c, 3)
	}
	for id := range 3 {
		h.must(h.CrashPeer(id))
	}
	for id := range 3 {
		h.must(h.RestartPeer(id))
	}
	h.checkSingleLeader()
	h.submitToLeader(21)
	h.checkCommittedN(21, 3)
	for c := 1; c <= 20; c++ {
		if got := h.checkCommittedN(c, 3); got != indexes[c] {
			t.Fatalf("command %d at index %d after the restart, was %d", c, got, indexes[c])
		}
	}
}

// TestRestartWithLongLog restarts a follower whose durable log holds
// thousands of entries: it reloads and replays them, and catches up.
func TestRestartWithLongLog(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarnessWith(t, SimConfig{Nodes: 3, DataDir: t.TempDir()})
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	const n = 3000
	for c := 1; c <= n; c++ {
		if !h.submit(leader, c) {
			leader, _ = h.checkSingleLeader()
			c--
		}
	}
	h.checkCommittedN(n, 3)
	follower := (leader + 1) % 3
	h.must(h.CrashPeer(follower))
	start := time.Now()
	h.must(h.RestartPeer(follower))
	h.checkCommittedN(n, 3)
	t.Logf("follower restarted and replayed %d entries in %v", n, time.Since(start))
	h.submitToLeader(n + 1)
	h.checkCommittedN(n+1, 3)
}

// TestDataDirOfAnotherCluster: a data directory that holds a cluster is
// recovered as it was, whatever size was asked for, and says so; one whose
// stored configuration names a node without storage is refused with a
// clear error, not a confused cluster.
func TestDataDirOfAnotherCluster(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	dir := t.TempDir()
	h := newHarnessWith(t, SimConfig{Nodes: 3, DataDir: dir})
	h.checkSingleLeader()
	h.Shutdown()
	five, err := NewClusterSimulator(SimConfig{Nodes: 5, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ids, note := five.IDs(), five.Recovered()
	five.Shutdown()
	if !slices.Equal(ids, []int{0, 1, 2}) || !strings.Contains(note, "the stored configuration: voters=[0 1 2]") {
		t.Fatalf("asked for 5 nodes on a 3-node data directory: nodes %v, %q", ids, note)
	}
	again := newHarnessWith(t, SimConfig{Nodes: 3, DataDir: dir})
	again.checkSingleLeader()
	again.Shutdown()
	if err := os.RemoveAll(filepath.Join(dir, "node-2")); err != nil {
		t.Fatal(err)
	}
	_, err = NewClusterSimulator(SimConfig{Nodes: 3, DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "names node 2, whose storage is not there") {
		t.Fatalf("a data directory without node 2's storage: %v", err)
	}
}
