package cluster

import (
	"fmt"
	"maps"
	"slices"

	"raft-consensus/raft/core"
)

// What both clusters derive the same way from their servers' summaries:
// each server's status, the leader, and the configuration to show.

// StatusOf is a server's status: running with summary sum and its state
// machine at applied, or (running false) crashed. Member is left to the
// caller, who knows the configuration.
func StatusOf(id int, running, connected bool, sum core.Summary, applied uint64) NodeStatus {
	st := NodeStatus{ID: id, Connected: connected, Leader: core.None}
	if running {
		st.Alive = true
		st.Role, st.Term, st.Leader, st.Commit = sum.Role, sum.Term, sum.Leader, sum.Commit
		st.LastIndex, st.SnapshotIndex = sum.LastIndex, sum.SnapshotIndex
		st.LogLength = sum.LastIndex - sum.SnapshotIndex
		st.Applied = applied
		st.NoVotes = sum.NoVotes
	}
	return st
}

// LeaderOf is the running, connected leader with the highest term, or
// core.None.
func LeaderOf(status []NodeStatus) (int, uint64) {
	leader, term := core.None, uint64(0)
	for _, st := range status {
		if st.Alive && st.Connected && st.Role == core.Leader && st.Term >= term {
			leader, term = st.ID, st.Term
		}
	}
	return leader, term
}

// UniqueLeader reports the leader when exactly one running, connected
// server leads (ok); two leaders of one term is an error (ErrTwoLeaders).
func UniqueLeader(status []NodeStatus) (leader int, term uint64, ok bool, err error) {
	leaders := map[uint64][]int{}
	count := 0
	for _, st := range status {
		if st.Alive && st.Connected && st.Role == core.Leader {
			leaders[st.Term] = append(leaders[st.Term], st.ID)
			count++
		}
	}
	for _, t := range slices.Sorted(maps.Keys(leaders)) { // in order: the same message every run
		if ids := leaders[t]; len(ids) > 1 {
			return 0, 0, false, fmt.Errorf("%w: nodes %v lead term %d", ErrTwoLeaders, ids, t)
		}
	}
	if count != 1 {
		return 0, 0, false, nil
	}
	for t, ids := range leaders {
		leader, term = ids[0], t
	}
	return leader, term, true, nil
}

// KnownConfig is the configuration to show, from the running servers'
// summaries (in id order): the leader's of the highest term (a deposed one
// may lag), or else the first server's; false if none runs.
func KnownConfig(sums []core.Summary) (core.Configuration, bool) {
	var cfg core.Configuration
	have, leading := false, uint64(0)
	for _, sum := range sums {
		switch {
		case sum.Role == core.Leader && sum.Term > leading:
			cfg, have, leading = sum.Config, true, sum.Term
		case !have:
			cfg, have = sum.Config, true
		}
	}
	return cfg, have
}
