package core

// logChunk is the number of entries in every chunk of the log but the last.
// A variable only so that tests can make chunks small (SetLogChunk), and
// the simulation then crosses their boundaries all the time.
var logChunk = 4096

// entryChunks is a sequence of entries kept in chunks of logChunk, so that
// a long log grows without ever being copied whole. A contiguous slice of a
// million entries is reallocated, zeroed and copied each time it doubles
// (96 MB at 2M entries), and the goroutine that allocates it in a GC cycle
// pays for marking in proportion: in the steady-load bench with a large
// state machine such growths began gaps of 118 and 296 ms with no write
// completed, on the node's goroutine holding the core.
//
// The entry at i sits at position p = head+i, in chunks[p/logChunk] at
// p%logChunk. Only a chunk that is the first and the last may hold fewer
// than logChunk positions: it grows by doubling, so a short log (a host's
// many idle groups) stays small.
//
// Entries once handed out (span) are never written over in place: slices
// in messages queued for sending may alias them. truncate copies the chunk
// it cuts into, and push writes only into positions no one has seen.
type entryChunks struct {
	chunks [][]Entry
	head   int // position of the first entry, in chunks[0]
	n      int // number of entries
}

func (s *entryChunks) len() int { return s.n }

// at returns the entry at i, which must be in [0, len).
func (s *entryChunks) at(i int) *Entry {
	p := s.head + i
	return &s.chunks[p/logChunk][p%logChunk]
}

// span returns the entries in [lo, hi), 0 ≤ lo < hi ≤ len, with the
// capacity capped so that a receiver appending to it writes into no chunk:
// the chunk's own array when they lie in one chunk (no copy, the usual
// case), a copy when they cross from one to the next.
func (s *entryChunks) span(lo, hi int) []Entry {
	p, q := s.head+lo, s.head+hi
	if c := p / logChunk; (q-1)/logChunk == c {
		base := c * logChunk
		return s.chunks[c][p-base : q-base : q-base]
	}
	out := make([]Entry, 0, hi-lo)
	for p < q {
		off := p % logChunk
		n := min(q-p, logChunk-off)
		out = append(out, s.chunks[p/logChunk][off:off+n]...)
		p += n
	}
	return out
}

// push appends ents.
func (s *entryChunks) push(ents []Entry) {
	for len(ents) > 0 {
		if len(s.chunks) == 0 || s.head+s.n == len(s.chunks)*logChunk {
			c := logChunk
			if len(s.chunks) == 0 {
				// A first chunk just big enough: an idle group of a
				// multi-raft host holds 2 entries, and 8 would cost
				// 288 bytes more per replica (TestIdleReplicaHeapIsSmall).
				c = min(logChunk, max(2, len(ents)))
			}
			s.chunks = append(s.chunks, make([]Entry, 0, c))
		}
		last := &s.chunks[len(s.chunks)-1]
		k := min(len(ents), logChunk-len(*last))
		if len(*last)+k > cap(*last) {
			// Only a lone first chunk is short: double it (a copy of
			// at most logChunk entries; slices handed out keep the old
			// array).
			grown := make([]Entry, len(*last), min(logChunk, max(2*cap(*last), len(*last)+k)))
			copy(grown, *last)
			*last = grown
		}
		*last = append(*last, ents[:k]...)
		s.n += k
		ents = ents[k:]
	}
}

// truncate keeps the first n entries. The chunk it cuts into is replaced
// by a copy of what it keeps, so the positions it frees are written again
// only in a new array: slices handed out may alias the old one.
func (s *entryChunks) truncate(n int) {
	switch {
	case n >= s.n:
		return
	case n == 0:
		*s = entryChunks{}
		return
	}
	end := s.head + n
	k := (end - 1) / logChunk
	clear(s.chunks[k+1:])
	s.chunks = s.chunks[:k+1]
	c := s.chunks[k]
	s.chunks[k] = append(make([]Entry, 0, cap(c)), c[:end-k*logChunk]...)
	s.n = n
}

// dropFront drops the first k entries (compaction). Whole chunks are let
// go; a short remainder is copied into a chunk of its own size, so that a
// group whose log stays short keeps a small one after each snapshot.
func (s *entryChunks) dropFront(k int) {
	if k >= s.n {
		*s = entryChunks{}
		return
	}
	if rest := s.n - k; rest <= logChunk/4 {
		kept := s.span(k, s.n)
		*s = entryChunks{}
		s.push(kept)
		return
	}
	s.head += k
	s.n -= k
	if d := s.head / logChunk; d > 0 {
		clear(s.chunks[:d])
		s.chunks = s.chunks[d:]
		s.head -= d * logChunk
	}
	// The entries dropped from the first chunk would still sit before head
	// in its array, their data with them, reachable until a compaction
	// passed the chunk's end (an idle group's may never come: up to 4,095
	// entries kept for good). They cannot be cleared in place (messages
	// queued for a slow follower may alias them), so the chunk moves to a
	// new array with the positions before head left zero; truncate and
	// push, which copy a chunk whole, then carry only zeros over.
	if s.head > 0 {
		c := s.chunks[0]
		live := make([]Entry, len(c), cap(c))
		copy(live[s.head:], c[s.head:])
		s.chunks[0] = live
	}
}
