// Package multi hosts many Raft groups on one server: each group a Core of
// its own (id, term, log, membership) driven by the shipped node.Driver,
// all of them sharing the server's ticks and its traffic. What one host
// sends another in a tick travels as one Batch, in which the empty
// AppendEntries of every group (heartbeats) and the replies to them are
// coalesced into compact records, as CockroachDB's multiraft does; an idle
// group quiesces and costs nothing until a proposal or a message wakes it.
//
// Like the core, the package has no goroutines, clock or I/O: a Host is
// stepped by its caller (a deterministic simulation in the tests).
package multi

import (
	"fmt"

	"raft-consensus/raft/core"
)

// NodeID names a server, which hosts replicas of many groups.
type NodeID int

// GroupID names a Raft group. It is a type of its own, so that a node id
// cannot be passed for it.
type GroupID uint64

func (g GroupID) String() string { return fmt.Sprintf("g%d", uint64(g)) }

// Heartbeat is a group's empty AppendEntries in a batch: every field a
// heartbeat has, and no more (From and To are the batch's).
type Heartbeat struct {
	Group        GroupID
	Term         uint64
	PrevLogIndex uint64
	PrevLogTerm  uint64
	Commit       uint64
	ReadRound    uint64
	// Quiesce asks the follower to stop ticking the group once it holds
	// what the heartbeat says: the leader has nothing more to send.
	Quiesce bool
}

// AppendReply is a group's reply to an AppendEntries (a heartbeat's or
// not), as compact as a heartbeat.
type AppendReply struct {
	Group         GroupID
	Term          uint64
	Success       bool
	MatchIndex    uint64
	PrevLogIndex  uint64
	ReadRound     uint64
	ConflictTerm  uint64
	ConflictIndex uint64
}

// GroupMessage is any other message of a group: votes, appends that carry
// entries, snapshots, TimeoutNow and their replies.
type GroupMessage struct {
	Group GroupID
	Msg   core.Message
}

// Batch is what one host sends another in one tick: the coalesced
// heartbeats and append replies of all their groups, the other messages,
// and the groups the sender was asked about and does not host. An empty
// batch still tells the receiver that the sender is alive (the hosts'
// liveness, which wakes quiesced groups whose leader's node fell silent).
type Batch struct {
	From, To      NodeID
	Heartbeats    []Heartbeat
	AppendReplies []AppendReply
	Messages      []GroupMessage
	// UnknownGroups lists groups the sender got messages for and does not
	// host: they were dropped, no state was created for them. The
	// receiver wakes its replicas of them.
	UnknownGroups []GroupID
	// Wake lists groups whose replica here should tick again: the
	// sender's replica woke (and its leader must heartbeat, or it will
	// campaign), or is gone (and its followers must be able to elect).
	Wake []GroupID
}

// Empty reports whether the batch carries nothing but liveness.
func (b *Batch) Empty() bool {
	return len(b.Heartbeats) == 0 && len(b.AppendReplies) == 0 && len(b.Messages) == 0 && len(b.UnknownGroups) == 0 && len(b.Wake) == 0
}

// isHeartbeat reports whether m travels as a Heartbeat.
func isHeartbeat(m *core.Message) bool {
	return m.Type == core.MsgAppendEntries && len(m.Entries) == 0 && m.Snapshot == nil
}

func heartbeatOf(g GroupID, m *core.Message) Heartbeat {
	return Heartbeat{Group: g, Term: m.Term, PrevLogIndex: m.PrevLogIndex, PrevLogTerm: m.PrevLogTerm,
		Commit: m.LeaderCommit, ReadRound: m.ReadRound}
}

func (h *Heartbeat) message(from, to NodeID) core.Message {
	return core.Message{Type: core.MsgAppendEntries, From: int(from), To: int(to), Term: h.Term,
		PrevLogIndex: h.PrevLogIndex, PrevLogTerm: h.PrevLogTerm, LeaderCommit: h.Commit, ReadRound: h.ReadRound}
}

func appendReplyOf(g GroupID, m *core.Message) AppendReply {
	return AppendReply{Group: g, Term: m.Term, Success: m.Success, MatchIndex: m.MatchIndex, PrevLogIndex: m.PrevLogIndex,
		ReadRound: m.ReadRound, ConflictTerm: m.ConflictTerm, ConflictIndex: m.ConflictIndex}
}

func (r *AppendReply) message(from, to NodeID) core.Message {
	return core.Message{Type: core.MsgAppendEntriesReply, From: int(from), To: int(to), Term: r.Term, Success: r.Success,
		MatchIndex: r.MatchIndex, PrevLogIndex: r.PrevLogIndex, ReadRound: r.ReadRound,
		ConflictTerm: r.ConflictTerm, ConflictIndex: r.ConflictIndex}
}
