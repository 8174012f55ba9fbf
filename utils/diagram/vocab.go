package diagram

import (
	"strconv"
	"strings"

	"raft-consensus/raft/core"
)

// The vocabulary of utils/TRACE.md: what each kind of core.Event means for
// the diagram. The events are structured, so nothing here reads prose; an
// event without a kind (a plain text trace line) stays free text.

// kindOf maps every kind of core.Event to the diagram's kind. It covers
// them all: TestEveryEventKindIsUnderstood fails on a kind added to the
// core but not here.
var kindOf = map[core.EventKind]Kind{
	core.EventTerm:              KindTerm,
	core.EventRole:              KindRole,
	core.EventLeader:            KindLeader,
	core.EventElectionTimeout:   KindElection,
	core.EventCampaign:          KindElection,
	core.EventPreVoteWon:        KindElection,
	core.EventElectionWon:       KindElection,
	core.EventElectionLost:      KindElection,
	core.EventCheckQuorum:       KindElection,
	core.EventVote:              KindVote,
	core.EventVoteIgnored:       KindVote,
	core.EventStale:             KindLog,
	core.EventMalformed:         KindLog,
	core.EventReject:            KindLog,
	core.EventTruncate:          KindLog,
	core.EventAppended:          KindLog,
	core.EventCommit:            KindCommit,
	core.EventBackoff:           KindLog,
	core.EventConfChange:        KindLog,
	core.EventConfig:            KindLog,
	core.EventPromote:           KindLog,
	core.EventRemovedSelf:       KindLog,
	core.EventTransfer:          KindTransfer,
	core.EventTransferTimeout:   KindTransfer,
	core.EventTimeoutNowSend:    KindTransfer,
	core.EventTimeoutNow:        KindTransfer,
	core.EventSnapshot:          KindSnapshot,
	core.EventSnapshotSend:      KindSnapshot,
	core.EventSnapshotInstalled: KindSnapshot,
	core.EventReadConfirmed:     KindCommit,
	core.EventSafety:            KindSafety,
	core.EventSend:              KindSend,
	core.EventRecv:              KindRecv,
	core.EventApplied:           KindLog,
	core.EventStorageFailed:     KindSafety,
	core.EventInfo:              KindOther,
	core.EventClient:            KindClient,
	core.EventFault:             KindFault,
}

// interpret fills in Kind and the typed fields of e from the structured
// event ce. It never fails: what it does not know stays KindOther.
func interpret(e *Event, ce core.Event) {
	e.Kind, e.Type, e.Match = KindOther, ce.Kind, -1
	k, ok := kindOf[ce.Kind]
	if !ok {
		return
	}
	e.Kind = k
	if ce.Peer != core.None {
		e.Peer = strconv.Itoa(ce.Peer)
	}
	switch ce.Kind {
	case core.EventTerm:
		e.PrevTerm = ce.PrevTerm
		e.setTerm(ce.Term)
	case core.EventRole:
		e.PrevRole, e.Role = roleOf(ce.PrevRole), roleOf(ce.Role)
		e.setTerm(ce.Term)
	case core.EventVote:
		e.Granted, e.PreVote = ce.Granted, ce.PreVote
		e.setTerm(ce.Term)
	case core.EventCampaign, core.EventPreVoteWon:
		e.PreVote = ce.PreVote || ce.Kind == core.EventPreVoteWon
		if ce.Kind == core.EventCampaign {
			e.setTerm(ce.Term)
		}
	case core.EventLeader, core.EventElectionTimeout, core.EventElectionWon, core.EventElectionLost, core.EventCheckQuorum:
		e.setTerm(ce.Term)
	case core.EventCommit, core.EventAppended, core.EventApplied:
		e.Lo, e.Hi = ce.Index, ce.Index2
	case core.EventSend, core.EventRecv:
		if ce.RPC == nil || ce.RPC.From < 0 || ce.RPC.To < 0 {
			e.Kind = KindOther
			return
		}
		e.RPC = rpcOf(ce.RPC)
		e.Term, e.HasTerm = e.RPC.Term, true
	case core.EventFault:
		e.Fault = faultOf(ce)
	}
}

func (e *Event) setTerm(t uint64) { e.Term, e.HasTerm = t, true }

func roleOf(r core.Role) Role {
	switch r {
	case core.Follower:
		return RoleFollower
	case core.PreCandidate:
		return RolePreCandidate
	case core.Candidate:
		return RoleCandidate
	case core.Leader:
		return RoleLeader
	}
	return RoleUnknown
}

// rpcNames are the names the diagram shows (the first word of the text).
var rpcNames = map[core.MessageType]string{
	core.MsgRequestVote:          "RequestVote",
	core.MsgRequestVoteReply:     "VoteReply",
	core.MsgAppendEntries:        "AppendEntries",
	core.MsgAppendEntriesReply:   "AppendReply",
	core.MsgInstallSnapshot:      "InstallSnapshot",
	core.MsgInstallSnapshotReply: "InstallSnapshotReply",
	core.MsgTimeoutNow:           "TimeoutNow",
	core.MsgTimeoutNowReply:      "TimeoutNowReply",
}

func rpcOf(m *core.RPC) *RPC {
	name, ok := rpcNames[m.Type]
	if !ok {
		name = m.Type.String()
	}
	if m.Type == core.MsgRequestVote && m.PreVote {
		name = "PreVote"
	}
	r := &RPC{Name: name, From: strconv.Itoa(m.From), To: strconv.Itoa(m.To), Term: m.Term, HasTerm: true,
		Granted: m.Granted, PreVote: m.PreVote, Text: m.String()}
	switch m.Type {
	case core.MsgAppendEntries:
		r.Entries, r.HasCount = m.Entries, true
	case core.MsgAppendEntriesReply:
		r.Reject = !m.Success
	}
	return r
}

// faultOf reads a fault event: its first word says what, the rest is the
// argument; a partition's groups come as node lists.
func faultOf(ce core.Event) *Fault {
	what, arg, _ := strings.Cut(ce.Detail, " ")
	f := &Fault{What: what, Arg: strings.TrimSpace(arg)}
	if what == "drop" {
		f.Arg = strings.TrimSpace(strings.TrimPrefix(f.Arg, "rate"))
	}
	for _, g := range ce.Groups {
		var group []string
		for _, id := range g {
			if id >= 0 {
				group = append(group, strconv.Itoa(id))
			}
		}
		if len(group) > 0 {
			f.Groups = append(f.Groups, group)
		}
	}
	return f
}
