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
//
// During a joint change (Raft paper §6) the configuration is C_old,new:
// Voters holds the voters of C_new and Outgoing those of C_old, and every
// decision (an election, a commit, a read's leadership check, check quorum)
// needs a majority of each. A server of either set votes and may lead. The
// leader leaves the joint configuration by appending C_new (Outgoing
// empty) once C_old,new is committed.
type Configuration struct {
	Voters   []int
	Learners []int
	Outgoing []int
	// Staged are learners (a subset of Learners) staged for a change of
	// several members: the leader does not promote them by itself, as it
	// does other learners once they have caught up (thesis §4.2.1), but
	// reports them ready (Summary.Ready), and the change promotes them in
	// one step, through C_old,new when more than one voter changes (Raft
	// paper §6: new servers join as non-voting members first, so that the
	// joint configuration does not wait for them to catch up).
	Staged []int `json:",omitempty"`
}

// IsStaged reports whether id is a learner staged for a change.
func (c Configuration) IsStaged(id int) bool { return slices.Contains(c.Staged, id) }

// StagedAreLearners reports whether every staged server is a learner, as
// every configuration's are: a decoder refuses one where they are not.
func (c Configuration) StagedAreLearners() bool {
	for _, id := range c.Staged {
		if !c.IsLearner(id) {
			return false
		}
	}
	return true
}

// IsJoint reports whether this is a joint configuration C_old,new.
func (c Configuration) IsJoint() bool { return len(c.Outgoing) > 0 }

// IsVoter reports whether id votes: a voter of C_new or, in a joint
// configuration, of C_old.
func (c Configuration) IsVoter(id int) bool {
	return slices.Contains(c.Voters, id) || slices.Contains(c.Outgoing, id)
}

// IsLearner reports whether id is a non-voting member.
func (c Configuration) IsLearner(id int) bool { return slices.Contains(c.Learners, id) }

// IsMember reports whether id is a voter or a learner.
func (c Configuration) IsMember(id int) bool { return c.IsVoter(id) || c.IsLearner(id) }

// AllVoters lists every server that votes, sorted: Voters, and in a joint
// configuration the union with Outgoing. Outside a joint configuration it
// is Voters itself, not a copy.
func (c Configuration) AllVoters() []int {
	if !c.IsJoint() {
		return c.Voters
	}
	all := append(slices.Clone(c.Voters), c.Outgoing...)
	slices.Sort(all)
	return slices.Compact(all)
}

// Members lists every voter (sorted) then the learners.
func (c Configuration) Members() []int {
	return append(slices.Clone(c.AllVoters()), c.Learners...)
}

// Clone returns a deep copy.
func (c Configuration) Clone() Configuration {
	return Configuration{Voters: slices.Clone(c.Voters), Learners: slices.Clone(c.Learners), Outgoing: slices.Clone(c.Outgoing),
		Staged: slices.Clone(c.Staged)}
}

// Equal reports whether two configurations have the same sets.
func (c Configuration) Equal(o Configuration) bool {
	return slices.Equal(c.Voters, o.Voters) && slices.Equal(c.Learners, o.Learners) && slices.Equal(c.Outgoing, o.Outgoing) &&
		slices.Equal(c.Staged, o.Staged)
}

func (c Configuration) String() string {
	s := fmt.Sprintf("voters=%v", c.Voters)
	if c.IsJoint() {
		s = fmt.Sprintf("joint voters=%v outgoing=%v", c.Voters, c.Outgoing)
	}
	if len(c.Learners) > 0 {
		s += fmt.Sprintf(" learners=%v", c.Learners)
	}
	if len(c.Staged) > 0 {
		s += fmt.Sprintf(" staged=%v", c.Staged)
	}
	return s
}

// voterSets are the sets of which a decision needs a majority each: C_new
// alone, or C_new and C_old in a joint configuration. An array, not a
// slice, so that the commit path does not allocate.
func (c Configuration) voterSets() (sets [2][]int, n int) {
	sets[0] = c.Voters
	if !c.IsJoint() {
		return sets, 1
	}
	sets[1] = c.Outgoing
	return sets, 2
}

// HasQuorum reports whether the servers for which has is true include a
// majority of every voter set (both, in a joint configuration).
func (c Configuration) HasQuorum(has func(id int) bool) bool {
	sets, k := c.voterSets()
	for _, set := range sets[:k] {
		n := 0
		for _, id := range set {
			if has(id) {
				n++
			}
		}
		if n < len(set)/2+1 {
			return false
		}
	}
	return true
}

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
