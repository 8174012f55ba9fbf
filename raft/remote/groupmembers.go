package remote

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/shard"
)

// The membership changes of nodes of many groups: the in-process cluster's
// change loops (shard.Changer) on node processes, through their admin
// services. A node added to the cluster is started by the launcher, or by
// the user with -join -groups G; each group it joins gets an empty replica
// on it first (Admin.CreateReplica), then the group's leader adds it as a
// learner and promotes it (thesis §4.2.1); a group that removes a node
// drops its replica there (Admin.DropReplica).

// changer runs the cluster's membership changes.
func (c *GroupedCluster) changer() shard.Changer {
	// A few groups at a time: each loop asks every node about its group.
	return shard.Changer{Servers: groupServers{c}, Poll: 50 * time.Millisecond, Timeout: c.membershipTimeout(),
		Reask: time.Second, Parallel: 8}
}

// AddServer adds node id to every group: a launcher starts its process;
// otherwise it must have been started with -join -groups G.
func (c *GroupedCluster) AddServer(id int) error { return c.changer().AddServer(c.callContext(), id) }

// RemoveServer removes node id from every group; a launcher then stops it.
func (c *GroupedCluster) RemoveServer(id int) error {
	return c.changer().RemoveServer(c.callContext(), id)
}

// ChangeMembers adds and removes nodes in every group, one step per group
// (a joint configuration when more than one voter changes, Raft paper §6).
func (c *GroupedCluster) ChangeMembers(adds, removes []int) error {
	return c.changer().ChangeMembers(c.callContext(), adds, removes)
}

// AddToGroup adds node id (running) to group g.
func (c *GroupedCluster) AddToGroup(id int, g uint64) error {
	return c.changer().AddToGroup(c.callContext(), id, g)
}

// RemoveFromGroup removes node id from group g.
func (c *GroupedCluster) RemoveFromGroup(id int, g uint64) error {
	return c.changer().RemoveFromGroup(c.callContext(), id, g)
}

// ChangeGroup changes group g's members in one step.
func (c *GroupedCluster) ChangeGroup(g uint64, adds, removes []int) error {
	return c.changer().ChangeGroup(c.callContext(), g, adds, removes)
}

// TransferGroup makes node id the leader of group g.
func (c *GroupedCluster) TransferGroup(id int, g uint64) error {
	return c.changer().TransferGroup(c.callContext(), id, g)
}

// TransferLeadership makes node id the leader of every group it is a
// voter of.
func (c *GroupedCluster) TransferLeadership(id int) error {
	return c.changer().TransferLeadership(c.callContext(), id)
}

// syncServers takes what the nodes reported of their replicas: each
// group's members as its leader has them, and the cluster's nodes, every
// member of some group and every node that holds a replica (a cluster of
// many groups has no one configuration to learn its nodes from).
func (c *GroupedCluster) syncServers(reps map[int]map[multi.GroupID]shard.Replica) {
	seen := false
	for g := range multi.GroupID(c.groups) {
		if l, r := shard.LeaderOf(reps, g); l != core.None {
			c.sawConfig(g, r.Summary.Config)
			seen = true
		}
	}
	c.gmu.Lock()
	nodes := map[int]bool{}
	for _, m := range c.gmembers {
		for _, id := range m {
			nodes[id] = true
		}
	}
	c.gmu.Unlock()
	if !seen {
		// No leader answered (nodes just started): each group's latest
		// configuration among the replicas that answered is a better
		// guess than the address books, which keep removed nodes.
		guess := newestMembers(c.groups, reps)
		if len(guess) == 0 {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for id := range c.joining {
			guess[id] = true
		}
		c.members = slices.Sorted(maps.Keys(guess))
		return
	}
	for id, r := range reps {
		if len(r) > 0 {
			nodes[id] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.joining {
		if nodes[id] {
			delete(c.joining, id) // some group has it now
		}
		nodes[id] = true
	}
	// A node down is still a member of its groups' configurations; a node
	// removed from every group is no longer one of the cluster's.
	c.members = slices.Sorted(maps.Keys(nodes))
}

// newestMembers is the union, over groups, of the members of the
// latest configuration (highest index) a replica of the group holds.
func newestMembers(groups int, reps map[int]map[multi.GroupID]shard.Replica) map[int]bool {
	nodes := map[int]bool{}
	for g := range multi.GroupID(groups) {
		var newest *core.Summary
		for _, r := range reps {
			if rep, ok := r[g]; ok && (newest == nil || rep.Summary.ConfigIndex > newest.ConfigIndex) {
				newest = &rep.Summary
			}
		}
		if newest != nil {
			for _, id := range newest.Config.Members() {
				nodes[id] = true
			}
		}
	}
	return nodes
}

// sawConfig records group g's configuration as a leader has it: its
// members are the group's client's servers.
func (c *GroupedCluster) sawConfig(g multi.GroupID, cfg core.Configuration) {
	c.gmu.Lock()
	defer c.gmu.Unlock()
	c.gmembers[g] = cfg.Members()
}

// refusedError is a leader's refusal of a change that can never be made
// (cluster.Refused), as its admin service reported it.
type refusedError struct{ msg string }

func (e refusedError) Error() string        { return e.msg }
func (e refusedError) Is(target error) bool { return target == core.ErrBadMember }

// groupServers are the nodes of a GroupedCluster as shard.Changer sees
// them.
type groupServers struct{ c *GroupedCluster }

var _ shard.GroupServers = groupServers{}

func (s groupServers) GroupCount() int { return s.c.groups }

func (s groupServers) Leader(g multi.GroupID) (int, core.Summary) {
	reps := s.c.replicas([]uint64{uint64(g)})
	l, r := shard.LeaderOf(reps, g)
	if l != core.None {
		s.c.sawConfig(g, r.Summary.Config)
	}
	return l, r.Summary
}

func (s groupServers) Refresh() { s.c.syncServers(s.c.replicas(nil)) }

func (s groupServers) Members(g multi.GroupID) []int {
	s.c.gmu.Lock()
	defer s.c.gmu.Unlock()
	return slices.Clone(s.c.gmembers[g])
}

func (s groupServers) call(ctx context.Context, id int, method string, args, reply any) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	return s.c.adminAt(ctx, id, method, args, reply)
}

func (s groupServers) Propose(ctx context.Context, id int, g multi.GroupID, changes []core.ConfChange) error {
	var r ProposeReply
	if err := s.call(ctx, id, "ProposeGroup", &GroupChanges{Group: uint64(g), Changes: changes}, &r); err != nil {
		return err
	}
	switch {
	case r.Refused:
		return refusedError{r.Error}
	case r.Error != "":
		return errors.New(r.Error)
	}
	return nil
}

func (s groupServers) Transfer(ctx context.Context, id int, g multi.GroupID, target int) error {
	return s.call(ctx, id, "TransferGroup", &GroupTransfer{Group: uint64(g), Target: target}, &struct{}{})
}

func (s groupServers) VoteFloor(ctx context.Context, id int, g multi.GroupID) (core.VoteFloor, error) {
	var floor core.VoteFloor
	err := s.call(ctx, id, "VoteFloor", &GroupArgs{Group: uint64(g)}, &floor)
	return floor, err
}

func (s groupServers) CreateReplica(id int, g multi.GroupID, floor core.VoteFloor) error {
	return s.call(context.Background(), id, "CreateReplica", &GroupArgs{Group: uint64(g), VoteFloor: floor}, &struct{}{})
}

// DropReplica: a node that does not answer keeps its replica (the error
// says so). Removed from the group's configuration, it gets no messages of
// the group, and its elections win no vote: the members' logs are ahead of
// its own, and a replica created empty since has a vote floor
// (core.InitialState.VoteFloor) above its log.
func (s groupServers) DropReplica(id int, g multi.GroupID) error {
	return s.call(context.Background(), id, "DropReplica", &GroupArgs{Group: uint64(g)}, &struct{}{})
}

func (s groupServers) Hosted(id int) []multi.GroupID {
	ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
	defer cancel()
	var got map[uint64]shard.Replica
	if s.c.adminAt(ctx, id, "Replicas", &GroupsArgs{}, &got) != nil {
		return nil
	}
	out := make([]multi.GroupID, 0, len(got))
	for g := range got {
		out = append(out, multi.GroupID(g))
	}
	return out
}

func (s groupServers) Exists(id int) error {
	_, err := s.c.addr(id)
	return err
}

func (s groupServers) Up(id int) bool {
	return !s.c.faults.IsDisconnected(id) && s.Running(id) == nil
}

func (s groupServers) Running(id int) error {
	if err := s.Exists(id); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
	defer cancel()
	var info NodeInfo
	if err := s.c.adminAt(ctx, id, "Info", &struct{}{}, &info); err != nil {
		return fmt.Errorf("node %d does not answer: %w", id, err)
	}
	return nil
}

func (s groupServers) AddNew(id int) error { return s.c.prepareNew(id) }

func (s groupServers) Forget(id int) { s.c.forget([]int{id}) }
