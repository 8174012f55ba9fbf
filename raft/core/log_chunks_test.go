package core

import (
	"bytes"
	"math/rand"
	"slices"
	"strconv"
	"testing"
)

func sameEntry(a, b Entry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && bytes.Equal(a.Data, b.Data)
}

// TestEntryChunksAgainstASlice drives entryChunks and a plain slice with the
// same random pushes, truncations and compactions, across chunk boundaries,
// and checks that they hold the same entries, that every span is what the
// slice says, that no span handed out earlier ever changes (messages
// queued for sending alias them), and that nothing dropped stays reachable
// before the first entry. It runs with the real chunk size and with tiny
// ones, where every step crosses boundaries.
func TestEntryChunksAgainstASlice(t *testing.T) {
	for _, size := range []int{logChunk, 1, 2, 3, 8} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			defer SetLogChunk(size)()
			entryChunksAgainstASlice(t)
		})
	}
}

func entryChunksAgainstASlice(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var s entryChunks
	var model []Entry
	type handed struct{ got, want []Entry }
	var out []handed
	next := uint64(1)
	entry := func() Entry {
		next++
		return Entry{Index: next, Term: next % 7, Data: []byte{byte(next)}}
	}
	for step := 0; step < 3000; step++ {
		switch r := rng.Intn(100); {
		case r < 55:
			ents := make([]Entry, 1+rng.Intn(rng.Intn(3*logChunk)+1))
			for i := range ents {
				ents[i] = entry()
			}
			s.push(ents)
			model = append(model, ents...)
		case r < 65 && len(model) > 0:
			n := rng.Intn(len(model) + 1)
			s.truncate(n)
			model = model[:n:n]
		case r < 72 && len(model) > 0:
			k := rng.Intn(len(model) + 1)
			if rng.Intn(4) == 0 {
				k = len(model) - rng.Intn(max(1, logChunk/2))
				k = max(k, 0)
			}
			s.dropFront(k)
			model = model[k:]
		case len(model) > 0:
			lo := rng.Intn(len(model))
			hi := lo + 1 + rng.Intn(len(model)-lo)
			got := s.span(lo, hi)
			if cap(got) != len(got) {
				t.Fatalf("step %d: span(%d, %d) has capacity %d past its length %d", step, lo, hi, cap(got), len(got))
			}
			out = append(out, handed{got, slices.Clone(model[lo:hi])})
		}
		if s.len() != len(model) {
			t.Fatalf("step %d: %d entries, want %d", step, s.len(), len(model))
		}
		if len(model) > 0 {
			for _, i := range []int{0, len(model) / 2, len(model) - 1, rng.Intn(len(model))} {
				if got := *s.at(i); !sameEntry(got, model[i]) {
					t.Fatalf("step %d: at(%d) = %d, want %d", step, i, got.Index, model[i].Index)
				}
			}
		}
		// Compacted entries must not stay reachable (with their data)
		// in the first chunk's array, before head.
		if len(s.chunks) > 0 {
			for p, e := range s.chunks[0][:s.head] {
				if e.Data != nil || e.Index != 0 {
					t.Fatalf("step %d: position %d, before the first entry at %d, still holds entry %d", step, p, s.head, e.Index)
				}
			}
		}
		for len(s.chunks) > 1 && cap(s.chunks[0]) != logChunk {
			t.Fatalf("step %d: a first chunk of %d positions among %d chunks", step, cap(s.chunks[0]), len(s.chunks))
		}
	}
	for i, h := range out {
		if !slices.EqualFunc(h.got, h.want, sameEntry) {
			t.Fatalf("span %d changed after it was handed out", i)
		}
	}
}

// TestShortLogStaysSmall: a log that stays short (a host's idle groups)
// keeps a chunk of about its own size, also after compactions.
func TestShortLogStaysSmall(t *testing.T) {
	var l raftLog
	for i := uint64(1); i <= 5000; i++ {
		l.append(Entry{Index: i, Term: 1})
		if i%10 == 0 {
			l.compact(i-3, 1)
		}
	}
	if n := len(l.entries.chunks); n != 1 || cap(l.entries.chunks[0]) > 16 {
		t.Fatalf("a log of %d entries keeps %d chunks, the first of %d", l.entries.len(), n, cap(l.entries.chunks[0]))
	}
}
