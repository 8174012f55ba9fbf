package core_test

import (
	"testing"

	"raft-consensus/raft/core"
	"raft-consensus/raft/sim"
)

// TestSimulationCatchesBrokenCores breaks a safety rule of the core on
// purpose and expects the simulation to notice within 2000 seeds.
func TestSimulationCatchesBrokenCores(t *testing.T) {
	cases := []struct {
		name    string
		breakIt func(*core.CoreConfig)
	}{
		{"votes for stale logs (no §5.4.1 election restriction)", core.BreakElectionRestriction},
		{"commits old-term entries by counting (no §5.4.2 rule)", core.BreakCommitRule},
	}
	for _, tc := range cases {
		caught := false
		for seed := int64(1); seed <= 2000 && !caught; seed++ {
			err := sim.RunSeed(seed, sim.Options{Core: tc.breakIt}).Err
			if err != nil {
				t.Logf("%s: seed %d caught it: %v", tc.name, seed, err)
				caught = true
			}
		}
		if !caught {
			t.Errorf("%s: 2000 seeds ran the broken core and none failed", tc.name)
		}
	}
}
