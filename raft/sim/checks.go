package sim

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	"raft-consensus/raft/core"
)

// safetyChecker watches a simulated cluster and checks the safety
// properties of Figure 3 of the paper as they happen:
//
//   - Election Safety: at most one leader per term.
//   - Log Matching: two entries with the same index and term hold the same
//     command (and, checked in full by checkLogMatching, identical prefixes).
//   - Leader Completeness: a leader's log holds every committed entry.
//   - State Machine Safety: no two servers commit or apply different
//     entries at one index.
type safetyChecker struct {
	leaders   map[uint64]int             // term → leader
	entries   map[[2]uint64]uint64       // (index, term) → digest of the entry
	committed map[uint64]committedDigest // index → the entry committed there
	maxCommit uint64
}

type committedDigest struct {
	term   uint64
	digest uint64
	by     int
	// in bounds the term in which the entry was committed: the lowest
	// current term of a server seen treating it as committed (a server
	// learns of a commit from a leader of its own term, which committed it
	// in that term or an earlier one).
	in uint64
}

func newSafetyChecker() *safetyChecker {
	return &safetyChecker{leaders: map[uint64]int{}, entries: map[[2]uint64]uint64{}, committed: map[uint64]committedDigest{}}
}

func entryDigest(e *core.Entry) uint64 {
	h := fnv.New64a()
	h.Write([]byte{byte(e.Type)})
	h.Write(e.Data)
	return h.Sum64()
}

// observeLeader records that node leads term.
func (c *safetyChecker) observeLeader(node int, term uint64) error {
	if prev, ok := c.leaders[term]; ok && prev != node {
		return fmt.Errorf("election safety: nodes %d and %d both lead term %d", prev, node, term)
	}
	c.leaders[term] = node
	return nil
}

// observeEntry records an entry a node appended to its log.
func (c *safetyChecker) observeEntry(node int, e *core.Entry) error {
	d := entryDigest(e)
	key := [2]uint64{e.Index, e.Term}
	if prev, ok := c.entries[key]; ok && prev != d {
		return fmt.Errorf("log matching: node %d holds a different entry at index %d term %d", node, e.Index, e.Term)
	}
	c.entries[key] = d
	return nil
}

// observeCommitted records that node, in its term, considers e committed
// (or applied it).
func (c *safetyChecker) observeCommitted(node int, term uint64, e *core.Entry) error {
	d := entryDigest(e)
	if prev, ok := c.committed[e.Index]; ok {
		if prev.term != e.Term || prev.digest != d {
			return fmt.Errorf("state machine safety: node %d committed index %d term %d, node %d committed term %d there",
				node, e.Index, e.Term, prev.by, prev.term)
		}
		if term < prev.in {
			prev.in = term
			c.committed[e.Index] = prev
		}
		return nil
	}
	c.committed[e.Index] = committedDigest{term: e.Term, digest: d, by: node, in: term}
	c.maxCommit = max(c.maxCommit, e.Index)
	return nil
}

// checkLeaderCompleteness checks that a new leader's log holds every entry
// committed in an earlier term (Figure 3: an entry committed in a term is
// in the logs of the leaders of every higher term), above its snapshot,
// which covers a committed prefix. A leader of an older term can still be
// elected after a newer term's commit: its votes may arrive very late.
func (c *safetyChecker) checkLeaderCompleteness(node int, term uint64, log logView) error {
	for idx := log.FirstIndex(); idx <= c.maxCommit; idx++ {
		want, ok := c.committed[idx]
		if !ok || want.in >= term {
			continue
		}
		e, have := log.EntryAt(idx)
		if !have {
			return fmt.Errorf("leader completeness: leader %d of term %d lacks committed index %d (log ends at %d)", node, term, idx, log.LastIndex())
		}
		if t := e.Term; t != want.term || entryDigest(&e) != want.digest {
			return fmt.Errorf("leader completeness: leader %d of term %d holds term %d at committed index %d (committed: term %d)", node, term, t, idx, want.term)
		}
	}
	return nil
}

// logView is read access to a log: *core.Core gives it.
type logView interface {
	FirstIndex() uint64
	LastIndex() uint64
	EntryAt(i uint64) (core.Entry, bool)
}

// checkLogMatching compares two logs in full: if they hold an entry with
// the same index and term, all entries up to it must be identical.
func checkLogMatching(a, b int, la, lb logView) error {
	lo := max(la.FirstIndex(), lb.FirstIndex())
	hi := min(la.LastIndex(), lb.LastIndex())
	// Find the highest common index where the terms agree.
	match := uint64(0)
	for i := hi; i >= lo && i > 0; i-- {
		ea, _ := la.EntryAt(i)
		eb, _ := lb.EntryAt(i)
		if ea.Term == eb.Term {
			match = i
			break
		}
	}
	for i := lo; i <= match && i > 0; i++ {
		ea, _ := la.EntryAt(i)
		eb, _ := lb.EntryAt(i)
		if ea.Term != eb.Term || entryDigest(&ea) != entryDigest(&eb) {
			return fmt.Errorf("log matching: nodes %d and %d agree at index %d but differ at %d (terms %d, %d)", a, b, match, i, ea.Term, eb.Term)
		}
	}
	return nil
}

// checkAfterStep checks a server after each of its steps: election safety,
// leader completeness, state machine safety of what it committed, that the
// log it believes durable is what its storage promised, that its followers
// hold what it counts them for, and finishes removals.
func (s *server) checkAfterStep() {
	w := s.w
	c := s.driver.Core()
	if c.Role() == core.Leader {
		if err := w.checker.observeLeader(s.id, c.Term()); err != nil {
			w.fail(err)
		}
		if s.role != core.Leader {
			w.stats.elections++
			if err := w.checker.checkLeaderCompleteness(s.id, c.Term(), c); err != nil {
				w.fail(err)
			}
		}
		s.checkFollowers()
	}
	s.role = c.Role()
	for i := max(s.lastChecked+1, c.FirstIndex()); i <= c.Committed(); i++ {
		e, _ := c.EntryAt(i)
		if err := w.checker.observeCommitted(s.id, c.Term(), &e); err != nil {
			w.fail(err)
		}
	}
	s.lastChecked = max(s.lastChecked, c.Committed())
	// The durable prefix the core believes in is what the storage promised.
	p := &s.st.promised
	if st := c.Stable(); st > p.last() {
		w.fail(fmt.Errorf("node %d: the core counts entries to %d as durable; the storage promised only to %d", s.id, st, p.last()))
	} else if t, ok := c.TermAt(st); ok {
		if pt, ok := p.termAt(st); ok && pt != t {
			w.fail(fmt.Errorf("node %d: the core counts entry %d of term %d as durable; the storage holds term %d there", s.id, st, t, pt))
		}
	}
	w.finishRemovals(s)
}

// checkFollowers: a leader's match index for a follower in its own term
// is never beyond the follower's log (a follower acknowledges only what
// it made durable, and keeps it across crashes).
func (s *server) checkFollowers() {
	w := s.w
	c := s.driver.Core()
	st := c.Status()
	for _, id := range slices.Sorted(maps.Keys(st.Match)) {
		f := w.servers[id]
		if f == nil || !f.up || f.removed {
			continue
		}
		fc := f.driver.Core()
		if fc.Term() == c.Term() && st.Match[id] > fc.LastIndex() {
			w.fail(fmt.Errorf("leader %d of term %d holds match index %d for %d, whose log ends at %d", s.id, c.Term(), st.Match[id], id, fc.LastIndex()))
		}
	}
}

// checkActedTerm: a server never acts in a term lower than one it has
// acted in before, across its restarts (PreVote messages carry the term a
// server would campaign in, and are left out).
func (s *server) checkActedTerm(m core.Message) {
	if m.PreVote {
		return
	}
	if m.Term < s.acted {
		s.w.fail(fmt.Errorf("node %d sent %v in term %d after acting in term %d", s.id, m.Type, m.Term, s.acted))
	}
	s.acted = max(s.acted, m.Term)
}
