package shard

import (
	"context"
	"fmt"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/multi"
)

// The in-process cluster's membership changes: the Changer's loops (see
// changer.go) on its servers.

// changer runs the cluster's membership changes.
func (c *Cluster) changer() Changer {
	timeout := c.cfg.ChangeTimeout
	if timeout <= 0 {
		timeout = max(10*time.Second, 3*c.cfg.ClientTimeout)
	}
	return Changer{Servers: clusterServers{c}, Poll: c.cfg.Tick, Timeout: timeout,
		Reask: time.Duration(c.cfg.ElectionTicksMax) * c.cfg.Tick}
}

// clusterServers are the cluster's servers as the Changer sees them.
type clusterServers struct{ c *Cluster }

var _ GroupServers = clusterServers{}

func (s clusterServers) GroupCount() int { return s.c.cfg.Groups }

// Leader is group g's leader now; its configuration becomes the group's
// members as the client routes to them.
func (s clusterServers) Leader(g multi.GroupID) (int, core.Summary) {
	l, r := LeaderOf(s.c.replicas([]multi.GroupID{g}), g)
	if l != core.None {
		s.c.sawConfig(g, r.Summary.Config)
	}
	return l, r.Summary
}

func (s clusterServers) Refresh() { s.c.refreshMembers() }

func (s clusterServers) Members(g multi.GroupID) []int { return s.c.groupMembers(g) }

func (s clusterServers) Propose(ctx context.Context, id int, g multi.GroupID, changes []core.ConfChange) error {
	run, err := s.c.running(id)
	if err != nil {
		return err
	}
	var res error
	if err := run.node.Do(ctx, func(h *multi.Host) { res = h.ProposeConfChanges(g, changes).Err }); err != nil {
		return err
	}
	return res
}

func (s clusterServers) Transfer(ctx context.Context, id int, g multi.GroupID, target int) error {
	run, err := s.c.running(id)
	if err != nil {
		return err
	}
	var res error
	if err := run.node.Do(ctx, func(h *multi.Host) { res = h.TransferLeadership(g, multi.NodeID(target)) }); err != nil {
		return err
	}
	return res
}

func (s clusterServers) VoteFloor(ctx context.Context, id int, g multi.GroupID) (core.VoteFloor, error) {
	run, err := s.c.running(id)
	if err != nil {
		return core.VoteFloor{}, err
	}
	return run.VoteFloor(ctx, g)
}

func (s clusterServers) CreateReplica(id int, g multi.GroupID, floor core.VoteFloor) error {
	run, err := s.c.running(id)
	if err != nil {
		return err
	}
	var cerr error
	created := false
	if err := run.node.Do(context.Background(), func(h *multi.Host) {
		if _, _, err := h.Summary(g); err == nil {
			return // a replica left from an earlier try
		}
		cerr = run.JoinReplica(h, g, floor)
		created = cerr == nil
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	s.c.mu.Lock()
	s.c.servers[id].hosted[g] = true
	if created {
		s.c.servers[id].floors[g] = floor
	}
	s.c.mu.Unlock()
	return nil
}

// DropReplica: a server that is down forgets the replica (it does not
// create it again on a restart). Its storage goes too (in memory, or
// dropped from the shared log, at once or at the server's next start).
func (s clusterServers) DropReplica(id int, g multi.GroupID) error {
	c := s.c
	c.mu.Lock()
	srv := c.servers[id]
	var run *Server
	if srv != nil {
		delete(srv.hosted, g)
		delete(srv.floors, g)
		run = srv.run
		if run == nil {
			delete(srv.mem, g) // no node goroutine runs: the map is ours
		}
	}
	c.mu.Unlock()
	if run != nil {
		run.node.Do(context.Background(), func(h *multi.Host) { //nolint:errcheck // a crashed one is gone anyway
			if run.DropReplica(h, g) {
				delete(srv.mem, g)
			}
		})
	}
	return nil
}

func (s clusterServers) Hosted(id int) []multi.GroupID {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	var out []multi.GroupID
	if srv := s.c.servers[id]; srv != nil {
		for g := range srv.hosted {
			out = append(out, g)
		}
	}
	return out
}

func (s clusterServers) Exists(id int) error { return s.c.exists(id) }

func (s clusterServers) Running(id int) error {
	_, err := s.c.running(id)
	return err
}

func (s clusterServers) Up(id int) bool {
	return s.Running(id) == nil && !s.c.net.isDisconnected(multi.NodeID(id))
}

// AddNew starts a new server that hosts no group yet.
func (s clusterServers) AddNew(id int) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.down:
		return cluster.ErrClusterDown
	case id < 0 || id >= cluster.MaxNodes:
		return fmt.Errorf("node id %d is out of range (0–%d)", id, cluster.MaxNodes-1)
	case c.servers[id] != nil:
		return fmt.Errorf("node %d already exists", id)
	case len(c.servers) >= cluster.MaxNodes:
		return fmt.Errorf("%w: the cluster has %d nodes already", cluster.ErrBadNodeCount, len(c.servers))
	}
	return c.start(c.newServer(id), nil)
}

// Forget stops a server and takes it out of the cluster.
func (s clusterServers) Forget(id int) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if srv := c.servers[id]; srv != nil {
		c.stop(srv)
		delete(c.servers, id)
	}
}

// sawConfig records group g's configuration as a leader has it: its
// members are the client's servers for the group, and the groups a server
// leaves or joins are chosen by it. A change that timed out may still
// commit later; the next look at the group's leader sees it.
func (c *Cluster) sawConfig(g multi.GroupID, cfg core.Configuration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[g] = cfg.Members()
}

// refreshMembers looks at every group's leader for its configuration.
func (c *Cluster) refreshMembers() {
	for _, gs := range c.Groups() {
		if gs.Leader != core.None {
			c.sawConfig(multi.GroupID(gs.ID), gs.Config)
		}
	}
}

// ChangeGroup adds the servers adds (which must be running) to group g as
// voters and removes the servers removes, in one step (through a joint
// configuration when more than one voter changes, Raft paper §6).
func (c *Cluster) ChangeGroup(g uint64, adds, removes []int) error {
	return c.changer().ChangeGroup(c.interrupts.Context(), g, adds, removes)
}

// AddToGroup adds server id (running) to group g: as a learner, promoted
// once it has caught up (thesis §4.2.1).
func (c *Cluster) AddToGroup(id int, g uint64) error {
	return c.changer().AddToGroup(c.interrupts.Context(), id, g)
}

// RemoveFromGroup removes server id from group g.
func (c *Cluster) RemoveFromGroup(id int, g uint64) error {
	return c.changer().RemoveFromGroup(c.interrupts.Context(), id, g)
}

// AddServer starts server id and adds it to every group. A server that an
// earlier AddServer left in some groups only (a group had no leader) is
// added to the others.
func (c *Cluster) AddServer(id int) error {
	return c.changer().AddServer(c.interrupts.Context(), id)
}

// RemoveServer removes server id from every group, then stops it.
func (c *Cluster) RemoveServer(id int) error {
	return c.changer().RemoveServer(c.interrupts.Context(), id)
}

// ChangeMembers starts the servers adds and makes them voters of every
// group, and removes the servers removes from every group, in one step
// per group; then it stops the removed servers.
func (c *Cluster) ChangeMembers(adds, removes []int) error {
	return c.changer().ChangeMembers(c.interrupts.Context(), adds, removes)
}

// TransferGroup makes server id the leader of group g.
func (c *Cluster) TransferGroup(id int, g uint64) error {
	return c.changer().TransferGroup(c.interrupts.Context(), id, g)
}

// TransferLeadership makes server id the leader of every group it is a
// voter of.
func (c *Cluster) TransferLeadership(id int) error {
	return c.changer().TransferLeadership(c.interrupts.Context(), id)
}

// Snapshot snapshots every replica on server id and returns how many
// groups it compacted.
func (c *Cluster) Snapshot(id int) (uint64, error) {
	run, err := c.running(id)
	if err != nil {
		return 0, err
	}
	return run.Snapshot()
}
