package shard

import (
	"fmt"
	"slices"
	"strings"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/multi"
)

// The cluster-wide views, made from every running server's replicas (by
// server and group): the REPL's in-process cluster and the client of node
// processes (package remote) show the same tables from the same reports.

// LeaderOf is group g's leader among reps: the running replica that leads
// with the highest term, or core.None.
func LeaderOf(reps map[int]map[multi.GroupID]Replica, g multi.GroupID) (int, Replica) {
	best, bestRep := core.None, Replica{}
	for id, rs := range reps {
		r, ok := rs[g]
		if ok && r.Summary.Role == core.Leader && (best == core.None || r.Summary.Term > bestRep.Summary.Term) {
			best, bestRep = id, r
		}
	}
	return best, bestRep
}

// MergeGroups reports groups 0 to groups-1, each as its leader sees it
// (or, with none, the replica with the highest term).
func MergeGroups(groups int, reps map[int]map[multi.GroupID]Replica) []cluster.GroupStatus {
	out := make([]cluster.GroupStatus, groups)
	for i := range out {
		g := multi.GroupID(i)
		st := cluster.GroupStatus{ID: uint64(g), Leader: core.None}
		var view Replica
		for _, rs := range reps {
			if r, ok := rs[g]; ok {
				st.Replicas++
				if r.Quiet {
					st.Quiet++
				}
				if r.Summary.Term > view.Summary.Term || view.Summary.Term == 0 {
					view = r
				}
			}
		}
		if l, r := LeaderOf(reps, g); l != core.None {
			st.Leader, view = l, r
		}
		st.Term, st.Commit, st.Config = view.Summary.Term, view.Summary.Commit, view.Summary.Config
		out[i] = st
	}
	return out
}

// CountGroups counts the groups each server of ids hosts, leads, and of
// those how many tick or are quiet (a server absent from reps is down).
func CountGroups(ids []int, reps map[int]map[multi.GroupID]Replica) []cluster.NodeGroups {
	var out []cluster.NodeGroups
	for _, id := range ids {
		ng := cluster.NodeGroups{ID: id}
		if rs, ok := reps[id]; ok {
			ng.Alive = true
			for _, r := range rs {
				ng.Replicas++
				if r.Summary.Role == core.Leader {
					ng.Led++
				}
				if r.Quiet {
					ng.Quiet++
				} else {
					ng.Active++
				}
			}
		}
		out = append(out, ng)
	}
	return out
}

// NodesOfGroup is the status table of group g: every server of ids with
// its replica's role, term and log; connected says whether a server is
// on the network, members are g's members as last known (to tell a
// leaving server from a joining one).
func NodesOfGroup(ids []int, reps map[int]map[multi.GroupID]Replica, g multi.GroupID, connected func(id int) bool, members []int) []cluster.NodeStatus {
	leader, _ := LeaderOf(reps, g)
	var out []cluster.NodeStatus
	for _, id := range ids {
		st := cluster.NodeStatus{ID: id, Connected: connected(id), Leader: core.None, Member: "unknown"}
		if rs, ok := reps[id]; ok {
			st.Alive = true
			if r, ok := rs[g]; ok {
				s := r.Summary
				st.Role, st.Term, st.Leader, st.Commit, st.LastIndex, st.SnapshotIndex = s.Role, s.Term, s.Leader, s.Commit, s.LastIndex, s.SnapshotIndex
				st.LogLength = s.LastIndex - s.SnapshotIndex
			}
		}
		if leader != core.None {
			st.Member = cluster.Member(reps[leader][g].Summary.Config, true, id, slices.Contains(members, id))
		}
		out = append(out, st)
	}
	return out
}

// GroupList names groups for a message: "g2, g5 and 3 more".
func GroupList(groups []multi.GroupID) string {
	const shown = 6
	var parts []string
	for i, g := range groups {
		if i == shown {
			return strings.Join(parts, ", ") + fmt.Sprintf(" and %d more", len(groups)-shown)
		}
		parts = append(parts, g.String())
	}
	return strings.Join(parts, ", ")
}
