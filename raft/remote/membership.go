package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	if id < 0 || id > MaxNodeID {
		return fmt.Errorf("node id %d is out of range (0–%d)", id, MaxNodeID)
	}
	c.Status() // learns the configuration, and addresses from the address books
	c.mu.Lock()
	member := slices.Contains(c.members, id)
	addr, known := c.book[id]
	book := make(map[int]string, len(c.book))
	for k, v := range c.book {
		book[k] = v
	}
	c.mu.Unlock()
	if member {
		return fmt.Errorf("node %d is already a member", id)
	}
	if !known || c.procs != nil && c.procs.Pid(id) == 0 {
		if c.procs == nil {
			return fmt.Errorf("no node %d has told the cluster where it listens: start it first with "+
				"\"go run . node -id %d -join -peers %s,%d=HOST:PORT -data-dir DIR\", then add it", id, id, FormatPeers(book), id)
		}
		var err error
		if addr, err = c.procs.Start(id, book); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.book[id] = addr
	c.mu.Unlock()
	// Every member learns the address first: it accepts the new node's
	// messages only once it is in its address book.
	if err := c.tellPeer(id, addr); err != nil {
		return err
	}
	c.mu.Lock()
	c.members = append(c.members, id)
	slices.Sort(c.members)
	c.mu.Unlock()
	if err := c.pushFaultsTo(id); err != nil {
		return err
	}
	proposed, err := c.changeMembership(core.AddLearner, id, func(cfg core.Configuration) bool { return cfg.IsVoter(id) })
	if err != nil {
		if !proposed && c.procs != nil {
			c.procs.Stop(id)
		}
		return cluster.AddFailed(err, id, proposed)
	}
	return nil
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
	_, err := c.changeMembership(core.RemoveServer, id, func(cfg core.Configuration) bool { return !cfg.IsMember(id) })
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.members = slices.DeleteFunc(c.members, func(m int) bool { return m == id })
	c.mu.Unlock()
	if c.procs != nil {
		return c.procs.Stop(id)
	}
	return nil
}

// changeMembership proposes one change at the leader until a leader has
// committed a configuration satisfying done (cluster.NextStep decides).
func (c *Cluster) changeMembership(t core.ConfChangeType, id int, done func(core.Configuration) bool) (proposed bool, err error) {
	ctx := c.callContext()
	deadline := time.Now().Add(c.membershipTimeout())
	var lastErr error
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return proposed, cluster.ErrInterrupted
		}
		leader, sum, ok := c.leaderSummary()
		if ok {
			switch cluster.NextStep(t, id, sum, done) {
			case cluster.Done:
				c.Status() // the new configuration, for IDs
				return proposed, nil
			case cluster.Propose:
				var r ProposeReply
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				err := c.admin(actx, leader, "Propose", &ConfChange{Type: t, ID: id}, &r)
				cancel()
				switch {
				case err != nil:
					lastErr = err
				case r.Refused:
					return proposed, errors.New(r.Error)
				case r.Error != "":
					lastErr = errors.New(r.Error)
				default:
					proposed = true
				}
			}
		}
		if c.sleep(ctx) != nil {
			return proposed, cluster.ErrInterrupted
		}
	}
	return proposed, cluster.NotCommitted(t, id, c.membershipTimeout(), lastErr)
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
