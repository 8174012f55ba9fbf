package storage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"raft-consensus/raft/core"
	"raft-consensus/raft/sim/simdisk"
	"raft-consensus/raft/storage/vfs"
)

var _ Storage = (*DiskStorage)(nil)

func openDisk(t testing.TB, dir string, opts DiskOptions) *DiskStorage {
	t.Helper()
	s, err := OpenDiskStorage(dir, opts)
	if err != nil {
		t.Fatalf("OpenDiskStorage: %v", err)
	}
	return s
}

func reopenDisk(t testing.TB, s *DiskStorage, dir string, opts DiskOptions) *DiskStorage {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openDisk(t, dir, opts)
}

// testEntries returns entries lo..hi (inclusive) of the given term, with
// data that tells them apart and a mix of types and sizes.
func testEntries(lo, hi, term uint64) []core.Entry {
	var ents []core.Entry
	for i := lo; i <= hi; i++ {
		e := core.Entry{Index: i, Term: term, Type: core.EntryType(i % 3)}
		if i%5 != 0 { // every fifth entry has no data
			e.Data = []byte(fmt.Sprintf("entry %d of term %d %s", i, term, strings.Repeat("#", int(i%17))))
		}
		ents = append(ents, e)
	}
	return ents
}

func mustSave(t testing.TB, s Storage, hs *core.HardState, ents []core.Entry) {
	t.Helper()
	if err := s.Save(hs, ents); err != nil {
		t.Fatalf("Save(%v, %d entries from %d): %v", hs, len(ents), firstIndexOf(ents), err)
	}
}

func firstIndexOf(ents []core.Entry) uint64 {
	if len(ents) == 0 {
		return 0
	}
	return ents[0].Index
}

func sameEntries(a, b []core.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Index != b[i].Index || a[i].Term != b[i].Term || a[i].Type != b[i].Type || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// testSnapshot is a snapshot as the tests write it: metadata and data.
type testSnapshot struct {
	Meta core.SnapshotMeta
	Data []byte
}

// saveSnapshot streams snap into s and installs it, as the driver does.
func saveSnapshot(s Storage, snap *testSnapshot) error {
	w, err := s.CreateSnapshot(snap.Meta.LastIncludedIndex)
	if err != nil {
		return err
	}
	if _, err := w.Write(snap.Data); err != nil {
		w.Abort()
		return err
	}
	if err := w.Close(); err != nil {
		w.Abort()
		return err
	}
	meta := snap.Meta
	meta.Size = uint64(len(snap.Data))
	return s.InstallSnapshot(meta, w)
}

// storedSnapshot reads s's snapshot back, data and all (nil if none).
func storedSnapshot(t testing.TB, s Storage) *testSnapshot {
	t.Helper()
	r, err := s.OpenSnapshot()
	if err != nil {
		t.Fatalf("OpenSnapshot: %v", err)
	}
	if r == nil {
		return nil
	}
	defer r.Close()
	data, err := io.ReadAll(NewSnapshotReaderSection(r))
	if err != nil {
		t.Fatalf("reading the snapshot: %v", err)
	}
	meta := r.Meta()
	meta.Size = 0 // the tests' snapshots leave it to saveSnapshot
	if len(data) == 0 {
		data = nil
	}
	return &testSnapshot{Meta: meta, Data: data}
}

// snapshotFileBytes is a snapshot file's content: the data, then the trailer.
func snapshotFileBytes(snap *testSnapshot) []byte {
	meta := snap.Meta
	meta.Size = uint64(len(snap.Data))
	var crcs blockCRCs
	crcs.write(snap.Data)
	return append(append([]byte(nil), snap.Data...), snapshotTrailer(meta, crcs.all())...)
}

// stored is what a storage holds, as its Load reports it.
type stored struct {
	hs                  core.HardState
	snapIndex, snapTerm uint64
	ents                []core.Entry
}

func load(t *testing.T, s Storage) stored {
	t.Helper()
	hs, snap, ents, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	st := stored{hs: hs, ents: ents}
	if snap != nil {
		st.snapIndex, st.snapTerm = snap.LastIncludedIndex, snap.LastIncludedTerm
	}
	return st
}

func (st stored) last() uint64 { return st.snapIndex + uint64(len(st.ents)) }

// term is the term of the entry at i, if it is stored or is the snapshot's last.
func (st stored) term(i uint64) (uint64, bool) {
	switch {
	case i == st.snapIndex:
		return st.snapTerm, true
	case i > st.snapIndex && i <= st.last():
		return st.ents[i-st.snapIndex-1].Term, true
	}
	return 0, false
}

// checkStorage compares everything s reports with what is expected: the
// hard state, the snapshot's boundary, and the entries after it.
func checkStorage(t *testing.T, s Storage, wantHS core.HardState, snapIndex, snapTerm uint64, want []core.Entry) {
	t.Helper()
	hs, snap, ents, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if hs != wantHS {
		t.Errorf("hard state %+v, want %+v", hs, wantHS)
	}
	switch {
	case snapIndex == 0 && snap != nil:
		t.Errorf("snapshot through %d, want none", snap.LastIncludedIndex)
	case snapIndex != 0 && (snap == nil || snap.LastIncludedIndex != snapIndex || snap.LastIncludedTerm != snapTerm):
		t.Errorf("snapshot %+v, want through %d/%d", snap, snapIndex, snapTerm)
	}
	if !sameEntries(ents, want) {
		t.Errorf("Load entries %v, want %v", summarize(ents), summarize(want))
	}
}

func summarize(ents []core.Entry) string {
	var b strings.Builder
	for i, e := range ents {
		if i > 0 && i < len(ents)-1 && len(ents) > 8 {
			if i == 1 {
				b.WriteString(" …")
			}
			continue
		}
		fmt.Fprintf(&b, " %d/%d(%q)", e.Index, e.Term, e.Data)
	}
	return "[" + b.String() + " ]"
}

func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "wal-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// dataSize is where a segment's data ends: the rest of a preallocated
// segment is zeros.
func dataSize(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return int64(writtenEnd(b))
}

// writeAt writes b at off in the file at path.
func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x5a
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestDiskStorageEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "does", "not", "exist")
	s := openDisk(t, dir, DiskOptions{})
	checkStorage(t, s, core.HardState{Term: 0, VotedFor: core.None}, 0, 0, nil)
	// An empty Save writes nothing.
	mustSave(t, s, nil, nil)
	s = reopenDisk(t, s, dir, DiskOptions{})
	defer s.Close()
	checkStorage(t, s, core.HardState{Term: 0, VotedFor: core.None}, 0, 0, nil)
	if n := s.Recovered(); n != 0 {
		t.Errorf("Recovered() = %d on a clean directory", n)
	}
}

func TestDiskStorageRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir, DiskOptions{})
	hs := core.HardState{Term: 3, VotedFor: 0} // node 0 is a real node, unlike None
	want := testEntries(1, 30, 1)
	want[7].Data = bytes.Repeat([]byte{0xff, 0}, 40000) // larger than a page
	mustSave(t, s, &hs, want[:10])
	mustSave(t, s, nil, want[10:11])
	mustSave(t, s, nil, want[11:])
	checkStorage(t, s, hs, 0, 0, want)

	s = reopenDisk(t, s, dir, DiskOptions{})
	checkStorage(t, s, hs, 0, 0, want)

	// The vote can go back to None with a new term, and a hard state can be
	// saved alone.
	hs = core.HardState{Term: 4, VotedFor: core.None}
	mustSave(t, s, &hs, nil)
	s = reopenDisk(t, s, dir, DiskOptions{})
	checkStorage(t, s, hs, 0, 0, want)
	hs = core.HardState{Term: 4, VotedFor: 12345}
	mustSave(t, s, &hs, testEntries(31, 31, 4))
	s = reopenDisk(t, s, dir, DiskOptions{})
	defer s.Close()
	checkStorage(t, s, hs, 0, 0, append(want, testEntries(31, 31, 4)...))
}

func TestDiskStorageTruncateSuffix(t *testing.T) {
	dir := t.TempDir()
	hs := core.HardState{Term: 1, VotedFor: 1}
	s := openDisk(t, dir, DiskOptions{})
	mustSave(t, s, &hs, testEntries(1, 10, 1))

	// A shorter replacement: 5..6 replace 5..10.
	hs.Term = 2
	mustSave(t, s, &hs, testEntries(5, 6, 2))
	want := append(testEntries(1, 4, 1), testEntries(5, 6, 2)...)
	checkStorage(t, s, hs, 0, 0, want)
	s = reopenDisk(t, s, dir, DiskOptions{})
	checkStorage(t, s, hs, 0, 0, want)

	// A longer replacement, reaching past the old end.
	hs.Term = 3
	mustSave(t, s, &hs, testEntries(3, 12, 3))
	want = append(testEntries(1, 2, 1), testEntries(3, 12, 3)...)
	checkStorage(t, s, hs, 0, 0, want)
	s = reopenDisk(t, s, dir, DiskOptions{})
	checkStorage(t, s, hs, 0, 0, want)

	// Replacing the very first entry, then appending after the replacement.
	mustSave(t, s, nil, testEntries(1, 1, 4))
	mustSave(t, s, nil, testEntries(2, 3, 4))
	want = testEntries(1, 3, 4)
	s = reopenDisk(t, s, dir, DiskOptions{})
	defer s.Close()
	checkStorage(t, s, hs, 0, 0, want)

	// A gap is refused, as by MemoryStorage.
	if err := s.Save(nil, testEntries(5, 6, 4)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Save with a gap: %v, want ErrUnavailable", err)
	}
	if err := s.Save(nil, []core.Entry{{Index: 4, Term: 4}, {Index: 6, Term: 4}}); err == nil {
		t.Errorf("Save of non-contiguous entries succeeded")
	}
	checkStorage(t, s, hs, 0, 0, want)
}

func TestDiskStorageSegmentRollover(t *testing.T) {
	dir := t.TempDir()
	opts := DiskOptions{SegmentBytes: 1024}
	s := openDisk(t, dir, opts)
	hs := core.HardState{Term: 1, VotedFor: 2}
	mustSave(t, s, &hs, nil)
	var want []core.Entry
	for lo := uint64(1); lo <= 200; lo += 4 {
		ents := testEntries(lo, lo+3, 1)
		mustSave(t, s, nil, ents)
		want = append(want, ents...)
	}
	segs := segmentFiles(t, dir)
	if len(segs) < 10 {
		t.Fatalf("%d segments after 200 entries with 1 KiB segments, want many", len(segs))
	}
	checkStorage(t, s, hs, 0, 0, want) // Load reads across every segment
	s = reopenDisk(t, s, dir, opts)
	checkStorage(t, s, hs, 0, 0, want)

	// Truncate back into an old segment; the replacement goes to the last.
	hs.Term = 2
	mustSave(t, s, &hs, testEntries(20, 25, 2))
	want = append(want[:19], testEntries(20, 25, 2)...)
	checkStorage(t, s, hs, 0, 0, want)
	s = reopenDisk(t, s, dir, opts)
	defer s.Close()
	checkStorage(t, s, hs, 0, 0, want)
	mustSave(t, s, nil, testEntries(26, 40, 2))
	want = append(want, testEntries(26, 40, 2)...)
	checkStorage(t, s, hs, 0, 0, want)
}

// TestDiskStorageSaveCost checks that a Save writes the same bytes whatever
// the length of the log: nothing is re-encoded.
func TestDiskStorageSaveCost(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir, DiskOptions{NoSync: true})
	defer s.Close()
	data := bytes.Repeat([]byte("x"), 64) // not zeros: dataSize finds their end
	grow := func(index uint64) int64 {
		seg := segmentFiles(t, dir)
		before := dataSize(t, seg[len(seg)-1])
		mustSave(t, s, nil, []core.Entry{{Index: index, Term: 1, Data: data}})
		return dataSize(t, seg[len(seg)-1]) - before
	}
	mustSave(t, s, &core.HardState{Term: 1, VotedFor: core.None}, nil)
	small := grow(1)
	for i := uint64(2); i < 5000; i++ {
		mustSave(t, s, nil, []core.Entry{{Index: i, Term: 1, Data: data}})
	}
	large := grow(5000)
	want := int64(batchRecordSize + entryRecordOverhead + len(data))
	if small != want || large != want {
		t.Errorf("a one-entry Save wrote %d bytes at index 1 and %d at index 5000, want %d both times", small, large, want)
	}
}

func TestDiskStorageSnapshotKeepsFollowingEntries(t *testing.T) {
	dir := t.TempDir()
	opts := DiskOptions{SegmentBytes: 1024}
	s := openDisk(t, dir, opts)
	hs := core.HardState{Term: 2, VotedFor: 1}
	mustSave(t, s, &hs, nil)
	for lo := uint64(1); lo <= 60; lo += 3 {
		term := uint64(1)
		if lo > 30 {
			term = 2
		}
		mustSave(t, s, nil, testEntries(lo, lo+2, term))
	}
	before := len(segmentFiles(t, dir))

	snap := &testSnapshot{
		Meta: core.SnapshotMeta{LastIncludedIndex: 40, LastIncludedTerm: 2, Config: core.Configuration{Voters: []int{0, 1, 2}, Learners: []int{3}}},
		Data: []byte("state machine through 40"),
	}
	if err := saveSnapshot(s, snap); err != nil {
		t.Fatal(err)
	}
	want := testEntries(41, 60, 2)
	checkStorage(t, s, hs, 40, 2, want)
	after := segmentFiles(t, dir)
	if len(after) >= before {
		t.Errorf("%d segments before the snapshot, %d after: none deleted", before, len(after))
	}
	// What is left still holds every entry after 40, and the hard state.
	s = reopenDisk(t, s, dir, opts)
	checkStorage(t, s, hs, 40, 2, want)
	got := storedSnapshot(t, s)
	if !reflect.DeepEqual(got.Meta, snap.Meta) || !bytes.Equal(got.Data, snap.Data) {
		t.Errorf("snapshot after reopen %+v %q, want %+v %q", got.Meta, got.Data, snap.Meta, snap.Data)
	}

	// A second snapshot replaces the first file, and an older one changes nothing.
	// Its configuration is joint, and its application data ahead of the
	// outgoing voters, which come last in the file.
	snap2 := &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 55, LastIncludedTerm: 2,
		Config: core.Configuration{Voters: []int{1, 3}, Outgoing: []int{0, 1, 2}}, App: []byte("app")}}
	if err := saveSnapshot(s, snap2); err != nil {
		t.Fatal(err)
	}
	if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 50, LastIncludedTerm: 2}}); err != nil {
		t.Fatal(err)
	}
	want = testEntries(56, 60, 2)
	checkStorage(t, s, hs, 55, 2, want)
	if names, _ := filepath.Glob(filepath.Join(dir, "snap-*")); len(names) != 1 || filepath.Base(names[0]) != snapshotName(55, 2) {
		t.Errorf("snapshot files %v, want only %s", names, snapshotName(55, 2))
	}
	// Saving entries that the snapshot covers keeps only what follows it.
	mustSave(t, s, nil, testEntries(54, 62, 2))
	want = testEntries(56, 62, 2)
	s = reopenDisk(t, s, dir, opts)
	defer func() { s.Close() }() // the s reopened last
	checkStorage(t, s, hs, 55, 2, want)
	if got := storedSnapshot(t, s); !reflect.DeepEqual(got.Meta, snap2.Meta) {
		t.Errorf("joint snapshot after reopen %+v, want %+v", got.Meta, snap2.Meta)
	}
	// Staged learners (core.Configuration.Staged) come back too, joint or not.
	for i, cfg := range []core.Configuration{
		{Voters: []int{1, 3}, Learners: []int{4, 5}, Staged: []int{5}},
		{Voters: []int{1, 3}, Learners: []int{4}, Outgoing: []int{0, 1}, Staged: []int{4}},
	} {
		snap := &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 56 + uint64(i), LastIncludedTerm: 2, Config: cfg, App: []byte("a")}}
		if err := saveSnapshot(s, snap); err != nil {
			t.Fatal(err)
		}
		s = reopenDisk(t, s, dir, opts)
		if got := storedSnapshot(t, s); !reflect.DeepEqual(got.Meta, snap.Meta) {
			t.Errorf("snapshot with staged learners after reopen %+v, want %+v", got.Meta, snap.Meta)
		}
	}
}

func TestDiskStorageSnapshotDiscardsOnMismatch(t *testing.T) {
	dir := t.TempDir()
	opts := DiskOptions{SegmentBytes: 2048}
	s := openDisk(t, dir, opts)
	hs := core.HardState{Term: 5, VotedFor: core.None}
	mustSave(t, s, &hs, testEntries(1, 20, 1))

	// The entry at 15 has term 1, the snapshot says 5: the whole log goes
	// (Figure 13 step 7), including 16..20.
	if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 15, LastIncludedTerm: 5}, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	checkStorage(t, s, hs, 15, 5, nil)
	s = reopenDisk(t, s, dir, opts)
	checkStorage(t, s, hs, 15, 5, nil)

	mustSave(t, s, nil, testEntries(16, 18, 5))
	s = reopenDisk(t, s, dir, opts)
	checkStorage(t, s, hs, 15, 5, testEntries(16, 18, 5))

	// A snapshot beyond the end of the log discards it too.
	if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 100, LastIncludedTerm: 6}}); err != nil {
		t.Fatal(err)
	}
	checkStorage(t, s, hs, 100, 6, nil)
	if err := s.Save(nil, testEntries(102, 102, 6)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Save after a gap: %v", err)
	}
	mustSave(t, s, nil, testEntries(101, 130, 6))
	s = reopenDisk(t, s, dir, opts)
	defer s.Close()
	checkStorage(t, s, hs, 100, 6, testEntries(101, 130, 6))
}

// TestDiskStorageHardStateSurvivesCompaction: the hard state saved once at
// the start must survive the deletion of the segment it was written to.
func TestDiskStorageHardStateSurvivesCompaction(t *testing.T) {
	dir := t.TempDir()
	opts := DiskOptions{SegmentBytes: 512}
	s := openDisk(t, dir, opts)
	hs := core.HardState{Term: 7, VotedFor: 2}
	mustSave(t, s, &hs, nil)
	first := segmentFiles(t, dir)[0]
	for i := uint64(1); i <= 100; i++ {
		mustSave(t, s, nil, testEntries(i, i, 7))
	}
	if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 95, LastIncludedTerm: 7}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("first segment %s not deleted by compaction: %v", first, err)
	}
	s = reopenDisk(t, s, dir, opts)
	defer s.Close()
	checkStorage(t, s, hs, 95, 7, testEntries(96, 100, 7))
}

// TestDiskStorageSnapshotCrashWindows covers a run that stopped inside
// SaveSnapshot: after the rename but before the log record, with a temporary
// file left behind, or with a damaged newer snapshot file.
func TestDiskStorageSnapshotCrashWindows(t *testing.T) {
	hs := core.HardState{Term: 2, VotedFor: 1}
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		s := openDisk(t, dir, DiskOptions{})
		mustSave(t, s, &hs, testEntries(1, 20, 2))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	writeSnapshotOnly := func(t *testing.T, dir string, snap *testSnapshot) {
		path := filepath.Join(dir, snapshotName(snap.Meta.LastIncludedIndex, snap.Meta.LastIncludedTerm))
		if err := os.WriteFile(path, snapshotFileBytes(snap), 0o640); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("record missing, term matches", func(t *testing.T) {
		dir := setup(t)
		writeSnapshotOnly(t, dir, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 10, LastIncludedTerm: 2}})
		s := openDisk(t, dir, DiskOptions{})
		checkStorage(t, s, hs, 10, 2, testEntries(11, 20, 2))
		mustSave(t, s, nil, testEntries(21, 22, 2))
		s = reopenDisk(t, s, dir, DiskOptions{})
		defer s.Close()
		checkStorage(t, s, hs, 10, 2, testEntries(11, 22, 2))
	})
	t.Run("record missing, term differs", func(t *testing.T) {
		dir := setup(t)
		writeSnapshotOnly(t, dir, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 10, LastIncludedTerm: 3}})
		s := openDisk(t, dir, DiskOptions{})
		checkStorage(t, s, hs, 10, 3, nil)
		mustSave(t, s, nil, testEntries(11, 12, 3))
		s = reopenDisk(t, s, dir, DiskOptions{})
		defer s.Close()
		checkStorage(t, s, hs, 10, 3, testEntries(11, 12, 3))
	})
	t.Run("temporary file left behind", func(t *testing.T) {
		dir := setup(t)
		tmp := filepath.Join(dir, snapshotName(15, 2)+snapTempSuffix)
		if err := os.WriteFile(tmp, []byte("half a snapshot"), 0o640); err != nil {
			t.Fatal(err)
		}
		s := openDisk(t, dir, DiskOptions{})
		defer s.Close()
		checkStorage(t, s, hs, 0, 0, testEntries(1, 20, 2))
		if _, err := os.Stat(tmp); !os.IsNotExist(err) {
			t.Errorf("temporary snapshot file still there: %v", err)
		}
	})
	t.Run("damaged newer snapshot is skipped", func(t *testing.T) {
		dir := setup(t)
		s := openDisk(t, dir, DiskOptions{})
		snap := &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 10, LastIncludedTerm: 2, Config: core.Configuration{Voters: []int{1, 2, 3}}}, Data: []byte("ten")}
		if err := saveSnapshot(s, snap); err != nil {
			t.Fatal(err)
		}
		s.Close()
		// A newer snapshot that fails its CRC, and one cut short.
		newer := &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 15, LastIncludedTerm: 2}, Data: []byte("fifteen")}
		b := snapshotFileBytes(newer)
		b[2] ^= 1 // in the data: only the CRC tells
		if err := os.WriteFile(filepath.Join(dir, snapshotName(15, 2)), b, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, snapshotName(16, 2)), b[:len(b)-3], 0o640); err != nil {
			t.Fatal(err)
		}
		s = openDisk(t, dir, DiskOptions{})
		defer s.Close()
		checkStorage(t, s, hs, 10, 2, testEntries(11, 20, 2))
		if got := storedSnapshot(t, s); !reflect.DeepEqual(got, snap) {
			t.Errorf("snapshot %+v, want %+v", got, snap)
		}
	})
}

// TestDiskStorageTornTail damages the end of the last segment as a crash in
// the middle of a Save does, in a preallocated segment (the write lands on
// its zeros) and in one written before segments were preallocated (the
// write grew the file), and checks that the torn write is cut off, and
// only it.
func TestDiskStorageTornTail(t *testing.T) {
	hs := core.HardState{Term: 1, VotedFor: 1}
	partialBatch := func() []byte {
		buf, start := beginBatch(nil)
		e := testEntries(11, 11, 1)[0]
		buf = appendEntryRecord(buf, &e)
		endBatch(buf, start, 1)
		return buf[:len(buf)-5]
	}
	garbage := make([]byte, 300)
	rand.New(rand.NewSource(1)).Read(garbage)

	type layout struct {
		name string
		// prepare turns the freshly written segment into this layout.
		prepare func(t *testing.T, seg string, size int64)
		// cutShort makes the last n bytes of data never have reached
		// the disk.
		cutShort func(t *testing.T, seg string, size, n int64)
	}
	layouts := []layout{
		{"preallocated", func(*testing.T, string, int64) {}, func(t *testing.T, seg string, size, n int64) {
			writeAt(t, seg, size-n, make([]byte, n))
		}},
		{"appended", func(t *testing.T, seg string, size int64) {
			if err := os.Truncate(seg, size); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, seg string, size, n int64) {
			if err := os.Truncate(seg, size-n); err != nil {
				t.Fatal(err)
			}
		}},
	}
	type tornCase struct {
		name string
		// damage changes the last segment, whose data is size bytes, and
		// returns how long its valid part is and the last index expected
		// to survive.
		damage func(t *testing.T, l layout, seg string, size int64) (int64, uint64)
	}
	cases := []tornCase{
		{"partial record", func(t *testing.T, _ layout, seg string, size int64) (int64, uint64) {
			writeAt(t, seg, size, partialBatch())
			return size, 10
		}},
		{"garbage", func(t *testing.T, _ layout, seg string, size int64) (int64, uint64) {
			writeAt(t, seg, size, garbage)
			return size, 10
		}},
		{"zeros", func(t *testing.T, _ layout, seg string, size int64) (int64, uint64) {
			// A new size that reached the disk before the data did.
			writeAt(t, seg, size, make([]byte, 4096))
			return size, 10
		}},
		{"last save cut short", func(t *testing.T, l layout, seg string, size int64) (int64, uint64) {
			// The last Save (entries 8..10 in one batch) lost its end: it is
			// all or nothing, so 8..10 go.
			l.cutShort(t, seg, size, 3)
			return size - batchSize(testEntries(8, 10, 1)), 7
		}},
		{"last save damaged inside", func(t *testing.T, _ layout, seg string, size int64) (int64, uint64) {
			flipByte(t, seg, size-20)
			return size - batchSize(testEntries(8, 10, 1)), 7
		}},
	}
	for _, l := range layouts {
		for _, tc := range cases {
			t.Run(l.name+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				s := openDisk(t, dir, DiskOptions{})
				mustSave(t, s, &hs, testEntries(1, 7, 1))
				mustSave(t, s, nil, testEntries(8, 10, 1))
				s.Close()
				segs := segmentFiles(t, dir)
				seg := segs[len(segs)-1]
				size := dataSize(t, seg)
				l.prepare(t, seg, size)
				validSize, last := tc.damage(t, l, seg, size)
				damagedSize := dataSize(t, seg)

				s = openDisk(t, dir, DiskOptions{})
				if got, want := s.Recovered(), damagedSize-validSize; got != want {
					t.Errorf("Recovered() = %d, want %d", got, want)
				}
				if got := dataSize(t, seg); got != validSize {
					t.Errorf("segment holds %d bytes of data after recovery, want %d", got, validSize)
				}
				want := testEntries(1, last, 1)
				checkStorage(t, s, hs, 0, 0, want)

				// The log goes on from there, and survives another reopen.
				hs2 := core.HardState{Term: 2, VotedFor: 3}
				mustSave(t, s, &hs2, testEntries(last+1, last+4, 2))
				want = append(want, testEntries(last+1, last+4, 2)...)
				s = reopenDisk(t, s, dir, DiskOptions{})
				defer s.Close()
				if n := s.Recovered(); n != 0 {
					t.Errorf("Recovered() = %d on the second reopen", n)
				}
				checkStorage(t, s, hs2, 0, 0, want)
			})
		}
	}
}

func batchSize(ents []core.Entry) int64 {
	n := int64(batchRecordSize)
	for _, e := range ents {
		n += entryRecordOverhead + int64(len(e.Data))
	}
	return n
}

func TestDiskStorageCorruption(t *testing.T) {
	wantCorruption := func(t *testing.T, dir, path string) {
		t.Helper()
		s, err := OpenDiskStorage(dir, DiskOptions{})
		if err == nil {
			s.Close()
			t.Fatal("OpenDiskStorage succeeded on a corrupt log")
		}
		var ce *WALCorruptionError
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *WALCorruptionError", err)
		}
		if ce.Path != path {
			t.Errorf("error names %s, want %s (%v)", ce.Path, path, err)
		}
	}
	writeLog := func(t *testing.T, opts DiskOptions, batches int) (string, []string) {
		dir := t.TempDir()
		s := openDisk(t, dir, opts)
		mustSave(t, s, &core.HardState{Term: 1, VotedFor: core.None}, nil)
		for i := uint64(0); i < uint64(batches); i++ {
			mustSave(t, s, nil, testEntries(4*i+1, 4*i+4, 1))
		}
		s.Close()
		return dir, segmentFiles(t, dir)
	}

	t.Run("middle of an older segment", func(t *testing.T) {
		dir, segs := writeLog(t, DiskOptions{SegmentBytes: 1024}, 30)
		if len(segs) < 3 {
			t.Fatalf("only %d segments", len(segs))
		}
		flipByte(t, segs[0], fileSize(t, segs[0])/2)
		wantCorruption(t, dir, segs[0])
	})
	t.Run("older segment cut short", func(t *testing.T) {
		dir, segs := writeLog(t, DiskOptions{SegmentBytes: 1024}, 30)
		// Its last byte never reached the disk: still a zero.
		writeAt(t, segs[1], dataSize(t, segs[1])-1, []byte{0})
		wantCorruption(t, dir, segs[1])
	})
	t.Run("record in the last segment with later batches", func(t *testing.T) {
		dir, segs := writeLog(t, DiskOptions{}, 10)
		seg := segs[len(segs)-1]
		size := dataSize(t, seg)
		flipByte(t, seg, size/3)
		wantCorruption(t, dir, seg)
		if got := dataSize(t, seg); got != size {
			t.Errorf("a corrupt segment was cut from %d to %d bytes of data", size, got)
		}
	})
	t.Run("batch header in the last segment with later batches", func(t *testing.T) {
		dir, segs := writeLog(t, DiskOptions{}, 10)
		seg := segs[len(segs)-1]
		// The header of the third Save: the segment header, the hard state
		// batch, then two batches of entries 1..8.
		off := int64(segmentHeaderSize) + int64(batchRecordSize+hardStateRecordSize) + batchSize(testEntries(1, 4, 1)) + batchSize(testEntries(5, 8, 1))
		flipByte(t, seg, off+2)
		wantCorruption(t, dir, seg)
	})
	t.Run("missing segment", func(t *testing.T) {
		dir, segs := writeLog(t, DiskOptions{SegmentBytes: 1024}, 30)
		if err := os.Remove(segs[1]); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenDiskStorage(dir, DiskOptions{}); err == nil || !strings.Contains(err.Error(), "not consecutive") {
			t.Errorf("missing segment: %v", err)
		}
	})
	t.Run("snapshot file lost after compaction", func(t *testing.T) {
		dir, _ := writeLog(t, DiskOptions{SegmentBytes: 1024}, 30)
		s := openDisk(t, dir, DiskOptions{SegmentBytes: 1024})
		if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 100, LastIncludedTerm: 1}}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := os.Remove(filepath.Join(dir, snapshotName(100, 1))); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenDiskStorage(dir, DiskOptions{}); err == nil || !strings.Contains(err.Error(), "snapshot") {
			t.Errorf("lost snapshot: %v", err)
		}
	})

	// Hand-made segments.
	entryBatch := func(indexes ...uint64) []byte {
		var b []byte
		b, start := beginBatch(b)
		for _, i := range indexes {
			e := core.Entry{Index: i, Term: 1}
			b = appendEntryRecord(b, &e)
		}
		endBatch(b, start, len(indexes))
		return b
	}
	writeSegment := func(t *testing.T, b []byte) (string, string) {
		dir := t.TempDir()
		path := filepath.Join(dir, segmentName(1, 1))
		if err := os.WriteFile(path, b, 0o640); err != nil {
			t.Fatal(err)
		}
		return dir, path
	}
	header := func() []byte { return segmentHeader(core.HardState{Term: 1, VotedFor: core.None}) }

	t.Run("gap between entries", func(t *testing.T) {
		b := append(header(), entryBatch(1, 2)...)
		b = append(b, entryBatch(4)...)
		b = append(b, entryBatch(5)...) // so that the gap is not at the tail
		dir, path := writeSegment(t, b)
		wantCorruption(t, dir, path)
	})
	t.Run("gap at the tail", func(t *testing.T) {
		// Intact records that make a gap are not a torn write either.
		b := append(header(), entryBatch(1, 2)...)
		b = append(b, entryBatch(4)...)
		dir, path := writeSegment(t, b)
		wantCorruption(t, dir, path)
	})
	t.Run("log not starting after the snapshot", func(t *testing.T) {
		b := append(header(), entryBatch(3, 4)...)
		dir, _ := writeSegment(t, b)
		if _, err := OpenDiskStorage(dir, DiskOptions{}); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Errorf("log starting at 3 with no snapshot: %v", err)
		}
	})
	t.Run("segment without hard state header", func(t *testing.T) {
		dir, path := writeSegment(t, entryBatch(1, 2))
		wantCorruption(t, dir, path)
	})
	t.Run("batch count mismatch", func(t *testing.T) {
		b := entryBatch(1, 2)
		// Rewrite the count in the batch header (and its CRC).
		b[recHeaderSize+9] = 3
		endRecord(b[:batchRecordSize], 0)
		dir, path := writeSegment(t, append(header(), b...))
		wantCorruption(t, dir, path)
	})
}

func TestDiskStorageClosed(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir, DiskOptions{})
	mustSave(t, s, nil, testEntries(1, 3, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Save(nil, testEntries(4, 4, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close: %v", err)
	}
	if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 2, LastIncludedTerm: 1}}); !errors.Is(err, ErrClosed) {
		t.Errorf("SaveSnapshot after Close: %v", err)
	}
	if _, _, _, err := s.Load(); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Close: %v", err)
	}
	if _, err := s.OpenSnapshot(); !errors.Is(err, ErrClosed) {
		t.Errorf("OpenSnapshot after Close: %v", err)
	}
	if _, err := s.CreateSnapshot(2); !errors.Is(err, ErrClosed) {
		t.Errorf("CreateSnapshot after Close: %v", err)
	}
}

// TestDiskStorageConcurrentUse runs a writer and readers at once (for -race).
func TestDiskStorageConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir, DiskOptions{NoSync: true, SegmentBytes: 4096})
	defer s.Close()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				_, snap, ents, err := s.Load()
				if err != nil {
					t.Errorf("Load: %v", err)
					return
				}
				first := uint64(1)
				if snap != nil {
					first = snap.LastIncludedIndex + 1
				}
				for i, e := range ents {
					if e.Index != first+uint64(i) {
						t.Errorf("entry %d at position %d of a read from %d", e.Index, i, first)
						return
					}
				}
			}
		})
	}
	for i := uint64(1); i <= 300; i++ {
		mustSave(t, s, &core.HardState{Term: i, VotedFor: 1}, testEntries(i, i, i))
		if i%50 == 0 {
			if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: i - 10, LastIncludedTerm: i - 10}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	wg.Wait()
}

// TestDiskStorageMatchesMemoryStorage runs random operations against a
// DiskStorage and a MemoryStorage, reopening the disk one now and then, and
// compares them after every step.
func TestDiskStorageMatchesMemoryStorage(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		t.Run(strconv.FormatInt(seed, 10), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			dir := t.TempDir()
			opts := DiskOptions{NoSync: true, SegmentBytes: 700}
			disk := openDisk(t, dir, opts)
			defer func() { disk.Close() }()
			mem := NewMemoryStorage()
			term := uint64(1)
			hs := core.HardState{Term: 1, VotedFor: core.None}
			for step := 0; step < 250; step++ {
				m := load(t, mem)
				first, last := m.snapIndex+1, m.last()
				var what string
				switch op := rng.Intn(20); {
				case op < 10: // append
					n := uint64(1 + rng.Intn(5))
					ents := testEntries(last+1, last+n, term)
					what = fmt.Sprintf("append %d..%d", last+1, last+n)
					compareErr(t, what, mem.Save(nil, ents), disk.Save(nil, ents))
				case op < 13: // new term, maybe replacing a suffix (possibly reaching into the snapshot)
					term++
					hs = core.HardState{Term: term, VotedFor: rng.Intn(4) - 1}
					lo := first + uint64(rng.Intn(int(last-first+2)))
					if lo > 3 && rng.Intn(4) == 0 {
						lo -= 3
					}
					hi := lo + uint64(rng.Intn(6))
					ents := testEntries(lo, hi, term)
					what = fmt.Sprintf("hs %+v, replace from %d..%d", hs, lo, hi)
					compareErr(t, what, mem.Save(&hs, ents), disk.Save(&hs, ents))
				case op < 14: // a gap
					ents := testEntries(last+2, last+2, term)
					what = "gap"
					compareErr(t, what, mem.Save(nil, ents), disk.Save(nil, ents))
				case op < 16: // snapshot, matching or not
					index := first - 1 + uint64(rng.Intn(int(last-first+4)))
					sterm, ok := m.term(index)
					if !ok || rng.Intn(3) == 0 {
						sterm = term + uint64(rng.Intn(2))
					}
					snap := &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: index, LastIncludedTerm: sterm, Config: core.Configuration{Voters: []int{0, rng.Intn(5)}}}, Data: []byte(fmt.Sprint("snap", index))}
					what = fmt.Sprintf("snapshot %d/%d", index, sterm)
					compareErr(t, what, saveSnapshot(mem, snap), saveSnapshot(disk, snap))
				default:
					what = "reopen"
					disk = reopenDisk(t, disk, dir, opts)
				}
				compareStorages(t, fmt.Sprintf("step %d (%s)", step, what), mem, disk)
				if t.Failed() {
					return
				}
			}
			disk = reopenDisk(t, disk, dir, opts)
			compareStorages(t, "final reopen", mem, disk)
		})
	}
}

func compareErr(t *testing.T, what string, memErr, diskErr error) {
	t.Helper()
	if (memErr == nil) != (diskErr == nil) || (memErr != nil && !errors.Is(diskErr, memErr)) {
		t.Errorf("%s: memory storage says %v, disk storage %v", what, memErr, diskErr)
	}
}

func compareStorages(t *testing.T, when string, mem *MemoryStorage, disk *DiskStorage) {
	t.Helper()
	mhs, _, ments, _ := mem.Load()
	dhs, _, dents, err := disk.Load()
	msnap, dsnap := storedSnapshot(t, mem), storedSnapshot(t, disk)
	if err != nil {
		t.Fatalf("%s: Load: %v", when, err)
	}
	if mhs != dhs {
		t.Errorf("%s: hard state %+v, memory has %+v", when, dhs, mhs)
	}
	if (msnap == nil) != (dsnap == nil) || msnap != nil && (!reflect.DeepEqual(msnap.Meta, dsnap.Meta) || !bytes.Equal(msnap.Data, dsnap.Data)) {
		t.Errorf("%s: snapshot %+v, memory has %+v", when, dsnap, msnap)
	}
	if !sameEntries(ments, dents) {
		t.Errorf("%s: entries %s, memory has %s", when, summarize(dents), summarize(ments))
	}
}

// The kill -9 test: a child process (this test binary, re-executed) saves
// batches in a loop and prints each batch's number once Save has returned;
// the parent kills it with SIGKILL mid-stream, reopens the directory and
// checks that everything acknowledged is there.

const killHelperEnv = "RAFT_DISK_KILL_HELPER_DIR"

var killOpts = DiskOptions{SegmentBytes: 8 << 10}

// killModel generates the child's batches deterministically, and is what
// the parent replays to know what each acknowledgement covers.
type killModel struct {
	k         int
	hs        core.HardState
	snapIndex uint64
	snapTerm  uint64
	ents      []core.Entry // after the snapshot
}

type killStep struct {
	hs   *core.HardState
	ents []core.Entry
	snap *testSnapshot // saved after the entries, if not nil
}

func (m *killModel) last() uint64 { return m.snapIndex + uint64(len(m.ents)) }

func (m *killModel) next() killStep {
	k := m.k + 1
	term := uint64(1 + k/40)
	var st killStep
	if term != m.hs.Term {
		st.hs = &core.HardState{Term: term, VotedFor: k%3 - 1}
	}
	first, n := m.last()+1, uint64(1+k%4)
	if k%25 == 0 && len(m.ents) > 5 {
		first, n = m.last()-3, 6 // a follower replacing a suffix
	}
	for i := first; i < first+n; i++ {
		data := fmt.Sprintf("%d/%d/%d/%s", i, term, k, strings.Repeat("x", int(i*7%50)))
		st.ents = append(st.ents, core.Entry{Index: i, Term: term, Data: []byte(data)})
	}
	if index := first + n - 1 - 5; k%70 == 0 && index > m.snapIndex {
		// A snapshot of what the log holds at index, as a leader's would be.
		sterm := term
		if index < first {
			sterm = m.ents[index-m.snapIndex-1].Term
		}
		st.snap = &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: index, LastIncludedTerm: sterm, Config: core.Configuration{Voters: []int{0}}}, Data: []byte(fmt.Sprint(k))}
	}
	return st
}

// apply records st; withSnap false applies only its Save.
func (m *killModel) apply(st killStep, withSnap bool) {
	m.k++
	if st.hs != nil {
		m.hs = *st.hs
	}
	m.ents = append(m.ents[:st.ents[0].Index-m.snapIndex-1], st.ents...)
	if withSnap && st.snap != nil {
		i := st.snap.Meta.LastIncludedIndex
		m.ents = slices.Clone(m.ents[i-m.snapIndex:])
		m.snapIndex, m.snapTerm = i, st.snap.Meta.LastIncludedTerm
	}
}

func TestDiskHelperProcess(t *testing.T) {
	dir := os.Getenv(killHelperEnv)
	if dir == "" {
		return
	}
	s, err := OpenDiskStorage(dir, killOpts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var m killModel
	for m.k < 1_000_000 {
		st := m.next()
		if err := s.Save(st.hs, st.ents); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if st.snap != nil {
			if err := saveSnapshot(s, st.snap); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
		}
		m.apply(st, true)
		fmt.Printf("ack %d\n", m.k) // os.Stdout is unbuffered: one write per line
	}
	os.Exit(0)
}

func TestDiskStorageKill9(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), killHelperEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	acked := 0
	sc := bufio.NewScanner(stdout)
	read := func() bool {
		if !sc.Scan() {
			return false
		}
		if n, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			k, err := strconv.Atoi(n)
			if err != nil || k != acked+1 {
				t.Fatalf("helper printed %q after ack %d", sc.Text(), acked)
			}
			acked = k
		}
		return true
	}
	for acked < 300 && read() {
	}
	if acked < 300 {
		t.Fatalf("helper stopped after %d acks: %s", acked, stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	// What the child printed before it died was acknowledged too.
	for read() {
	}
	cmd.Wait()

	// The storage holds the state after the acked batches, or after the
	// one in flight when the child died (its Save, or Save and snapshot).
	var m killModel
	for m.k < acked {
		m.apply(m.next(), true)
	}
	candidates := []killModel{cloneKillModel(m)}
	st := m.next()
	m1 := cloneKillModel(m)
	m1.apply(st, false)
	candidates = append(candidates, m1)
	if st.snap != nil {
		m2 := cloneKillModel(m)
		m2.apply(st, true)
		candidates = append(candidates, m2)
	}

	s := openDisk(t, dir, killOpts)
	defer s.Close()
	hs, snap, ents, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	var snapIndex, snapTerm uint64
	if snap != nil {
		snapIndex, snapTerm = snap.LastIncludedIndex, snap.LastIncludedTerm
	}
	match := -1
	for i, c := range candidates {
		if c.hs == hs && c.snapIndex == snapIndex && c.snapTerm == snapTerm && sameEntries(c.ents, ents) {
			match = i
		}
	}
	if match < 0 {
		t.Fatalf("after %d acknowledged batches the storage holds hs %+v, snapshot %d/%d, entries %s; want hs %+v, snapshot %d/%d, entries %s (or the next batch applied)",
			acked, hs, snapIndex, snapTerm, summarize(ents), m.hs, m.snapIndex, m.snapTerm, summarize(m.ents))
	}
	t.Logf("%d batches acknowledged, last index %d, %d segments, torn bytes %d, in-flight batch durable: %v",
		acked, snapIndex+uint64(len(ents)), len(segmentFiles(t, dir)), s.Recovered(), match > 0)
	// And the storage goes on.
	mustSave(t, s, nil, []core.Entry{{Index: snapIndex + uint64(len(ents)) + 1, Term: hs.Term}})
}

func cloneKillModel(m killModel) killModel {
	m.ents = slices.Clone(m.ents)
	return m
}

// FuzzDiskStorageOpen feeds arbitrary bytes to OpenDiskStorage as the last
// segment (mode 0), an older segment (mode 1) or a snapshot file (mode 2).
// Open may refuse them but must not panic, and a storage it opens must work.
func FuzzDiskStorageOpen(f *testing.F) {
	dir := f.TempDir()
	s := openDisk(f, dir, DiskOptions{NoSync: true})
	mustSave(f, s, &core.HardState{Term: 2, VotedFor: core.None}, testEntries(1, 5, 1))
	mustSave(f, s, &core.HardState{Term: 3, VotedFor: 1}, testEntries(4, 8, 3))
	if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 5, LastIncludedTerm: 3}}); err != nil {
		f.Fatal(err)
	}
	s.Close()
	seg, err := os.ReadFile(segmentFiles(f, dir)[0])
	if err != nil {
		f.Fatal(err)
	}
	snap := &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 5, LastIncludedTerm: 1, Config: core.Configuration{Voters: []int{1, 2}}}, Data: []byte("data")}
	snapFile := append(snapshotFileBytes(snap), snap.Data...)
	for _, mode := range []byte{0, 1} {
		f.Add(mode, seg)
		f.Add(mode, seg[:len(seg)-7])
		f.Add(mode, seg[:segmentHeaderSize])
	}
	f.Add(byte(2), snapFile)
	f.Add(byte(2), snapFile[:len(snapFile)-1])
	f.Add(byte(0), []byte{})

	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		dir := t.TempDir()
		write := func(name string, b []byte) {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
				t.Fatal(err)
			}
		}
		switch mode % 3 {
		case 0:
			write(segmentName(1, 1), data)
		case 1:
			write(segmentName(1, 1), data)
			write(segmentName(2, 1), segmentHeader(core.HardState{Term: 1, VotedFor: core.None}))
		case 2:
			write(snapshotName(5, 1), data)
		}
		opts := DiskOptions{NoSync: true}
		s, err := OpenDiskStorage(dir, opts)
		if err != nil {
			return
		}
		hs, snap, ents, err := s.Load()
		if err != nil {
			t.Fatalf("Load after a successful open: %v", err)
		}
		var snapIndex uint64
		if snap != nil {
			snapIndex = snap.LastIncludedIndex
		}
		for i, e := range ents {
			if e.Index != snapIndex+1+uint64(i) {
				t.Fatalf("entry %d at position %d after snapshot %d", e.Index, i, snapIndex)
			}
		}
		last := snapIndex + uint64(len(ents))
		if last == math.MaxUint64 {
			s.Close()
			return
		}
		next := core.Entry{Index: last + 1, Term: hs.Term, Data: []byte("after")}
		mustSave(t, s, &core.HardState{Term: hs.Term, VotedFor: 1}, []core.Entry{next})
		s = reopenDisk(t, s, dir, opts)
		defer s.Close()
		after := load(t, s)
		if got, ok := after.term(next.Index); !ok || got != next.Term || !sameEntries(after.ents[len(after.ents)-1:], []core.Entry{next}) {
			t.Fatalf("entry saved after open: stored log %s", summarize(after.ents))
		}
	})
}

// segmentHeader is the batch a segment starts with.
func segmentHeader(hs core.HardState) []byte {
	b, start := beginBatch(nil)
	b = appendHardStateRecord(b, hs)
	endBatch(b, start, 1)
	return b
}

func BenchmarkDiskStorageSave(b *testing.B) {
	for _, bc := range []struct {
		name   string
		n      int
		noSync bool
	}{
		{"sync/1x64B", 1, false},
		{"sync/16x64B", 16, false},
		{"nosync/1x64B", 1, true},
		{"nosync/16x64B", 16, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := openDisk(b, b.TempDir(), DiskOptions{NoSync: bc.noSync})
			defer s.Close()
			data := make([]byte, 64)
			ents := make([]core.Entry, bc.n)
			next := uint64(1)
			b.SetBytes(int64(len(data) * bc.n))
			b.ReportAllocs()
			for b.Loop() {
				for i := range ents {
					ents[i] = core.Entry{Index: next + uint64(i), Term: 1, Data: data}
				}
				if err := s.Save(nil, ents); err != nil {
					b.Fatal(err)
				}
				next += uint64(bc.n)
			}
		})
	}
}

// TestSnapshotStreaming: a snapshot's data is written through a writer and
// read back through a reader, on either storage; misuse is refused; an
// aborted writer leaves nothing behind; a reader of a replaced snapshot
// still reads it.
func TestSnapshotStreaming(t *testing.T) {
	dir := t.TempDir()
	for name, s := range map[string]Storage{"memory": NewMemoryStorage(), "disk": openDisk(t, dir, DiskOptions{})} {
		t.Run(name, func(t *testing.T) {
			defer s.Close()
			mustSave(t, s, &core.HardState{Term: 1, VotedFor: 0}, testEntries(1, 30, 1))
			data := bytes.Repeat([]byte("0123456789"), 10000) // written in many pieces
			w, err := s.CreateSnapshot(10)
			if err != nil {
				t.Fatal(err)
			}
			for p := data; len(p) > 0; p = p[min(len(p), 777):] {
				if _, err := w.Write(p[:min(len(p), 777)]); err != nil {
					t.Fatal(err)
				}
			}
			meta := core.SnapshotMeta{LastIncludedIndex: 10, LastIncludedTerm: 1, Config: core.Configuration{Voters: []int{0}}, Size: uint64(len(data)), App: []byte("v2")}
			if err := s.InstallSnapshot(meta, w); !errors.Is(err, ErrSnapshot) {
				t.Errorf("install before Close: %v, want ErrSnapshot", err)
			}
			if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 10, LastIncludedTerm: 1}, Data: data}); err != nil {
				t.Fatal(err)
			}
			r, err := s.OpenSnapshot()
			if err != nil || r == nil {
				t.Fatalf("OpenSnapshot: %v", err)
			}
			defer r.Close()
			// A wrong size is refused; an aborted writer leaves nothing.
			w2, _ := s.CreateSnapshot(20)
			w2.Write([]byte("abc"))
			w2.Close()
			if err := s.InstallSnapshot(core.SnapshotMeta{LastIncludedIndex: 20, LastIncludedTerm: 1, Size: 4}, w2); !errors.Is(err, ErrSnapshot) {
				t.Errorf("install with a wrong size: %v, want ErrSnapshot", err)
			}
			w3, _ := s.CreateSnapshot(20)
			w3.Write([]byte("abc"))
			w3.Abort()
			if name == "disk" {
				names, _ := os.ReadDir(dir)
				for _, n := range names {
					if strings.HasSuffix(n.Name(), snapTempSuffix) {
						t.Errorf("%s left behind", n.Name())
					}
				}
			}
			// A newer snapshot replaces it; the open reader still reads the old.
			if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 25, LastIncludedTerm: 1}, Data: []byte("newer")}); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(NewSnapshotReaderSection(r))
			if err != nil || !bytes.Equal(got, data) || r.Meta().LastIncludedIndex != 10 {
				t.Errorf("old reader: %d bytes, %v, meta %+v", len(got), err, r.Meta())
			}
			if snap := storedSnapshot(t, s); snap.Meta.LastIncludedIndex != 25 || string(snap.Data) != "newer" {
				t.Errorf("stored snapshot %+v", snap)
			}
			checkStorage(t, s, core.HardState{Term: 1, VotedFor: 0}, 25, 1, testEntries(26, 30, 1))
		})
	}
}

// TestSnapshotReadsAreChecked: a read of a snapshot's data, at any offset
// and after the file was checked at open, checks the blocks it touches, so
// that a disk returning other bytes is caught, not restored or sent.
func TestSnapshotReadsAreChecked(t *testing.T) {
	disk := simdisk.New(rand.New(rand.NewSource(1)))
	s, err := OpenDiskStorage("/data", DiskOptions{FS: disk})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustSave(t, s, &core.HardState{Term: 1, VotedFor: 0}, testEntries(1, 5, 1))
	data := bytes.Repeat([]byte("abcdefghij"), 20000) // 200 kB: four blocks
	if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: 3, LastIncludedTerm: 1}, Data: data}); err != nil {
		t.Fatal(err)
	}
	r, err := s.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 1000)
	if _, err := r.ReadAt(buf, 65000); err != nil || !bytes.Equal(buf, data[65000:66000]) {
		t.Fatalf("a read across a block boundary: %v", err)
	}
	disk.Faults.CorruptRead = 1
	if _, err := r.ReadAt(buf, 130000); !errors.Is(err, ErrSnapshotRead) {
		t.Fatalf("a corrupted read: %v, want ErrSnapshotRead", err)
	}
	disk.Faults.CorruptRead = 0
	if _, err := io.ReadAll(NewSnapshotReaderSection(r)); err != nil {
		t.Fatalf("after the fault: %v", err)
	}
}

// syncCountingFS counts the syncs of the files it opens.
type syncCountingFS struct {
	vfs.OS
	syncs, datasyncs *int
}

func (c syncCountingFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := c.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return syncCountingFile{f, c}, nil
}

type syncCountingFile struct {
	vfs.File
	c syncCountingFS
}

func (f syncCountingFile) Sync() error     { *f.c.syncs++; return f.File.Sync() }
func (f syncCountingFile) Datasync() error { *f.c.datasyncs++; return f.File.Datasync() }

// TestDiskStoragePreallocatesSegments checks that every segment is created
// at its full size, that a Save writes over it without growing it and
// syncs with Datasync, and that the log goes on where its data ends after
// a reopen.
func TestDiskStoragePreallocatesSegments(t *testing.T) {
	dir := t.TempDir()
	var syncs, datasyncs int
	opts := DiskOptions{SegmentBytes: 1024, FS: syncCountingFS{syncs: &syncs, datasyncs: &datasyncs}}
	s := openDisk(t, dir, opts)
	hs := core.HardState{Term: 1, VotedFor: 2}
	mustSave(t, s, &hs, nil)
	want := []core.Entry{}
	for i := uint64(1); i <= 60; i += 3 {
		before := syncs
		mustSave(t, s, nil, testEntries(i, i+2, 1))
		want = append(want, testEntries(i, i+2, 1)...)
		segs := segmentFiles(t, dir)
		if got := syncs - before; got != 0 && got != 1 {
			t.Fatalf("a Save made %d fsyncs", got)
		} else if got == 1 && fileSize(t, segs[len(segs)-1]) != 1024 {
			t.Fatalf("an fsync outside a new segment's preallocation")
		}
		for _, seg := range segs {
			if n := fileSize(t, seg); n != 1024 {
				t.Fatalf("segment %s is %d bytes, want its preallocated 1024", filepath.Base(seg), n)
			}
		}
	}
	segs := segmentFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	// One fsync per segment (its zeros), a datasync per Save.
	if syncs != len(segs) || datasyncs != 21 {
		t.Errorf("%d fsyncs and %d fdatasyncs for %d segments and 21 Saves", syncs, datasyncs, len(segs))
	}
	// A Save larger than a segment grows its file past the preallocation.
	big := []core.Entry{{Index: 61, Term: 1, Data: bytes.Repeat([]byte("b"), 6000)}}
	mustSave(t, s, nil, big)
	want = append(want, big...)
	segs = segmentFiles(t, dir)
	if n := fileSize(t, segs[len(segs)-1]); n <= 1024 {
		t.Errorf("the segment holding a 6000-byte entry is %d bytes", n)
	}
	s = reopenDisk(t, s, dir, opts)
	checkStorage(t, s, hs, 0, 0, want)
	mustSave(t, s, nil, testEntries(62, 64, 1))
	want = append(want, testEntries(62, 64, 1)...)
	s = reopenDisk(t, s, dir, opts)
	defer s.Close()
	if n := s.Recovered(); n != 0 {
		t.Errorf("Recovered() = %d after clean closes", n)
	}
	checkStorage(t, s, hs, 0, 0, want)
}
