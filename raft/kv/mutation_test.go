package kv_test

import (
	"testing"

	"raft-consensus/raft/kv"
	"raft-consensus/raft/sim"
)

// TestSimulationCatchesDoubleApply plants a bug in the state machine (a
// retried write applied twice) and expects the simulation to catch it.
func TestSimulationCatchesDoubleApply(t *testing.T) {
	const limit = 300
	res, ok := sim.FirstFailure(limit, sim.Options{Store: kv.NewStoreApplyingRetries})
	if !ok {
		t.Fatalf("%d seeds ran a store that applies retries twice and none failed", limit)
	}
	t.Logf("a retried write applied twice: caught by seed %d: %v", res.Seed, res.Err)
}
