package core_test

import (
	"testing"

	"raft-consensus/raft/core"
	"raft-consensus/raft/sim"
)

// TestSimulationCatchesReadysCutAtChunkEnds runs the simulation with logs
// of 8-entry chunks, so that Readys, appends, truncations and compactions
// cross chunk boundaries all the time: it must pass, and it must catch a
// Ready that hands out the unstable entries only up to a chunk's end (the
// copy saved would let a follower acknowledge entries not yet durable).
func TestSimulationCatchesReadysCutAtChunkEnds(t *testing.T) {
	defer core.SetLogChunk(8)()
	const seeds = 300
	if res, failed := sim.FirstFailure(seeds, sim.Options{}); failed {
		t.Fatalf("with 8-entry chunks, seed %d failed: %v", res.Seed, res.Err)
	}
	const limit = 2000
	res, ok := sim.FirstFailure(limit, sim.Options{Core: core.BreakUnstableAtChunkEnd})
	if !ok {
		t.Fatalf("%d seeds ran Readys that stop at a chunk's end and none failed", limit)
	}
	t.Logf("a Ready that stops at a chunk's end: seed %d caught it: %v", res.Seed, res.Err)
}
