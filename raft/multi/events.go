package multi

import "raft-consensus/raft/core"

// EventKind says what happened in a group.
type EventKind uint8

const (
	// EventLeader: the group has a new leader (Leader, Term), as its
	// replica on Node sees it.
	EventLeader EventKind = iota + 1
	// EventCommitted: the entry at Index (of Term) committed and was
	// applied on Node; Command is its payload (nil for a no-op or a
	// configuration).
	EventCommitted
	// EventMembership: the replica on Node uses a new configuration.
	EventMembership
	// EventQuiesced and EventWoken: the replica on Node stopped ticking,
	// or started again.
	EventQuiesced
	EventWoken
)

func (k EventKind) String() string {
	switch k {
	case EventLeader:
		return "leader"
	case EventCommitted:
		return "committed"
	case EventMembership:
		return "membership"
	case EventQuiesced:
		return "quiesced"
	case EventWoken:
		return "woken"
	}
	return "EventKind(?)"
}

// Event is something that happened to one group's replica on one node:
// what an application of the host consumes (the multiraft seed's Events).
type Event struct {
	Kind    EventKind
	Group   GroupID
	Node    NodeID
	Term    uint64
	Leader  NodeID // EventLeader; -1: none
	Index   uint64
	Command []byte
	Config  core.Configuration // EventMembership
}

func (h *Host) event(gr *group, k EventKind) {
	if h.cfg.Events != nil {
		h.cfg.Events(Event{Kind: k, Group: gr.id, Node: h.cfg.ID, Term: gr.driver.Core().Term(), Leader: NodeID(gr.driver.Core().Leader())})
	}
}

// observe reports a replica's changes of leader and configuration after a
// step, and keeps the host's peers up to date.
func (h *Host) observe(gr *group) {
	c := gr.driver.Core()
	if l := c.Leader(); l != gr.leader || c.Term() != gr.term && l != core.None {
		gr.leader, gr.term = l, c.Term()
		if l != core.None {
			h.event(gr, EventLeader)
		}
	}
	gr.term = c.Term()
	// Summary shares the core's slices: compared each round without a
	// copy, copied only when the configuration changed.
	if !c.Summary().Config.Equal(gr.config) {
		cfg := c.Config()
		for _, id := range gr.config.Members() {
			if p := NodeID(id); p != h.cfg.ID && !cfg.IsMember(id) {
				if h.peers[p]--; h.peers[p] <= 0 {
					delete(h.peers, p)
				}
			}
		}
		for _, id := range cfg.Members() {
			if p := NodeID(id); p != h.cfg.ID && !gr.config.IsMember(id) {
				h.peers[p]++
			}
		}
		gr.config = cfg
		if h.cfg.Events != nil {
			h.cfg.Events(Event{Kind: EventMembership, Group: gr.id, Node: h.cfg.ID, Term: c.Term(), Leader: NodeID(c.Leader()), Config: cfg})
		}
	}
}
