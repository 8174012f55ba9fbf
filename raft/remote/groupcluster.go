package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/shard"
)

// GroupedCluster is a Cluster of nodes that host many groups each (go
// run . node -groups G): the REPL's grouped commands work on it as on the
// in-process sharded cluster. Its server-wide operations (faults, crashes
// through a launcher, status of group 0) are the Cluster's; keys go to
// their group's leader, with a client per group; the tables are made from
// every node's report of its replicas, as shard.Cluster makes them.
type GroupedCluster struct {
	*Cluster
	groups int

	gmu     sync.Mutex
	clients map[multi.GroupID]*kv.Client
	// gmembers are each group's members as a leader last had them (the
	// group's client's servers; see groupServers).
	gmembers map[multi.GroupID][]int
}

var _ cluster.Grouped = (*GroupedCluster)(nil)

// ConnectAny connects to a cluster, of one group or of many.
func ConnectAny(cfg ClusterConfig) (cluster.Cluster, error) {
	c, err := Connect(cfg)
	if err != nil {
		return nil, err
	}
	if c.groups > 1 {
		gc := &GroupedCluster{Cluster: c, groups: c.groups, clients: map[multi.GroupID]*kv.Client{}, gmembers: map[multi.GroupID][]int{}}
		gc.syncServers(gc.replicas(nil))
		return gc, nil
	}
	return c, nil
}

// GroupCount is the number of groups; ids are 0 to GroupCount()-1.
func (c *GroupedCluster) GroupCount() int { return c.groups }

// GroupOf is the group holding key (as the nodes compute it).
func (c *GroupedCluster) GroupOf(key string) uint64 { return uint64(multi.GroupOfKey(key, c.groups)) }

// HasGroup reports whether group g exists.
func (c *GroupedCluster) HasGroup(g uint64) bool { return g < uint64(c.groups) }

func (c *GroupedCluster) noSuchGroup(g uint64) error {
	return fmt.Errorf("no such group: group %d does not exist (groups 0–%d)", g, c.groups-1)
}

// replicas asks every member for its replicas (of the groups in only, or
// all), in parallel; a node that does not answer in time is left out.
func (c *GroupedCluster) replicas(only []uint64) map[int]map[multi.GroupID]shard.Replica {
	out := map[int]map[multi.GroupID]shard.Replica{}
	var mu sync.Mutex
	c.eachMember(4*infoTimeout, func(ctx context.Context, id int) {
		var got map[uint64]shard.Replica
		if c.admin(ctx, id, "Replicas", &GroupsArgs{Groups: only}, &got) != nil {
			return
		}
		reps := make(map[multi.GroupID]shard.Replica, len(got))
		for g, r := range got {
			reps[multi.GroupID(g)] = r
		}
		mu.Lock()
		out[id] = reps
		mu.Unlock()
	})
	return out
}

// Groups reports every group, in id order.
func (c *GroupedCluster) Groups() []cluster.GroupStatus {
	reps := c.replicas(nil)
	c.syncServers(reps)
	return shard.MergeGroups(c.groups, reps)
}

// NodeGroups counts each server's groups.
func (c *GroupedCluster) NodeGroups() []cluster.NodeGroups {
	reps := c.replicas(nil)
	c.syncServers(reps) // the nodes, as the groups' leaders have them
	return shard.CountGroups(c.IDs(), reps)
}

// GroupNodes is Status with group g's role, term and log.
func (c *GroupedCluster) GroupNodes(g uint64) ([]cluster.NodeStatus, error) {
	if !c.HasGroup(g) {
		return nil, c.noSuchGroup(g)
	}
	base := map[int]cluster.NodeStatus{}
	for _, st := range c.Status() {
		base[st.ID] = st
	}
	connected := func(id int) bool { return !c.faults.IsDisconnected(id) }
	rows := shard.NodesOfGroup(c.IDs(), c.replicas([]uint64{g}), multi.GroupID(g), connected, c.IDs())
	for i := range rows {
		if b, ok := base[rows[i].ID]; ok {
			rows[i].Pid, rows[i].Down = b.Pid, b.Down
		}
	}
	return rows, nil
}

// GroupLogs is Logs for group g.
func (c *GroupedCluster) GroupLogs(g uint64, limit int) ([]cluster.NodeLog, error) {
	if !c.HasGroup(g) {
		return nil, c.noSuchGroup(g)
	}
	var out []cluster.NodeLog
	for _, id := range c.IDs() {
		if c.paused(id) {
			out = append(out, cluster.NodeLog{ID: id})
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*infoTimeout)
		var l cluster.NodeLog
		err := c.admin(ctx, id, "GroupLog", &GroupLogArgs{Group: g, Limit: limit}, &l)
		cancel()
		if err != nil {
			l = cluster.NodeLog{ID: id}
		}
		out = append(out, l)
	}
	return out, nil
}

// GroupLeader is group g's running, connected leader with the highest
// term, or core.None.
func (c *GroupedCluster) GroupLeader(g uint64) (int, uint64) {
	if !c.HasGroup(g) {
		return core.None, 0
	}
	l, r := shard.LeaderOf(c.replicas([]uint64{g}), multi.GroupID(g))
	if l == core.None || c.faults.IsDisconnected(l) {
		return core.None, 0
	}
	return l, r.Summary.Term
}

// WaitLeaders waits until every group has a leader, and counts the
// groups each server leads.
func (c *GroupedCluster) WaitLeaders(timeout time.Duration) (map[int]int, error) {
	var led map[int]int
	var missing []multi.GroupID
	err := c.poll(timeout, func() (bool, error) {
		reps := c.replicas(nil)
		led, missing = map[int]int{}, nil
		for g := range multi.GroupID(c.groups) {
			l, _ := shard.LeaderOf(reps, g)
			if l == core.None || c.faults.IsDisconnected(l) {
				missing = append(missing, g)
				continue
			}
			led[l]++
		}
		return len(missing) == 0, nil
	})
	if errors.Is(err, cluster.ErrTimeout) {
		return nil, fmt.Errorf("%w: %d of %d groups have none after %v (%s)", cluster.ErrNoLeader, len(missing), c.groups, timeout, shard.GroupList(missing))
	}
	return led, err
}

// groupView is one group as its kv.Client reaches it.
type groupView struct {
	c *GroupedCluster
	g multi.GroupID
}

// IDs are the group's members, as its leader last had them (every node
// until one is known).
func (v groupView) IDs() []int {
	v.c.gmu.Lock()
	m := slices.Clone(v.c.gmembers[v.g])
	v.c.gmu.Unlock()
	if m == nil {
		return v.c.IDs()
	}
	return m
}

func (v groupView) Endpoint(id int) (kv.Endpoint, error) {
	addr, err := v.c.reachable(id)
	if err != nil {
		return nil, err
	}
	return &Endpoint{id: id, addr: addr, dialer: v.c.dialer, group: uint64(v.g)}, nil
}

// client is the REPL's client of group g: a client id of its own in each
// group, so that a (client, sequence number) pair names one write in the
// whole history.
func (c *GroupedCluster) client(g multi.GroupID) *kv.Client {
	c.gmu.Lock()
	defer c.gmu.Unlock()
	if cl := c.clients[g]; cl != nil {
		return cl
	}
	cl := c.Cluster.newClient(groupView{c, g})
	c.clients[g] = cl
	return cl
}

// Do runs one client operation in key's group: through its leader, which
// the client finds, when node is core.None; at that node only otherwise.
func (c *GroupedCluster) Do(op kv.Op, key, value string, node int) (kv.Result, error) {
	ctx := c.callContext()
	cl := c.client(multi.GroupOfKey(key, c.groups))
	if node != core.None {
		if _, err := c.addr(node); err != nil {
			return kv.Result{}, err
		}
		res, err := cl.On(ctx, node, op, key, value)
		return res, cluster.Interrupted(ctx, op, err)
	}
	res, err := cl.Do(ctx, op, key, value)
	return res, cluster.Interrupted(ctx, op, err)
}

// ShardClient is a client of a GroupedCluster for a program (a test's
// workload): each key goes to its group's kv.Client, made on first use
// with a client id of its own. Like kv.Client, it runs one operation at
// a time; its operations go into the cluster's history.
type ShardClient struct {
	c       *GroupedCluster
	clients map[multi.GroupID]*kv.Client
}

// NewShardClient returns a new client of the cluster.
func (c *GroupedCluster) NewShardClient() *ShardClient {
	return &ShardClient{c: c, clients: map[multi.GroupID]*kv.Client{}}
}

func (s *ShardClient) of(key string) *kv.Client {
	g := multi.GroupOfKey(key, s.c.groups)
	cl := s.clients[g]
	if cl == nil {
		cl = s.c.Cluster.newClient(groupView{s.c, g})
		s.clients[g] = cl
	}
	return cl
}

// Set writes key in its group (exactly once).
func (s *ShardClient) Set(ctx context.Context, key, value string) error {
	return s.of(key).Set(ctx, key, value)
}

// Get reads key in its group (linearizable: ReadIndex at the leader).
func (s *ShardClient) Get(ctx context.Context, key string) (string, bool, error) {
	return s.of(key).Get(ctx, key)
}
