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

// The membership changes of a sharded KV's groups, written once for the
// servers of one process (Cluster) and for node processes (the remote
// package's GroupedCluster): each group's change is driven to commitment
// at whichever server leads the group (cluster.NextStep), and a server
// joins or leaves every group by one such change per group, a few groups
// at a time.

// GroupServers is what the change loops need of a sharded KV's servers.
// Server ids are the REPL's node ids.
type GroupServers interface {
	// GroupCount is the number of groups (ids 0 to GroupCount()-1).
	GroupCount() int
	// Leader is group g's leader now, with its summary (core.None: no
	// leader answered). It records the configuration it saw (Members).
	Leader(g multi.GroupID) (int, core.Summary)
	// Refresh looks at every group's leader, as Leader does.
	Refresh()
	// Members are g's members in the configuration last seen at a leader.
	Members(g multi.GroupID) []int
	// Propose asks server id, g's leader, to propose changes in g.
	Propose(ctx context.Context, id int, g multi.GroupID, changes []core.ConfChange) error
	// Transfer asks server id, g's leader, to hand g over to target
	// (TimeoutNow, thesis §3.10).
	Transfer(ctx context.Context, id int, g multi.GroupID, target int) error
	// VoteFloor asks server id, g's leader, for the vote floor of a
	// replica about to be added: its position (term, last index),
	// confirmed by a majority in that term (multi.Host.VoteFloor).
	VoteFloor(ctx context.Context, id int, g multi.GroupID) (core.VoteFloor, error)
	// CreateReplica gives running server id an empty replica of g, which
	// joins when a leader adds it (nothing if it has one already), with
	// floor as its vote floor (see core.InitialState.VoteFloor), kept
	// across its restarts.
	CreateReplica(id int, g multi.GroupID, floor core.VoteFloor) error
	// DropReplica destroys server id's replica of g and its storage, so
	// that it joins empty if it is added again (one that is down forgets
	// it at its next start, where the cluster can arrange that; else the
	// error says the replica stays).
	DropReplica(id int, g multi.GroupID) error
	// Hosted are the groups server id holds a replica of.
	Hosted(id int) []multi.GroupID
	// Exists checks that server id is one of the cluster's; Running, that
	// it also runs (it can take a replica).
	Exists(id int) error
	Running(id int) error
	// Up reports whether server id runs and is reachable now (not
	// disconnected): a removal that would leave a group's voters without
	// a majority up is refused (cluster.CheckUpMajority).
	Up(id int) bool
	// AddNew readies a server that is not one of the cluster's yet,
	// hosting no group: started (in process, by a launcher) or found (a
	// node process the user started to join).
	AddNew(id int) error
	// Forget takes server id out of the cluster (stopping it where the
	// cluster started it).
	Forget(id int)
}

// Changer runs membership changes on a sharded KV's servers.
type Changer struct {
	Servers GroupServers
	// Poll is how often a change loop looks at the group's leader again.
	Poll time.Duration
	// Timeout bounds one group's change or transfer; a change of a server
	// in every group takes at most twice that.
	Timeout time.Duration
	// Reask is how long a transfer under way runs before its leader is
	// asked again (an election timeout).
	Reask time.Duration
	// Parallel bounds the groups changed at once (default 32).
	Parallel int
}

// changeGroup drives ch in group g to commitment at whichever server
// leads g (cluster.Drive). proposed says whether a leader ever took the
// change.
func (m Changer) changeGroup(ctx context.Context, g multi.GroupID, ch cluster.Change) (proposed bool, err error) {
	deadline := time.Now().Add(m.Timeout)
	proposed, err = cluster.Drive(ch, m.Timeout, cluster.ChangeRun{
		Leader: func() (int, core.Summary, bool) {
			l, sum := m.Servers.Leader(g)
			return l, sum, l != core.None
		},
		Propose: func(l int, changes []core.ConfChange) error {
			switch err := m.Servers.Propose(ctx, l, g, changes); {
			case err == nil, cluster.Refused(err):
				return err
			default:
				return fmt.Errorf("node %d: %w", l, err)
			}
		},
		Wait: func() error {
			cluster.Sleep(ctx, m.Poll)
			switch {
			case errors.Is(ctx.Err(), context.DeadlineExceeded) || time.Now().After(deadline):
				return cluster.ErrTimeout
			case ctx.Err() != nil:
				return cluster.ErrInterrupted
			}
			return nil
		},
		Up: m.Servers.Up,
	})
	if err != nil && !errors.Is(err, cluster.ErrInterrupted) {
		err = fmt.Errorf("group %d: %w", g, err)
	}
	return proposed, err
}

// groupConfig is group g's configuration as its leader has it.
func (m Changer) groupConfig(ctx context.Context, g multi.GroupID) (core.Configuration, error) {
	_, sum, err := m.waitLeader(ctx, g)
	return sum.Config, err
}

// waitLeader waits (up to Timeout) for group g's leader, as a client's
// write does: a change asked right after a start or a crash waits for the
// election instead of failing.
func (m Changer) waitLeader(ctx context.Context, g multi.GroupID) (int, core.Summary, error) {
	deadline := time.Now().Add(m.Timeout)
	for {
		if l, sum := m.Servers.Leader(g); l != core.None {
			return l, sum, nil
		}
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded) || time.Now().After(deadline):
			return core.None, core.Summary{}, fmt.Errorf("group %d: %w", g, cluster.ErrNoLeader)
		case ctx.Err() != nil:
			return core.None, core.Summary{}, cluster.ErrInterrupted
		}
		cluster.Sleep(ctx, m.Poll)
	}
}

// addReplicas creates empty replicas of g on the servers ids, with the
// position of g's leader (its term, its last index), confirmed by a
// majority, as their vote floor: the change that adds them is appended
// after it. The leader must have committed its configuration, so that the
// last removal of each id (if it was a member before) is in that
// position's prefix; and the confirmation keeps a leader that was deposed
// and missed later entries (a later removal) from giving too low a floor
// (multi.Host.VoteFloor).
func (m Changer) addReplicas(ctx context.Context, g multi.GroupID, ids []int) error {
	if len(ids) == 0 {
		return nil
	}
	var floor core.VoteFloor
	for deadline := time.Now().Add(m.Timeout); ; {
		l, sum, err := m.waitLeader(ctx, g)
		if err != nil {
			return err
		}
		var ferr error
		if sum.Commit >= sum.ConfigIndex {
			// An election timeout: a deposed leader that cannot confirm
			// steps down, or another is found, by then.
			fctx, cancel := context.WithTimeout(ctx, max(m.Reask, m.Poll))
			floor, ferr = m.Servers.VoteFloor(fctx, l, g)
			cancel()
			if ferr == nil {
				break
			}
		}
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded) || time.Now().After(deadline) && ferr != nil:
			if ferr == nil {
				ferr = ctx.Err()
			}
			return fmt.Errorf("group %d: no leader confirmed by a majority gave the new replicas' vote floor within %v: %w", g, m.Timeout, ferr)
		case ctx.Err() != nil:
			return cluster.ErrInterrupted
		case time.Now().After(deadline):
			return fmt.Errorf("group %d: its leader has not committed its configuration within %v", g, m.Timeout)
		}
		if !cluster.Sleep(ctx, m.Poll) {
			return cluster.ErrInterrupted
		}
	}
	for _, id := range ids {
		if err := m.Servers.CreateReplica(id, g, floor); err != nil {
			return err
		}
	}
	return nil
}

// dropReplicas drops g's replicas on the servers ids; the error names
// those that stay (a node that does not answer).
func (m Changer) dropReplicas(g multi.GroupID, ids []int) error {
	var errs []error
	for _, id := range ids {
		if err := m.Servers.DropReplica(id, g); err != nil {
			errs = append(errs, fmt.Errorf("node %d left group %d, but its replica there stays: %w "+
				"(it is harmless: it votes for no one newer; \"remove %d g%d\" drops it once the node answers)", id, g, err, id, g))
		}
	}
	return errors.Join(errs...)
}

// checkGroup checks a group id argument.
func (m Changer) checkGroup(g uint64) error {
	if n := m.Servers.GroupCount(); g >= uint64(n) {
		return fmt.Errorf("no such group: group %d does not exist (groups 0–%d)", g, n-1)
	}
	return nil
}

// ChangeGroup adds the servers adds (which must be running) to group g as
// voters and removes the servers removes, in one step (through a joint
// configuration when more than one voter changes, Raft paper §6).
func (m Changer) ChangeGroup(ctx context.Context, g uint64, adds, removes []int) error {
	if err := m.checkGroup(g); err != nil {
		return err
	}
	gid := multi.GroupID(g)
	cfg, err := m.groupConfig(ctx, gid)
	if err != nil {
		return err
	}
	if err := cluster.CheckMembersChange(cfg, adds, removes, cluster.MaxNodes-1); err != nil {
		return err
	}
	for _, id := range adds {
		if err := m.Servers.Running(id); err != nil {
			return fmt.Errorf("%w — change adds running servers to a group; \"add %d\" adds a new one to every group", err, id)
		}
	}
	return m.changeGroupMembers(ctx, gid, adds, removes)
}

func (m Changer) changeGroupMembers(ctx context.Context, g multi.GroupID, adds, removes []int) error {
	if err := m.addReplicas(ctx, g, adds); err != nil {
		return err
	}
	proposed, err := m.changeGroup(ctx, g, cluster.MembersChange(adds, removes))
	if err != nil {
		if !proposed {
			m.dropReplicas(g, adds)
		}
		return cluster.ChangeFailed(err, adds, proposed)
	}
	return m.dropReplicas(g, removes)
}

// AddToGroup adds server id (running) to group g: as a learner, promoted
// once it has caught up (thesis §4.2.1).
func (m Changer) AddToGroup(ctx context.Context, id int, g uint64) error {
	if err := m.checkGroup(g); err != nil {
		return err
	}
	if err := m.Servers.Running(id); err != nil {
		return err
	}
	gid := multi.GroupID(g)
	cfg, err := m.groupConfig(ctx, gid)
	if err != nil {
		return err
	}
	if cfg.IsVoter(id) {
		return fmt.Errorf("node %d is already a voter of group %d", id, g)
	}
	return m.addToGroup(ctx, gid, id)
}

func (m Changer) addToGroup(ctx context.Context, g multi.GroupID, id int) error {
	if err := m.addReplicas(ctx, g, []int{id}); err != nil {
		return err
	}
	proposed, err := m.changeGroup(ctx, g, cluster.AddChange(id))
	if err != nil {
		if !proposed {
			m.dropReplicas(g, []int{id})
		}
		return cluster.AddFailed(err, id, proposed)
	}
	return nil
}

// RemoveFromGroup removes server id from group g.
func (m Changer) RemoveFromGroup(ctx context.Context, id int, g uint64) error {
	if err := m.checkGroup(g); err != nil {
		return err
	}
	if err := m.Servers.Exists(id); err != nil {
		return err
	}
	gid := multi.GroupID(g)
	cfg, err := m.groupConfig(ctx, gid)
	if err != nil {
		return err
	}
	if _, sum, err := m.waitLeader(ctx, gid); err == nil && sum.Commit >= sum.ConfigIndex &&
		!sum.Config.IsMember(id) && slices.Contains(m.Servers.Hosted(id), gid) {
		// Left over from a removal while the node was down (the leader's
		// configuration without it is committed).
		return m.dropReplicas(gid, []int{id})
	}
	if err := cluster.CheckMembersChange(cfg, nil, []int{id}, cluster.MaxNodes-1); err != nil {
		return fmt.Errorf("group %d: %w", g, err)
	}
	return m.removeFromGroup(ctx, gid, id)
}

func (m Changer) removeFromGroup(ctx context.Context, g multi.GroupID, id int) error {
	if _, err := m.changeGroup(ctx, g, cluster.RemoveChange(id)); err != nil {
		return err
	}
	return m.dropReplicas(g, []int{id})
}

// eachGroup runs fn for the groups, Parallel at a time, and joins their
// errors (the first few, with a count of the rest).
func (m Changer) eachGroup(groups []multi.GroupID, fn func(multi.GroupID) error) error {
	var mu sync.Mutex
	var errs []error
	failed := 0
	sem := make(chan struct{}, orDefault(m.Parallel, 32))
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

// orDefault is n, or def if n is not positive.
func orDefault(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

func (m Changer) allGroups() []multi.GroupID {
	out := make([]multi.GroupID, m.Servers.GroupCount())
	for i := range out {
		out[i] = multi.GroupID(i)
	}
	return out
}

// groupsOf are the groups server id is a member of, or hosts a replica
// of, as their leaders have them now.
func (m Changer) groupsOf(id int) []multi.GroupID {
	m.Servers.Refresh()
	hosted := m.Servers.Hosted(id)
	var out []multi.GroupID
	for _, g := range m.allGroups() {
		if slices.Contains(m.Servers.Members(g), id) || slices.Contains(hosted, g) {
			out = append(out, g)
		}
	}
	return out
}

// hostsAny reports whether server id holds a replica of some group.
func (m Changer) hostsAny(id int) bool { return len(m.Servers.Hosted(id)) > 0 }

// whole bounds a change of a server in every group: one group's timeout
// twice over, so that a partition does not hold the REPL for the groups'
// timeouts one after another.
func (m Changer) whole(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 2*m.Timeout)
}

// AddServer adds server id to every group (AddNew readies it first). A
// server that an earlier AddServer left in some groups only (a group had
// no leader) is added to the others.
func (m Changer) AddServer(ctx context.Context, id int) error {
	groups := m.allGroups()
	if m.Servers.Exists(id) == nil && m.hostsAny(id) {
		if err := m.Servers.Running(id); err != nil {
			return err
		}
		// The groups it is a member of: one where it only holds a replica
		// (left from a failed try or a removal) still needs the change.
		m.Servers.Refresh()
		groups = slices.DeleteFunc(groups, func(g multi.GroupID) bool { return slices.Contains(m.Servers.Members(g), id) })
		if len(groups) == 0 {
			return fmt.Errorf("node %d is already a member of every group", id)
		}
	} else if err := m.Servers.AddNew(id); err != nil {
		return err
	}
	ctx, cancel := m.whole(ctx)
	defer cancel()
	err := m.eachGroup(groups, func(g multi.GroupID) error { return m.addToGroup(ctx, g, id) })
	switch {
	case err != nil && !m.hostsAny(id):
		m.Servers.Forget(id) // no group took it
	case err != nil:
		err = fmt.Errorf("%w — node %d joined some groups and stays; add %d again to add it to the others", err, id, id)
	}
	return err
}

// RemoveServer removes server id from every group, then forgets it.
func (m Changer) RemoveServer(ctx context.Context, id int) error {
	if err := m.Servers.Exists(id); err != nil {
		return err
	}
	ctx, cancel := m.whole(ctx)
	defer cancel()
	groups := m.groupsOf(id)
	if err := m.eachGroup(groups, func(g multi.GroupID) error { return m.removeFromGroup(ctx, g, id) }); err != nil {
		if cluster.Refused(err) {
			// Some group refused it before anything was proposed there.
			return fmt.Errorf("%w — node %d stays a member of the groups named", err, id)
		}
		// A removal a leader took may still commit (once a majority of
		// the group is up): the outcome is unknown there, not failed.
		return fmt.Errorf("%w — node %d stays in those groups until their removal commits (where a leader took it, it may still, once a majority of the group is up); \"remove %d\" again finishes them", err, id, id)
	}
	m.Servers.Forget(id)
	return nil
}

// ChangeMembers readies the servers adds and makes them voters of every
// group, and removes the servers removes from every group, in one step
// per group; then it forgets the removed servers.
func (m Changer) ChangeMembers(ctx context.Context, adds, removes []int) error {
	// An added server that an earlier try left in some groups is reused.
	var fresh []int
	for _, id := range adds {
		if m.Servers.Exists(id) == nil && m.hostsAny(id) {
			if err := m.Servers.Running(id); err != nil {
				return err
			}
			continue
		}
		fresh = append(fresh, id)
	}
	for _, id := range removes {
		if err := m.Servers.Exists(id); err != nil {
			return err
		}
	}
	cfg, err := m.groupConfig(ctx, 0)
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
		if err := m.Servers.AddNew(id); err != nil {
			for _, started := range fresh[:i] {
				m.Servers.Forget(started)
			}
			return err
		}
	}
	ctx, cancel := m.whole(ctx)
	defer cancel()
	m.Servers.Refresh()
	err = m.eachGroup(m.allGroups(), func(g multi.GroupID) error {
		members := m.Servers.Members(g)
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
		return m.changeGroupMembers(ctx, g, in, out)
	})
	for _, id := range adds {
		if err != nil && !m.hostsAny(id) {
			m.Servers.Forget(id)
		}
	}
	if err != nil {
		return err
	}
	for _, id := range removes {
		m.Servers.Forget(id)
	}
	return nil
}

// TransferGroup makes server id (running) the leader of group g.
func (m Changer) TransferGroup(ctx context.Context, id int, g uint64) error {
	if err := m.checkGroup(g); err != nil {
		return err
	}
	if err := m.Servers.Running(id); err != nil {
		return err
	}
	return m.transfer(ctx, multi.GroupID(g), id)
}

// transfer asks g's leader to hand over to id (TimeoutNow, thesis §3.10)
// until id leads.
func (m Changer) transfer(ctx context.Context, g multi.GroupID, id int) error {
	deadline := time.Now().Add(m.Timeout)
	var last error
	asked := time.Time{}
	for {
		l, sum := m.Servers.Leader(g)
		switch {
		case l == id:
			return nil
		case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
			return cluster.ErrInterrupted
		case ctx.Err() != nil || time.Now().After(deadline):
			if last == nil {
				last = cluster.ErrTimeout
			}
			return fmt.Errorf("group %d: node %d did not take over within %v: %w", g, id, m.Timeout, last)
		case l != core.None && !sum.Config.IsVoter(id):
			return fmt.Errorf("node %d is not a voter of group %d", id, g)
		case l != core.None && time.Since(asked) > m.Reask:
			// Asked again only after an election timeout: a transfer
			// under way is not to be restarted.
			asked = time.Now()
			if res := m.Servers.Transfer(ctx, l, g, id); res != nil {
				last = res
			}
		}
		cluster.Sleep(ctx, m.Poll)
	}
}

// TransferLeadership makes server id the leader of every group it is a
// voter of.
func (m Changer) TransferLeadership(ctx context.Context, id int) error {
	if err := m.Servers.Running(id); err != nil {
		return err
	}
	ctx, cancel := m.whole(ctx)
	defer cancel()
	return m.eachGroup(m.groupsOf(id), func(g multi.GroupID) error { return m.transfer(ctx, g, id) })
}
