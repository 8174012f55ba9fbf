package remote

// A node of many groups (go run . node -groups G): the sharded KV's
// shard.Server in a process, every group on every founding node, its
// groups in one shared log in the data dir, its batches on one frame
// stream per node pair (multinode.TCP). Clients reach it on the same port
// as its peers do: the KV service takes a group with each command (the
// client computes it from the key, and the node checks it), the admin
// service reports the replicas.

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/multinode"
	"raft-consensus/raft/shard"
)

// groupsDir holds a node's shared log when it hosts many groups.
const groupsDir = "raft-groups"

// groupTiming turns the node's timing flags into a sharded server's tick
// and its election and heartbeat timeouts in ticks (at least one tick
// each, the election range at least two ticks wide, the heartbeat at most
// a third of the election timeout).
func groupTiming(cfg NodeConfig) (tick time.Duration, electionMin, electionMax, heartbeat int) {
	tick = cfg.TickInterval
	if tick <= 0 {
		tick = 10 * time.Millisecond
	}
	in := func(d, def time.Duration) int {
		if d <= 0 {
			d = def
		}
		return max(1, int(d/tick))
	}
	electionMin = in(cfg.ElectionTimeoutMin, 150*time.Millisecond)
	electionMax = max(in(cfg.ElectionTimeoutMax, 2*time.Duration(electionMin)*tick), electionMin+1)
	heartbeat = min(in(cfg.HeartbeatInterval, 50*time.Millisecond), max(1, electionMin/3))
	return tick, electionMin, electionMax, heartbeat
}

// startGroups starts the node's sharded server and its transport, which
// serves its clients too.
func (n *Node) startGroups(tlsCfg *tls.Config, id identity, members []int) error {
	cfg := n.cfg
	peers := map[multi.NodeID]string{}
	for id, addr := range n.book {
		peers[multi.NodeID(id)] = addr
	}
	t, err := multinode.ListenTCP(multinode.TCPConfig{ID: multi.NodeID(cfg.ID), Cluster: cfg.Cluster, Groups: cfg.Groups, Listen: cfg.Listen,
		Peers: peers, TLS: tlsCfg, AllowRemote: cfg.AllowRemote, Faults: n.faults, Logf: cfg.Logf,
		Services: map[string]any{kv.ServiceName: &groupKV{n}, AdminService: &Admin{node: n}}})
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	n.mu.Lock() // the admin service (setPeer) reads it as soon as t serves
	n.mtcp = t
	n.mu.Unlock()
	tick, emin, emax, hb := groupTiming(cfg)
	founders := make([]multi.NodeID, len(members))
	for i, id := range members {
		founders[i] = multi.NodeID(id)
	}
	rec, err := n.loadReplicas(id.Joined)
	if err != nil {
		return err
	}
	var hosted []multi.GroupID
	for _, g := range rec.Hosted {
		hosted = append(hosted, multi.GroupID(g))
	}
	seed := time.Now().UnixNano() + int64(cfg.ID)
	srv, err := shard.StartServer(shard.ServerConfig{ID: multi.NodeID(cfg.ID), Tick: tick, Transport: t,
		Core: shard.CoreConfig(emin, emax, hb, seed, func(v core.InvariantViolation) {
			cfg.Logf("SAFETY VIOLATION, the replica stopped: %v", v)
		}),
		Dir: filepath.Join(cfg.DataDir, groupsDir), Hosted: hosted,
		// The replicas it was added with keep their vote floors.
		VoteFloor: func(g multi.GroupID) core.VoteFloor { return rec.Floors[uint64(g)] },
		// A founder bootstraps the groups it founded (on an empty log
		// only: a restart reads its state); a group it was added to later
		// it never bootstraps, even if it restarts before the leader has
		// sent it anything.
		Members: func(g multi.GroupID) []multi.NodeID {
			if id.Joined || rec.joined(uint64(g)) {
				return nil
			}
			return founders
		},
		Attach: t.Attach,
		OnViolation: func(what string) {
			cfg.Logf("SAFETY VIOLATION: %s", what)
		}})
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.sharded = srv
	n.mu.Unlock()
	return nil
}

// shardServer is the node's sharded server, or an error while it starts.
func (n *Node) shardServer() (*shard.Server, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sharded == nil {
		if n.cfg.Groups == 0 {
			return nil, fmt.Errorf("node %d hosts one group (it was started without -groups): no group calls", n.cfg.ID)
		}
		return nil, fmt.Errorf("node %d is still starting", n.cfg.ID)
	}
	return n.sharded, nil
}

// groupKV is the KV service of a node of many groups.
type groupKV struct{ n *Node }

// Do runs one command in the group it names, which must be its key's.
func (v *groupKV) Do(req *kv.WireRequest, reply *kv.WireReply) error {
	n := v.n
	if key := req.Command.Key; key != "" && uint64(multi.GroupOfKey(key, n.cfg.Groups)) != req.Group {
		*reply = kv.WireReply{Error: fmt.Sprintf("bad request: key %q is in group %d of %d, not group %d (does the client know how many groups there are?)",
			key, multi.GroupOfKey(key, n.cfg.Groups), n.cfg.Groups, req.Group)}
		return nil
	}
	srv, err := n.shardServer()
	if err != nil {
		*reply = kv.WireReply{Error: err.Error()}
		return nil
	}
	*reply = kv.Answer(req, func(ctx context.Context, cmd kv.Command) (kv.Result, error) {
		return srv.Do(ctx, multi.GroupID(req.Group), cmd)
	})
	return nil
}

// The admin service's calls on a node of many groups.

// GroupsArgs names groups: nil for all of them.
type GroupsArgs struct {
	Groups []uint64
}

// Replicas reports the node's replicas of the groups asked for.
func (a *Admin) Replicas(args *GroupsArgs, out *map[uint64]shard.Replica) error {
	srv, err := a.node.shardServer()
	if err != nil {
		return err
	}
	only, err := a.node.groupList(args.Groups)
	if err != nil {
		return err
	}
	reps, err := srv.Replicas(only)
	if err != nil {
		return err
	}
	m := make(map[uint64]shard.Replica, len(reps))
	for g, r := range reps {
		m[uint64(g)] = r
	}
	*out = m
	return nil
}

// groupList checks a list of group ids a client sent (nil: every group)
// before the node goroutine walks it: each in range, none twice, so at
// most the node's number of groups, however long the request.
func (n *Node) groupList(ids []uint64) ([]multi.GroupID, error) {
	if ids == nil {
		return nil, nil
	}
	if len(ids) > n.cfg.Groups {
		return nil, fmt.Errorf("bad request: %d group ids, and there are %d groups", len(ids), n.cfg.Groups)
	}
	seen := make(map[uint64]bool, len(ids))
	only := make([]multi.GroupID, 0, len(ids))
	for _, g := range ids {
		if err := n.checkGroup(g); err != nil {
			return nil, err
		}
		if !seen[g] {
			seen[g] = true
			only = append(only, multi.GroupID(g))
		}
	}
	return only, nil
}

// checkGroup refuses a group id the node's cluster does not have.
func (n *Node) checkGroup(g uint64) error {
	if g >= uint64(n.cfg.Groups) {
		return fmt.Errorf("bad request: there is no group %d (groups 0 to %d)", g, n.cfg.Groups-1)
	}
	return nil
}

// GroupLogArgs asks for the latest Limit entries of one group's log.
type GroupLogArgs struct {
	Group uint64
	Limit int
}

// GroupLog reports the node's log of one group.
func (a *Admin) GroupLog(args *GroupLogArgs, l *cluster.NodeLog) error {
	srv, err := a.node.shardServer()
	if err != nil {
		return err
	}
	if err := a.node.checkGroup(args.Group); err != nil {
		return err
	}
	got, found, err := srv.GroupLog(multi.GroupID(args.Group), args.Limit)
	if err == nil && !found {
		err = fmt.Errorf("node %d has no replica of group %d", a.node.cfg.ID, args.Group)
	}
	*l = got
	return err
}

// GroupTransfer asks the node's replica of Group, which must lead, to hand
// over to Target (thesis §3.10).
type GroupTransfer struct {
	Group  uint64
	Target int
}

// TransferGroup hands the node's leadership of a group to another node.
func (a *Admin) TransferGroup(args *GroupTransfer, _ *struct{}) error {
	srv, err := a.node.shardServer()
	if err != nil {
		return err
	}
	if err := a.node.checkGroup(args.Group); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	var res error
	if err := srv.Node().Do(ctx, func(h *multi.Host) {
		res = h.TransferLeadership(multi.GroupID(args.Group), multi.NodeID(args.Target))
	}); err != nil {
		return err
	}
	return res
}

// groupsInfo fills what Info says of a node of many groups: group 0's
// summary, and the counts.
func (a *Admin) groupsInfo(info *NodeInfo) error {
	srv, err := a.node.shardServer()
	if err != nil {
		return err
	}
	reps, err := srv.Replicas(nil)
	if err != nil {
		return err
	}
	info.Groups = a.node.cfg.Groups
	if r, ok := reps[0]; ok {
		info.Summary, info.Applied = r.Summary, r.Applied
	}
	id := a.node.cfg.ID
	counts := shard.CountGroups([]int{id}, map[int]map[multi.GroupID]shard.Replica{id: reps})[0]
	info.Replicas, info.Led, info.Quiet = counts.Replicas, counts.Led, counts.Quiet
	return nil
}
