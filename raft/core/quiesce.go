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
		c.learnersToWatch() || c.configIndex > c.log.committed || c.log.committed != last ||
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

// learnersToWatch reports whether a learner still needs the leader's
// ticks: one it will promote, or a staged one not ready yet. A staged
// learner that is ready waits for its change, which wakes the group.
func (c *Core) learnersToWatch() bool {
	for _, id := range c.config.Learners {
		if !c.config.IsStaged(id) || !c.stagedReady(c.prs[id]) {
			return true
		}
	}
	return false
}

// LeaderSilent tells a follower that its leader's server has sent nothing
// for at least the minimum election timeout, though no tick told it so: a
// quiesced follower (raft/multi) does not tick, and learns of the silence
// from its host. It no longer ignores vote requests as a follower in touch
// with a leader does (thesis §4.2.3). The host makes one survivor of each
// group first: it stands for election one heartbeat interval later, when
// the other survivors' hosts, which hear from every node each interval,
// have noticed the silence too (and grant their votes instead of ignoring
// them). The others wait a whole fresh random timeout, the time a
// candidate has to win before another tries: should the first not win (it
// is cut off, or they do not agree on who is first), the random timeouts
// settle it as always (§5.2). Votes and terms are untouched: nothing here
// bears on safety.
func (c *Core) LeaderSilent(first bool) {
	if c.role != Follower && c.role != PreCandidate {
		return
	}
	wait := c.cfg.HeartbeatTicks + 1
	c.electionElapsed = max(c.electionElapsed, c.cfg.ElectionTicksMin)
	if first {
		c.electionElapsed = max(c.electionElapsed, c.electionTimeout-wait)
		return
	}
	c.electionTimeout = c.electionElapsed + c.cfg.ElectionTicksMin + c.rand.IntN(c.cfg.ElectionTicksMax-c.cfg.ElectionTicksMin)
}
