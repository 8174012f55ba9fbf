package multi

import (
	"math/rand"
	"testing"

	"raft-consensus/raft/node"
	"raft-consensus/raft/sim/simdisk"
	"raft-consensus/raft/storage"
)

// TestAppliedOnlyOnceDurable: a group of one voter commits on its own Save;
// the application sees the entry only after the round's Sync (found in
// review: it used to see it before, and a crash there lost it).
func TestAppliedOnlyOnceDurable(t *testing.T) {
	disk := simdisk.New(rand.New(rand.NewSource(1)))
	l, err := storage.OpenSharedLog(disk, "/wal", storage.SharedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var appliedAtSyncs uint64
	applied := false
	h := NewHost(Config{ID: 0, Core: simCoreConfig(), Sync: l.Sync,
		Storage: func(g GroupID) storage.Storage { return l.Group(uint64(g)) },
		Apply: func(g GroupID, batch []node.CommitEntry) {
			for _, e := range batch {
				if string(e.Command) == "x" {
					appliedAtSyncs, applied = l.Stats().Syncs, true
				}
			}
		}})
	if err := h.CreateGroup(1, []NodeID{0}); err != nil {
		t.Fatal(err)
	}
	for range 50 { // it elects itself
		h.Tick()
		h.Flush()
	}
	before := l.Stats().Syncs
	if res := h.Propose(1, []byte("x")); res.Err != nil {
		t.Fatal(res.Err)
	}
	h.Flush()
	if !applied || appliedAtSyncs == before {
		t.Fatalf("applied %v with %d syncs done, %d before the proposal: applied before it was durable", applied, appliedAtSyncs, before)
	}
}
