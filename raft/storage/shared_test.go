package storage

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"path/filepath"
	"reflect"
	"testing"

	"raft-consensus/raft/core"
	"raft-consensus/raft/sim/simdisk"
	"raft-consensus/raft/storage/vfs"
)

func sharedEntries(lo, hi, term uint64, tag string) []core.Entry {
	var ents []core.Entry
	for i := lo; i <= hi; i++ {
		ents = append(ents, core.Entry{Index: i, Term: term, Data: []byte(fmt.Sprintf("%s-%d", tag, i))})
	}
	return ents
}

// TestSharedLogRecoversEveryGroup: many groups' saves, truncations and
// snapshots in one log, synced, come back after a crash; what was saved
// after the last Sync may be lost, never half-kept.
func TestSharedLogRecoversEveryGroup(t *testing.T) {
	disk := simdisk.New(rand.New(rand.NewSource(1)))
	l, err := OpenSharedLog(disk, "/wal", SharedOptions{SegmentBytes: 2 << 10, MaxSegments: 3})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		hs   core.HardState
		snap uint64
		ents []core.Entry
	}
	wants := map[uint64]want{}
	for round := range 40 {
		for g := uint64(1); g <= 6; g++ {
			st := l.Group(g)
			hs, meta, ents, _ := st.Load()
			next := uint64(1)
			if meta != nil {
				next = meta.LastIncludedIndex + 1
			}
			if len(ents) > 0 {
				next = ents[len(ents)-1].Index + 1
			}
			hs.Term = uint64(round/10 + 1)
			switch {
			case g == 2 && round%7 == 3 && next > 3:
				next -= 2 // a follower truncates a conflicting suffix
			case g == 3 && round%9 == 8 && next > 1:
				w, _ := st.CreateSnapshot(next - 1)
				w.Write([]byte(fmt.Sprintf("state of %d through %d", g, next-1)))
				w.Close()
				term, _ := termOf(ents, next-1)
				if err := st.InstallSnapshot(core.SnapshotMeta{LastIncludedIndex: next - 1, LastIncludedTerm: term,
					Size: uint64(len(fmt.Sprintf("state of %d through %d", g, next-1)))}, w); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.Save(&hs, sharedEntries(next, next+2, hs.Term, fmt.Sprint(round))); err != nil {
				t.Fatal(err)
			}
		}
		if round == 39 {
			break // the last round is not synced
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		for g := uint64(1); g <= 6; g++ {
			hs, meta, ents, _ := l.Group(g).Load()
			w := want{hs: hs, ents: ents}
			if meta != nil {
				w.snap = meta.LastIncludedIndex
			}
			wants[g] = w
		}
	}
	st := l.Stats()
	if st.RemovedSegments == 0 || st.Checkpoints == 0 {
		t.Errorf("no segment removed or no group written again: %+v", st)
	}
	// The last round's records are torn by a crash inside their write:
	// each group comes back as of the last Sync, or with its last save.
	newer := map[uint64]want{}
	for g := uint64(1); g <= 6; g++ {
		hs, meta, ents, _ := l.Group(g).Load()
		w := want{hs: hs, ents: ents}
		if meta != nil {
			w.snap = meta.LastIncludedIndex
		}
		newer[g] = w
	}
	disk.CrashAfter(1)
	if err := l.Sync(); err == nil {
		t.Fatal("a Sync through a crash succeeded")
	}
	disk.Recover()
	l2, err := OpenSharedLog(disk, "/wal", SharedOptions{SegmentBytes: 2 << 10, MaxSegments: 3})
	if err != nil {
		t.Fatal(err)
	}
	for g := uint64(1); g <= 6; g++ {
		hs, meta, ents, err := l2.Group(g).Load()
		w := wants[g]
		snap := uint64(0)
		if meta != nil {
			snap = meta.LastIncludedIndex
		}
		same := func(w want) bool {
			return hs == w.hs && snap == w.snap && (reflect.DeepEqual(ents, w.ents) || len(ents) == 0 && len(w.ents) == 0)
		}
		if err != nil || !same(w) && !same(newer[g]) {
			t.Errorf("group %d after the crash: %+v snapshot %d, %d entries; want %+v snapshot %d, %d entries (%v)",
				g, hs, snap, len(ents), w.hs, w.snap, len(w.ents), err)
		}
	}
	if sr, _ := l2.Group(3).OpenSnapshot(); sr == nil {
		t.Error("group 3's snapshot did not come back")
	} else {
		sr.Close()
	}
	t.Logf("%+v; %v", st, l2)
}

func termOf(ents []core.Entry, i uint64) (uint64, bool) {
	for _, e := range ents {
		if e.Index == i {
			return e.Term, true
		}
	}
	return 0, false
}

// TestSharedLogWithoutSyncLosesWrites: the planted bug that writes without
// fsync loses acknowledged records in a crash, which this test sees (the
// multi-raft simulation catches it too).
func TestSharedLogWithoutSyncLosesWrites(t *testing.T) {
	disk := simdisk.New(rand.New(rand.NewSource(3)))
	opts := SharedOptions{}
	BreakSharedSync(&opts)
	l, _ := OpenSharedLog(disk, "/wal", opts)
	l.Group(1).Save(&core.HardState{Term: 1, VotedFor: 0}, sharedEntries(1, 50, 1, "x"))
	l.Sync()
	disk.Crash()
	disk.Recover()
	l2, err := OpenSharedLog(disk, "/wal", SharedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ents, _ := l2.Group(1).Load(); len(ents) == 50 {
		t.Fatal("the crash kept all 50 entries that were never synced (with this seed the disk keeps none)")
	}
}

// A group's bookkeeping of where its entries are grows with segments and
// truncations, not with writes: appending one entry at a time costs the
// same at the ten-thousandth write as at the first (it was a scan of
// every write once, quadratic over a run).
func TestSharedGroupRunsStaySmall(t *testing.T) {
	disk := simdisk.New(rand.New(rand.NewSource(1)))
	l, err := OpenSharedLog(disk, "/wal", SharedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	g := l.Group(1)
	for i := uint64(1); i <= 10000; i++ {
		if err := g.Save(&core.HardState{Term: 1}, sharedEntries(i, i, 1, "e")); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.mu.Lock()
	runs, segs := len(g.runs), len(l.segs)
	l.mu.Unlock()
	if runs > segs {
		t.Fatalf("%d runs of entries over %d segments after 10,000 writes", runs, segs)
	}
	// A truncation cuts the run it falls in; in the same segment the new
	// entry extends what is left of it.
	if err := g.Save(nil, sharedEntries(9000, 9000, 2, "t")); err != nil {
		t.Fatal(err)
	}
	_, _, ents, _ := g.Load()
	if n := len(ents); n != 9000 || ents[n-1].Term != 2 {
		t.Fatalf("after the truncation: %d entries, the last of term %d", n, ents[n-1].Term)
	}
	l.mu.Lock()
	last := g.runs[len(g.runs)-1]
	l.mu.Unlock()
	if last.last != 9000 {
		t.Fatalf("the last run is %+v, want it to end at 9000", last)
	}
}

// Drop forgets a group, in the log and after a crash: its entries, hard
// state and snapshot do not come back, a group of the same id made later
// starts empty and is all that recovery restores, also once the log has
// rotated past the drop. Until the next Sync the drop is not durable.
func TestSharedLogDropForgetsAGroup(t *testing.T) {
	disk := simdisk.New(rand.New(rand.NewSource(1)))
	opts := SharedOptions{SegmentBytes: 1 << 10, MaxSegments: 2}
	l, err := OpenSharedLog(disk, "/wal", opts)
	if err != nil {
		t.Fatal(err)
	}
	reopen := func() {
		t.Helper()
		disk.Crash()
		disk.Recover()
		if l, err = OpenSharedLog(disk, "/wal", opts); err != nil {
			t.Fatal(err)
		}
	}
	empty := func(id uint64) bool {
		hs, snap, ents, err := l.Group(id).Load()
		return err == nil && hs.Term == 0 && snap == nil && len(ents) == 0
	}
	// Group 1 with entries, group 3 with a snapshot too; group 2 stays.
	for _, id := range []uint64{1, 2, 3} {
		if err := l.Group(id).Save(&core.HardState{Term: 2, VotedFor: 1}, sharedEntries(1, 5, 2, fmt.Sprint(id))); err != nil {
			t.Fatal(err)
		}
	}
	g3 := l.Group(3)
	w, _ := g3.CreateSnapshot(4)
	w.Write([]byte("state"))
	w.Close()
	if err := g3.InstallSnapshot(core.SnapshotMeta{LastIncludedIndex: 4, LastIncludedTerm: 2, Size: 5}, w); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	old := l.Group(1)
	if err := l.Drop(1); err != nil {
		t.Fatal(err)
	}
	if err := old.Save(nil, sharedEntries(6, 6, 2, "late")); err == nil {
		t.Fatal("a dropped group's storage took a write")
	}
	if err := l.Drop(3); err != nil {
		t.Fatal(err)
	}
	// Not synced: a crash now loses the drops.
	reopen()
	if empty(1) || empty(3) {
		t.Fatal("a drop that was never synced survived the crash")
	}
	if err := l.Drop(1); err != nil {
		t.Fatal(err)
	}
	if err := l.Drop(3); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	reopen()
	if !empty(1) || !empty(3) {
		hs1, s1, e1, _ := l.Group(1).Load()
		hs3, s3, e3, _ := l.Group(3).Load()
		t.Fatalf("a dropped group came back after a crash: 1: %+v %v %d; 3: %+v %v %d", hs1, s1, len(e1), hs3, s3, len(e3))
	}
	if _, _, ents, _ := l.Group(2).Load(); len(ents) != 5 {
		t.Fatalf("group 2 has %d entries after the others were dropped", len(ents))
	}
	// Group 1 again, from nothing: only its new records count.
	if err := l.Group(1).Save(&core.HardState{Term: 7}, sharedEntries(1, 2, 7, "new")); err != nil {
		t.Fatal(err)
	}
	// Fill segments, so that old ones would go if nothing pinned them.
	for i := uint64(6); i < 60; i++ {
		if err := l.Group(2).Save(nil, sharedEntries(i, i, 2, "fill")); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	reopen()
	hs, snap, ents, _ := l.Group(1).Load()
	if hs.Term != 7 || snap != nil || len(ents) != 2 || ents[0].Term != 7 {
		t.Fatalf("group 1 after its second life: %+v, snapshot %v, %d entries", hs, snap, len(ents))
	}
	if !empty(3) {
		t.Fatal("group 3 came back after the log rotated")
	}
}

// TestSharedLogPreallocatesSegments checks that the shared log's segments
// are created at their full size, that a Sync writes over them with one
// fdatasync, and that a torn write into a segment's zeros is cut off (and
// zeroed) on recovery, with every synced record kept.
func TestSharedLogPreallocatesSegments(t *testing.T) {
	dir := t.TempDir()
	var syncs, datasyncs int
	fs := syncCountingFS{syncs: &syncs, datasyncs: &datasyncs}
	opts := SharedOptions{SegmentBytes: 256, MaxSegments: 100}
	l, err := OpenSharedLog(fs, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := core.HardState{Term: 1, VotedFor: 0}
	next := map[uint64]uint64{0: 1, 1: 1, 2: 1}
	for i := uint64(1); i <= 40; i++ {
		g := i % 3
		if err := l.Group(g).Save(&hs, sharedEntries(next[g], next[g], 1, "p")); err != nil {
			t.Fatal(err)
		}
		next[g]++
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "shared-*.log"))
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	for _, seg := range segs {
		// The Sync that fills a segment may write past its end (a
		// segment ends after the Sync that reaches SegmentBytes).
		if n := fileSize(t, seg); n < 256 {
			t.Errorf("segment %s is %d bytes, want at least its preallocated 256", filepath.Base(seg), n)
		}
	}
	// One fsync per segment (its zeros), one fdatasync per Sync.
	if syncs != len(segs) || datasyncs != 40 {
		t.Errorf("%d fsyncs and %d fdatasyncs for %d segments and 40 Syncs", syncs, datasyncs, len(segs))
	}
	// A torn write: half a record where the newest segment's zeros were.
	newest := segs[len(segs)-1]
	end := dataSize(t, newest)
	rec := saveRecord(7, &hs, sharedEntries(1, 1, 1, "torn"))
	framed := append(binary.LittleEndian.AppendUint32(nil, uint32(len(rec))), 0, 0, 0, 0)
	framed = append(framed, rec...)
	writeAt(t, newest, end, framed[:len(framed)/2])
	l, err = OpenSharedLog(vfs.OS{}, dir, opts)
	if err != nil {
		t.Fatalf("a torn write in the zeros: %v", err)
	}
	defer l.Close()
	if got := dataSize(t, newest); got != end {
		t.Errorf("newest segment holds %d bytes of data after recovery, want %d", got, end)
	}
	if g := l.Groups(); !reflect.DeepEqual(g, []uint64{0, 1, 2}) {
		t.Errorf("groups %v after recovery, want [0 1 2]", g)
	}
	for g := uint64(0); g < 3; g++ {
		_, _, ents, _ := l.Group(g).Load()
		if uint64(len(ents)) != next[g]-1 {
			t.Errorf("group %d has %d entries after recovery, want %d", g, len(ents), next[g]-1)
		}
	}
}
