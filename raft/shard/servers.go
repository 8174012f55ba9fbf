package shard

import (
	"context"
	"maps"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/multinode"
	"raft-consensus/raft/storage"
)

// server is one server of the cluster, across its crashes: its storage
// outlives them (one shared log in dir on disk, or in memory one
// MemoryStorage per group).
type server struct {
	id  multi.NodeID
	dir string // the shared log's directory; "": in memory
	mem map[multi.GroupID]*storage.MemoryStorage
	// hosted are the groups it holds a replica of, to create again on a
	// restart (a removed replica's records stay in the log, unused).
	hosted map[multi.GroupID]bool
	// floors are the vote floors of the replicas it was added with
	// (core.InitialState.VoteFloor).
	floors map[multi.GroupID]core.VoteFloor

	run *Server // nil: crashed
}

// start runs the server from its storage, with a replica of every group
// it hosts; members are the founding members of a group it creates anew.
func (c *Cluster) start(s *server, members func(multi.GroupID) []multi.NodeID) error {
	cfg := ServerConfig{ID: s.id, Core: c.coreConfig(s.id), Tick: c.cfg.Tick, Transport: c.net,
		LivenessTicks: c.cfg.LivenessTicks, Tracer: c.cfg.Tracer, Dir: s.dir, Members: members,
		Attach: func(n *multinode.Node) { c.net.attach(s.id, n) }, OnViolation: c.violation}
	for g := range s.hosted {
		cfg.Hosted = append(cfg.Hosted, g)
	}
	floors := maps.Clone(s.floors)
	cfg.VoteFloor = func(g multi.GroupID) core.VoteFloor { return floors[g] }
	if s.dir == "" {
		cfg.Storage = func(g multi.GroupID) storage.Storage {
			if s.mem[g] == nil {
				s.mem[g] = storage.NewMemoryStorage()
			}
			return s.mem[g]
		}
	}
	run, err := StartServer(cfg)
	if err != nil {
		c.net.attach(s.id, nil)
		return err
	}
	s.run = run
	return nil
}

// stop crashes the server.
func (c *Cluster) stop(s *server) {
	if s.run == nil {
		return
	}
	c.net.attach(s.id, nil)
	s.run.Stop()
	s.run = nil
}

// endpoint is one replica as a kv.Client reaches it.
type endpoint struct {
	run *Server
	g   multi.GroupID
}

func (e endpoint) ID() int { return int(e.run.cfg.ID) }

func (e endpoint) Do(ctx context.Context, cmd kv.Command) (kv.Result, error) {
	return e.run.Do(ctx, e.g, cmd)
}
