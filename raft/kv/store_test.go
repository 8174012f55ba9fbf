package kv_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"raft-consensus/raft/kv"
)

// TestStoreSnapshotIsAPointInTimeCopy: a snapshot holds the state as it
// was when taken, while the store goes on applying writes, deletes
// included, during the writing out (the copy-on-write B-tree: run it with
// -race); restored, it gives back exactly that state. A store whose
// snapshots share the live tree fails it.
func TestStoreSnapshotIsAPointInTimeCopy(t *testing.T) {
	if err := pointInTimeViolation(kv.NewStore(), true); err != nil {
		t.Fatal(err)
	}
	// Broken, and written after the changes: concurrently, it would race.
	if err := pointInTimeViolation(kv.NewStoreSharingSnapshots(), false); err == nil {
		t.Fatal("a store whose snapshots share the live data passed")
	}
}

func pointInTimeViolation(st *kv.Store, concurrent bool) error {
	want := map[string]string{}
	for i := range 5000 {
		k, v := fmt.Sprintf("k%05d", i), fmt.Sprintf("v%d", i)
		st.ApplyCommand(kv.Command{Op: kv.OpSet, ClientID: 7, Seq: uint64(i + 1), Key: k, Value: v})
		want[k] = v
	}
	snap, err := st.Snapshot()
	if err != nil {
		return err
	}
	change := func() {
		for i := range 5000 {
			k := fmt.Sprintf("k%05d", i)
			if i%2 == 0 {
				st.ApplyCommand(kv.Command{Op: kv.OpDelete, Key: k})
			} else {
				st.ApplyCommand(kv.Command{Op: kv.OpSet, Key: k, Value: "changed"})
			}
			st.ApplyCommand(kv.Command{Op: kv.OpSet, Key: fmt.Sprintf("new%d", i), Value: "x"})
		}
	}
	var buf bytes.Buffer
	var wg sync.WaitGroup
	if concurrent {
		wg.Add(1)
		go func() { defer wg.Done(); change() }()
	} else {
		change()
	}
	n, err := snap.WriteTo(&buf)
	wg.Wait()
	if err != nil || n != int64(buf.Len()) {
		return fmt.Errorf("WriteTo: %d bytes reported, %d written, %v", n, buf.Len(), err)
	}
	if st.Len() != 5000/2+5000 {
		return fmt.Errorf("the live store has %d keys, want %d", st.Len(), 5000/2+5000)
	}
	restored := kv.NewStore()
	if err := restored.Restore(&buf); err != nil {
		return err
	}
	if restored.Len() != len(want) {
		return fmt.Errorf("restored %d keys, want %d", restored.Len(), len(want))
	}
	for k, v := range want {
		if got, ok := restored.Get(k); !ok || got != v {
			return fmt.Errorf("restored %s = %q (%v), want %q", k, got, ok, v)
		}
	}
	if seq, _ := restored.Session(7); seq != 5000 {
		return fmt.Errorf("restored session of client 7 at %d, want 5000", seq)
	}
	return nil
}
