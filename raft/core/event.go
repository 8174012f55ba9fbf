package core

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Event is one thing a server (or a simulator) reports: structured, so
// that tools read its fields, with Text as its human rendering (the trace
// line format of utils/TRACE.md). The core emits the protocol's events,
// the driver its sends, receives and applies, the KV layer its clients',
// the simulators their faults; the vocabulary is all here, in the one
// package the others share.
type Event struct {
	Kind     EventKind
	Term     uint64 // the term the event is about
	PrevTerm uint64 // EventTerm: the term before
	Term2    uint64 // a second term (a log's last, a conflict hint's)
	Role     Role   // EventRole: the new role
	PrevRole Role   // EventRole: the role before
	Peer     int    // the other server (voter, leader, source, target), or None
	Index    uint64 // an index, or the start of a range
	Index2   uint64 // the end of a range, or a second index
	Count    int    // a count (ticks, votes, entries, bytes)
	Total    int    // what Count is out of
	Granted  bool   // EventVote
	PreVote  bool   // EventCampaign, EventVote
	RPC      *RPC   // EventSend, EventRecv, EventStale, EventVoteIgnored
	Groups   [][]int
	// Detail is the free part of the text: a reason, a configuration, a
	// fault's description.
	Detail string
}

// RPC summarizes a Message for the trace, without its entries' data.
type RPC struct {
	Type         MessageType
	From, To     int
	Term         uint64
	PreVote      bool
	Granted      bool
	Success      bool
	Entries      int
	LastLogIndex uint64
	LastLogTerm  uint64
	PrevLogIndex uint64
	PrevLogTerm  uint64
	LeaderCommit uint64
	MatchIndex   uint64
	Conflict     [2]uint64 // index, term
	Snapshot     [2]uint64 // last index, term
	Offset       uint64
	Bytes        int
	Done         bool
}

// EventKind says what an Event reports.
type EventKind uint8

// The kinds of event. The comment gives the text each renders to.
const (
	EventNone              EventKind = iota
	EventTerm                        // term 3 → 4
	EventRole                        // follower → candidate in term 4
	EventLeader                      // leader is 2 in term 4
	EventElectionTimeout             // election timeout after 17 ticks in term 3
	EventCampaign                    // starting election for term 4 (last log 7/3)
	EventPreVoteWon                  // pre-vote won with 2 of 3
	EventElectionWon                 // won the election for term 4
	EventElectionLost                // election lost in term 4 (2 rejections)
	EventCheckQuorum                 // check quorum failed: stepping down in term 4
	EventVote                        // granted vote to 1 for term 4 (reason)
	EventVoteIgnored                 // ignoring <rpc>: leader 0 heard 3 ticks ago
	EventStale                       // rejecting stale <rpc> (our term 5)
	EventMalformed                   // dropping malformed AppendEntries from 0
	EventReject                      // rejected AppendEntries from 0: no entry 7/3 (hint 5/2)
	EventTruncate                    // truncating log from 6 (had 8 entries)
	EventAppended                    // appended entries 6..8 from 0
	EventCommit                      // commit index 5 → 8
	EventBackoff                     // 1 rejected prev=7; nextIndex → 5
	EventConfChange                  // proposing add-learner 3: voters=[0 1 2] learners=[3]
	EventConfig                      // configuration at 9: voters=[0 1 2]
	EventPromote                     // learner 3 caught up to 20 within 4 ticks: promoting
	EventRemovedSelf                 // removed from the configuration at 9: stepping down
	EventTransfer                    // transferring leadership to 2
	EventTransferTimeout             // leadership transfer to 2 timed out; resuming
	EventTimeoutNowSend              // 2 is up to date: sending TimeoutNow
	EventTimeoutNow                  // TimeoutNow from 0: campaigning at once
	EventSnapshot                    // snapshot through 40/3 (512 bytes); log now 41..45
	EventSnapshotSend                // 2 needs entry 12, compacted: sending snapshot through 40
	EventSnapshotInstalled           // installed snapshot through 40/3 from 0 (512 bytes)
	EventReadConfirmed               // read round 4 confirmed by a majority: 2 reads at index ≤ 30
	EventSafety                      // SAFETY: …: an invariant broke (see InvariantViolation)
	EventSend                        // send <rpc>            (driver)
	EventRecv                        // recv <rpc>            (driver)
	EventApplied                     // applied 6..8          (driver)
	EventStorageFailed               // storage failed, stopping: …  (driver)
	EventInfo                        // free text
	EventClient                      // client …              (KV layer)
	EventFault                       // fault: …              (simulators)
	numEventKinds
)

var eventKindNames = [...]string{
	EventNone: "none", EventTerm: "term", EventRole: "role", EventLeader: "leader",
	EventElectionTimeout: "election-timeout", EventCampaign: "campaign", EventPreVoteWon: "prevote-won",
	EventElectionWon: "election-won", EventElectionLost: "election-lost", EventCheckQuorum: "check-quorum",
	EventVote: "vote", EventVoteIgnored: "vote-ignored", EventStale: "stale", EventMalformed: "malformed",
	EventReject: "reject", EventTruncate: "truncate", EventAppended: "appended", EventCommit: "commit",
	EventBackoff: "backoff", EventConfChange: "conf-change", EventConfig: "config", EventPromote: "promote",
	EventRemovedSelf: "removed-self", EventTransfer: "transfer", EventTransferTimeout: "transfer-timeout",
	EventTimeoutNowSend: "timeout-now-send", EventTimeoutNow: "timeout-now", EventSnapshot: "snapshot",
	EventSnapshotSend: "snapshot-send", EventSnapshotInstalled: "snapshot-installed",
	EventReadConfirmed: "read-confirmed", EventSafety: "safety", EventSend: "send", EventRecv: "recv",
	EventApplied: "applied", EventStorageFailed: "storage-failed", EventInfo: "info", EventClient: "client",
	EventFault: "fault",
}

// EventKinds lists every kind, for tools that must understand them all.
func EventKinds() []EventKind {
	out := make([]EventKind, 0, numEventKinds-1)
	for k := EventNone + 1; k < numEventKinds; k++ {
		out = append(out, k)
	}
	return out
}

func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && eventKindNames[k] != "" {
		return eventKindNames[k]
	}
	return "kind-" + strconv.Itoa(int(k))
}

// ParseEventKind is String's inverse.
func ParseEventKind(s string) (EventKind, bool) {
	for k, n := range eventKindNames {
		if n == s && k != int(EventNone) {
			return EventKind(k), true
		}
	}
	return EventNone, false
}

// MarshalText implements encoding.TextMarshaler.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *EventKind) UnmarshalText(b []byte) error {
	v, ok := ParseEventKind(string(b))
	if !ok {
		return fmt.Errorf("unknown event kind %q", b)
	}
	*k = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Role) UnmarshalText(b []byte) error {
	for _, v := range []Role{Follower, PreCandidate, Candidate, Leader} {
		if v.String() == string(b) {
			*r = v
			return nil
		}
	}
	return fmt.Errorf("unknown role %q", b)
}

// MarshalText implements encoding.TextMarshaler.
func (t MessageType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *MessageType) UnmarshalText(b []byte) error {
	for v, n := range messageTypeNames {
		if n == string(b) {
			*t = v
			return nil
		}
	}
	return fmt.Errorf("unknown message type %q", b)
}

// eventJSON is the JSON form of an Event: fields that do not apply are left out.
type eventJSON struct {
	Kind     EventKind `json:"kind"`
	Term     uint64    `json:"term,omitempty"`
	PrevTerm uint64    `json:"prev_term,omitempty"`
	Term2    uint64    `json:"term2,omitempty"`
	Role     *Role     `json:"role,omitempty"`
	PrevRole *Role     `json:"prev_role,omitempty"`
	Peer     *int      `json:"peer,omitempty"`
	Index    uint64    `json:"index,omitempty"`
	Index2   uint64    `json:"index2,omitempty"`
	Count    int       `json:"count,omitempty"`
	Total    int       `json:"total,omitempty"`
	Granted  bool      `json:"granted,omitempty"`
	PreVote  bool      `json:"prevote,omitempty"`
	RPC      *RPC      `json:"rpc,omitempty"`
	Groups   [][]int   `json:"groups,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// MarshalJSON implements json.Marshaler.
func (e Event) MarshalJSON() ([]byte, error) {
	j := eventJSON{Kind: e.Kind, Term: e.Term, PrevTerm: e.PrevTerm, Term2: e.Term2, Index: e.Index, Index2: e.Index2,
		Count: e.Count, Total: e.Total, Granted: e.Granted, PreVote: e.PreVote, RPC: e.RPC, Groups: e.Groups, Detail: e.Detail}
	if e.Kind == EventRole {
		j.Role, j.PrevRole = &e.Role, &e.PrevRole
	}
	if e.Peer != None {
		j.Peer = &e.Peer
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler.
func (e *Event) UnmarshalJSON(b []byte) error {
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = Event{Kind: j.Kind, Term: j.Term, PrevTerm: j.PrevTerm, Term2: j.Term2, Peer: None, Index: j.Index, Index2: j.Index2,
		Count: j.Count, Total: j.Total, Granted: j.Granted, PreVote: j.PreVote, RPC: j.RPC, Groups: j.Groups, Detail: j.Detail}
	if j.Role != nil {
		e.Role = *j.Role
	}
	if j.PrevRole != nil {
		e.PrevRole = *j.PrevRole
	}
	if j.Peer != nil {
		e.Peer = *j.Peer
	}
	return nil
}

// Summary returns m's trace summary.
func (m *Message) Summary() *RPC {
	r := &RPC{Type: m.Type, From: m.From, To: m.To, Term: m.Term, PreVote: m.PreVote, Granted: m.VoteGranted,
		Success: m.Success, Entries: len(m.Entries), LastLogIndex: m.LastLogIndex, LastLogTerm: m.LastLogTerm,
		PrevLogIndex: m.PrevLogIndex, PrevLogTerm: m.PrevLogTerm, LeaderCommit: m.LeaderCommit, MatchIndex: m.MatchIndex,
		Conflict: [2]uint64{m.ConflictIndex, m.ConflictTerm}, Offset: m.Offset, Bytes: len(m.Data), Done: m.Done}
	if m.Snapshot != nil {
		r.Snapshot = [2]uint64{m.Snapshot.LastIncludedIndex, m.Snapshot.LastIncludedTerm}
	}
	return r
}

// String renders the summary as Message.String does.
func (m *RPC) String() string {
	switch m.Type {
	case MsgRequestVote:
		kind := "RequestVote"
		if m.PreVote {
			kind = "PreVote"
		}
		return fmt.Sprintf("%s %d→%d term=%d last=%d/%d", kind, m.From, m.To, m.Term, m.LastLogIndex, m.LastLogTerm)
	case MsgRequestVoteReply:
		return fmt.Sprintf("VoteReply %d→%d term=%d granted=%v prevote=%v", m.From, m.To, m.Term, m.Granted, m.PreVote)
	case MsgAppendEntries:
		return fmt.Sprintf("AppendEntries %d→%d term=%d prev=%d/%d entries=%d commit=%d", m.From, m.To, m.Term, m.PrevLogIndex, m.PrevLogTerm, m.Entries, m.LeaderCommit)
	case MsgAppendEntriesReply:
		if m.Success {
			return fmt.Sprintf("AppendReply %d→%d term=%d ok match=%d", m.From, m.To, m.Term, m.MatchIndex)
		}
		return fmt.Sprintf("AppendReply %d→%d term=%d reject prev=%d conflict=%d/%d", m.From, m.To, m.Term, m.PrevLogIndex, m.Conflict[0], m.Conflict[1])
	case MsgInstallSnapshot:
		return fmt.Sprintf("InstallSnapshot %d→%d term=%d last=%d/%d offset=%d bytes=%d done=%v", m.From, m.To, m.Term, m.Snapshot[0], m.Snapshot[1], m.Offset, m.Bytes, m.Done)
	case MsgInstallSnapshotReply:
		if m.Success {
			return fmt.Sprintf("InstallSnapshotReply %d→%d term=%d installed match=%d", m.From, m.To, m.Term, m.MatchIndex)
		}
		return fmt.Sprintf("InstallSnapshotReply %d→%d term=%d last=%d offset=%d", m.From, m.To, m.Term, m.PrevLogIndex, m.Offset)
	}
	return fmt.Sprintf("%v %d→%d term=%d", m.Type, m.From, m.To, m.Term)
}

func peerName(id int) string {
	if id == None {
		return "none"
	}
	return strconv.Itoa(id)
}

// Text renders the event as a trace line's message (utils/TRACE.md).
func (e Event) Text() string {
	switch e.Kind {
	case EventTerm:
		return fmt.Sprintf("term %d → %d", e.PrevTerm, e.Term)
	case EventRole:
		return fmt.Sprintf("%v → %v in term %d", e.PrevRole, e.Role, e.Term)
	case EventLeader:
		return fmt.Sprintf("leader is %s in term %d", peerName(e.Peer), e.Term)
	case EventElectionTimeout:
		return fmt.Sprintf("election timeout after %d ticks in term %d", e.Count, e.Term)
	case EventCampaign:
		kind := "election"
		if e.PreVote {
			kind = "pre-vote"
		}
		return fmt.Sprintf("starting %s for term %d (last log %d/%d)", kind, e.Term, e.Index, e.Term2)
	case EventPreVoteWon:
		return fmt.Sprintf("pre-vote won with %d of %d", e.Count, e.Total)
	case EventElectionWon:
		return fmt.Sprintf("won the election for term %d", e.Term)
	case EventElectionLost:
		return fmt.Sprintf("election lost in term %d (%d rejections)", e.Term, e.Count)
	case EventCheckQuorum:
		return fmt.Sprintf("check quorum failed: stepping down in term %d", e.Term)
	case EventVote:
		verb, kind := "refused", "vote"
		if e.Granted {
			verb = "granted"
		}
		if e.PreVote {
			kind = "pre-vote"
		}
		s := fmt.Sprintf("%s %s to %s for term %d", verb, kind, peerName(e.Peer), e.Term)
		if e.Detail != "" {
			s += " (" + e.Detail + ")"
		}
		return s
	case EventVoteIgnored:
		return fmt.Sprintf("ignoring %v: leader %s heard %d ticks ago", e.RPC, peerName(e.Peer), e.Count)
	case EventStale:
		return fmt.Sprintf("rejecting stale %v (our term %d)", e.RPC, e.Term)
	case EventMalformed:
		return fmt.Sprintf("dropping malformed AppendEntries from %s", peerName(e.Peer))
	case EventReject:
		return fmt.Sprintf("rejected AppendEntries from %s: no entry %d/%d (hint %d/%d)", peerName(e.Peer), e.Index, e.Term, e.Index2, e.Term2)
	case EventTruncate:
		return fmt.Sprintf("truncating log from %d (had %d entries)", e.Index, e.Index2)
	case EventAppended:
		return fmt.Sprintf("appended entries %d..%d from %s", e.Index, e.Index2, peerName(e.Peer))
	case EventCommit:
		return fmt.Sprintf("commit index %d → %d", e.Index, e.Index2)
	case EventBackoff:
		return fmt.Sprintf("%s rejected prev=%d; nextIndex → %d", peerName(e.Peer), e.Index, e.Index2)
	case EventConfChange:
		if e.Peer == None { // several changes, or leaving a joint configuration
			return fmt.Sprintf("proposing %s: %s", e.Detail, configText(e.Groups))
		}
		return fmt.Sprintf("proposing %s %s: %s", e.Detail, peerName(e.Peer), configText(e.Groups))
	case EventConfig:
		return fmt.Sprintf("configuration at %d: %s", e.Index, configText(e.Groups))
	case EventPromote:
		return fmt.Sprintf("learner %s caught up to %d within %d ticks: promoting", peerName(e.Peer), e.Index, e.Count)
	case EventRemovedSelf:
		return fmt.Sprintf("removed from the configuration at %d: stepping down", e.Index)
	case EventTransfer:
		return fmt.Sprintf("transferring leadership to %s", peerName(e.Peer))
	case EventTransferTimeout:
		return fmt.Sprintf("leadership transfer to %s timed out; resuming", peerName(e.Peer))
	case EventTimeoutNowSend:
		return fmt.Sprintf("%s is up to date: sending TimeoutNow", peerName(e.Peer))
	case EventTimeoutNow:
		return fmt.Sprintf("TimeoutNow from %s: campaigning at once", peerName(e.Peer))
	case EventSnapshot:
		if e.Index2 <= e.Index {
			return fmt.Sprintf("snapshot through %d/%d (%d bytes); log now empty", e.Index, e.Term, e.Count)
		}
		return fmt.Sprintf("snapshot through %d/%d (%d bytes); log now %d..%d", e.Index, e.Term, e.Count, e.Index+1, e.Index2)
	case EventSnapshotSend:
		return fmt.Sprintf("%s needs entry %d, compacted: sending snapshot through %d", peerName(e.Peer), e.Index, e.Index2)
	case EventSnapshotInstalled:
		return fmt.Sprintf("installed snapshot through %d/%d from %s (%d bytes)", e.Index, e.Term, peerName(e.Peer), e.Count)
	case EventReadConfirmed:
		return fmt.Sprintf("read round %d confirmed by a majority: %d reads at index ≤ %d", e.Index2, e.Count, e.Index)
	case EventSafety:
		return "SAFETY: " + e.Detail
	case EventSend:
		return "send " + e.RPC.String()
	case EventRecv:
		return "recv " + e.RPC.String()
	case EventApplied:
		return fmt.Sprintf("applied %d..%d", e.Index, e.Index2)
	case EventStorageFailed:
		return "SAFETY: storage failed, stopping: " + e.Detail
	case EventClient:
		return "client " + e.Detail
	case EventFault:
		return "fault: " + e.Detail
	}
	return e.Detail
}

func (e Event) String() string { return e.Text() }

// configText renders a configuration carried as groupsOf carries it.
func configText(g [][]int) string {
	var c Configuration
	if len(g) > 0 {
		c.Voters = g[0]
	}
	if len(g) > 1 {
		c.Learners = g[1]
	}
	if len(g) > 2 {
		c.Outgoing = g[2]
	}
	if len(g) > 3 {
		c.Staged = g[3]
	}
	return c.String()
}

// groupsOf carries a configuration in an event's Groups: [voters,
// learners], [voters, learners, outgoing] when joint, and [voters,
// learners, outgoing, staged] (outgoing perhaps empty) with staged
// learners.
func groupsOf(c Configuration) [][]int {
	switch {
	case len(c.Staged) > 0:
		return [][]int{c.Voters, c.Learners, c.Outgoing, c.Staged}
	case c.IsJoint():
		return [][]int{c.Voters, c.Learners, c.Outgoing}
	}
	return [][]int{c.Voters, c.Learners}
}

// Info returns a free-text event.
func Info(format string, args ...any) Event {
	return Event{Kind: EventInfo, Peer: None, Detail: fmt.Sprintf(format, args...)}
}

// Fault returns a fault event; groups, if any, are a partition's.
func Fault(groups [][]int, format string, args ...any) Event {
	return Event{Kind: EventFault, Peer: None, Groups: groups, Detail: fmt.Sprintf(format, args...)}
}
