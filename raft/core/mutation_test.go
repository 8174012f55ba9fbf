package core_test

import (
	"testing"

	"raft-consensus/raft/core"
	"raft-consensus/raft/sim"
)

// TestSimulationCatchesBrokenCores breaks a safety rule of the core on
// purpose and expects the simulation to notice within limit seeds.
func TestSimulationCatchesBrokenCores(t *testing.T) {
	cases := []struct {
		name    string
		breakIt func(*core.CoreConfig)
		params  func(*sim.Params)
	}{
		{"votes for stale logs (no §5.4.1 election restriction)", core.BreakElectionRestriction, nil},
		// Figure 8 needs a new leader to get an old entry to a majority
		// without its no-op, and then a server whose log diverged in a
		// later term to win. The no-op travels in the same AppendEntries
		// as the old entries unless appends are small: with one entry per
		// append the interleaving is twelve times more frequent (6 seeds
		// in 1000 against 1 in 2000).
		{"commits old-term entries by counting (no §5.4.2 rule)", core.BreakCommitRule,
			func(p *sim.Params) { p.Core.MaxEntriesPerAppend = 1 }},
		{"truncates after every accepted append (stale pipelined appends erase acknowledged entries)", core.BreakStaleAppends, nil},
		// Membership faults happen in half the seeds; joint ones in a few of those.
		{"counts only the new voters in a joint configuration (Raft paper §6)", core.BreakJointQuorum,
			func(p *sim.Params) { p.Membership = true }},
		// Staged learners are added in some joint changes of those seeds.
		{"counts staged learners as voters before their promotion (Raft paper §6)", core.BreakStagedLearners,
			func(p *sim.Params) { p.Membership = true }},
	}
	const limit = 2000
	for _, tc := range cases {
		res, ok := sim.FirstFailure(limit, sim.Options{Core: tc.breakIt, Params: tc.params})
		if !ok {
			t.Errorf("%s: %d seeds ran the broken core and none failed", tc.name, limit)
			continue
		}
		t.Logf("%s: seed %d caught it: %v", tc.name, res.Seed, res.Err)
	}
}
