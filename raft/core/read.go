package core

// Linearizable reads without a log entry: ReadIndex (thesis §6.4).
//
//  1. The leader records its commit index as the read index, once it has
//     committed an entry of its own term (until then it cannot know the
//     true commit index).
//  2. It confirms it is still the leader: a round of AppendEntries, all
//     sent after the read arrived, acknowledged by a majority in its term.
//  3. The state machine serves the read once it has applied the read index.
//
// Reads that arrive while a round is under way share the next round, so a
// burst of reads costs one round of heartbeats, not one each.
type readIndexState struct {
	round     uint64 // the latest round started; every AppendEntries carries it
	needRound bool   // pending reads wait for a round not started yet
	pending   []pendingRead
	waiting   []uint64 // contexts waiting for the first commit of the term
}

type pendingRead struct {
	ctx, index, round uint64
}

// ReadIndex asks to serve a linearizable read identified by ctx. The answer
// comes later as a ReadState (or a FailedReads entry) in a Ready.
func (c *Core) ReadIndex(ctx uint64) error {
	if c.role != Leader {
		return ErrNotLeader
	}
	if !c.committedInTerm {
		c.reads.waiting = append(c.reads.waiting, ctx)
		return nil
	}
	c.enqueueRead(ctx)
	return nil
}

func (c *Core) enqueueRead(ctx uint64) {
	c.reads.pending = append(c.reads.pending, pendingRead{ctx: ctx, index: c.log.committed, round: c.reads.round + 1})
	c.reads.needRound = true
}

func (c *Core) releaseWaitingReads() {
	for _, ctx := range c.reads.waiting {
		c.enqueueRead(ctx)
	}
	c.reads.waiting = nil
}

// maybeStartReadRound starts the next round when reads wait for one and the
// previous round is confirmed (or lost: heartbeats keep carrying it).
func (c *Core) maybeStartReadRound() {
	if !c.readRoundStartable() {
		return
	}
	c.reads.needRound = false
	c.reads.round++
	c.heartbeatElapsed = 0
	c.broadcastHeartbeat()
	c.releaseConfirmedReads()
}

func (c *Core) readRoundStartable() bool {
	return c.reads.needRound && c.role == Leader && c.confirmedReadRound() >= c.reads.round
}

// confirmedReadRound is the highest round a majority of voters acknowledged.
func (c *Core) confirmedReadRound() uint64 {
	return c.quorumValue(c.reads.round, func(pr *progress) uint64 { return pr.readRound })
}

func (c *Core) ackReadRound(pr *progress, round uint64) {
	if round <= pr.readRound {
		return
	}
	pr.readRound = round
	c.releaseConfirmedReads()
}

func (c *Core) releaseConfirmedReads() {
	if len(c.reads.pending) == 0 {
		return
	}
	confirmed := c.confirmedReadRound()
	n := 0
	for n < len(c.reads.pending) && c.reads.pending[n].round <= confirmed {
		p := c.reads.pending[n]
		c.readStates = append(c.readStates, ReadState{Index: p.index, Ctx: p.ctx})
		n++
	}
	if n > 0 {
		if c.tracing() {
			e := c.ev(EventReadConfirmed)
			e.Index2, e.Count, e.Index = confirmed, n, c.reads.pending[n-1].index
			c.emit(e)
		}
		c.reads.pending = append(c.reads.pending[:0], c.reads.pending[n:]...)
	}
}

// failPendingReads abandons every read when leadership is lost: the client
// must retry at the new leader.
func (c *Core) failPendingReads() {
	for _, p := range c.reads.pending {
		c.failedReads = append(c.failedReads, p.ctx)
	}
	c.failedReads = append(c.failedReads, c.reads.waiting...)
	c.reads.pending, c.reads.waiting, c.reads.needRound = nil, nil, false
}
