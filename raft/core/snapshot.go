package core

// Log compaction and InstallSnapshot (§7, Figure 13).
//
// The core never holds a snapshot's data: it knows each snapshot by its
// metadata (which includes the data's size), and the driver streams the
// bytes through storage. A leader's InstallSnapshot requests leave the core
// without data — the driver fills each chunk in from storage as it sends
// it — and a follower's accepted chunks come out of the core in the Ready,
// for the driver to write before it replies.

type snapshotState struct {
	// latest is the newest snapshot; followers whose next entry it covers
	// are sent it.
	latest *SnapshotMeta
	// installed is a snapshot received from the leader, complete, for the
	// next Ready: the driver makes it the stored snapshot.
	installed *SnapshotMeta
	// chunks are the received chunks for the next Ready, in order.
	chunks []SnapshotChunk
	// recv follows the chunks of a snapshot being received.
	recv *incomingSnapshot
}

type incomingSnapshot struct {
	meta     SnapshotMeta
	from     int
	term     uint64
	received uint64 // bytes accepted so far
}

// SnapshotChunk is part of a snapshot received from the leader: Data is the
// snapshot's bytes from Offset on. A chunk at Offset 0 starts a transfer
// (and abandons any earlier one).
type SnapshotChunk struct {
	Meta   SnapshotMeta
	Offset uint64
	Data   []byte
}

// Compact records that the state machine saved its state through index
// (which it has applied) as size bytes, with app as the application's own
// metadata, and discards the log up to there. It returns the snapshot's
// metadata, which the driver hands to storage with the data.
func (c *Core) Compact(index, size uint64, app []byte) (SnapshotMeta, error) {
	if index <= c.log.snapIndex {
		return SnapshotMeta{}, ErrSnapshotTooOld
	}
	if index > c.log.applied {
		return SnapshotMeta{}, ErrSnapshotAhead
	}
	term, _ := c.log.term(index)
	meta := SnapshotMeta{LastIncludedIndex: index, LastIncludedTerm: term, Config: c.configAt(index), Size: size, App: app}
	c.log.compact(index, term)
	c.snap.latest = &meta
	if c.tracing() {
		c.emit(Event{Kind: EventSnapshot, Term: term, Peer: None, Index: index, Count: int(size), Index2: c.log.lastIndex()})
	}
	return meta, nil
}

// SnapshotChunkBytes is the size of one InstallSnapshot chunk: a driver
// filling a chunk in reads this many bytes (fewer for the last).
func (c *Core) SnapshotChunkBytes() int { return c.cfg.SnapshotChunkBytes }

// startSnapshot switches a follower whose next entry was compacted away to
// receiving the latest snapshot.
func (c *Core) startSnapshot(to int) {
	pr := c.prs[to]
	if c.snap.latest == nil {
		return // cannot happen: only a snapshot compacts the log
	}
	pr.becomeSnapshotting(c.snap.latest.LastIncludedIndex)
	if c.tracing() {
		e := c.ev(EventSnapshotSend)
		e.Peer, e.Index, e.Index2 = to, pr.next, pr.snapIndex
		c.emit(e)
	}
	c.sendSnapshotChunk(to)
}

// sendSnapshotChunk sends the chunk a follower expects next, without its
// data: the driver reads bytes [Offset, Offset+chunk) of the snapshot from
// storage into it.
func (c *Core) sendSnapshotChunk(to int) {
	pr := c.prs[to]
	meta := *c.snap.latest
	if pr.snapIndex != meta.LastIncludedIndex {
		// A newer snapshot replaced the one on its way: start over.
		pr.snapIndex, pr.snapOffset = meta.LastIncludedIndex, 0
	}
	off := min(pr.snapOffset, meta.Size)
	end := min(off+uint64(c.cfg.SnapshotChunkBytes), meta.Size)
	c.send(Message{Type: MsgInstallSnapshot, To: to, Snapshot: &meta, Offset: off, Done: end == meta.Size})
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

	// Steps 2–4: take the chunks in order; answer with how much we have so
	// that the leader resends from there after a loss.
	r := c.snap.recv
	if m.Offset == 0 {
		r = &incomingSnapshot{meta: meta, from: m.From, term: m.Term}
		c.snap.recv = r
	}
	if r == nil || r.from != m.From || r.term != m.Term || r.meta.LastIncludedIndex != meta.LastIncludedIndex ||
		r.meta.LastIncludedTerm != meta.LastIncludedTerm || r.meta.Size != meta.Size || m.Offset != r.received ||
		r.received+uint64(len(m.Data)) > meta.Size || m.Done != (r.received+uint64(len(m.Data)) == meta.Size) {
		if r != nil && r.meta.LastIncludedIndex == meta.LastIncludedIndex {
			reply.Offset = r.received
		}
		return reply
	}
	c.snap.chunks = append(c.snap.chunks, SnapshotChunk{Meta: meta, Offset: m.Offset, Data: m.Data})
	r.received += uint64(len(m.Data))
	reply.Offset = r.received
	if !m.Done {
		return reply
	}

	// Steps 5–8: keep the log that follows the snapshot if it matches,
	// otherwise discard it; the state machine is reset from the snapshot.
	c.snap.recv = nil
	c.log.restore(meta)
	c.snap.latest = &meta
	c.snap.installed = &meta
	c.config, c.configIndex = c.configFromLog()
	if c.tracing() {
		c.emit(Event{Kind: EventSnapshotInstalled, Term: meta.LastIncludedTerm, Index: meta.LastIncludedIndex, Peer: m.From, Count: int(meta.Size)})
	}
	reply.Success, reply.MatchIndex = true, meta.LastIncludedIndex
	return reply
}

func (c *Core) handleInstallSnapshotReply(m Message) {
	pr := c.replyingPeer(m)
	if pr == nil {
		return
	}
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
