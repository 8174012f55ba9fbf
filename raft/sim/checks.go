package sim

import (
	"fmt"
	"hash/fnv"

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

// observeCommitted records that node considers e committed (or applied it).
func (c *safetyChecker) observeCommitted(node int, e *core.Entry) error {
	d := entryDigest(e)
	if prev, ok := c.committed[e.Index]; ok {
		if prev.term != e.Term || prev.digest != d {
			return fmt.Errorf("state machine safety: node %d committed index %d term %d, node %d committed term %d there",
				node, e.Index, e.Term, prev.by, prev.term)
		}
		return nil
	}
	c.committed[e.Index] = committedDigest{term: e.Term, digest: d, by: node}
	c.maxCommit = max(c.maxCommit, e.Index)
	return nil
}

// checkLeaderCompleteness checks that a new leader's log holds every entry
// committed so far (above its snapshot, which covers a committed prefix).
func (c *safetyChecker) checkLeaderCompleteness(node int, term uint64, log logView) error {
	for idx := log.FirstIndex(); idx <= c.maxCommit; idx++ {
		want, ok := c.committed[idx]
		if !ok {
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
