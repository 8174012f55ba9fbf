package core

import "strconv"

// campaign starts an election (§5.2). With preVote it first runs a PreVote
// round at term+1 without changing its own term (thesis §9.6); transfer marks
// an election asked for by the leader through TimeoutNow, which voters honour
// even inside their leader lease (thesis §3.10).
func (c *Core) campaign(preVote, transfer bool) {
	if !c.promotable() {
		return
	}
	term := c.term + 1
	if preVote {
		c.setRole(PreCandidate)
		c.setLeader(None)
		c.resetElectionTimer()
		c.prs, c.peerIDs = nil, nil
	} else {
		c.enterTerm(term, None, Candidate) // clears vote and leader state
		c.votedFor = c.id
	}
	c.votes = map[int]bool{c.id: true}
	if c.tracing() {
		c.emit(Event{Kind: EventCampaign, Term: term, Peer: None, PreVote: preVote, Index: c.log.lastIndex(), Term2: c.log.lastTerm()})
	}
	if c.tallyVotes() {
		return
	}
	for _, id := range c.config.AllVoters() {
		if id == c.id {
			continue
		}
		c.send(Message{
			Type: MsgRequestVote, To: id, Term: term, PreVote: preVote, Transfer: transfer,
			LastLogIndex: c.log.lastIndex(), LastLogTerm: c.log.lastTerm(),
		})
	}
}

// tallyVotes counts the votes and acts once the outcome is known. It
// reports whether the round is decided.
func (c *Core) tallyVotes() bool {
	won := c.quorumConfig().HasQuorum(func(id int) bool { return c.votes[id] })
	// Lost once a majority of some voter set refused: in a joint
	// configuration a majority of each is needed (Raft paper §6).
	lost := !c.quorumConfig().HasQuorum(func(id int) bool { v, ok := c.votes[id]; return !ok || v })
	switch {
	case won:
		if c.role == PreCandidate {
			if c.tracing() {
				granted := 0
				for _, v := range c.votes {
					if v {
						granted++
					}
				}
				c.emit(Event{Kind: EventPreVoteWon, Term: c.term + 1, Peer: None, Count: granted, Total: len(c.config.AllVoters())})
			}
			c.campaign(false, false)
		} else {
			c.becomeLeader()
		}
		return true
	case lost:
		if c.tracing() {
			rejected := 0
			for _, v := range c.votes {
				if !v {
					rejected++
				}
			}
			e := c.ev(EventElectionLost)
			e.Count = rejected
			c.emit(e)
		}
		c.becomeFollower(c.term, None)
		return true
	}
	return false
}

// handleRequestVote is the RequestVote receiver of Figure 2. The caller has
// already rejected an older term and adopted a newer one.
func (c *Core) handleRequestVote(m Message) *Message {
	reply := &Message{Type: MsgRequestVoteReply, From: c.id, To: m.From, Term: c.term, PreVote: m.PreVote}
	// Grant if we have not voted for someone else in this term (a PreVote
	// asks about term+1, where we have not voted yet) and the candidate's
	// log is at least as up-to-date as ours (§5.4.1). A follower that knows
	// a leader of this term does not vote in it.
	canVote := c.votedFor == m.From ||
		(c.votedFor == None && c.leader == None) ||
		(m.PreVote && m.Term > c.term)
	upToDate := c.log.isUpToDate(m.LastLogIndex, m.LastLogTerm) || c.cfg.broken.voteForStaleLogs
	// A replica created empty for a running group treats its log as
	// reaching the leader's position when it was created
	// (InitialState.VoteFloor).
	f := c.voteFloor
	belowFloor := (m.LastLogTerm < f.Term || m.LastLogTerm == f.Term && m.LastLogIndex < f.Index) && !c.cfg.broken.ignoreVoteFloor
	upToDate = upToDate && !belowFloor
	if canVote && upToDate {
		if m.PreVote {
			// The reply carries the term the candidate asked about, so it
			// is not mistaken for a stale reply.
			reply.Term = m.Term
		} else {
			c.votedFor = m.From
			// Figure 2: granting a vote resets the election timer.
			c.electionElapsed = 0
		}
		reply.VoteGranted = true
	}
	if c.tracing() {
		e := Event{Kind: EventVote, Term: m.Term, Peer: m.From, Granted: reply.VoteGranted, PreVote: m.PreVote}
		switch {
		case !canVote:
			e.Detail = "already voted for " + itoa(c.votedFor) + " or a leader is known"
		case belowFloor:
			e.Detail = "candidate's log is behind the leader's position when this replica was created"
		case !upToDate:
			e.Detail = "candidate's log is behind ours"
		}
		c.emit(e)
	}
	return reply
}

func (c *Core) handleVoteReply(m Message) {
	switch {
	case c.role == PreCandidate && m.PreVote && (m.Term == c.term+1 || !m.VoteGranted):
	case c.role == Candidate && !m.PreVote && m.Term == c.term:
	default:
		return // a reply to a round we are no longer in
	}
	if !c.config.IsVoter(m.From) {
		return
	}
	if _, seen := c.votes[m.From]; seen {
		return
	}
	c.votes[m.From] = m.VoteGranted
	c.tallyVotes()
}

// handleTimeoutNow starts an election at once, skipping PreVote: the leader
// asked for it to transfer leadership (thesis §3.10).
func (c *Core) handleTimeoutNow(m Message) *Message {
	reply := &Message{Type: MsgTimeoutNowReply, From: c.id, To: m.From, Term: c.term}
	if c.promotable() {
		if c.tracing() {
			e := c.ev(EventTimeoutNow)
			e.Peer = m.From
			c.emit(e)
		}
		c.campaign(false, true)
	}
	return reply
}

func itoa(i int) string {
	if i == None {
		return "nobody"
	}
	return strconv.Itoa(i)
}
