package raft

import (
	"testing"
	"time"

	"raft-consensus/raft/core"

	"github.com/fortytw2/leaktest"
)

// The original prototype's election scenarios, over real TCP.

func TestElectionNormal(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	h.checkSingleLeader()
}

func TestElectionLeaderDisconnect(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, term := h.checkSingleLeader()
	h.must(h.DisconnectPeer(leader))
	newLeader, newTerm := h.checkSingleLeader()
	if newLeader == leader {
		t.Fatalf("the disconnected leader %d still leads", leader)
	}
	if newTerm <= term {
		t.Fatalf("new leader's term %d, want > %d", newTerm, term)
	}
}

func TestElectionLeaderAndFollowerDisconnect(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	h.must(h.DisconnectPeer(leader))
	follower := (leader + 1) % 3
	h.must(h.DisconnectPeer(follower))
	// The last connected server has no majority: it must never lead.
	h.checkNoLeader()
	h.must(h.ReconnectPeer(follower))
	h.checkSingleLeader()
}

func TestElectionLeaderDisconnectAndReconnect(t *testing.T) {
	testLeaderDisconnectAndReconnect(t, 3)
}

func TestElectionLeaderDisconnectAndReconnect5Nodes(t *testing.T) {
	testLeaderDisconnectAndReconnect(t, 5)
}

// testLeaderDisconnectAndReconnect: the old leader rejoins as a follower;
// the new leader and its term stay (the old leader stepped down by
// CheckQuorum, and PreVote keeps it from raising the term).
func testLeaderDisconnectAndReconnect(t *testing.T, n int) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, n)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	h.must(h.DisconnectPeer(leader))
	newLeader, newTerm := h.checkSingleLeader()
	h.must(h.ReconnectPeer(leader))
	// Let the old leader hear from the new one and settle.
	h.waitRole(leader, core.Follower, newTerm)
	again, againTerm := h.checkSingleLeader()
	if again != newLeader || againTerm != newTerm {
		t.Fatalf("after the old leader rejoined: leader %d term %d, want %d term %d", again, againTerm, newLeader, newTerm)
	}
}

// waitRole waits until server id has the role in the given term.
func (h *harness) waitRole(id int, role core.Role, term uint64) {
	h.t.Helper()
	err := h.poll(waitTimeout, func() (bool, error) {
		for _, st := range h.Status() {
			if st.ID == id {
				return st.Role == role && st.Term == term, nil
			}
		}
		return false, nil
	})
	if err != nil {
		h.t.Fatalf("node %d did not become %v in term %d: %v", id, role, term, err)
	}
}

func TestElectionDisconnectAllAndReconnectAll(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	h.checkSingleLeader()
	for i := range 3 {
		h.must(h.DisconnectPeer(i))
	}
	h.checkNoLeader()
	for i := range 3 {
		h.must(h.ReconnectPeer(i))
	}
	h.checkSingleLeader()
}

// TestElectionFollowerDisconnectAndReconnect: with PreVote the follower,
// cut off, cannot raise its term, so its return disturbs nobody.
func TestElectionFollowerDisconnectAndReconnect(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, term := h.checkSingleLeader()
	follower := (leader + 1) % 3
	h.must(h.DisconnectPeer(follower))
	sleepMs(650) // two election timeouts cut off
	h.must(h.ReconnectPeer(follower))
	h.waitRole(follower, core.Follower, term)
	again, againTerm := h.checkSingleLeader()
	if again != leader || againTerm != term {
		t.Fatalf("leader %d term %d after the follower returned, want %d term %d", again, againTerm, leader, term)
	}
}

func TestElectionDisconnectReconnectLoop(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	for cycle := range 5 {
		leader, _ := h.checkSingleLeader()
		h.must(h.DisconnectPeer(leader))
		other := (leader + 1 + cycle%2) % 3
		h.must(h.DisconnectPeer(other))
		h.checkNoLeader()
		h.must(h.ReconnectPeer(other))
		h.must(h.ReconnectPeer(leader))
	}
	h.checkSingleLeader()
}

func TestElectionFollowerDisconnectReconnectAfterLong(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, term := h.checkSingleLeader()
	follower := (leader + 1) % 3
	h.must(h.DisconnectPeer(follower))
	sleepMs(1200) // many election timeouts
	h.must(h.ReconnectPeer(follower))
	h.waitRole(follower, core.Follower, term)
	again, againTerm := h.checkSingleLeader()
	if again != leader || againTerm != term {
		t.Fatalf("leader %d term %d after a long absence, want %d term %d", again, againTerm, leader, term)
	}
}
