package shard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/multi"
)

// changeParallel bounds the groups whose change loops run at once when a
// server joins or leaves every group.
const changeParallel = 32

// changeTimeout bounds one group's membership change or transfer.
func (c *Cluster) changeTimeout() time.Duration {
	if c.cfg.ChangeTimeout > 0 {
		return c.cfg.ChangeTimeout
	}
	return max(10*time.Second, 3*c.cfg.ClientTimeout)
}

// leaderOf is group g's leader now: its id, summary and instance.
func (c *Cluster) leaderOf(g multi.GroupID) (int, core.Summary, *Server) {
	l, r := LeaderOf(c.replicas([]multi.GroupID{g}), g)
	if l == core.None {
		return core.None, core.Summary{}, nil
	}
	return l, r.Summary, c.instances()[l]
}

// changeGroup drives ch in group g to commitment at whichever server
// leads g, as every cluster's change loop does (cluster.NextStep).
// proposed says whether a leader ever took the change.
func (c *Cluster) changeGroup(ctx context.Context, g multi.GroupID, ch cluster.Change) (proposed bool, err error) {
	timeout := c.changeTimeout()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded) || time.Now().After(deadline):
			return proposed, fmt.Errorf("group %d: %w", g, cluster.NotCommitted(ch, timeout, last))
		case ctx.Err() != nil:
			return proposed, cluster.ErrInterrupted
		}
		l, sum, run := c.leaderOf(g)
		if run != nil {
			if ch.Taken(sum.Config) {
				proposed = true
			}
			c.sawConfig(g, sum.Config)
			switch cluster.NextStep(ch, sum) {
			case cluster.Done:
				return proposed, nil
			case cluster.Propose:
				var res error
				if err := run.node.Do(ctx, func(h *multi.Host) { res = h.ProposeConfChanges(g, ch.Changes).Err }); err != nil {
					res = err
				}
				switch {
				case res == nil:
					proposed = true
				case cluster.Refused(res):
					return proposed, fmt.Errorf("group %d: %w", g, res)
				default:
					last = fmt.Errorf("node %d: %w", l, res)
				}
			}
		}
		cluster.Sleep(ctx, c.cfg.Tick)
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

// groupsOf are the groups server id is a member of, or hosts a replica
// of, as their leaders have them now.
func (c *Cluster) groupsOf(id int) []multi.GroupID {
	c.refreshMembers()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []multi.GroupID
	for g := range multi.GroupID(c.cfg.Groups) {
		if slices.Contains(c.members[g], id) || c.servers[id] != nil && c.servers[id].hosted[g] {
			out = append(out, g)
		}
	}
	return out
}

// wholeTimeout bounds a change of a server in every group: one group's
// timeout twice over, so that a partition does not hold the REPL for the
// groups' timeouts one after another.
func (c *Cluster) wholeTimeout() time.Duration { return 2 * c.changeTimeout() }

// checkGroup checks a group id argument.
func (c *Cluster) checkGroup(g uint64) error {
	if !c.HasGroup(g) {
		return c.noSuchGroup(g)
	}
	return nil
}

// groupConfig is group g's configuration as its leader has it.
func (c *Cluster) groupConfig(g multi.GroupID) (core.Configuration, error) {
	l, sum, _ := c.leaderOf(g)
	if l == core.None {
		return core.Configuration{}, fmt.Errorf("group %d: %w", g, cluster.ErrNoLeader)
	}
	return sum.Config, nil
}

// addReplicas creates empty replicas of g on the servers ids, which must
// be running: they join when a leader adds them.
func (c *Cluster) addReplicas(g multi.GroupID, ids []int) error {
	for _, id := range ids {
		run, err := c.running(id)
		if err != nil {
			return err
		}
		var cerr error
		if err := run.node.Do(context.Background(), func(h *multi.Host) {
			if _, _, err := h.Summary(g); err == nil {
				return // a replica left from an earlier try
			}
			cerr = run.CreateReplica(h, g, nil)
		}); err != nil {
			return err
		}
		if cerr != nil {
			return cerr
		}
		c.mu.Lock()
		c.servers[id].hosted[g] = true
		c.mu.Unlock()
	}
	return nil
}

// dropReplicas destroys the replicas of g on the servers ids (those not
// running forget it: they do not create it again on a restart). Its
// storage goes too (in memory, or dropped from the shared log, at once or
// at the server's next start), so that a server added to the group again
// joins empty.
func (c *Cluster) dropReplicas(g multi.GroupID, ids []int) {
	for _, id := range ids {
		c.mu.Lock()
		s := c.servers[id]
		var run *Server
		if s != nil {
			delete(s.hosted, g)
			run = s.run
			if run == nil {
				delete(s.mem, g) // no node goroutine runs: the map is ours
			}
		}
		c.mu.Unlock()
		if run != nil {
			run.node.Do(context.Background(), func(h *multi.Host) { //nolint:errcheck // a crashed one is gone anyway
				if run.DropReplica(h, g) {
					delete(s.mem, g)
				}
			})
		}
	}
}

// ChangeGroup adds the servers adds (which must be running) to group g as
// voters and removes the servers removes, in one step (through a joint
// configuration when more than one voter changes, Raft paper §6).
func (c *Cluster) ChangeGroup(g uint64, adds, removes []int) error {
	if err := c.checkGroup(g); err != nil {
		return err
	}
	gid := multi.GroupID(g)
	cfg, err := c.groupConfig(gid)
	if err != nil {
		return err
	}
	if err := cluster.CheckMembersChange(cfg, adds, removes, cluster.MaxNodes-1); err != nil {
		return err
	}
	for _, id := range adds {
		if _, err := c.running(id); err != nil {
			return fmt.Errorf("%w — change adds running servers to a group; \"add %d\" starts a new one in every group", err, id)
		}
	}
	return c.changeGroupMembers(c.interrupts.Context(), gid, adds, removes)
}

func (c *Cluster) changeGroupMembers(ctx context.Context, g multi.GroupID, adds, removes []int) error {
	if err := c.addReplicas(g, adds); err != nil {
		return err
	}
	proposed, err := c.changeGroup(ctx, g, cluster.MembersChange(adds, removes))
	if err != nil {
		if !proposed {
			c.dropReplicas(g, adds)
		}
		return cluster.ChangeFailed(err, adds, proposed)
	}
	c.dropReplicas(g, removes)
	return nil
}

// AddToGroup adds server id (running) to group g: as a learner, promoted
// once it has caught up (thesis §4.2.1).
func (c *Cluster) AddToGroup(id int, g uint64) error {
	if err := c.checkGroup(g); err != nil {
		return err
	}
	if _, err := c.running(id); err != nil {
		return err
	}
	gid := multi.GroupID(g)
	cfg, err := c.groupConfig(gid)
	if err != nil {
		return err
	}
	if cfg.IsVoter(id) {
		return fmt.Errorf("node %d is already a voter of group %d", id, g)
	}
	return c.addToGroup(c.interrupts.Context(), gid, id)
}

func (c *Cluster) addToGroup(ctx context.Context, g multi.GroupID, id int) error {
	if err := c.addReplicas(g, []int{id}); err != nil {
		return err
	}
	proposed, err := c.changeGroup(ctx, g, cluster.AddChange(id))
	if err != nil {
		if !proposed {
			c.dropReplicas(g, []int{id})
		}
		return cluster.AddFailed(err, id, proposed)
	}
	return nil
}

// RemoveFromGroup removes server id from group g.
func (c *Cluster) RemoveFromGroup(id int, g uint64) error {
	if err := c.checkGroup(g); err != nil {
		return err
	}
	if err := c.exists(id); err != nil {
		return err
	}
	gid := multi.GroupID(g)
	cfg, err := c.groupConfig(gid)
	if err != nil {
		return err
	}
	if err := cluster.CheckMembersChange(cfg, nil, []int{id}, cluster.MaxNodes-1); err != nil {
		return fmt.Errorf("group %d: %w", g, err)
	}
	return c.removeFromGroup(c.interrupts.Context(), gid, id)
}

func (c *Cluster) removeFromGroup(ctx context.Context, g multi.GroupID, id int) error {
	if _, err := c.changeGroup(ctx, g, cluster.RemoveChange(id)); err != nil {
		return err
	}
	c.dropReplicas(g, []int{id})
	return nil
}

// eachGroup runs fn for the groups, changeParallel at a time, and joins
// their errors (the first few, with a count of the rest).
func (c *Cluster) eachGroup(groups []multi.GroupID, fn func(multi.GroupID) error) error {
	var mu sync.Mutex
	var errs []error
	failed := 0
	sem := make(chan struct{}, changeParallel)
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(g); err != nil {
				mu.Lock()
				if failed++; len(errs) < 3 {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed > len(errs) {
		errs = append(errs, fmt.Errorf("and %d more groups failed", failed-len(errs)))
	}
	return errors.Join(errs...)
}

func (c *Cluster) allGroups() []multi.GroupID {
	out := make([]multi.GroupID, c.cfg.Groups)
	for i := range out {
		out[i] = multi.GroupID(i)
	}
	return out
}

// newID checks that id can name a new server.
func (c *Cluster) newID(id int) error {
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
	return nil
}

// startEmpty starts a new server that hosts no group yet.
func (c *Cluster) startEmpty(id int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.start(c.newServer(id), nil)
}

// forget stops a server and takes it out of the cluster.
func (c *Cluster) forget(id int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.servers[id]; s != nil {
		c.stop(s)
		delete(c.servers, id)
	}
}

// hostsAny reports whether server id still holds a replica of a group.
func (c *Cluster) hostsAny(id int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.servers[id]
	return s != nil && len(s.hosted) > 0
}

// AddServer starts server id and adds it to every group. A server that an
// earlier AddServer left in some groups only (a group had no leader) is
// added to the others.
func (c *Cluster) AddServer(id int) error {
	groups := c.allGroups()
	if c.exists(id) == nil && c.hostsAny(id) {
		if _, err := c.running(id); err != nil {
			return err
		}
		in := c.groupsOf(id)
		groups = slices.DeleteFunc(groups, func(g multi.GroupID) bool { return slices.Contains(in, g) })
		if len(groups) == 0 {
			return fmt.Errorf("node %d is already a member of every group", id)
		}
	} else {
		if err := c.newID(id); err != nil {
			return err
		}
		if err := c.startEmpty(id); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(c.interrupts.Context(), c.wholeTimeout())
	defer cancel()
	err := c.eachGroup(groups, func(g multi.GroupID) error { return c.addToGroup(ctx, g, id) })
	switch {
	case err != nil && !c.hostsAny(id):
		c.forget(id) // no group took it
	case err != nil:
		err = fmt.Errorf("%w — node %d joined some groups and stays; add %d again to add it to the others", err, id, id)
	}
	return err
}

// RemoveServer removes server id from every group, then stops it.
func (c *Cluster) RemoveServer(id int) error {
	if err := c.exists(id); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.interrupts.Context(), c.wholeTimeout())
	defer cancel()
	groups := c.groupsOf(id)
	if err := c.eachGroup(groups, func(g multi.GroupID) error { return c.removeFromGroup(ctx, g, id) }); err != nil {
		return fmt.Errorf("%w — node %d stays in the groups that did not remove it; remove %d again", err, id, id)
	}
	c.forget(id)
	return nil
}

// ChangeMembers starts the servers adds and makes them voters of every
// group, and removes the servers removes from every group, in one step
// per group; then it stops the removed servers.
func (c *Cluster) ChangeMembers(adds, removes []int) error {
	// An added server that an earlier try left in some groups is reused.
	var fresh []int
	for _, id := range adds {
		if c.exists(id) == nil && c.hostsAny(id) {
			if _, err := c.running(id); err != nil {
				return err
			}
			continue
		}
		if err := c.newID(id); err != nil {
			return err
		}
		fresh = append(fresh, id)
	}
	for _, id := range removes {
		if err := c.exists(id); err != nil {
			return err
		}
	}
	cfg, err := c.groupConfig(0)
	if err != nil {
		return err
	}
	// Checked against group 0 as it stands: a retry finds part of the
	// change made there already.
	var addsG0, removesG0 []int
	for _, id := range adds {
		if !cfg.IsMember(id) {
			addsG0 = append(addsG0, id)
		}
	}
	for _, id := range removes {
		if cfg.IsMember(id) {
			removesG0 = append(removesG0, id)
		}
	}
	if len(addsG0)+len(removesG0) > 0 {
		if err := cluster.CheckMembersChange(cfg, addsG0, removesG0, cluster.MaxNodes-1); err != nil {
			return err
		}
	}
	for i, id := range fresh {
		if err := c.startEmpty(id); err != nil {
			for _, started := range fresh[:i] {
				c.forget(started)
			}
			return err
		}
	}
	ctx, cancel := context.WithTimeout(c.interrupts.Context(), c.wholeTimeout())
	defer cancel()
	c.refreshMembers()
	err = c.eachGroup(c.allGroups(), func(g multi.GroupID) error {
		members := c.groupMembers(g)
		var in, out []int
		for _, id := range adds {
			if !slices.Contains(members, id) {
				in = append(in, id)
			}
		}
		for _, id := range removes {
			if slices.Contains(members, id) {
				out = append(out, id)
			}
		}
		if len(in)+len(out) == 0 {
			return nil // done by an earlier try
		}
		return c.changeGroupMembers(ctx, g, in, out)
	})
	for _, id := range adds {
		if err != nil && !c.hostsAny(id) {
			c.forget(id)
		}
	}
	if err != nil {
		return err
	}
	for _, id := range removes {
		c.forget(id)
	}
	return nil
}

// TransferGroup makes server id the leader of group g.
func (c *Cluster) TransferGroup(id int, g uint64) error {
	if err := c.checkGroup(g); err != nil {
		return err
	}
	if _, err := c.running(id); err != nil {
		return err
	}
	return c.transfer(c.interrupts.Context(), multi.GroupID(g), id)
}

// transfer asks g's leader to hand over to id (TimeoutNow, thesis §3.10)
// until id leads.
func (c *Cluster) transfer(ctx context.Context, g multi.GroupID, id int) error {
	timeout := c.changeTimeout()
	deadline := time.Now().Add(timeout)
	var last error
	asked := time.Time{}
	for {
		l, sum, run := c.leaderOf(g)
		switch {
		case l == id:
			return nil
		case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
			return cluster.ErrInterrupted
		case ctx.Err() != nil || time.Now().After(deadline):
			if last == nil {
				last = cluster.ErrTimeout
			}
			return fmt.Errorf("group %d: node %d did not take over within %v: %w", g, id, timeout, last)
		case run != nil && !sum.Config.IsVoter(id):
			return fmt.Errorf("node %d is not a voter of group %d", id, g)
		case run != nil && time.Since(asked) > time.Duration(c.cfg.ElectionTicksMax)*c.cfg.Tick:
			// Asked again only after an election timeout: a transfer
			// under way is not to be restarted.
			asked = time.Now()
			var res error
			if err := run.node.Do(ctx, func(h *multi.Host) { res = h.TransferLeadership(g, multi.NodeID(id)) }); err != nil {
				res = err
			}
			if res != nil {
				last = res
			}
		}
		cluster.Sleep(ctx, c.cfg.Tick)
	}
}

// TransferLeadership makes server id the leader of every group it is a
// voter of.
func (c *Cluster) TransferLeadership(id int) error {
	if _, err := c.running(id); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.interrupts.Context(), c.wholeTimeout())
	defer cancel()
	return c.eachGroup(c.groupsOf(id), func(g multi.GroupID) error { return c.transfer(ctx, g, id) })
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
