package core_test

import (
	"testing"

	"raft-consensus/raft/core"
)

// TestLeaderRefusesVotesWhileItLeads: with CheckQuorum, a leader is in
// touch with its current leader (itself) all the time, so it refuses
// pre-votes and ignores votes of a higher term as its followers do (thesis
// §4.2.3), at any point of its check-quorum cycle. A leader that only
// counted the minimum election timeout since its last check granted a
// pre-vote in the second half of every cycle, and then stepped down for the
// vote that followed: a server cut off for a while and healed deposed a
// healthy leader (a newcomer's trial of the REPL, one time in four).
func TestLeaderRefusesVotesWhileItLeads(t *testing.T) {
	cfg := testCoreConfig(0)
	for elapsed := 0; elapsed < cfg.ElectionTicksMax+cfg.ElectionTicksMin; elapsed++ {
		n := newCoreNet(t, 3, nil)
		n.campaign(0)
		l := n.cores[0]
		for range elapsed {
			n.tick(0, 1, 2)
			n.deliver()
		}
		if l.Role() != core.Leader {
			t.Fatalf("after %d ticks node 0 is %v, want leader", elapsed, l.Role())
		}
		term := l.Term()
		ask := core.Message{Type: core.MsgRequestVote, From: 1, To: 0, Term: term + 1,
			LastLogIndex: l.LastIndex(), LastLogTerm: term}
		pre := ask
		pre.PreVote = true
		if r := l.Step(pre); r == nil || r.VoteGranted {
			t.Fatalf("%d ticks into its term, the leader granted a pre-vote for term %d (reply %+v)", elapsed, term+1, r)
		}
		if r := l.Step(ask); (r != nil && r.VoteGranted) || l.Term() != term || l.Role() != core.Leader {
			t.Fatalf("%d ticks into its term, a vote for term %d made the leader a %v of term %d (reply %+v)", elapsed, term+1, l.Role(), l.Term(), r)
		}
		// A transfer's vote (TimeoutNow) still goes through.
		ask.Transfer = true
		if r := l.Step(ask); r == nil || !r.VoteGranted || l.Role() == core.Leader {
			t.Fatalf("%d ticks into its term, the leader refused a transfer's vote (reply %+v, now %v)", elapsed, r, l.Role())
		}
	}
}
