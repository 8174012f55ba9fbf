package core

// raftLog is the core's in-memory view of the log: the entries after the last
// snapshot, plus the bookkeeping of what is durable and what is committed.
// Storage holds the durable copy; the core never reads it (no I/O in the
// core), which is affordable because snapshots bound the log's length.
type raftLog struct {
	snapIndex uint64 // last index covered by the snapshot (0: none)
	snapTerm  uint64
	entries   entryChunks // entries.at(i).Index == snapIndex+1+i

	// stabled is the last index known to be in Storage exactly as it is here.
	stabled uint64
	// inProgress is the last index handed to an asynchronous Storage write
	// that has not been confirmed yet (AdvanceAsync, StableTo); entries up
	// to max(stabled, inProgress) are not handed out again.
	inProgress uint64
	// committed is the highest index known to be committed (Figure 2 commitIndex).
	committed uint64
	// applied is the highest index handed to the state machine (lastApplied).
	applied uint64
}

func (l *raftLog) firstIndex() uint64 { return l.snapIndex + 1 }

func (l *raftLog) lastIndex() uint64 { return l.snapIndex + uint64(l.entries.len()) }

func (l *raftLog) lastTerm() uint64 {
	t, _ := l.term(l.lastIndex())
	return t
}

// term returns the term of the entry at index i, and false if the log does
// not know it (compacted away, or beyond the end).
func (l *raftLog) term(i uint64) (uint64, bool) {
	switch {
	case i == l.snapIndex:
		return l.snapTerm, true
	case i < l.snapIndex || i > l.lastIndex():
		return 0, false
	}
	return l.entry(i).Term, true
}

func (l *raftLog) matchTerm(i, t uint64) bool {
	lt, ok := l.term(i)
	return ok && lt == t
}

// entry returns the entry at i; i must lie in (snapIndex, lastIndex].
func (l *raftLog) entry(i uint64) *Entry { return l.entries.at(int(i - l.snapIndex - 1)) }

// slice returns the entries in [lo, hi), capped at maxEntries entries and
// about maxBytes of payload (at least one entry). lo must be > snapIndex.
func (l *raftLog) slice(lo, hi uint64, maxEntries, maxBytes int) []Entry {
	if hi > l.lastIndex()+1 {
		hi = l.lastIndex() + 1
	}
	if lo >= hi {
		return nil
	}
	if maxEntries > 0 && hi-lo > uint64(maxEntries) {
		hi = lo + uint64(maxEntries)
	}
	if maxBytes > 0 {
		size := 0
		for i := lo; i < hi; i++ {
			size += len(l.entry(i).Data)
			if size > maxBytes && i > lo {
				hi = i
				break
			}
		}
	}
	// span caps the capacity: a receiver appending to the slice can never
	// write into this log's chunks.
	return l.entries.span(int(lo-l.snapIndex-1), int(hi-l.snapIndex-1))
}

// isUpToDate is the election restriction of §5.4.1: a candidate's log is at
// least as up-to-date as ours if its last term is higher, or equal with an
// index at least as large.
func (l *raftLog) isUpToDate(lastIndex, lastTerm uint64) bool {
	ourTerm := l.lastTerm()
	return lastTerm > ourTerm || (lastTerm == ourTerm && lastIndex >= l.lastIndex())
}

// append adds entries that follow the last one (the leader's own proposals).
func (l *raftLog) append(ents ...Entry) { l.entries.push(ents) }

// truncateAndAppend drops every entry from ents[0].Index on and appends ents.
// Entries at or below committed are never dropped: the caller checked that
// they match (Log Matching), and a mismatch there would be a safety bug.
func (l *raftLog) truncateAndAppend(ents []Entry) {
	first := ents[0].Index
	// Replacing a suffix is never done in place (truncate copies the chunk
	// it cuts): AppendEntries still queued for sending, sent while this
	// server led, alias those entries.
	l.entries.truncate(int(first - l.snapIndex - 1))
	l.entries.push(ents)
	if l.stabled >= first {
		l.stabled = first - 1
	}
	if l.inProgress >= first {
		// A write still in flight holds the replaced entries; the
		// replacements are written after it, over them.
		l.inProgress = first - 1
	}
}

// truncateAfter drops the entries after index i (only the broken rule
// truncateStaleSuffix does this: a correct follower truncates only to
// replace a conflicting suffix).
func (l *raftLog) truncateAfter(i uint64) {
	l.entries.truncate(int(i - l.snapIndex))
	l.stabled = min(l.stabled, i)
	l.inProgress = min(l.inProgress, i)
}

// findConflict returns the index of the first entry of ents that is not in
// the log with the same term (Figure 2, AppendEntries receiver step 3), or 0
// if every entry is already present.
func (l *raftLog) findConflict(ents []Entry) uint64 {
	for i := range ents {
		if !l.matchTerm(ents[i].Index, ents[i].Term) {
			return ents[i].Index
		}
	}
	return 0
}

// firstIndexOfTerm returns the first index at or before i (and after the
// snapshot) whose term equals the term at i: the ConflictIndex hint.
func (l *raftLog) firstIndexOfTerm(i uint64) uint64 {
	t, ok := l.term(i)
	if !ok {
		return i
	}
	for i > l.firstIndex() && l.entry(i-1).Term == t {
		i--
	}
	return i
}

// lastIndexOfTerm returns the last index holding term t, or 0 if none does.
func (l *raftLog) lastIndexOfTerm(t uint64) uint64 {
	for i := l.lastIndex(); i > l.snapIndex; i-- {
		et := l.entry(i).Term
		if et == t {
			return i
		}
		if et < t {
			break
		}
	}
	if l.snapTerm == t && l.snapIndex > 0 {
		return l.snapIndex
	}
	return 0
}

// unstable returns the entries not yet known to be durable, all of them:
// a follower's reply, sent once they are written, acknowledges them all.
func (l *raftLog) unstable() []Entry {
	if !l.hasUnstable() {
		return nil
	}
	from := max(l.stabled, l.inProgress, l.snapIndex) + 1
	return l.entries.span(int(from-l.snapIndex-1), l.entries.len())
}

// hasUnstable reports whether unstable would return any entry, without
// the copy it makes of entries that cross a chunk.
func (l *raftLog) hasUnstable() bool {
	return max(l.stabled, l.inProgress, l.snapIndex) < l.lastIndex()
}

// toApply returns the committed entries not yet handed to the state machine.
func (l *raftLog) toApply(maxEntries int) []Entry {
	if l.applied >= l.committed {
		return nil
	}
	return l.slice(l.applied+1, l.committed+1, maxEntries, 0)
}

// compact drops every entry up to and including index (which must be
// applied), remembering its term as the snapshot boundary.
func (l *raftLog) compact(index, term uint64) {
	if index <= l.snapIndex {
		return
	}
	// Never in place: the dropped entries may still be in a Ready being
	// applied, or in messages queued for sending.
	l.entries.dropFront(int(min(index, l.lastIndex()) - l.snapIndex))
	l.snapIndex, l.snapTerm = index, term
}

// restore replaces the log by a snapshot's boundary (InstallSnapshot, Figure
// 13 step 7: discard the entire log unless it holds the snapshot's last entry).
func (l *raftLog) restore(meta SnapshotMeta) {
	if l.matchTerm(meta.LastIncludedIndex, meta.LastIncludedTerm) && meta.LastIncludedIndex <= l.lastIndex() {
		// Figure 13 step 6: keep the entries that follow the snapshot.
		l.compact(meta.LastIncludedIndex, meta.LastIncludedTerm)
	} else {
		l.entries = entryChunks{}
		l.snapIndex, l.snapTerm = meta.LastIncludedIndex, meta.LastIncludedTerm
		if l.stabled > meta.LastIncludedIndex {
			l.stabled = meta.LastIncludedIndex
		}
		l.inProgress = min(l.inProgress, meta.LastIncludedIndex)
	}
	if l.committed < meta.LastIncludedIndex {
		l.committed = meta.LastIncludedIndex
	}
	if l.applied < meta.LastIncludedIndex {
		l.applied = meta.LastIncludedIndex
	}
	if l.stabled < meta.LastIncludedIndex {
		// The driver persists the snapshot itself; what it covers is durable
		// once that is done, which is before anything acts on this state.
		l.stabled = meta.LastIncludedIndex
	}
}
