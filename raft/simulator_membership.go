package raft

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
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
		_, err := s.changeMembership(cluster.AddChange(id))
		return err
	}
	if len(s.memberIDsLocked()) >= MaxNodes {
		s.mu.Unlock()
		return fmt.Errorf("%w: the cluster already has %d nodes (at most %d)", ErrBadNodeCount, MaxNodes, MaxNodes)
	}
	if err := s.startNewLocked(id); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()

	proposed, err := s.changeMembership(cluster.AddChange(id))
	switch {
	case err == nil:
		return nil
	case !proposed:
		// No leader took the change: it can never commit, so the new
		// server goes, as if never added.
		s.mu.Lock()
		s.takeAwayLocked(id)
		s.mu.Unlock()
		return cluster.AddFailed(err, id, false)
	default:
		return cluster.AddFailed(err, id, true)
	}
}

// startNewLocked starts a new, empty server id, not yet a member.
func (s *ClusterSimulator) startNewLocked(id int) error {
	st, err := s.openStorage(id, true)
	if err != nil {
		return err
	}
	n := &simNode{id: id, storage: st, addr: "127.0.0.1:0"}
	s.nodes[id] = n
	if err := s.startNode(n, nil); err != nil {
		delete(s.nodes, id)
		st.Close()
		return err
	}
	s.traceNode(id, core.Fault(nil, "added"))
	return nil
}

// takeAwayLocked undoes startNewLocked for a server whose change no leader
// took: the change can never commit, so the server goes as if never added.
func (s *ClusterSimulator) takeAwayLocked(id int) {
	n, ok := s.nodes[id]
	if !ok || n.removed {
		return
	}
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

// ChangeMembers adds and removes several servers in one step, through a
// joint configuration when more than one voter changes (Raft paper §6).
// The added servers start empty and catch up as staged learners first
// (cluster.MembersChange); the removed ones stop once the final
// configuration is committed.
func (s *ClusterSimulator) ChangeMembers(adds, removes []int) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClusterDown
	}
	cfg, known := s.knownConfigLocked()
	err := cluster.CheckMembersChange(cfg, adds, removes, 999)
	if err == nil && !known {
		err = fmt.Errorf("%w: no running server knows the configuration", ErrNoLeader)
	}
	for _, id := range adds {
		if n, ok := s.nodes[id]; err == nil && ok && !n.removed {
			err = fmt.Errorf("node %d is already in the cluster, joining: add %d waits for it, remove %d takes it away", id, id, id)
		}
	}
	var started []int
	for _, id := range adds {
		if err != nil {
			break
		}
		if err = s.startNewLocked(id); err == nil {
			started = append(started, id)
		}
	}
	if err != nil {
		for _, id := range started {
			s.takeAwayLocked(id)
		}
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()

	proposed, err := s.changeMembership(cluster.MembersChange(adds, removes))
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if !proposed {
			for _, id := range adds {
				s.takeAwayLocked(id)
			}
		}
		return cluster.ChangeFailed(err, adds, proposed)
	}
	for _, id := range removes {
		if n, ok := s.nodes[id]; ok && !n.removed {
			s.removeLocked(n, "removed")
		}
	}
	return nil
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
	if proposed, err := s.changeMembership(cluster.RemoveChange(id)); err != nil {
		return cluster.RemoveFailed(err, id, proposed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.nodes[id]; ok && !n.removed {
		s.removeLocked(n, "removed")
	}
	return nil
}

// changeMembership drives ch to commitment at the leader (cluster.Drive).
func (s *ClusterSimulator) changeMembership(ch cluster.Change) (proposed bool, err error) {
	ctx := s.callContext()
	deadline := time.Now().Add(s.membershipTimeout())
	var srv *kv.Server // the leader's, between Leader and Propose
	return cluster.Drive(ch, s.membershipTimeout(), cluster.ChangeRun{
		Leader: func() (int, core.Summary, bool) {
			leader, _ := s.Leader()
			if leader == core.None {
				return core.None, core.Summary{}, false
			}
			var err error
			if srv, err = s.Server(leader); err != nil {
				return core.None, core.Summary{}, false
			}
			return leader, srv.Node().Summary(), true
		},
		Propose: func(leader int, changes []core.ConfChange) error {
			_, err := srv.Node().ProposeConfChanges(changes)
			if err == nil && s.cfg.Tracer != nil {
				s.traceNode(leader, core.Info("membership: proposed %v", cluster.Change{Changes: changes}))
			}
			return err
		},
		Wait: func() error {
			switch {
			case !pause(ctx):
				return cluster.ErrInterrupted
			case time.Now().After(deadline):
				return cluster.ErrTimeout
			}
			return nil
		},
		Up: cluster.UpFrom(s.Status),
	})
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
