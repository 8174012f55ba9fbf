package core

// Quiescent reports whether a leader has nothing left to do but
// heartbeat: every entry of its log committed, applied and held by every
// follower, an entry of its term among them, the configuration committed,
// not joint and without learners, no leadership transfer and no read
// waiting. A host of many groups stops ticking such a group and sends its
// followers a last heartbeat that quiesces them too (CockroachDB's
// quiescence); a proposal or any message wakes it. Nothing here is needed
// for safety: ticks only make a server act sooner.
func (c *Core) Quiescent() bool {
	last := c.log.lastIndex()
	if c.role != Leader || !c.committedInTerm || c.transferee != None || c.config.IsJoint() ||
		len(c.config.Learners) > 0 || c.configIndex > c.log.committed || c.log.committed != last ||
		c.log.applied != last || c.log.stabled != last || len(c.reads.pending) > 0 || len(c.reads.waiting) > 0 ||
		c.reads.needRound || c.needBroadcast || len(c.msgs) > 0 {
		return false
	}
	for _, pr := range c.prs {
		if pr.match != last || pr.state != replicating {
			return false
		}
	}
	return true
}
