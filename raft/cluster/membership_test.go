package cluster

import (
	"testing"

	"raft-consensus/raft/core"
)

func TestNextStep(t *testing.T) {
	isVoter3 := func(c core.Configuration) bool { return c.IsVoter(3) }
	gone3 := func(c core.Configuration) bool { return !c.IsMember(3) }
	cfg := func(voters []int, learners ...int) core.Configuration {
		return core.Configuration{Voters: voters, Learners: learners}
	}
	for _, tt := range []struct {
		name string
		t    core.ConfChangeType
		sum  core.Summary
		done func(core.Configuration) bool
		want Step
	}{
		{"add: not there yet", core.AddLearner, core.Summary{Config: cfg([]int{0, 1, 2}), Commit: 5, ConfigIndex: 1}, isVoter3, Propose},
		// Resuming an add whose learner is already in: wait for the
		// promotion, never propose it again (that is refused).
		{"add: a learner catching up", core.AddLearner, core.Summary{Config: cfg([]int{0, 1, 2}, 3), Commit: 5, ConfigIndex: 4}, isVoter3, Wait},
		{"add: promoted, not committed", core.AddLearner, core.Summary{Config: cfg([]int{0, 1, 2, 3}), Commit: 5, ConfigIndex: 6}, isVoter3, Wait},
		{"add: committed", core.AddLearner, core.Summary{Config: cfg([]int{0, 1, 2, 3}), Commit: 6, ConfigIndex: 6}, isVoter3, Done},
		{"remove: still a member", core.RemoveServer, core.Summary{Config: cfg([]int{0, 1, 2, 3}), Commit: 6, ConfigIndex: 6}, gone3, Propose},
		{"remove: proposed", core.RemoveServer, core.Summary{Config: cfg([]int{0, 1, 2}), Commit: 6, ConfigIndex: 7}, gone3, Wait},
		{"remove: committed", core.RemoveServer, core.Summary{Config: cfg([]int{0, 1, 2}), Commit: 7, ConfigIndex: 7}, gone3, Done},
	} {
		if got := NextStep(tt.t, 3, tt.sum, tt.done); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
