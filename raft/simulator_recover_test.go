package raft

import (
	"path/filepath"
	"slices"
	"testing"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"
)

// TestRecoveryTakesTheMostUpToDateLog: node 0, a deposed leader, holds an
// uncommitted "remove 2" at an index above anything the others hold; nodes
// 1 and 2 went on in a later term. Recovery takes the configuration of the
// most up-to-date log (§5.4.1's order), so node 2 stays a member.
func TestRecoveryTakesTheMostUpToDateLog(t *testing.T) {
	dir := t.TempDir()
	cfg := func(index, term uint64, voters ...int) core.Entry {
		return core.Entry{Index: index, Term: term, Type: core.EntryConfig, Data: core.EncodeConfiguration(core.Configuration{Voters: voters})}
	}
	noop := func(index, term uint64) core.Entry { return core.Entry{Index: index, Term: term, Type: core.EntryNoop} }
	logs := map[int][]core.Entry{
		0: {cfg(1, 1, 0, 1, 2), noop(2, 2), noop(3, 2), cfg(4, 2, 0, 1)}, // proposed, never committed
		1: {cfg(1, 1, 0, 1, 2), noop(2, 2), noop(3, 3)},
		2: {cfg(1, 1, 0, 1, 2), noop(2, 2), noop(3, 3)},
	}
	for id, ents := range logs {
		st, err := storage.OpenDiskStorage(filepath.Join(dir, "node-"+string(rune('0'+id))), storage.DiskOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hs := core.HardState{Term: ents[len(ents)-1].Term, VotedFor: core.None}
		if err := st.Save(&hs, ents); err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	rec, err := readDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.members, []int{0, 1, 2}) || len(rec.left) != 0 {
		t.Fatalf("recovered members %v, left out %v (configuration %v); want all three", rec.members, rec.left, rec.config)
	}
}
