package core_test

import (
	"testing"

	"raft-consensus/raft/core"
)

// TestVoteFloor: a replica created empty for a running group, with the
// position of the group's leader at its creation (term 5, commit 30) as
// its floor, refuses its vote and pre-vote to a candidate whose log is
// behind that position (a stale server holding an old configuration that
// names this node id), and grants them to one whose log reaches it (a
// leader of the configuration that adds it). Without the rule (the broken variant) the
// stale candidate gets both.
func TestVoteFloor(t *testing.T) {
	vote := func(c *core.Core, preVote bool, lastTerm uint64, lastIndex ...uint64) bool {
		t.Helper()
		term := c.Term() + 1
		index := uint64(40)
		if len(lastIndex) > 0 {
			index = lastIndex[0]
		}
		r := c.Step(core.Message{Type: core.MsgRequestVote, From: 0, To: 2, Term: term, PreVote: preVote,
			LastLogIndex: index, LastLogTerm: lastTerm})
		return r != nil && r.VoteGranted
	}
	fresh := func(broken bool) *core.Core {
		t.Helper()
		cfg := testCoreConfig(2)
		if broken {
			core.BreakVoteFloor(&cfg)
		}
		c, err := core.NewCore(cfg, core.InitialState{VoteFloor: core.VoteFloor{Term: 5, Index: 30}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, preVote := range []bool{true, false} {
		if vote(fresh(false), preVote, 4) {
			t.Errorf("prevote %v: a candidate whose log ends in term 4 got the vote of a replica created in term 5", preVote)
		}
		if vote(fresh(false), preVote, 5, 29) {
			t.Errorf("prevote %v: a candidate whose log ends at (5, 29) got the vote of a replica with floor (5, 30)", preVote)
		}
		if !vote(fresh(false), preVote, 5, 30) || !vote(fresh(false), preVote, 6, 1) {
			t.Errorf("prevote %v: a candidate at or past the floor (5, 30) was refused", preVote)
		}
		if !vote(fresh(true), preVote, 4) {
			t.Errorf("prevote %v: the broken variant refused the stale candidate: the test cannot tell the rule is there", preVote)
		}
	}
	// Without a floor (a founder's replica), an empty log votes for
	// any candidate, as Figure 2 says.
	c, err := core.NewCore(testCoreConfig(2), core.InitialState{})
	if err != nil {
		t.Fatal(err)
	}
	if !vote(c, false, 1) {
		t.Error("an empty replica without a floor refused a candidate")
	}
	// A server that joins empty waits with NoVotes until the add gives it
	// its floor (SetVoteFloor).
	c, err = core.NewCore(testCoreConfig(2), core.InitialState{VoteFloor: core.NoVotes})
	if err != nil {
		t.Fatal(err)
	}
	if vote(c, true, 1000, 1000) || vote(c, false, 1000, 1000) {
		t.Error("a replica waiting for its floor (NoVotes) voted")
	}
	c.SetVoteFloor(core.VoteFloor{Term: 5, Index: 30})
	if vote(c, false, 4) || !vote(c, false, 5, 30) {
		t.Error("after SetVoteFloor (5, 30), the replica does not vote by that floor")
	}
}
