package raft

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
)

// membershipTimeout bounds one membership change or leadership transfer.
func (s *ClusterSimulator) membershipTimeout() time.Duration {
	return max(s.cfg.ClientTimeout, 5*time.Second)
}

// AddServer starts a new, empty server and adds it to the cluster: it joins
// as a learner, receives the log, and the leader promotes it to voter once
// it has caught up (thesis §4.2.1). AddServer returns once the promotion is
// committed.
func (s *ClusterSimulator) AddServer(id int) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClusterDown
	}
	if id < 0 || id >= 1000 {
		s.mu.Unlock()
		return fmt.Errorf("node id %d is out of range (0–999)", id)
	}
	if n, ok := s.nodes[id]; ok && !n.removed {
		cfg, known := s.knownConfigLocked()
		s.mu.Unlock()
		if known && cfg.IsVoter(id) {
			return fmt.Errorf("node %d is already a member", id)
		}
		// Started by an add that did not finish: wait for it again.
		_, err := s.changeMembership(core.AddLearner, id, func(cfg core.Configuration) bool { return cfg.IsVoter(id) })
		return err
	}
	if len(s.memberIDsLocked()) >= MaxNodes {
		s.mu.Unlock()
		return fmt.Errorf("%w: the cluster already has %d nodes (at most %d)", ErrBadNodeCount, MaxNodes, MaxNodes)
	}
	st, err := s.openStorage(id, true)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	n := &simNode{id: id, storage: st, addr: "127.0.0.1:0"}
	s.nodes[id] = n
	if err := s.startNode(n, nil); err != nil {
		delete(s.nodes, id)
		st.Close()
		s.mu.Unlock()
		return err
	}
	s.traceNode(id, core.Fault(nil, "added"))
	s.mu.Unlock()

	proposed, err := s.changeMembership(core.AddLearner, id, func(cfg core.Configuration) bool { return cfg.IsVoter(id) })
	switch {
	case err == nil:
		return nil
	case !proposed:
		// No leader took the change: it can never commit, so the new
		// server goes, as if never added.
		s.mu.Lock()
		if n, ok := s.nodes[id]; ok && !n.removed {
			if n.server != nil {
				s.stopNodeLocked(n)
			} else if n.storage != nil && s.cfg.DataDir != "" {
				n.storage.Close()
			}
			if s.cfg.DataDir != "" {
				os.RemoveAll(s.nodeDir(id)) // a later run must not recover it
			}
			delete(s.nodes, id)
			s.faults.Reconnect(id)
			s.traceNode(id, core.Fault(nil, "removed"))
		}
		s.mu.Unlock()
		return cluster.AddFailed(err, id, false)
	default:
		return cluster.AddFailed(err, id, true)
	}
}

// RemoveServer removes a server from the cluster and shuts it down once the
// configuration without it is committed. A leader that removes itself
// leads until then, and steps down (thesis §4.2.2).
func (s *ClusterSimulator) RemoveServer(id int) error {
	s.mu.Lock()
	if _, err := s.nodeLocked(id); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	_, err := s.changeMembership(core.RemoveServer, id, func(cfg core.Configuration) bool { return !cfg.IsMember(id) })
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.nodes[id]; ok && !n.removed {
		s.removeLocked(n, "removed")
	}
	return nil
}

// changeMembership proposes one change at the leader, retrying while the
// leader is unknown or busy with a previous change, and waits until a
// leader has committed a configuration satisfying done. proposed says
// whether a leader ever took the change (if not, it cannot commit later).
func (s *ClusterSimulator) changeMembership(t core.ConfChangeType, id int, done func(core.Configuration) bool) (proposed bool, err error) {
	ctx := s.callContext()
	deadline := time.Now().Add(s.membershipTimeout())
	var lastErr error
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return proposed, cluster.ErrInterrupted
		}
		leader, _ := s.Leader()
		if leader == core.None {
			pause(ctx)
			continue
		}
		srv, err := s.Server(leader)
		if err != nil {
			pause(ctx)
			continue
		}
		switch cluster.NextStep(t, id, srv.Node().Summary(), done) {
		case cluster.Done:
			return proposed, nil
		case cluster.Propose:
			_, err = srv.Node().ProposeConfChange(t, id)
			switch {
			case err == nil:
				proposed = true
				if s.cfg.Tracer != nil {
					s.traceNode(leader, core.Info("membership: proposed %v %d", t, id))
				}
			case cluster.Refused(err):
				return proposed, err
			default:
				lastErr = err // retry
			}
		}
		pause(ctx)
	}
	return proposed, cluster.NotCommitted(t, id, s.membershipTimeout(), lastErr)
}

// TransferLeadership makes target the leader (thesis §3.10). If target has
// not taken over within an election timeout, the old leader resumes and
// TransferLeadership returns an error.
func (s *ClusterSimulator) TransferLeadership(target int) error {
	s.mu.Lock()
	n, err := s.nodeLocked(target)
	if err == nil && n.server == nil {
		err = fmt.Errorf("%w: node %d cannot take over", ErrNodeCrashed, target)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	leader, _, err := s.CheckUniqueLeader(s.membershipTimeout())
	if err != nil {
		return err
	}
	if leader == target {
		return fmt.Errorf("node %d is already the leader", target)
	}
	srv, err := s.Server(leader)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.callContext(), s.membershipTimeout())
	defer cancel()
	if err := srv.Node().TransferLeadership(ctx, target); err != nil {
		return err
	}
	s.traceSim(core.Info("leadership transfer %d → %d requested", leader, target))
	wait := 2 * s.electionTimeoutMax()
	err = s.poll(wait, func() (bool, error) {
		l, _ := s.Leader()
		return l == target, nil
	})
	if err != nil {
		l, _ := s.Leader()
		return fmt.Errorf("transfer to %d did not complete within %v (leader is %s)", target, wait, leaderName(l))
	}
	return nil
}

func (s *ClusterSimulator) electionTimeoutMax() time.Duration {
	if s.cfg.ElectionTimeoutMax > 0 {
		return s.cfg.ElectionTimeoutMax
	}
	if s.cfg.ElectionTimeoutMin > 0 {
		return 2 * s.cfg.ElectionTimeoutMin
	}
	return 300 * time.Millisecond
}

// leaderName is a leader's id, or "none".
func leaderName(id int) string {
	if id == core.None {
		return "none"
	}
	return strconv.Itoa(id)
}
