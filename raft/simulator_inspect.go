package raft

import (
	"context"
	"fmt"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
)

// inspectTimeout bounds a look at one node's state: a node that does not
// answer within it is shown as not answering, not waited for.
const inspectTimeout = time.Second

// Logs reports every server's log, by id (a crashed server's as empty):
// the latest limit entries of each.
func (s *ClusterSimulator) Logs(limit int) []cluster.NodeLog {
	var out []cluster.NodeLog
	for _, id := range s.IDs() {
		l := cluster.NodeLog{ID: id}
		if srv, err := s.Server(id); err == nil {
			applied := srv.Applied()
			ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
			if srv.Node().Inspect(ctx, func(c *core.Core) { l = cluster.LogOf(id, c, applied, limit) }) != nil {
				l = cluster.NodeLog{ID: id} // stopped meanwhile: shown as down
			}
			cancel()
		}
		out = append(out, l)
	}
	return out
}

// ReadStale reads key from one server's state machine without ReadIndex.
func (s *ClusterSimulator) ReadStale(key string, id int) (cluster.StaleRead, error) {
	srv, err := s.Server(id)
	if err != nil {
		return cluster.StaleRead{}, err
	}
	sum := srv.Node().Summary()
	res, applied, err := srv.ReadLocal(key)
	if err != nil {
		return cluster.StaleRead{}, err
	}
	r, ok := res.(kv.Result)
	if !ok {
		return cluster.StaleRead{}, fmt.Errorf("node %d's state machine answered %T, not a value", id, res)
	}
	return cluster.StaleRead{Value: r.Value, Found: r.Found, Applied: applied, Role: sum.Role, Term: sum.Term}, nil
}
