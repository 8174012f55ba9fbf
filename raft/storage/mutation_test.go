package storage_test

import (
	"testing"

	"raft-consensus/raft/sim"
	"raft-consensus/raft/storage"
)

// TestSimulationCatchesBrokenStorage plants a bug in DiskStorage and
// expects the simulation, which runs DiskStorage on its simulated disk,
// to catch it within the stated number of seeds.
func TestSimulationCatchesBrokenStorage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int64
		brk   func(*storage.DiskOptions)
	}{
		{"the WAL acknowledging a Save before fsync", 300, storage.BreakFsync},
		{"a torn tail loaded as if whole", 300, storage.BreakTornTail},
		{"a torn write in a preallocated segment read as corruption", 300, storage.BreakTornByFileEnd},
	} {
		res, ok := sim.FirstFailure(tc.limit, sim.Options{Disk: tc.brk})
		if !ok {
			t.Errorf("%s: %d seeds ran the broken storage and none failed", tc.name, tc.limit)
			continue
		}
		t.Logf("%s: caught by seed %d: %v", tc.name, res.Seed, res.Err)
	}
}
