// Package cluster is what a cluster under test offers the person or the
// program that drives it. The REPL drives two implementations through
// Cluster: raft.ClusterSimulator (real TCP on loopback, real disks, the
// wall clock) and sim.Cluster (the same shipped code in virtual time,
// deterministic, where time stands still between commands).
package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
)

// MaxNodes bounds the size of a cluster.
const MaxNodes = 16

// The errors a Cluster's methods wrap, so that callers can tell them apart.
var (
	ErrNoSuchNode   = errors.New("no such node")
	ErrNodeCrashed  = errors.New("node is crashed")
	ErrNodeAlive    = errors.New("node is running")
	ErrClusterDown  = errors.New("cluster is shut down")
	ErrTimeout      = kv.ErrTimeout
	ErrNoLeader     = errors.New("no leader")
	ErrTwoLeaders   = errors.New("two leaders in one term")
	ErrBadNodeCount = errors.New("bad number of nodes")
	// ErrInterrupted: Interrupt cut the call short (a write's outcome is
	// then unknown).
	ErrInterrupted = errors.New("interrupted")
)

// Cluster is a cluster of KV servers that can be read, written, faulted and
// reconfigured. Node ids are 0, 1, 2, …; removed servers are not listed.
type Cluster interface {
	// IDs lists the servers (crashed ones included), in order.
	IDs() []int
	// Status reports every server, by id.
	Status() []NodeStatus
	// Logs reports every server's log, by id: the latest limit entries of
	// each (at most MaxLogEntries).
	Logs(limit int) []NodeLog
	// Leader is the running, connected leader with the highest term, or
	// core.None.
	Leader() (int, uint64)
	// CheckUniqueLeader waits up to timeout until exactly one running,
	// connected server leads.
	CheckUniqueLeader(timeout time.Duration) (int, uint64, error)

	// Do runs one client operation: through the leader, which the client
	// finds, when node is core.None; at that node only otherwise.
	Do(op kv.Op, key, value string, node int) (kv.Result, error)
	// ReadStale reads a key from one node's state machine as it stands,
	// without ReadIndex: the answer may be stale (thesis §6.4 says why).
	ReadStale(key string, node int) (StaleRead, error)
	// History is every client operation so far, for a linearizability check.
	History() []kv.Operation

	CrashPeer(id int) error
	RestartPeer(id int) error
	DisconnectPeer(id int) error
	ReconnectPeer(id int) error
	// Partition splits the servers into groups (which may overlap: a
	// server in two groups bridges them); Heal undoes it and every cut.
	Partition(groups ...[]int) error
	Heal()
	CutLink(from, to int) error
	RestoreLink(from, to int) error
	CutLinks() [][2]int
	SetDropRate(p float64) error
	SetMaxDelay(d time.Duration) error
	NetworkSettings() (drop float64, delay time.Duration)

	// AddServer starts a new server and adds it (learner, then voter);
	// RemoveServer removes one; both return once the change committed.
	AddServer(id int) error
	RemoveServer(id int) error
	// ChangeMembers adds the servers adds (started empty, staged learners
	// until caught up) and removes the servers removes in one step: through a joint
	// configuration when more than one voter changes (Raft paper §6). It
	// returns once the final configuration is committed, and stops the
	// removed servers.
	ChangeMembers(adds, removes []int) error
	TransferLeadership(id int) error
	// Snapshot makes a running server snapshot its state machine.
	Snapshot(id int) (uint64, error)
	// Interrupt makes the calls waiting now return ErrInterrupted soon
	// (Ctrl-C in the REPL); calls made afterwards are not affected.
	Interrupt()
	Shutdown()
}

// NodeStatus describes one server for the status table.
type NodeStatus struct {
	ID        int
	Alive     bool // running (not crashed)
	Connected bool // not disconnected (partitions aside)
	// Member is voter, learner, staged (a learner its change promotes),
	// joining (not in the configuration yet),
	// leaving (a removal not committed yet) or unknown (no server is up to
	// say).
	Member    string
	Role      core.Role
	Term      uint64
	Leader    int
	Commit    uint64
	Applied   uint64
	LastIndex uint64
	// LogLength is the number of entries held in the log (after the snapshot).
	LogLength     uint64
	SnapshotIndex uint64
	// Pid is the node's process id when it runs as a process of its own
	// that this program started (0 otherwise).
	Pid int
	// Down says why a node that is not Alive is down, when it is not
	// "crashed": "paused", "not answering".
	Down string
	// NoVotes: the node votes for no one until it is given a vote floor
	// (a node that joined, -join, and was not given one).
	NoVotes bool
}

// Pauser is a Cluster whose nodes are processes that can be stopped and
// continued (SIGSTOP, SIGCONT): the launcher's.
type Pauser interface {
	Pause(id int) error
	Resume(id int) error
}

// Member says what id is in cfg, for NodeStatus.Member: known is false
// when no server is up to say; wasMember, that a committed configuration
// held it (so that, out of cfg, it is leaving, not joining).
func Member(cfg core.Configuration, known bool, id int, wasMember bool) string {
	switch {
	case !known:
		return "unknown"
	case cfg.IsJoint() && !slices.Contains(cfg.Voters, id) && slices.Contains(cfg.Outgoing, id):
		return "leaving" // a voter of C_old only: it goes when the joint configuration is left
	case cfg.IsVoter(id):
		return "voter"
	case cfg.IsStaged(id):
		return "staged" // a learner waiting for its change to promote it
	case cfg.IsLearner(id):
		return "learner"
	case wasMember:
		return "leaving"
	}
	return "joining"
}

// MaxLogEntries bounds the entries a NodeLog carries: the latest ones.
// The page asks for far fewer, several times a second.
const MaxLogEntries = 10000

// NodeLog is one server's log, for display.
type NodeLog struct {
	ID    int
	Alive bool
	// SnapshotIndex and SnapshotTerm: the log holds the entries after it.
	SnapshotIndex, SnapshotTerm uint64
	Commit, Applied             uint64
	LastIndex                   uint64
	// Entries are the latest entries held (at most MaxLogEntries), oldest
	// first; their Data are the commands as the log holds them.
	Entries []core.Entry
}

// StaleRead is the answer of a read served from a node's own state
// machine.
type StaleRead struct {
	Value   string
	Found   bool
	Applied uint64    // the index the state machine had applied
	Role    core.Role // the node's role when it answered
	Term    uint64
}

// LogOf copies a core's log for display: its latest limit entries (at most
// MaxLogEntries).
func LogOf(id int, c *core.Core, applied uint64, limit int) NodeLog {
	first, last := c.FirstIndex(), c.LastIndex()
	snapTerm, _ := c.TermAt(first - 1)
	n := uint64(min(max(limit, 0), MaxLogEntries))
	lo := first
	if last >= lo && last-lo+1 > n {
		lo = last + 1 - n
	}
	var ents []core.Entry
	if last >= lo {
		ents = c.Entries(lo, last+1)
	}
	return NodeLog{ID: id, Alive: true, SnapshotIndex: first - 1, SnapshotTerm: snapTerm,
		Commit: c.Committed(), Applied: applied, LastIndex: last, Entries: ents}
}

// IDRange shows node ids as "0–4", or "0, 2, 3" when not contiguous.
func IDRange(ids []int) string {
	if len(ids) == 0 {
		return "none"
	}
	ids = slices.Sorted(slices.Values(ids))
	if len(ids) > 2 && ids[len(ids)-1]-ids[0] == len(ids)-1 {
		return fmt.Sprintf("%d–%d", ids[0], ids[len(ids)-1])
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	return strings.Join(parts, ", ")
}

// NoSuchNode is the error for an id that names no server of members.
func NoSuchNode(id int, members []int) error {
	return fmt.Errorf("%w: node %d does not exist (nodes %s)", ErrNoSuchNode, id, IDRange(members))
}

// CheckPartition checks that groups partition members: at least two
// groups, none empty, every member in one at least, nobody else, and at
// least one pair of members left without a group in common (a "ring" of
// three, 0 1 | 1 2 | 2 0, cuts nothing). It returns the partition as
// typed: "0 1 | 2 3 4".
func CheckPartition(groups [][]int, members []int) (string, error) {
	if len(groups) < 2 {
		return "", errors.New("a partition needs at least two groups")
	}
	seen := map[int]bool{}
	var desc []string
	for _, g := range groups {
		if len(g) == 0 {
			return "", errors.New("a partition group is empty")
		}
		var ids []string
		in := map[int]bool{}
		for _, id := range g {
			if !slices.Contains(members, id) {
				return "", NoSuchNode(id, members)
			}
			if in[id] {
				return "", fmt.Errorf("node %d is twice in one group", id)
			}
			in[id], seen[id] = true, true
			ids = append(ids, strconv.Itoa(id))
		}
		if len(in) == len(members) {
			return "", fmt.Errorf("group %s holds every node: that is no partition", strings.Join(ids, " "))
		}
		desc = append(desc, strings.Join(ids, " "))
	}
	for _, id := range members {
		if !seen[id] {
			return "", fmt.Errorf("node %d is in no group (every node must be in one, crashed ones too)", id)
		}
	}
	together := func(a, b int) bool {
		for _, g := range groups {
			if slices.Contains(g, a) && slices.Contains(g, b) {
				return true
			}
		}
		return false
	}
	for i, a := range members {
		for _, b := range members[i+1:] {
			if !together(a, b) {
				return strings.Join(desc, " | "), nil
			}
		}
	}
	return "", errors.New("every node still shares a group with every other: that partition cuts no link")
}
