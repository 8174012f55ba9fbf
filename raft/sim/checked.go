package sim

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"
)

// checkedStorage sits between a server's driver and its real storage. It
// checks what is saved (terms along a log never decrease, one command per
// (index, term)), keeps track of the state the storage promised to be
// durable (every Save and InstallSnapshot that returned nil), so that a
// restart can check the storage loads it back, and, over MemoryStorage,
// adds latency and can crash inside a write. It is instrumentation: the
// writing is the real storage's.
type checkedStorage struct {
	s        *server
	inner    storage.Storage
	promised promisedState
	// attempt is an operation that did not return nil: the storage may
	// load it back or not, whole or not at all.
	attempt *storageOp
	dead    bool // MemoryStorage: crashed inside a write
}

// promisedState is the storage contract's view of what is durable.
type promisedState struct {
	hs                  core.HardState
	snapIndex, snapTerm uint64
	terms               []uint64 // of the entries after the snapshot
}

type storageOp struct {
	hs   *core.HardState
	ents []core.Entry // Data not kept
	snap *core.SnapshotMeta
}

var errMemCrash = errors.New("sim: the machine crashed in the middle of a write")

func newCheckedStorage(s *server, inner storage.Storage) *checkedStorage {
	return &checkedStorage{s: s, inner: inner, promised: promisedState{hs: core.HardState{VotedFor: core.None}}}
}

// reset starts a new incarnation over a reopened storage.
func (c *checkedStorage) reset(inner storage.Storage) {
	c.inner, c.attempt, c.dead = inner, nil, false
}

func (p *promisedState) last() uint64 { return p.snapIndex + uint64(len(p.terms)) }

// termAt returns the promised term at i, if the promised log holds it.
func (p *promisedState) termAt(i uint64) (uint64, bool) {
	switch {
	case i == p.snapIndex:
		return p.snapTerm, true
	case i < p.snapIndex || i > p.last():
		return 0, false
	}
	return p.terms[i-p.snapIndex-1], true
}

// apply does to the promised state what op does to a Storage.
func (p *promisedState) apply(op *storageOp) {
	if op.hs != nil {
		p.hs = *op.hs
	}
	if n := len(op.ents); n > 0 {
		ents := op.ents
		if first := ents[0].Index; first <= p.snapIndex {
			skip := p.snapIndex + 1 - first
			if skip >= uint64(n) {
				ents = nil
			} else {
				ents = ents[skip:]
			}
		}
		if len(ents) > 0 && ents[0].Index <= p.last()+1 {
			p.terms = p.terms[:ents[0].Index-p.snapIndex-1]
			for _, e := range ents {
				p.terms = append(p.terms, e.Term)
			}
		}
	}
	if m := op.snap; m != nil && m.LastIncludedIndex > p.snapIndex {
		if t, ok := p.termAt(m.LastIncludedIndex); ok && t == m.LastIncludedTerm {
			p.terms = slices.Clone(p.terms[m.LastIncludedIndex-p.snapIndex:])
		} else {
			p.terms = nil
		}
		p.snapIndex, p.snapTerm = m.LastIncludedIndex, m.LastIncludedTerm
	}
}

func (p *promisedState) clone() promisedState {
	q := *p
	q.terms = slices.Clone(p.terms)
	return q
}

func (p *promisedState) equal(q *promisedState) bool {
	return p.hs == q.hs && p.snapIndex == q.snapIndex && p.snapTerm == q.snapTerm && slices.Equal(p.terms, q.terms)
}

func (p *promisedState) String() string {
	return fmt.Sprintf("term %d vote %d, snapshot %d/%d, log to %d", p.hs.Term, p.hs.VotedFor, p.snapIndex, p.snapTerm, p.last())
}

// checkLoaded checks that a restarted storage loaded what it promised (or
// that plus the operation that did not complete); what it loaded is then
// what it promises.
func (c *checkedStorage) checkLoaded(hs core.HardState, snap *core.SnapshotMeta, ents []core.Entry) error {
	got, err := c.compareLoaded(hs, snap, ents)
	c.promised, c.attempt = got, nil
	return err
}

func (c *checkedStorage) compareLoaded(hs core.HardState, snap *core.SnapshotMeta, ents []core.Entry) (promisedState, error) {
	got := promisedState{hs: hs}
	if hs.Term == 0 {
		got.hs.VotedFor = core.None
	}
	if snap != nil {
		got.snapIndex, got.snapTerm = snap.LastIncludedIndex, snap.LastIncludedTerm
	}
	for _, e := range ents {
		got.terms = append(got.terms, e.Term)
	}
	if got.equal(&c.promised) {
		return got, nil
	}
	if c.attempt != nil {
		alt := c.promised.clone()
		alt.apply(c.attempt)
		if got.equal(&alt) {
			return got, nil
		}
	}
	return got, fmt.Errorf("storage loaded back %v after a crash; it had promised %v", &got, &c.promised)
}

// beforeWrite counts a write toward an armed crash of a MemoryStorage and
// adds its latency; it reports whether the machine crashes in this write.
func (c *checkedStorage) beforeWrite() (crash bool, err error) {
	s := c.s
	if s.disk != nil {
		return false, nil
	}
	if c.dead {
		return false, errMemCrash
	}
	s.memLat += time.Duration(50+s.w.rng.Intn(450)) * time.Microsecond
	if s.memc.countdown > 0 {
		s.memc.countdown--
		if s.memc.countdown == 0 {
			c.dead = true
			s.crashedInStep()
			return true, errMemCrash
		}
	}
	return false, nil
}

// Save implements storage.Storage.
func (c *checkedStorage) Save(hs *core.HardState, ents []core.Entry) error {
	w := c.s.w
	prev, ok := uint64(0), false
	if len(ents) > 0 {
		prev, ok = c.promised.termAt(ents[0].Index - 1)
	}
	for i := range ents {
		e := &ents[i]
		if (ok || i > 0) && e.Term < prev {
			w.fail(fmt.Errorf("node %d saves entry %d of term %d after one of term %d: terms along a log must never decrease", c.s.id, e.Index, e.Term, prev))
		}
		prev, ok = e.Term, true
		if err := w.checker.observeEntry(c.s.id, e); err != nil {
			w.fail(err)
		}
	}
	op := &storageOp{hs: hs, ents: termsOnly(ents)}
	if hs != nil {
		h := *hs
		op.hs = &h
	}
	crash, err := c.beforeWrite()
	if crash && w.rng.Intn(2) == 0 {
		c.inner.Save(hs, ents) // the write landed; the crash came before the answer
	}
	if err == nil {
		err = c.inner.Save(hs, ents)
	}
	c.settle(op, err)
	return err
}

// InstallSnapshot implements storage.Storage.
func (c *checkedStorage) InstallSnapshot(meta core.SnapshotMeta, w storage.SnapshotWriter) error {
	op := &storageOp{snap: &meta}
	crash, err := c.beforeWrite()
	switch {
	case crash && c.s.w.rng.Intn(2) == 0:
		c.inner.InstallSnapshot(meta, w) // installed; the crash came before the answer
	case err != nil:
		w.Abort()
	default:
		err = c.inner.InstallSnapshot(meta, w)
	}
	c.settle(op, err)
	return err
}

// CreateSnapshot implements storage.Storage.
func (c *checkedStorage) CreateSnapshot(index uint64) (storage.SnapshotWriter, error) {
	return c.inner.CreateSnapshot(index)
}

// OpenSnapshot implements storage.Storage.
func (c *checkedStorage) OpenSnapshot() (storage.SnapshotReader, error) {
	return c.inner.OpenSnapshot()
}

// settle records the outcome of a write.
func (c *checkedStorage) settle(op *storageOp, err error) {
	if err == nil {
		c.promised.apply(op)
		c.attempt = nil
	} else if c.attempt == nil {
		c.attempt = op
	}
}

func termsOnly(ents []core.Entry) []core.Entry {
	out := make([]core.Entry, len(ents))
	for i, e := range ents {
		out[i] = core.Entry{Index: e.Index, Term: e.Term}
	}
	return out
}

// Load implements storage.Storage.
func (c *checkedStorage) Load() (core.HardState, *core.SnapshotMeta, []core.Entry, error) {
	return c.inner.Load()
}

// Close implements storage.Storage.
func (c *checkedStorage) Close() error { return c.inner.Close() }
