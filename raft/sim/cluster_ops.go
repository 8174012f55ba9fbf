package sim

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/node"
)

// The Cluster's client operations and membership changes: each waits, in
// virtual time, for what it started.

// userOp is one client operation of a Cluster's user, attempt by attempt,
// with the decisions of a kv.ClientState, as a kv.Client makes them.
type userOp struct {
	cmd     kv.Command
	call    time.Duration
	only    int // the node it must go to, or None: the leader, found
	attempt int
	token   uint64 // the attempt in progress; stale answers carry another
	target  int
	lastErr error

	done bool
	res  kv.Result
	err  error
}

// Do runs one client operation: through the leader when node is
// core.None, at that node only otherwise (a follower refuses it).
func (c *Cluster) Do(op kv.Op, key, value string, node int) (kv.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return kv.Result{}, cluster.ErrClusterDown
	}
	if node != core.None {
		if _, err := c.running(node); err != nil {
			return kv.Result{}, err
		}
	}
	w := c.w
	defer c.begin()()
	o := &userOp{cmd: c.client.Command(op, key, value), call: w.now, only: node}
	c.attemptOp(o)
	if c.wait(func() bool { return o.done }, w.now+c.cfg.ClientTimeout) {
		return o.res, o.err
	}
	o.token++ // whatever answers now comes too late
	if w.err != nil {
		return kv.Result{}, w.err
	}
	c.recordUnknown(o)
	if c.isInterrupted() {
		if op == kv.OpGet {
			return kv.Result{}, cluster.ErrInterrupted
		}
		return kv.Result{}, fmt.Errorf("%w: the outcome of the %v is unknown: it may or may not have taken effect", cluster.ErrInterrupted, op)
	}
	return kv.Result{}, &kv.OutcomeUnknownError{Op: op, Timeout: c.cfg.ClientTimeout, Last: o.lastErr}
}

// attemptOp makes one attempt at the node the client state picks.
func (c *Cluster) attemptOp(o *userOp) {
	w := c.w
	o.token++
	token := o.token
	o.target = o.only
	if o.only == core.None {
		o.target = c.client.Target(w.ids())
	}
	target := o.target
	if s := w.servers[target]; s == nil || s.removed || !s.up {
		// kv.Client finds a crashed server at once, without a request.
		w.after(0, func() {
			c.opFailed(o, token, fmt.Errorf("%w: node %d", cluster.ErrNodeCrashed, target))
		})
		return
	}
	w.after(clientDelay(w), func() {
		s := w.servers[target]
		if s == nil || !s.up || s.removed || o.token != token {
			return // a server that is down answers nothing: the attempt times out
		}
		kv.TraceRequest(w.tracer, target, c.clientNum, o.cmd)
		s.input(func() {
			s.serve(o.cmd, func(res any, err error) {
				s.emit(func() {
					w.after(clientDelay(w), func() { c.answered(o, token, s, res, err) })
				})
			})
		})
	})
	if o.only == core.None {
		w.after(attemptTimeout, func() { c.opFailed(o, token, errAttemptTimeout) })
	}
}

// recordUnknown records an operation whose outcome is unknown; a read that
// never answered changed nothing and is left out, as kv.History does.
func (c *Cluster) recordUnknown(o *userOp) {
	if o.cmd.Op != kv.OpGet {
		c.w.history = append(c.w.history, kv.Operation{ClientID: o.cmd.ClientID, Input: o.cmd, Call: o.call, Unknown: true})
	}
}

// answered handles a server's answer to one attempt.
func (c *Cluster) answered(o *userOp, token uint64, s *server, res any, err error) {
	if o.token != token || o.done {
		return
	}
	w := c.w
	if err != nil {
		kv.TraceFailure(w.tracer, s.id, c.clientNum, o.cmd, err)
		c.opFailed(o, token, err)
		return
	}
	r, _ := res.(kv.Result)
	c.client.Succeeded(o.target)
	w.history = append(w.history, kv.Operation{ClientID: o.cmd.ClientID, Input: o.cmd, Call: o.call, Return: w.now, Output: r})
	kv.TraceDone(w.tracer, s.id, c.clientNum, o.cmd, r)
	o.done, o.res = true, r
}

// opFailed: an attempt failed; at one node only, that is the answer;
// otherwise the client tries again, as kv.Client does.
func (c *Cluster) opFailed(o *userOp, token uint64, err error) {
	if o.token != token || o.done {
		return
	}
	w := c.w
	o.lastErr = err
	if o.only != core.None {
		var nl *kv.NotLeaderError
		if !errors.As(err, &nl) {
			// Any failure but a refusal leaves a write's outcome unknown.
			c.recordUnknown(o)
		}
		o.done, o.err = true, err
		return
	}
	o.token++
	action := c.client.Failed(o.target, err, w.ids(), o.attempt)
	o.attempt++
	pause := time.Duration(0)
	if action == kv.PauseThenRetry {
		pause = clientPause
	}
	next := o.token
	w.after(pause, func() {
		if o.token == next && !o.done {
			c.attemptOp(o)
		}
	})
}

// AddServer starts a new, empty server and adds it: it joins as a
// learner, and the leader promotes it once it caught up (thesis §4.2.1).
// AddServer returns once the promotion is committed.
func (c *Cluster) AddServer(id int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return cluster.ErrClusterDown
	}
	if id < 0 || id >= 1000 {
		return fmt.Errorf("node id %d is out of range (0–999)", id)
	}
	w := c.w
	defer c.begin()()
	if s, ok := w.servers[id]; ok && !s.removed {
		if cfg, known := c.knownConfig(); known && cfg.IsVoter(id) {
			return fmt.Errorf("node %d is already a member", id)
		}
		// Started by an add that did not finish: wait for it again.
		_, err := c.changeMembership(cluster.AddChange(id))
		return err
	}
	if len(w.ids()) >= cluster.MaxNodes {
		return fmt.Errorf("%w: the cluster already has %d nodes (at most %d)", cluster.ErrBadNodeCount, cluster.MaxNodes, cluster.MaxNodes)
	}
	s := w.newServer(id)
	w.traceFault(nodeName(id), nil, "added")
	s.start(nil)
	c.settle()
	proposed, err := c.changeMembership(cluster.AddChange(id))
	switch {
	case err == nil:
		return nil
	case !proposed:
		// No leader took the change: it can never commit, so the new
		// server goes, as if never added.
		if s.up {
			s.down()
		}
		s.removed = true
		w.net.links.Reconnect(id)
		w.traceFault(nodeName(id), nil, "removed")
		return cluster.AddFailed(err, id, false)
	default:
		return cluster.AddFailed(err, id, true)
	}
}

// ChangeMembers adds and removes several servers in one step, through a
// joint configuration when more than one voter changes (Raft paper §6).
// The added servers start empty and catch up as staged learners first
// (cluster.MembersChange); the removed ones stop once the final
// configuration is committed.
func (c *Cluster) ChangeMembers(adds, removes []int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return cluster.ErrClusterDown
	}
	w := c.w
	cfg, known := c.knownConfig()
	if !known {
		return fmt.Errorf("%w: no running server knows the configuration", cluster.ErrNoLeader)
	}
	if err := cluster.CheckMembersChange(cfg, adds, removes, 999); err != nil {
		return err
	}
	for _, id := range adds {
		if s, ok := w.servers[id]; ok && !s.removed {
			return fmt.Errorf("node %d is already in the cluster, joining: add %d waits for it, remove %d takes it away", id, id, id)
		}
	}
	defer c.begin()()
	var added []*server
	for _, id := range adds {
		s := w.newServer(id)
		w.traceFault(nodeName(id), nil, "added")
		s.start(nil)
		added = append(added, s)
	}
	c.settle()
	proposed, err := c.changeMembership(cluster.MembersChange(adds, removes))
	if err != nil {
		if !proposed {
			for _, s := range added {
				if s.up {
					s.down()
				}
				s.removed = true
				w.net.links.Reconnect(s.id)
				w.traceFault(nodeName(s.id), nil, "removed")
			}
		}
		return cluster.ChangeFailed(err, adds, proposed)
	}
	for _, id := range removes {
		if s := w.servers[id]; s != nil && !s.removed {
			if s.up {
				s.down()
			}
			s.removed = true
			w.traceFault(nodeName(id), nil, "removed")
		}
		w.net.links.Reconnect(id)
	}
	return nil
}

// RemoveServer removes a server; it stops once a configuration without it
// is committed (a removed leader leads until then: thesis §4.2.2).
func (c *Cluster) RemoveServer(id int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.server(id)
	if err != nil {
		return err
	}
	defer c.begin()()
	if proposed, err := c.changeMembership(cluster.RemoveChange(id)); err != nil {
		return cluster.RemoveFailed(err, id, proposed)
	}
	// A server that committed the change stops the removed one after its
	// step (finishRemovals); the leader's commit is enough here.
	if !s.removed {
		if s.up {
			s.down()
		}
		s.removed = true
		c.w.traceFault(nodeName(id), nil, "removed")
	}
	c.w.net.links.Reconnect(id)
	return nil
}

// changeMembership drives ch to commitment at the leader (cluster.Drive),
// in virtual time.
func (c *Cluster) changeMembership(ch cluster.Change) (proposed bool, err error) {
	w := c.w
	deadline := w.now + membershipTimeout
	return cluster.Drive(ch, membershipTimeout, cluster.ChangeRun{
		Leader: func() (int, core.Summary, bool) {
			leader, _ := c.leader()
			if leader == core.None {
				return core.None, core.Summary{}, false
			}
			return leader, w.servers[leader].driver.Summary(), true
		},
		Propose: func(leader int, changes []core.ConfChange) error {
			l := w.servers[leader]
			var res node.ProposeResult
			if err := c.inStep(l, func() { res = l.driver.ProposeConfChanges(changes) }); err != nil {
				return err
			}
			if res.Err == nil {
				w.traceFault(nodeName(leader), nil, "membership: proposed %v", cluster.Change{Changes: changes})
				for _, cc := range changes {
					if cc.Type == core.RemoveServer {
						w.removals = append(w.removals, removal{id: cc.ID, index: res.Index})
					}
				}
			}
			return res.Err
		},
		Wait: func() error {
			c.sleep(pollEvery)
			if err := c.failure(nil); err != nil {
				return err // the world failed, or the call was interrupted
			}
			if w.now >= deadline {
				return cluster.ErrTimeout
			}
			return nil
		},
		Up: func(id int) bool {
			s, ok := w.servers[id]
			return ok && s.up && !w.net.links.IsDisconnected(id)
		},
	})
}

// TransferLeadership makes target the leader (thesis §3.10).
func (c *Cluster) TransferLeadership(target int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.server(target)
	if err != nil {
		return err
	}
	if !s.up {
		return fmt.Errorf("%w: node %d cannot take over (restart it first)", cluster.ErrNodeCrashed, target)
	}
	leader, _, err := c.uniqueLeader(membershipTimeout)
	if err != nil {
		return err
	}
	if leader == target {
		return fmt.Errorf("node %d is already the leader", target)
	}
	l := c.w.servers[leader]
	var terr error
	if err := c.inStep(l, func() { terr = l.driver.TransferLeadership(target) }); err != nil {
		return err
	}
	if terr != nil {
		return terr
	}
	wait := 2 * c.w.p.rpcTimeout()
	if !c.wait(func() bool { l, _ := c.leader(); return l == target }, c.w.now+wait) {
		l, _ := c.leader()
		name := "none"
		if l != core.None {
			name = strconv.Itoa(l)
		}
		return c.failure(fmt.Errorf("transfer to %d did not complete within %v (leader is %s)", target, wait, name))
	}
	return nil
}
