package core

import (
	"fmt"
	"slices"
)

// broadcastAppend sends new entries to every follower that is not paused;
// with sendIfEmpty it also tells them a new commit index.
func (c *Core) broadcastAppend(sendIfEmpty bool) {
	for _, id := range c.sortedPeers() {
		c.sendAppend(id, sendIfEmpty)
	}
}

// broadcastHeartbeat sends every follower an AppendEntries, paused or not:
// it keeps followers from starting elections (§5.2), retries probes, and
// confirms leadership for ReadIndex.
func (c *Core) broadcastHeartbeat() {
	for _, id := range c.sortedPeers() {
		pr := c.prs[id]
		switch pr.state {
		case probing:
			pr.probeSent = false
			c.sendAppend(id, true)
		case replicating:
			if pr.paused(c.cfg.MaxInflight) {
				c.sendEmptyAppend(id)
			} else {
				c.sendAppend(id, true)
			}
		case snapshotting:
			c.sendEmptyAppend(id)
		}
	}
}

// sortedPeers lists the peers in id order, so that message order (and with
// it the whole run) is deterministic despite Go's random map iteration. The
// list is kept until the set of peers changes (every change to prs sets
// peerIDs to nil): the leader walks it on every broadcast.
func (c *Core) sortedPeers() []int {
	if c.peerIDs == nil && len(c.prs) > 0 {
		c.peerIDs = make([]int, 0, len(c.prs))
		for id := range c.prs {
			c.peerIDs = append(c.peerIDs, id)
		}
		slices.Sort(c.peerIDs)
	}
	return c.peerIDs
}

// sendAppend sends the follower the entries from its nextIndex on.
func (c *Core) sendAppend(to int, sendIfEmpty bool) {
	pr := c.prs[to]
	if pr == nil || pr.paused(c.cfg.MaxInflight) {
		return
	}
	prev := pr.next - 1
	prevTerm, ok := c.log.term(prev)
	if !ok {
		// The entries this follower needs were compacted into a snapshot.
		c.startSnapshot(to)
		return
	}
	ents := c.log.slice(pr.next, c.log.lastIndex()+1, c.cfg.MaxEntriesPerAppend, c.cfg.MaxBytesPerAppend)
	if len(ents) == 0 && !sendIfEmpty {
		return
	}
	c.send(Message{
		Type: MsgAppendEntries, To: to, PrevLogIndex: prev, PrevLogTerm: prevTerm,
		Entries: ents, LeaderCommit: c.log.committed, ReadRound: c.reads.round,
	})
	pr.sent(prev+uint64(len(ents)), len(ents))
	pr.sentCommit = c.log.committed
}

// sendEmptyAppend sends a heartbeat that carries no entries, at the
// follower's nextIndex, when the follower may not be sent more entries yet.
func (c *Core) sendEmptyAppend(to int) {
	pr := c.prs[to]
	prev := pr.next - 1
	if pr.state == snapshotting {
		prev = pr.match
	}
	prevTerm, ok := c.log.term(prev)
	if !ok {
		prev, prevTerm = c.log.snapIndex, c.log.snapTerm
	}
	c.send(Message{
		Type: MsgAppendEntries, To: to, PrevLogIndex: prev, PrevLogTerm: prevTerm,
		LeaderCommit: c.log.committed, ReadRound: c.reads.round,
	})
	pr.sentCommit = c.log.committed
}

// handleAppendEntries is the AppendEntries receiver of Figure 2.
func (c *Core) handleAppendEntries(m Message) *Message {
	if !validAppend(m) {
		if c.tracing() {
			e := c.ev(EventMalformed)
			e.Peer = m.From
			c.emit(e)
		}
		return nil
	}
	// A candidate (or pre-candidate) that hears from the leader of its term
	// returns to follower (§5.2, "Rules for Servers", Candidates).
	if c.role != Follower {
		c.becomeFollower(m.Term, m.From)
	}
	c.setLeader(m.From)
	c.electionElapsed = 0

	reply := &Message{Type: MsgAppendEntriesReply, From: c.id, To: m.From, Term: c.term,
		PrevLogIndex: m.PrevLogIndex, ReadRound: m.ReadRound}
	prev, prevTerm, ents := m.PrevLogIndex, m.PrevLogTerm, m.Entries
	if prev < c.log.snapIndex {
		// Everything up to our snapshot is committed, hence in the leader's
		// log too: skip the part of the message the snapshot covers.
		skip := min(c.log.snapIndex-prev, uint64(len(ents)))
		ents = ents[skip:]
		prev, prevTerm = c.log.snapIndex, c.log.snapTerm
		if len(ents) == 0 {
			reply.Success, reply.MatchIndex = true, c.log.snapIndex
			return reply
		}
	}

	// Step 2: reply false if the log has no entry at prevLogIndex whose term
	// matches prevLogTerm, with a hint to skip a whole term at a time.
	if !c.log.matchTerm(prev, prevTerm) {
		if prev > c.log.lastIndex() {
			reply.ConflictIndex = c.log.lastIndex() + 1
		} else {
			reply.ConflictTerm, _ = c.log.term(prev)
			reply.ConflictIndex = c.log.firstIndexOfTerm(prev)
		}
		if c.tracing() {
			c.emit(Event{Kind: EventReject, Peer: m.From, Index: prev, Term: prevTerm, Index2: reply.ConflictIndex, Term2: reply.ConflictTerm})
		}
		return reply
	}

	// Steps 3 and 4: delete a conflicting suffix, append what is new. An
	// entry already present is never truncated by a stale, shorter message.
	if conflict := c.log.findConflict(ents); conflict != 0 {
		if conflict <= c.log.committed {
			// Impossible with a correct leader (Leader Completeness); never
			// destroy a committed entry on the word of a message.
			c.violated(fmt.Sprintf("AppendEntries from %d would overwrite committed entry %d (commit %d)", m.From, conflict, c.log.committed))
			return nil
		}
		newEnts := ents[conflict-ents[0].Index:]
		truncatesConfig := conflict <= c.configIndex
		if conflict <= c.log.lastIndex() && c.tracing() {
			e := c.ev(EventTruncate)
			e.Index, e.Index2 = conflict, c.log.lastIndex()
			c.emit(e)
		}
		c.log.truncateAndAppend(newEnts)
		if truncatesConfig {
			c.config, c.configIndex = c.configFromLog()
		} else {
			for i := range newEnts {
				if newEnts[i].Type == EntryConfig {
					c.applyConfigEntry(newEnts[i].Index, newEnts[i].Data)
				}
			}
		}
		if c.tracing() {
			e := c.ev(EventAppended)
			e.Index, e.Index2, e.Peer = newEnts[0].Index, newEnts[len(newEnts)-1].Index, m.From
			c.emit(e)
		}
	}

	// Step 5: commitIndex = min(leaderCommit, index of last new entry).
	lastNew := prev + uint64(len(ents))
	if c.cfg.broken.truncateStaleSuffix && lastNew < c.log.lastIndex() && lastNew >= c.log.committed {
		c.log.truncateAfter(lastNew)
	}
	if m.LeaderCommit > c.log.committed {
		c.commitTo(min(m.LeaderCommit, lastNew))
	}
	reply.Success = true
	reply.MatchIndex = lastNew
	return reply
}

// validAppend checks what a network message could get wrong.
func validAppend(m Message) bool {
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Index != m.PrevLogIndex+1+uint64(i) || e.Term > m.Term || e.Term == 0 || (i > 0 && e.Term < m.Entries[i-1].Term) {
			return false
		}
	}
	return len(m.Entries) == 0 || m.Entries[0].Term >= m.PrevLogTerm
}

func (c *Core) commitTo(index uint64) {
	if index <= c.log.committed {
		return
	}
	if c.tracing() {
		e := c.ev(EventCommit)
		e.Index, e.Index2 = c.log.committed, index
		c.emit(e)
	}
	c.log.committed = index
}

// handleAppendReply is the leader's side of AppendEntries: advance
// matchIndex and maybe commitIndex on success, back nextIndex off on a
// rejection (§5.3).
func (c *Core) handleAppendReply(m Message) {
	pr := c.replyingPeer(m)
	if pr == nil {
		return
	}
	c.ackReadRound(pr, m.ReadRound)
	if !m.Success {
		c.handleAppendRejection(m.From, pr, m)
		return
	}
	if m.MatchIndex > c.log.lastIndex() {
		return // malformed: nobody can match entries we do not have
	}
	if pr.state == snapshotting && m.MatchIndex < pr.snapIndex {
		return // a heartbeat answered while the snapshot is on its way
	}
	moved := pr.acked(m.MatchIndex)
	if pr.state != replicating {
		pr.becomeReplicating()
	}
	if moved {
		if c.maybeCommit() {
			c.broadcastAppend(true)
		}
		c.onFollowerCaughtUp(m.From, pr)
	}
	if c.role == Leader {
		// More entries if there are any; else the new commit index if the
		// follower has not been told it (it was paused when it advanced).
		c.sendAppend(m.From, pr.sentCommit < c.log.committed)
	}
}

func (c *Core) handleAppendRejection(from int, pr *progress, m Message) {
	switch pr.state {
	case replicating:
		if m.PrevLogIndex <= pr.match {
			return // stale
		}
	case probing:
		if m.PrevLogIndex != pr.next-1 {
			return // stale: we already moved on
		}
	case snapshotting:
		return
	}
	// Fast backtracking: skip the follower's whole conflicting term, or to
	// its log's end (the optimization described after Figure 8 in §5.3).
	next := m.ConflictIndex
	if m.ConflictTerm != 0 {
		if last := c.log.lastIndexOfTerm(m.ConflictTerm); last != 0 {
			next = last + 1
		}
	}
	next = max(min(next, m.PrevLogIndex), pr.match+1, 1)
	if c.tracing() {
		e := c.ev(EventBackoff)
		e.Peer, e.Index, e.Index2 = from, m.PrevLogIndex, next
		c.emit(e)
	}
	pr.becomeProbing()
	pr.next = next
	c.sendAppend(from, false)
}

// maybeCommit advances commitIndex to the highest index stored on a
// majority of voters, but only by counting replicas of an entry of the
// current term (§5.4.2, Figure 8): older entries commit with it.
func (c *Core) maybeCommit() bool {
	n := c.quorumValue(c.log.stabled, func(pr *progress) uint64 { return pr.match })
	if n <= c.log.committed {
		return false
	}
	if t, _ := c.log.term(n); t != c.term && !c.cfg.broken.commitOldTerms {
		return false
	}
	c.commitTo(n)
	c.onCommitAdvanced()
	return true
}

// quorumValue is the highest value that a majority of voters have reached:
// the quorum-th largest of their values, own the server's own, of(pr) a
// peer's (0 for a voter without progress). In a joint configuration it is
// the lower of the two sets' values: a majority of each must have reached
// it (Raft paper §6).
func (c *Core) quorumValue(own uint64, of func(*progress) uint64) uint64 {
	result := uint64(0)
	sets, k := c.quorumConfig().voterSets()
	for i, set := range sets[:k] {
		values := c.scratch[:0]
		for _, v := range set {
			switch pr := c.prs[v]; {
			case v == c.id:
				values = append(values, own)
			case pr != nil:
				values = append(values, of(pr))
			default:
				values = append(values, 0)
			}
		}
		c.scratch = values
		if len(values) == 0 {
			return 0
		}
		slices.Sort(values)
		if v := values[len(values)-(len(values)/2+1)]; i == 0 || v < result {
			result = v
		}
	}
	return result
}

// onCommitAdvanced runs the leader duties that wait on commitment.
func (c *Core) onCommitAdvanced() {
	if !c.committedInTerm {
		c.committedInTerm = true
		c.releaseWaitingReads()
	}
	if c.configIndex <= c.log.committed && !c.config.IsVoter(c.id) {
		// Thesis §4.2.2: a leader removed from the configuration steps down
		// once the configuration without it is committed.
		if c.tracing() {
			e := c.ev(EventRemovedSelf)
			e.Index = c.configIndex
			c.emit(e)
		}
		c.becomeFollower(c.term, None)
		return
	}
	c.maybeLeaveJoint()
	c.maybePromoteLearner()
}
