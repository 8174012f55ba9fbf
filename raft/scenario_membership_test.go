package raft

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/lincheck"

	"github.com/fortytw2/leaktest"
)

// Membership changes, one server at a time (thesis §4), leadership
// transfer (§3.10), PreVote (§9.6) and CheckQuorum (§6.2) over real TCP.

func TestAddNewServer(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	h.checkSingleLeader()
	for c := 1; c <= 10; c++ {
		h.submitToLeader(c)
	}
	h.checkCommittedN(10, 3)
	h.must(h.AddServer(3))
	// The new server caught up and is a voter.
	h.checkCommittedN(10, 4)
	for _, st := range h.Status() {
		if st.Member != "voter" {
			t.Fatalf("node %d is %s after the addition", st.ID, st.Member)
		}
	}
	// It counts in the quorum now: with two of four down, nothing commits.
	leader, _ := h.checkSingleLeader()
	others := []int{}
	for _, id := range h.IDs() {
		if id != leader {
			others = append(others, id)
		}
	}
	h.must(h.DisconnectPeer(others[0]))
	h.must(h.DisconnectPeer(others[1]))
	h.submit(leader, 11)
	h.checkNotCommitted(11)
	h.must(h.ReconnectPeer(others[0]))
	h.must(h.ReconnectPeer(others[1]))
	h.checkCommittedN(11, 4)
	if err := h.AddServer(3); err == nil {
		t.Fatal("adding an existing member succeeded")
	}
}

// An add that no leader ever took (every server down) is undone: the new
// server goes, and the same add succeeds once the cluster is back.
func TestAddWithoutLeaderIsUndone(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	h.checkSingleLeader()
	h.submitToLeader(1)
	h.checkCommittedN(1, 3)
	for id := range 3 {
		h.must(h.CrashPeer(id))
	}
	if err := h.AddServer(3); err == nil {
		t.Fatal("adding a server to a cluster with every server down succeeded")
	}
	if ids := h.IDs(); len(ids) != 3 {
		t.Fatalf("after the failed add the cluster has nodes %v, want 0–2", ids)
	}
	for id := range 3 {
		h.must(h.RestartPeer(id))
	}
	h.checkSingleLeader()
	h.must(h.AddServer(3))
	h.checkCommittedN(1, 4)
}

func TestRemoveServerNonLeader(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 5)
	defer h.Shutdown()
	leader, term := h.checkSingleLeader()
	victim := (leader + 1) % 5
	h.must(h.RemoveServer(victim))
	for _, id := range h.IDs() {
		if id == victim {
			t.Fatalf("node %d still listed after its removal", victim)
		}
	}
	h.submitToLeader(1)
	h.checkCommittedN(1, 4)
	again, againTerm := h.checkSingleLeader()
	if again != leader || againTerm != term {
		t.Fatalf("removing a follower changed the leader: %d term %d, was %d term %d", again, againTerm, leader, term)
	}
	if err := h.RemoveServer(victim); err == nil {
		t.Fatal("removing a non-member succeeded")
	}
}

func TestRemoveLeader(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	h.submitToLeader(1)
	h.checkCommittedN(1, 3)
	h.must(h.RemoveServer(leader))
	newLeader, _ := h.checkSingleLeader()
	if newLeader == leader {
		t.Fatal("the removed leader still leads")
	}
	h.submitToLeader(2)
	h.checkCommittedN(2, 2)
}

func TestRemoveDownToOneVoterThenRefuse(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	h.checkSingleLeader()
	ids := h.IDs()
	h.must(h.RemoveServer(ids[0]))
	h.must(h.RemoveServer(ids[1]))
	if err := h.RemoveServer(ids[2]); err == nil {
		t.Fatal("removing the last voter succeeded")
	}
	h.submitToLeader(1)
	h.checkCommittedN(1, 1)
}

// TestMembershipChangesUnderLoad adds and removes servers while clients
// write, and checks that no acknowledged write is lost.
func TestMembershipChangesUnderLoad(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	h.checkSingleLeader()
	load := h.startWriters(4, func(c, i int) (string, string) { return fmt.Sprintf("c%d-%d", c, i), "v" })
	changes := []func() error{
		func() error { return h.AddServer(3) },
		func() error { return h.AddServer(4) },
		func() error { return h.RemoveServer(0) },
		func() error { return h.RemoveServer(1) },
		func() error { return h.AddServer(5) },
	}
	for _, change := range changes {
		load.waitWrites(20)
		h.must(change())
	}
	load.waitWrites(20)
	h.checkNothingLost(load.stop(), "5 membership changes")
}

// checkNothingLost reads back every acknowledged write and checks the
// history for linearizability.
func (h *harness) checkNothingLost(acked [][]string, after string) {
	h.t.Helper()
	total := 0
	client := h.NewClient()
	for c := range acked {
		for _, key := range acked[c] {
			if _, found, err := client.Get(context.Background(), key); err != nil || !found {
				h.t.Fatalf("acknowledged write %s lost (found=%v, err=%v)", key, found, err)
			}
			total++
		}
	}
	h.t.Logf("%d acknowledged writes, all present after %s", total, after)
	if res := lincheck.CheckLinearizable(h.History(), 30*time.Second); !res.Linearizable() {
		h.t.Fatalf("history not linearizable: %v", res.Result)
	}
}

// TestJointChangesUnderLoad replaces a majority of the voters, the leader
// among them, in one step and then again, through joint configurations
// (Raft paper §6), while clients write: nothing acknowledged is lost and
// the history stays linearizable.
func TestJointChangesUnderLoad(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	load := h.startWriters(4, func(c, i int) (string, string) { return fmt.Sprintf("c%d-%d", c, i), "v" })
	var rest []int
	for _, id := range h.IDs() {
		if id != leader {
			rest = append(rest, id)
		}
	}
	load.waitWrites(20)
	h.must(h.ChangeMembers([]int{3, 4}, []int{leader, rest[0]}))
	if ids := h.IDs(); !slices.Equal(ids, []int{rest[1], 3, 4}) {
		t.Fatalf("ids after the first change: %v, want %v", ids, []int{rest[1], 3, 4})
	}
	load.waitWrites(20)
	h.must(h.ChangeMembers([]int{5, 6}, []int{3}))
	load.waitWrites(20)
	acked := load.stop()
	for _, st := range h.Status() {
		if st.Member != "voter" {
			t.Fatalf("node %d is %s after the changes", st.ID, st.Member)
		}
	}
	h.checkNothingLost(acked, "two joint changes")
}

// TestPartitionedNodeRejoinDoesNotRaiseTerm: with PreVote, a server cut
// off for many election timeouts rejoins without disturbing the term.
func TestPartitionedNodeRejoinDoesNotRaiseTerm(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 5)
	defer h.Shutdown()
	leader, term := h.checkSingleLeader()
	// The victim must have heard of the leader before it is cut off: the
	// test is about what it does alone, not about a term it never learned.
	h.must(h.poll(waitTimeout, func() (bool, error) {
		for _, st := range h.Status() {
			if st.Term != term || st.Leader != leader {
				return false, nil
			}
		}
		return true, nil
	}))
	victim := (leader + 2) % 5
	rest := []int{}
	for _, id := range h.IDs() {
		if id != victim {
			rest = append(rest, id)
		}
	}
	h.must(h.Partition([]int{victim}, rest))
	sleepMs(1500)
	for _, st := range h.Status() {
		if st.ID == victim && st.Term != term {
			t.Fatalf("the partitioned server's term changed from %d to %d", term, st.Term)
		}
	}
	h.Heal()
	h.submitToLeader(1)
	h.checkCommittedN(1, 5)
	if again, againTerm := h.checkSingleLeader(); again != leader || againTerm != term {
		t.Fatalf("leader %d term %d after the rejoin, was %d term %d", again, againTerm, leader, term)
	}
}

// TestLeaderInMinorityStepsDown: CheckQuorum makes a leader cut off from
// the majority step down instead of claiming leadership forever.
func TestLeaderInMinorityStepsDown(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 5)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	minority := []int{leader, (leader + 1) % 5}
	majority := []int{(leader + 2) % 5, (leader + 3) % 5, (leader + 4) % 5}
	h.must(h.Partition(minority, majority))
	err := h.poll(waitTimeout, func() (bool, error) {
		for _, st := range h.Status() {
			if st.ID == leader {
				return st.Role != core.Leader, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatal("the leader in the minority never stepped down")
	}
	// The majority elected its own leader meanwhile.
	newLeader, _ := h.checkSingleLeader()
	if newLeader == leader || newLeader == minority[1] {
		t.Fatalf("leader %d is in the minority", newLeader)
	}
	h.Heal()
	h.submitToLeader(1)
	h.checkCommittedN(1, 5)
}

func TestLeadershipTransfer(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, term := h.checkSingleLeader()
	target := (leader + 1) % 3
	start := time.Now()
	h.must(h.TransferLeadership(target))
	took := time.Since(start)
	newLeader, newTerm := h.checkSingleLeader()
	if newLeader != target || newTerm != term+1 {
		t.Fatalf("after transfer: leader %d term %d, want %d term %d", newLeader, newTerm, target, term+1)
	}
	t.Logf("transfer took %v", took)
	if err := h.TransferLeadership(target); err == nil {
		t.Fatal("transfer to the current leader succeeded")
	}
	h.submitToLeader(1)
	h.checkCommittedN(1, 3)
}

func TestLeadershipTransferUnderLoad(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	h.checkSingleLeader()
	load := h.startWriters(4, func(_, i int) (string, string) { return "k", fmt.Sprint(i) })
	for i := range 4 {
		load.waitWrites(20)
		leader, _ := h.checkSingleLeader()
		target := (leader + 1 + i%2) % 3
		start := time.Now()
		h.must(h.TransferLeadership(target))
		t.Logf("transfer %d → %d under load took %v", leader, target, time.Since(start))
	}
	load.waitWrites(20)
	load.stop()
	t.Logf("%d writes during 4 transfers", load.writes.Load())
	res := lincheck.CheckLinearizable(h.History(), 30*time.Second)
	if !res.Linearizable() {
		t.Fatalf("history not linearizable: %v", res.Result)
	}
}

// TestLearnerCatchUp10000 measures how long a new server takes to receive
// 10,000 entries and be promoted.
func TestLearnerCatchUp10000(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	const n = 10000
	for c := 1; c <= n; {
		if h.submit(leader, c) {
			c++
		} else {
			leader, _ = h.checkSingleLeader()
		}
	}
	h.checkCommittedN(n, 3)
	start := time.Now()
	h.must(h.AddServer(3))
	took := time.Since(start)
	h.checkCommittedN(n, 4)
	t.Logf("learner caught up %d entries and was promoted in %v", n, took)
}

// writeLoad is clients writing in a loop until stopped, keeping the keys
// of the writes that were acknowledged.
type writeLoad struct {
	h      *harness
	halt   atomic.Bool
	wg     sync.WaitGroup
	writes atomic.Int64
	acked  [][]string // per client
}

// startWriters starts n clients; client c's i-th write is kv(c, i).
func (h *harness) startWriters(n int, kv func(c, i int) (key, value string)) *writeLoad {
	l := &writeLoad{h: h, acked: make([][]string, n)}
	for c := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			client := h.NewClient()
			for i := 0; !l.halt.Load(); i++ {
				key, value := kv(c, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if client.Set(ctx, key, value) == nil {
					l.acked[c] = append(l.acked[c], key)
					l.writes.Add(1)
				}
				cancel()
			}
		}()
	}
	return l
}

// waitWrites waits until n more writes have been acknowledged, so that a
// change happens under load rather than before the load starts.
func (l *writeLoad) waitWrites(n int64) {
	l.h.t.Helper()
	target := l.writes.Load() + n
	if err := l.h.poll(waitTimeout, func() (bool, error) { return l.writes.Load() >= target, nil }); err != nil {
		l.h.t.Fatalf("writes stalled at %d, waiting for %d", l.writes.Load(), target)
	}
}

// stop stops the clients and returns the acknowledged keys, per client.
func (l *writeLoad) stop() [][]string {
	l.halt.Store(true)
	l.wg.Wait()
	return l.acked
}
