package core_test

import (
	"testing"

	"raft-consensus/raft/core"
)

// LeaderSilent: a follower told its leader fell silent stands first within
// a heartbeat interval and the other survivor grants its vote at once,
// though neither ticked through the silence (a quiesced group's followers
// do not tick).
func TestLeaderSilentLetsTheFirstSurvivorWin(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.campaign(0)
	n.tickAll(3) // the followers have heard from the leader: in its lease
	n.isolate(0)
	n.cores[1].LeaderSilent(true)
	n.cores[2].LeaderSilent(false)
	cfg := testCoreConfig(1)
	for i := range cfg.HeartbeatTicks + 1 {
		if n.cores[1].Role() == core.Leader {
			t.Logf("node 1 leads after %d ticks", i)
			break
		}
		n.tick(1) // node 2 does not tick: its vote must come anyway
		n.deliver()
	}
	if n.cores[1].Role() != core.Leader {
		t.Fatalf("node 1 is %v after a heartbeat interval, want leader", n.cores[1].Role())
	}
}

// Without LeaderSilent the follower in touch with the leader ignores the
// vote (thesis §4.2.3): the test above would fail.
func TestFollowerInLeaseIgnoresTheVote(t *testing.T) {
	n := newCoreNet(t, 3, nil)
	n.campaign(0)
	n.tickAll(3)
	n.isolate(0)
	n.cores[1].LeaderSilent(true)
	for range testCoreConfig(1).HeartbeatTicks + 1 {
		n.tick(1)
		n.deliver()
	}
	if n.cores[1].Role() == core.Leader {
		t.Fatal("node 1 won with the vote of a follower still in its leader's lease")
	}
}
