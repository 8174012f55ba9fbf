package diagram

import (
	"fmt"
	"time"

	"raft-consensus/raft/core"
)

// SimNode is the node id of simulator-wide events (partitions, drop rate…).
const SimNode = "sim"

// Kind classifies an event by what it means for the diagram.
type Kind uint8

const (
	KindOther    Kind = iota // free-form text
	KindTerm                 // term 3 → 4
	KindRole                 // follower → candidate in term 4
	KindLeader               // leader is 0 in term 4
	KindElection             // timeouts, starting/winning/losing elections, check quorum
	KindVote                 // granted/refused (pre-)vote
	KindSend                 // send <rpc>
	KindRecv                 // recv <rpc>
	KindLog                  // appended, truncated, rejected, applied, configuration
	KindCommit               // commit index 5 → 8
	KindSnapshot             // snapshot taken or installed
	KindTransfer             // leadership transfer
	KindClient               // client …
	KindFault                // fault: …
	KindSafety               // SAFETY: …
)

var kindNames = [...]string{
	KindOther:    "other",
	KindTerm:     "term",
	KindRole:     "role",
	KindLeader:   "leader",
	KindElection: "election",
	KindVote:     "vote",
	KindSend:     "send",
	KindRecv:     "recv",
	KindLog:      "log",
	KindCommit:   "commit",
	KindSnapshot: "snapshot",
	KindTransfer: "transfer",
	KindClient:   "client",
	KindFault:    "fault",
	KindSafety:   "safety",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Role is a server's state in the protocol. RoleUnknown is what a lane shows
// before the trace tells us anything, e.g. at the start of a REPL window.
type Role uint8

const (
	RoleUnknown Role = iota
	RoleFollower
	RolePreCandidate
	RoleCandidate
	RoleLeader
)

var roleNames = [...]string{"unknown", "follower", "pre-candidate", "candidate", "leader"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// RPC is the <msg> part of a send or recv line. Text is the exact message, the
// key that pairs a send with its recv.
type RPC struct {
	Name     string // AppendEntries, VoteReply, … (unknown names are kept)
	From, To string // node ids
	Term     uint64
	Entries  int    // AppendEntries only
	Granted  bool   // VoteReply only
	Reject   bool   // AppendReply only
	PreVote  bool   // PreVote, or VoteReply with prevote=true
	Text     string // whole <msg>
	HasTerm  bool
	HasCount bool // Entries was given
}

// Fault is a `fault: …` event. Groups is set for partitions.
type Fault struct {
	What   string // crash, restart, disconnect, reconnect, added, removed, partition, heal, drop, delay, or anything else
	Arg    string // "0.10" for drop rate, "5ms" for delay
	Groups [][]string
}

// Event is one trace event, interpreted.
type Event struct {
	At   time.Duration // time of day (plus 24h per midnight crossed in the run)
	Node string
	Msg  string
	Line int // line in the input, 0 when the event came from memory
	Kind Kind
	// Type is the structured event's kind (core.EventNone for free text).
	Type core.EventKind

	Term     uint64 // the term the event talks about, if HasTerm
	HasTerm  bool
	PrevTerm uint64 // KindTerm: the term before
	Role     Role   // KindRole: the new role
	PrevRole Role   // KindRole: the role before
	Peer     string // vote target, leader, append source, transfer target
	Granted  bool   // KindVote
	PreVote  bool   // KindVote
	Lo, Hi   uint64 // KindCommit: old → new index; appended/applied ranges

	RPC   *RPC   // KindSend, KindRecv
	Fault *Fault // KindFault

	// Filled in when the run is finished (see Run.finish).
	Match     int  // index in Run.Events of the other end of an RPC, or -1
	Heartbeat bool // empty AppendEntries, or a successful reply to one
}

// Clock formats the event time as the trace does: HH:MM:SS.micros.
func (e *Event) Clock() string { return FormatClock(e.At) }

// FormatClock formats a time of day as HH:MM:SS.micros; days wrap.
func FormatClock(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	us := int64(d/time.Microsecond) % (24 * 3600 * 1e6)
	s := us / 1e6
	return fmt.Sprintf("%02d:%02d:%02d.%06d", s/3600, s/60%60, s%60, us%1e6)
}
