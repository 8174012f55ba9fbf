package cluster

import (
	"time"

	"raft-consensus/raft/core"
)

// Grouped is a Cluster whose servers host many Raft groups each (package
// shard, on raft/multi): keys map to groups, and membership changes and
// leadership transfers can name one group. Its Cluster methods act on
// servers, and so on every group they host: a crash, a partition, a
// server added or removed. Where a Cluster method reports one group's
// view (Status's role, term and commit, Logs, Leader) it is group 0's.
type Grouped interface {
	Cluster
	// Groups reports every group, in id order.
	Groups() []GroupStatus
	// NodeGroups counts, for each server by id, the groups it hosts, leads,
	// and of those how many tick (active) or are quiet.
	NodeGroups() []NodeGroups
	// GroupOf is the group holding key.
	GroupOf(key string) uint64
	// HasGroup reports whether group g exists; GroupCount is how many
	// there are (ids 0 to GroupCount()-1).
	HasGroup(g uint64) bool
	GroupCount() int
	// GroupLeader is group g's running, connected leader with the highest
	// term, or core.None.
	GroupLeader(g uint64) (int, uint64)
	// WaitLeaders waits until every group has a leader, and counts the
	// groups each server leads.
	WaitLeaders(timeout time.Duration) (map[int]int, error)
	// GroupNodes is Status with group g's role, term and log.
	GroupNodes(g uint64) ([]NodeStatus, error)
	// GroupLogs is Logs for group g.
	GroupLogs(g uint64, limit int) ([]NodeLog, error)
	// TransferGroup makes server id the leader of group g.
	TransferGroup(id int, g uint64) error
	// AddToGroup and RemoveFromGroup change one group's members; the
	// server must exist (AddServer starts new ones, in every group).
	AddToGroup(id int, g uint64) error
	RemoveFromGroup(id int, g uint64) error
	// ChangeGroup is ChangeMembers for group g: the servers added must
	// exist and not be members, through a joint configuration when more
	// than one voter changes.
	ChangeGroup(g uint64, adds, removes []int) error
}

// GroupStatus describes one group for the groups table, as its leader
// (or, with none, the replica with the highest term) sees it.
type GroupStatus struct {
	ID     uint64
	Leader int // core.None: none known
	Term   uint64
	Commit uint64
	Config core.Configuration
	// Replicas are the running replicas; Quiet, those of them that are
	// quiet (no ticks, no heartbeats).
	Replicas, Quiet int
}

// NodeGroups counts one server's groups.
type NodeGroups struct {
	ID                           int
	Alive                        bool
	Replicas, Led, Active, Quiet int
}
