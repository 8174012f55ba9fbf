package storage

import (
	"bytes"
	"io"
	"math/rand"
	"reflect"
	"testing"

	"raft-consensus/raft/core"
)

// TestMemoryStorageChunks checks MemoryStorage's chunked log against a
// plain slice through random saves, truncations and snapshots that cross
// chunk boundaries.
func TestMemoryStorageChunks(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	s := NewMemoryStorage()
	var model []core.Entry // the entries after the snapshot
	var snapIndex, snapTerm, term uint64 = 0, 0, 1
	last := func() uint64 { return snapIndex + uint64(len(model)) }
	for step := range 3000 {
		switch k := r.Intn(10); {
		case k < 6: // append, maybe over a suffix
			first := last() + 1
			if len(model) > 0 && r.Intn(3) == 0 {
				first = snapIndex + 1 + uint64(r.Intn(len(model)))
				term++
			}
			n := 1 + r.Intn(3*memChunk/2)
			if r.Intn(2) == 0 {
				n = 1 + r.Intn(20)
			}
			ents := make([]core.Entry, n)
			for i := range ents {
				ents[i] = core.Entry{Index: first + uint64(i), Term: term, Data: []byte{byte(step)}}
			}
			if err := s.Save(nil, ents); err != nil {
				t.Fatal(err)
			}
			model = append(model[:first-snapIndex-1], ents...)
		case k < 8 && len(model) > 0: // snapshot that keeps the rest
			i := snapIndex + 1 + uint64(r.Intn(len(model)))
			e := model[i-snapIndex-1]
			if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: i, LastIncludedTerm: e.Term}}); err != nil {
				t.Fatal(err)
			}
			model = append([]core.Entry(nil), model[i-snapIndex:]...)
			snapIndex, snapTerm = i, e.Term
		case k < 9: // snapshot beyond the log, or of another term: drops it all
			i := last() + uint64(r.Intn(3))
			if i <= snapIndex {
				continue
			}
			term++
			if err := saveSnapshot(s, &testSnapshot{Meta: core.SnapshotMeta{LastIncludedIndex: i, LastIncludedTerm: term}}); err != nil {
				t.Fatal(err)
			}
			model, snapIndex, snapTerm = nil, i, term
		default: // nothing: only the check below
		}
		if step%10 != 0 && step != 2999 {
			continue // Load copies the whole log: check every tenth step
		}
		st := load(t, s)
		if st.snapIndex != snapIndex || st.last() != last() {
			t.Fatalf("step %d: stored %d..%d, want %d..%d", step, st.snapIndex+1, st.last(), snapIndex+1, last())
		}
		if tm, ok := st.term(snapIndex); !ok || tm != snapTerm {
			t.Fatalf("step %d: term at the snapshot %d is %d, want %d", step, snapIndex, tm, snapTerm)
		}
		if !reflect.DeepEqual(st.ents, append([]core.Entry{}, model...)) {
			t.Fatalf("step %d: stored entries differ from the model", step)
		}
	}
}

// TestMemorySnapshotChunks writes a snapshot of several chunks in writes
// of odd sizes and reads it back whole and at offsets across chunk
// boundaries.
func TestMemorySnapshotChunks(t *testing.T) {
	st := NewMemoryStorage()
	if err := st.Save(&core.HardState{Term: 1}, []core.Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}}); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 2*memSnapshotChunk+12345)
	for i := range want {
		want[i] = byte(i * 7)
	}
	w, err := WriteSnapshot(st, 2, func(out io.Writer) error {
		for b := want; len(b) > 0; {
			n := min(len(b), 1+len(b)%70001)
			if _, err := out.Write(b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.InstallSnapshot(core.SnapshotMeta{LastIncludedIndex: 2, LastIncludedTerm: 1, Size: w.Size()}, w); err != nil {
		t.Fatal(err)
	}
	r, err := st.OpenSnapshot()
	if err != nil || r == nil {
		t.Fatal(r, err)
	}
	defer r.Close()
	got := make([]byte, len(want))
	if n, err := r.ReadAt(got, 0); n != len(want) || (err != nil && err != io.EOF) || !bytes.Equal(got, want) {
		t.Fatalf("whole read: %d bytes, %v, equal %v", n, err, bytes.Equal(got, want))
	}
	for _, off := range []int{0, memSnapshotChunk - 3, memSnapshotChunk, 2*memSnapshotChunk - 1, len(want) - 10} {
		p := make([]byte, 100)
		n, err := r.ReadAt(p, int64(off))
		wantN := min(100, len(want)-off)
		if n != wantN || !bytes.Equal(p[:n], want[off:off+n]) || (n < 100 && err != io.EOF) {
			t.Fatalf("read at %d: %d bytes (want %d), %v", off, n, wantN, err)
		}
	}
}
