package multi

import (
	"maps"
	"slices"

	"raft-consensus/raft/core"
)

// Quiescence, after CockroachDB's: a leader whose group has nothing in
// flight (core.Quiescent: every entry committed, applied and held by every
// follower) stops ticking the group and sends each follower a heartbeat
// marked Quiesce; a follower that then holds exactly what the heartbeat
// says stops ticking too. A quiet group costs no ticks and no heartbeats.
// It wakes at once on a proposal or on any message for it (a vote request
// from a follower that did not quiesce, say), and its followers wake when
// the leader's node has sent nothing (not even an empty batch, which every
// host sends each peer every heartbeat interval) for LivenessTicks: they
// then time out as usual and elect a new leader among the living.

// maybeQuiesceLeader quiesces a leader with nothing left to do, and tells
// its followers.
func (h *Host) maybeQuiesceLeader(gr *group) {
	c := gr.driver.Core()
	if gr.quiet || c.Role() != core.Leader {
		return
	}
	if !c.Quiescent() {
		return
	}
	// Every follower's node must be alive, or its replica could miss the
	// quiesce heartbeat and campaign in vain against quiet voters.
	for _, id := range c.Config().Members() {
		if p := NodeID(id); p != h.cfg.ID && !h.alive(p) {
			return
		}
	}
	h.setQuiet(gr)
	term, last := c.Term(), c.LastIndex()
	lastTerm, _ := c.TermAt(last)
	for _, id := range c.Config().Members() {
		if p := NodeID(id); p != h.cfg.ID {
			b := h.batch(p)
			hb := Heartbeat{Group: gr.id, Term: term, PrevLogIndex: last, PrevLogTerm: lastTerm, Commit: c.Committed(), Quiesce: true}
			b.Heartbeats = append(b.Heartbeats, hb)
			if gr.trace.On() {
				// The follower traces its receipt as any heartbeat's: the
				// send is traced here, so that the diagram pairs them.
				m := hb.message(h.cfg.ID, p)
				gr.trace.Event(core.Event{Kind: core.EventSend, Term: term, Peer: int(p), RPC: m.Summary()})
			}
		}
	}
}

// maybeQuiesceFollower quiesces a follower after a quiesce heartbeat if it
// holds exactly what the leader has and knows it committed.
func (h *Host) maybeQuiesceFollower(gr *group, hb *Heartbeat) {
	c := gr.driver.Core()
	if gr.quiet || c.Role() != core.Follower || c.Term() != hb.Term {
		return
	}
	if c.LastIndex() != hb.PrevLogIndex || c.Committed() != hb.Commit {
		return
	}
	if t, ok := c.TermAt(hb.PrevLogIndex); !ok || t != hb.PrevLogTerm {
		return
	}
	h.setQuiet(gr)
}

// alive reports whether node p was heard from within LivenessTicks.
func (h *Host) alive(p NodeID) bool {
	t, ok := h.heard[p]
	return ok && h.ticks-t <= uint64(h.cfg.LivenessTicks)
}

// silent reports whether node p has missed two of the batches it sends
// every heartbeat interval: not yet judged dead (alive), but suspect.
func (h *Host) silent(p NodeID) bool {
	t, ok := h.heard[p]
	return !ok || h.ticks-t > uint64(2*max(1, h.cfg.Core.HeartbeatTicks))
}

// setQuiet makes gr quiet: it leaves the ticking groups; a follower is
// listed under its leader's node, to wake when that falls silent.
func (h *Host) setQuiet(gr *group) {
	gr.quiet = true
	h.stats.Quiesced++
	h.activeStale = true
	gr.quietUnder = -1
	if l := gr.driver.Core().Leader(); l != int(h.cfg.ID) {
		p := NodeID(l)
		if h.quietFollowers[p] == nil {
			h.quietFollowers[p] = map[GroupID]*group{}
		}
		h.quietFollowers[p][gr.id] = gr
		gr.quietUnder = p
	}
	h.event(gr, EventQuiesced)
}

// wake makes a quiet group tick again. tellLeader asks its leader's node
// to wake the leader's replica too, when the reason is not the leader's: a
// woken follower that hears no heartbeat would campaign against a healthy
// leader (CockroachDB's unquiesce message).
func (h *Host) wake(gr *group, tellLeader bool) {
	if !gr.quiet {
		return
	}
	gr.quiet = false
	h.stats.Woken++
	h.activate(gr)
	if m := h.quietFollowers[gr.quietUnder]; m != nil {
		delete(m, gr.id)
		if len(m) == 0 {
			delete(h.quietFollowers, gr.quietUnder)
		}
	}
	if l := gr.driver.Core().Leader(); tellLeader && l != core.None && NodeID(l) != h.cfg.ID {
		b := h.batch(NodeID(l))
		b.Wake = append(b.Wake, gr.id)
	}
	h.event(gr, EventWoken)
}

// stillQuiet reports whether a quiet replica may stay quiet after a step:
// a leader with still nothing to do, a follower of the same leader.
func (h *Host) stillQuiet(gr *group) bool {
	c := gr.driver.Core()
	switch c.Role() {
	case core.Leader:
		return c.Quiescent()
	case core.Follower:
		return c.Leader() != core.None && NodeID(c.Leader()) == gr.quietUnder
	}
	return false
}

// wakeLeadersOfSilent wakes, when a peer node is first judged dead, the
// quiet leaders of groups it is a member of: awake, a leader ticks, and
// CheckQuorum (thesis §6.2) makes it step down if it has lost its
// majority, a partition having cut it off with its group quiet. A quiet
// leader would otherwise go on believing it leads (it does no harm, since
// it can neither commit nor confirm a read, but it says so to whoever
// asks). While the peer stays dead, the group stays awake: a leader
// quiesces only with every follower's node alive.
func (h *Host) wakeLeadersOfSilent() {
	// Every tick: so first a cheap look for a peer that changed.
	changed := len(h.silentPeers) > len(h.peers)
	for p := range h.peers {
		if changed = changed || h.alive(p) == h.silentPeers[p]; changed {
			break
		}
	}
	if !changed {
		return
	}
	for p := range h.silentPeers {
		if _, ok := h.peers[p]; !ok {
			delete(h.silentPeers, p) // no group shares it any more
		}
	}
	for _, p := range slices.Sorted(maps.Keys(h.peers)) { // a deterministic order
		if h.alive(p) {
			delete(h.silentPeers, p)
			continue
		}
		if h.silentPeers[p] {
			continue
		}
		h.silentPeers[p] = true
		// Rare (once per node death), so a pass over the groups will do;
		// sorted, for a deterministic order.
		for _, g := range h.Groups() {
			gr := h.groups[g]
			if gr.quiet && gr.driver.Core().Role() == core.Leader && gr.config.IsMember(int(p)) {
				h.wake(gr, false)
				h.touch(gr)
			}
		}
	}
}

// successor is the voter of gr that stands for election first when the
// node of its leader, dead, fell silent: of the voters this host believes
// alive, the one a hash of the group and its id ranks first. Every
// survivor that sees the same nodes alive picks the same one, so they do
// not split the vote; and the groups a dead node led spread over the
// survivors instead of all going to one.
func (h *Host) successor(gr *group, dead NodeID) NodeID {
	best, bestRank := NodeID(-1), uint64(0)
	for _, id := range gr.config.AllVoters() {
		p := NodeID(id)
		if p == dead || p != h.cfg.ID && !h.alive(p) {
			continue
		}
		if r := successorRank(gr.id, p); best < 0 || r < bestRank {
			best, bestRank = p, r
		}
	}
	return best
}

// successorRank mixes a group and a node id (splitmix64's finalizer).
func successorRank(g GroupID, p NodeID) uint64 {
	x := uint64(g)*0x9e3779b97f4a7c15 + uint64(p)*0xbf58476d1ce4e5b9
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
