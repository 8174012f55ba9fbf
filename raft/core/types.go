package core

import (
	"fmt"
	"slices"
)

// None is the node id meaning "nobody": no vote cast, no leader known.
// Node ids start at 0, as in the REPL, so the zero value cannot serve.
const None = -1

// EntryType says what a log entry carries.
type EntryType uint8

const (
	// EntryNormal carries an opaque command for the state machine.
	EntryNormal EntryType = iota
	// EntryNoop is appended by a new leader so that it can commit an entry of
	// its own term at once (§5.4.2, and thesis §6.4 for reads).
	EntryNoop
	// EntryConfig carries an encoded Configuration (thesis §4.1).
	EntryConfig
)

func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "normal"
	case EntryNoop:
		return "no-op"
	case EntryConfig:
		return "config"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Entry is one slot of the replicated log.
type Entry struct {
	Index uint64
	Term  uint64
	Type  EntryType
	Data  []byte
}

// HardState is what a server must make durable before it answers any RPC that
// depends on it (Figure 2, "Persistent state on all servers").
type HardState struct {
	Term     uint64
	VotedFor int
}

// Role is the state of a server in the protocol.
type Role uint8

const (
	Follower Role = iota
	// PreCandidate runs a PreVote round (thesis §9.6) before disturbing anyone's term.
	PreCandidate
	Candidate
	Leader
)

func (r Role) String() string {
	switch r {
	case Follower:
		return "follower"
	case PreCandidate:
		return "pre-candidate"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Configuration is the cluster membership. Voters count toward elections and
// commitment; learners only receive the log (thesis §4.2.1).
type Configuration struct {
	Voters   []int
	Learners []int
}

// IsVoter reports whether id is a voting member.
func (c Configuration) IsVoter(id int) bool { return slices.Contains(c.Voters, id) }

// IsLearner reports whether id is a non-voting member.
func (c Configuration) IsLearner(id int) bool { return slices.Contains(c.Learners, id) }

// IsMember reports whether id is a voter or a learner.
func (c Configuration) IsMember(id int) bool { return c.IsVoter(id) || c.IsLearner(id) }

// Members lists voters then learners.
func (c Configuration) Members() []int {
	return append(append([]int(nil), c.Voters...), c.Learners...)
}

// Clone returns a deep copy.
func (c Configuration) Clone() Configuration {
	return Configuration{Voters: slices.Clone(c.Voters), Learners: slices.Clone(c.Learners)}
}

func (c Configuration) String() string {
	if len(c.Learners) == 0 {
		return fmt.Sprintf("voters=%v", c.Voters)
	}
	return fmt.Sprintf("voters=%v learners=%v", c.Voters, c.Learners)
}

// quorum is the number of voters that make a majority.
func (c Configuration) quorum() int { return len(c.Voters)/2 + 1 }

// SnapshotMeta describes a snapshot: the log prefix it replaces (Figure
// 13), the size of its data, which storage holds (the core never does), and
// what the application attached to it.
type SnapshotMeta struct {
	LastIncludedIndex uint64
	LastIncludedTerm  uint64
	Config            Configuration
	// Size is the number of bytes of the state machine's image.
	Size uint64
	// App is opaque data of the application's (a format version, say),
	// kept and sent with the snapshot.
	App []byte
}

// MessageType names the RPCs of Figure 2 and Figure 13 and the extensions.
type MessageType uint8

const (
	MsgRequestVote MessageType = iota + 1
	MsgRequestVoteReply
	MsgAppendEntries
	MsgAppendEntriesReply
	MsgInstallSnapshot
	MsgInstallSnapshotReply
	// MsgTimeoutNow tells the target of a leadership transfer to start an
	// election at once (thesis §3.10).
	MsgTimeoutNow
	MsgTimeoutNowReply
)

var messageTypeNames = map[MessageType]string{
	MsgRequestVote:          "RequestVote",
	MsgRequestVoteReply:     "RequestVoteReply",
	MsgAppendEntries:        "AppendEntries",
	MsgAppendEntriesReply:   "AppendEntriesReply",
	MsgInstallSnapshot:      "InstallSnapshot",
	MsgInstallSnapshotReply: "InstallSnapshotReply",
	MsgTimeoutNow:           "TimeoutNow",
	MsgTimeoutNowReply:      "TimeoutNowReply",
}

func (t MessageType) String() string {
	if s, ok := messageTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// IsRequest reports whether a message of this type expects a reply.
func (t MessageType) IsRequest() bool {
	switch t {
	case MsgRequestVote, MsgAppendEntries, MsgInstallSnapshot, MsgTimeoutNow:
		return true
	}
	return false
}

// Message is every RPC argument and reply in one struct, in the manner of
// etcd-io/raft: one type is simple to route, queue, trace, drop and replay in
// a simulated network. Which fields mean something depends on Type; the
// comments name the field in the paper where there is one.
type Message struct {
	Type MessageType
	From int
	To   int
	Term uint64 // currentTerm of the sender

	// RequestVote arguments: candidateId is From.
	PreVote      bool // a PreVote round: nobody changes term or vote (thesis §9.6)
	LastLogIndex uint64
	LastLogTerm  uint64
	Transfer     bool // the election was asked for by a leadership transfer (thesis §3.10)

	// RequestVote reply.
	VoteGranted bool

	// AppendEntries arguments: leaderId is From.
	PrevLogIndex uint64
	PrevLogTerm  uint64
	Entries      []Entry
	LeaderCommit uint64
	// ReadRound numbers the leader's round of leadership confirmation that
	// this message belongs to; the reply echoes it (ReadIndex, thesis §6.4).
	ReadRound uint64

	// AppendEntries reply. PrevLogIndex is echoed so the leader can tell a
	// stale rejection from a current one.
	Success bool
	// MatchIndex is, on success, the last index the follower now knows to
	// match the leader's log.
	MatchIndex uint64
	// ConflictTerm and ConflictIndex are the fast-backtracking hint on a
	// rejection (§5.3, the paragraph after Figure 8): the term of the
	// conflicting entry and the first index the follower holds for it, or,
	// when the follower's log is too short, ConflictTerm 0 and ConflictIndex
	// one past its last entry.
	ConflictTerm  uint64
	ConflictIndex uint64

	// InstallSnapshot arguments (Figure 13), sent in chunks: Offset is the
	// byte offset of Data within the snapshot, Done marks the last chunk.
	// The reply puts the snapshot's LastIncludedIndex in PrevLogIndex and
	// the bytes received so far in Offset, or sets Success and MatchIndex
	// once the snapshot is installed.
	Snapshot *SnapshotMeta
	Offset   uint64
	Data     []byte
	Done     bool
}

func (m Message) String() string { return m.Summary().String() }

// ReadState tells the driver that the read identified by Ctx may be served
// once the state machine has applied Index (thesis §6.4).
type ReadState struct {
	Index uint64
	Ctx   uint64
}
