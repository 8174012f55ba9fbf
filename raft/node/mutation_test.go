package node_test

import (
	"testing"

	"raft-consensus/raft/node"
	"raft-consensus/raft/sim"
)

// TestSimulationCatchesBrokenDrivers plants a bug in the driver and
// expects the simulation, which runs the shipped driver, to catch it
// within the stated number of seeds.
func TestSimulationCatchesBrokenDrivers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int64
		brk   func(*node.DriverConfig)
	}{
		{"replies sent before their Save", 300, node.BreakReplyBeforeSave},
		{"a follower acknowledging entries before they are durable", 300, node.BreakFollowerWrites},
		{"the leader counting its own unwritten entries", 300, node.BreakLeaderSelfCount},
	} {
		res, ok := sim.FirstFailure(tc.limit, sim.Options{Driver: tc.brk})
		if !ok {
			t.Errorf("%s: %d seeds ran the broken driver and none failed", tc.name, tc.limit)
			continue
		}
		t.Logf("%s: caught by seed %d: %v", tc.name, res.Seed, res.Err)
	}
}
