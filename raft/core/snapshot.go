package core

// Log compaction and InstallSnapshot (§7, Figure 13).

type snapshotState struct {
	// latest is the newest snapshot; followers whose next entry it covers
	// are sent it.
	latest *Snapshot
	// toPersist is a snapshot received from the leader, for the next Ready.
	toPersist *Snapshot
	// recv assembles the chunks of a snapshot being received.
	recv *incomingSnapshot
}

type incomingSnapshot struct {
	meta SnapshotMeta
	from int
	term uint64
	data []byte
}

// Compact records that the state machine saved its state through index
// (which it has applied) and discards the log up to there. It returns the
// snapshot the driver must persist before anything else happens.
func (c *Core) Compact(index uint64, data []byte) (*Snapshot, error) {
	if index <= c.log.snapIndex {
		return nil, ErrSnapshotTooOld
	}
	if index > c.log.applied {
		return nil, ErrSnapshotAhead
	}
	term, _ := c.log.term(index)
	snap := &Snapshot{
		Meta: SnapshotMeta{LastIncludedIndex: index, LastIncludedTerm: term, Config: c.configAt(index)},
		Data: data,
	}
	c.log.compact(index, term)
	c.snap.latest = snap
	if c.tracing() {
		c.emit(Event{Kind: EventSnapshot, Term: term, Peer: None, Index: index, Count: len(data), Index2: c.log.lastIndex()})
	}
	return snap, nil
}

// startSnapshot switches a follower whose next entry was compacted away to
// receiving the latest snapshot.
func (c *Core) startSnapshot(to int) {
	pr := c.prs[to]
	if c.snap.latest == nil {
		return // cannot happen: only a snapshot compacts the log
	}
	pr.becomeSnapshotting(c.snap.latest.Meta.LastIncludedIndex)
	if c.tracing() {
		e := c.ev(EventSnapshotSend)
		e.Peer, e.Index, e.Index2 = to, pr.next, pr.snapIndex
		c.emit(e)
	}
	c.sendSnapshotChunk(to)
}

func (c *Core) sendSnapshotChunk(to int) {
	pr := c.prs[to]
	snap := c.snap.latest
	if pr.snapIndex != snap.Meta.LastIncludedIndex {
		// A newer snapshot replaced the one on its way: start over.
		pr.snapIndex, pr.snapOffset = snap.Meta.LastIncludedIndex, 0
	}
	off := min(pr.snapOffset, uint64(len(snap.Data)))
	end := min(off+uint64(c.cfg.SnapshotChunkBytes), uint64(len(snap.Data)))
	meta := snap.Meta
	c.send(Message{
		Type: MsgInstallSnapshot, To: to, Snapshot: &meta,
		Offset: off, Data: snap.Data[off:end:end], Done: end == uint64(len(snap.Data)),
	})
	pr.snapSentAt = c.ticks
}

// tickSnapshotSend resends a chunk that got no answer for two heartbeats.
func (c *Core) tickSnapshotSend() {
	for _, id := range c.sortedPeers() {
		pr := c.prs[id]
		if pr.state == snapshotting && c.ticks-pr.snapSentAt >= uint64(2*c.cfg.HeartbeatTicks) {
			c.sendSnapshotChunk(id)
		}
	}
}

// handleInstallSnapshot is the InstallSnapshot receiver of Figure 13.
func (c *Core) handleInstallSnapshot(m Message) *Message {
	if m.Snapshot == nil {
		return nil
	}
	if c.role != Follower {
		c.becomeFollower(m.Term, m.From)
	}
	c.setLeader(m.From)
	c.electionElapsed = 0
	meta := *m.Snapshot
	reply := &Message{Type: MsgInstallSnapshotReply, From: c.id, To: m.From, Term: c.term, PrevLogIndex: meta.LastIncludedIndex}

	if meta.LastIncludedIndex <= c.log.committed {
		// We already hold everything it covers.
		c.snap.recv = nil
		reply.Success, reply.MatchIndex = true, c.log.committed
		return reply
	}

	// Steps 2–4: assemble the chunks in order; answer with how much we have
	// so that the leader resends from there after a loss.
	r := c.snap.recv
	if m.Offset == 0 {
		r = &incomingSnapshot{meta: meta, from: m.From, term: m.Term}
		c.snap.recv = r
	}
	if r == nil || r.from != m.From || r.term != m.Term || r.meta.LastIncludedIndex != meta.LastIncludedIndex ||
		r.meta.LastIncludedTerm != meta.LastIncludedTerm || m.Offset != uint64(len(r.data)) {
		if r != nil && r.meta.LastIncludedIndex == meta.LastIncludedIndex {
			reply.Offset = uint64(len(r.data))
		}
		return reply
	}
	r.data = append(r.data, m.Data...)
	reply.Offset = uint64(len(r.data))
	if !m.Done {
		return reply
	}

	// Steps 5–8: keep the log that follows the snapshot if it matches,
	// otherwise discard it; the state machine is reset from the snapshot.
	c.snap.recv = nil
	snap := &Snapshot{Meta: r.meta, Data: r.data}
	c.log.restore(snap.Meta)
	c.snap.latest = snap
	c.snap.toPersist = snap
	c.config, c.configIndex = c.configFromLog()
	if c.tracing() {
		c.emit(Event{Kind: EventSnapshotInstalled, Term: meta.LastIncludedTerm, Index: meta.LastIncludedIndex, Peer: m.From, Count: len(snap.Data)})
	}
	reply.Success, reply.MatchIndex = true, meta.LastIncludedIndex
	return reply
}

func (c *Core) handleInstallSnapshotReply(m Message) {
	if c.role != Leader {
		return
	}
	pr := c.prs[m.From]
	if pr == nil {
		return
	}
	pr.recentActive = true
	if m.Success {
		if m.MatchIndex > c.log.lastIndex() {
			return
		}
		if pr.acked(m.MatchIndex) {
			c.onFollowerCaughtUp(m.From, pr)
			if c.maybeCommit() {
				c.broadcastAppend(true)
			}
		}
		if pr.state == snapshotting {
			pr.becomeReplicating()
		}
		if c.role == Leader {
			c.sendAppend(m.From, false)
		}
		return
	}
	if pr.state != snapshotting || m.PrevLogIndex != pr.snapIndex || m.Offset == pr.snapOffset {
		// Not about the transfer under way, or no news: a lost chunk is
		// resent by tickSnapshotSend, not once per duplicate reply.
		return
	}
	pr.snapOffset = m.Offset
	c.sendSnapshotChunk(m.From)
}
