package remote

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
)

// membershipTimeout bounds one membership change or leadership transfer.
func (c *Cluster) membershipTimeout() time.Duration { return max(c.timeout, 10*time.Second) }

// AddServer implements cluster.Cluster: the node joins as a learner and is
// promoted once it has caught up (thesis §4.2.1). With a launcher, its
// process is started here; otherwise it must have been started with -join,
// which makes it tell the cluster's nodes where it listens.
func (c *Cluster) AddServer(id int) error {
	if err := c.prepareNew(id); err != nil {
		return err
	}
	if err := c.giveFloors([]int{id}); err != nil {
		c.forget([]int{id})
		return err
	}
	proposed, err := c.changeMembership(cluster.AddChange(id))
	if err != nil {
		if !proposed {
			c.forget([]int{id})
		}
		return cluster.AddFailed(err, id, proposed)
	}
	return nil
}

// joinWait is how long an add waits for a node started by hand to be
// found (its peers told where it listens, or it answers at a spare address).
const joinWait = 3 * time.Second

// prepareNew readies node id to join: with a launcher its process is
// started here, otherwise it must have been started with -join; then every
// member learns where it listens, and it gets the faults in force.
func (c *Cluster) prepareNew(id int) error {
	if id < 0 || id > MaxNodeID {
		return fmt.Errorf("node id %d is out of range (0–%d)", id, MaxNodeID)
	}
	var advertised, addr string
	var member, known bool
	var book map[int]string
	// Without a launcher the node was started by hand (or "docker compose
	// up"), perhaps a moment ago: it may not listen, nor have told its
	// peers where, yet. Look again for a while, as Connect waits for nodes
	// that are starting.
	ctx := c.callContext()
	for deadline := time.Now().Add(joinWait); ; {
		c.Status() // learns the configuration, and addresses from the address books
		// Where the peers reach it: what it says (found at a spare
		// address), or what they know already.
		advertised = c.lookInSpares(id)
		c.mu.Lock()
		member = slices.Contains(c.members, id)
		addr, known = c.book[id]
		book = maps.Clone(c.book)
		c.mu.Unlock()
		if member || known || c.procs != nil || time.Now().After(deadline) || c.sleep(ctx) != nil {
			break
		}
	}
	if member {
		return fmt.Errorf("node %d is already a member", id)
	}
	if !known || c.procs != nil && c.procs.Pid(id) == 0 {
		if c.procs == nil {
			groups := ""
			if c.groups > 1 {
				groups = fmt.Sprintf(" -groups %d", c.groups)
			}
			return fmt.Errorf("no node %d has told the cluster where it listens: start it first with "+
				"\"go run . node -id %d -join%s -peers %s,%d=HOST:PORT -data-dir DIR\", then add it", id, id, groups, FormatPeers(book), id)
		}
		var err error
		if addr, err = c.procs.Start(id, book); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.book[id] = addr
	c.mu.Unlock()
	if advertised == "" {
		advertised = addr
	}
	// Every member learns the address first: it accepts the new node's
	// messages only once it is in its address book.
	if err := c.tellPeer(id, advertised); err != nil {
		c.forget([]int{id})
		ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
		defer cancel()
		if c.dialer.Call(ctx, addr, AdminService+".Info", &struct{}{}, &NodeInfo{}) != nil && c.procs == nil {
			c.mu.Lock()
			spare := slices.Clone(c.spare)
			c.mu.Unlock()
			if len(spare) > 0 {
				return fmt.Errorf("node %d listens at %s, which this client cannot reach, and it answers at none of the other addresses given (%s) yet: %w "+
					"(once it is up at one of them, add it again)", id, addr, strings.Join(spare, ", "), err)
			}
			return fmt.Errorf("node %d listens at %s, which this client cannot reach: %w (give the REPL the address "+
				"where it reaches node %d, a published port or a port-forward, in -connect, then add it)", id, addr, err, id)
		}
		return err
	}
	c.mu.Lock()
	c.members = append(c.members, id)
	slices.Sort(c.members)
	if c.joining == nil {
		c.joining = map[int]bool{}
	}
	c.joining[id] = true
	c.mu.Unlock()
	if err := c.pushFaultsTo(id); err != nil {
		c.forget([]int{id}) // not proposed yet: the launcher stops what it started
		return err
	}
	return nil
}

// lookInSpares asks the spare addresses (given, where no node answered
// before) which node listens there now: if node id does, this client
// reaches it there, whatever address its peers know it by, and
// lookInSpares returns the address the node gives its peers ("": not
// found, or it gives none).
func (c *Cluster) lookInSpares(id int) (advertised string) {
	c.mu.Lock()
	if a, ok := c.advertised[id]; ok {
		c.mu.Unlock()
		return a // found by an earlier add, which failed: the node's address has not changed
	}
	spare := slices.Clone(c.spare)
	c.mu.Unlock()
	for _, addr := range spare {
		ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
		var info NodeInfo
		err := c.dialer.Call(ctx, addr, AdminService+".Info", &struct{}{}, &info)
		cancel()
		if err != nil || info.ID != id {
			continue
		}
		c.mu.Lock()
		c.book[id] = addr
		c.spare = slices.DeleteFunc(c.spare, func(a string) bool { return a == addr })
		if c.advertised == nil {
			c.advertised = map[int]string{}
		}
		c.advertised[id] = info.Peers[id]
		c.mu.Unlock()
		return info.Peers[id]
	}
	return ""
}

// ChangeMembers implements cluster.Cluster: several servers added and
// removed in one step, through a joint configuration when more than one
// voter changes (Raft paper §6). Added nodes are started by the launcher,
// or must have been started with -join; removed ones are stopped by the
// launcher once the final configuration is committed.
func (c *Cluster) ChangeMembers(adds, removes []int) error {
	if _, _, err := c.CheckUniqueLeader(c.membershipTimeout()); err != nil {
		return err
	}
	c.Status()
	_, sum, ok := c.leaderSummary()
	if !ok {
		return fmt.Errorf("%w: no node answers as the leader", cluster.ErrNoLeader)
	}
	if err := cluster.CheckMembersChange(sum.Config, adds, removes, MaxNodeID); err != nil {
		return err
	}
	var prepared []int
	for _, id := range adds {
		if err := c.prepareNew(id); err != nil {
			c.forget(prepared)
			return err
		}
		prepared = append(prepared, id)
	}
	if err := c.giveFloors(prepared); err != nil {
		c.forget(prepared)
		return err
	}
	proposed, err := c.changeMembership(cluster.MembersChange(adds, removes))
	if err != nil {
		if !proposed {
			c.forget(prepared)
		}
		return cluster.ChangeFailed(err, adds, proposed)
	}
	c.mu.Lock()
	c.members = slices.DeleteFunc(c.members, func(m int) bool { return slices.Contains(removes, m) })
	c.mu.Unlock()
	var errs []error
	for _, id := range removes {
		if c.procs != nil {
			errs = append(errs, c.procs.Remove(id))
		}
	}
	return errors.Join(errs...)
}

// forget takes back nodes prepared for a change that no leader took: the
// launcher stops their processes.
func (c *Cluster) forget(ids []int) {
	c.mu.Lock()
	c.members = slices.DeleteFunc(c.members, func(m int) bool { return slices.Contains(ids, m) })
	for _, id := range ids {
		delete(c.joining, id)
	}
	c.mu.Unlock()
	if c.procs != nil {
		for _, id := range ids {
			c.procs.Remove(id)
		}
	}
}

// tellPeer gives every running member (and the node itself) the address
// of node id.
func (c *Cluster) tellPeer(id int, addr string) error {
	ids := append(c.IDs(), id)
	var errs []error
	for _, to := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.adminAt(ctx, to, "SetPeer", &Peer{ID: id, Addr: addr}, &struct{}{})
		cancel()
		if err != nil && !c.down(to) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("telling the nodes where node %d listens: %w", id, err)
	}
	return nil
}

// adminAt is admin for any node of the address book, member or not.
func (c *Cluster) adminAt(ctx context.Context, id int, method string, args, reply any) error {
	c.mu.Lock()
	addr, ok := c.book[id]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("node %d has no known address", id)
	}
	if err := c.dialer.Call(ctx, addr, AdminService+"."+method, args, reply); err != nil {
		return fmt.Errorf("node %d: %w", id, err)
	}
	return nil
}

// RemoveServer implements cluster.Cluster: once the configuration without
// the node is committed, a launcher stops its process.
func (c *Cluster) RemoveServer(id int) error {
	if _, err := c.addr(id); err != nil {
		return err
	}
	if proposed, err := c.changeMembership(cluster.RemoveChange(id)); err != nil {
		return cluster.RemoveFailed(err, id, proposed)
	}
	c.mu.Lock()
	c.members = slices.DeleteFunc(c.members, func(m int) bool { return m == id })
	c.mu.Unlock()
	if c.procs != nil {
		return c.procs.Remove(id)
	}
	return nil
}

// changeMembership drives ch to commitment at the leader (cluster.Drive).
func (c *Cluster) changeMembership(ch cluster.Change) (proposed bool, err error) {
	ctx := c.callContext()
	deadline := time.Now().Add(c.membershipTimeout())
	proposed, err = cluster.Drive(ch, c.membershipTimeout(), cluster.ChangeRun{
		Leader: c.leaderSummary,
		Propose: func(leader int, changes []core.ConfChange) error {
			var r ProposeReply
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			switch err := c.admin(actx, leader, "Propose", &ConfChanges{Changes: changes}, &r); {
			case err != nil:
				return err
			case r.Refused:
				return cluster.Refusal(r.Error)
			case r.Error != "":
				return errors.New(r.Error)
			}
			return nil
		},
		Wait: func() error {
			switch {
			case c.sleep(ctx) != nil:
				return cluster.ErrInterrupted
			case time.Now().After(deadline):
				return cluster.ErrTimeout
			}
			return nil
		},
		Up: cluster.UpFrom(c.Status),
	})
	if err == nil {
		c.Status() // the new configuration, for IDs
	}
	return proposed, err
}

// leaderSummary is the summary of the leader of the highest term that
// answers.
func (c *Cluster) leaderSummary() (int, core.Summary, bool) {
	best, found := core.Summary{}, false
	leader := core.None
	for id, info := range c.infos() {
		if info.Summary.Role == core.Leader && (!found || info.Summary.Term > best.Term) {
			best, leader, found = info.Summary, id, true
		}
	}
	return leader, best, found
}

func (c *Cluster) sleep(ctx context.Context) error {
	if !cluster.Sleep(ctx, pollInterval) {
		return ctx.Err()
	}
	return nil
}

// TransferLeadership implements cluster.Cluster (thesis §3.10).
func (c *Cluster) TransferLeadership(target int) error {
	if _, err := c.addr(target); err != nil {
		return err
	}
	leader, _, err := c.CheckUniqueLeader(c.membershipTimeout())
	if err != nil {
		return err
	}
	if leader == target {
		return fmt.Errorf("node %d is already the leader", target)
	}
	ctx, cancel := context.WithTimeout(c.callContext(), c.membershipTimeout())
	defer cancel()
	if err := c.admin(ctx, leader, "Transfer", &target, &struct{}{}); err != nil {
		return err
	}
	wait := 2 * time.Second
	err = c.poll(wait, func() (bool, error) {
		l, _ := c.Leader()
		return l == target, nil
	})
	if err != nil {
		l, _ := c.Leader()
		return fmt.Errorf("transfer to %d did not complete within %v (leader is %d)", target, wait, l)
	}
	return nil
}
