package storage

import (
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
