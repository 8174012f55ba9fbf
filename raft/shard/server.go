package shard

import (
	"context"
	"errors"
	"fmt"
	"os"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/multinode"
	"raft-consensus/raft/node"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/storage/vfs"
)

// server is one server of the cluster: a multinode.Node hosting its
// replicas, each with a KV store. Its storage outlives its crashes: one
// shared log in dir on disk, or in memory one MemoryStorage per group.
type server struct {
	id  multi.NodeID
	dir string // the shared log's directory; "": in memory
	mem map[multi.GroupID]*storage.MemoryStorage
	// hosted are the groups it holds a replica of, to create again on a
	// restart (a removed replica's records stay in the log, unused).
	hosted map[multi.GroupID]bool

	run *instance // nil: crashed
}

// instance is one run of a server, from a start to its crash.
type instance struct {
	node *multinode.Node
	log  *storage.SharedLog
	// stores are the replicas' KV stores; only the node goroutine touches
	// them (through node.Do and Config.Apply). broken are the replicas
	// whose store broke an invariant or could not read its storage: they
	// apply nothing more and serve no client.
	stores map[multi.GroupID]*kv.Host
	broken map[multi.GroupID]bool
}

// groupNode is one replica as kv.Host sees its node.
type groupNode struct {
	h *multi.Host
	g multi.GroupID
}

func (n groupNode) Summary() core.Summary {
	sum, _, _ := n.h.Summary(n.g)
	return sum
}

// start runs the server from its storage, with a replica of every group
// it hosts; members are the founding members of a group it creates anew.
func (c *Cluster) start(s *server, members func(multi.GroupID) []multi.NodeID) error {
	cfg := multinode.Config{ID: s.id, Core: c.coreConfig(s.id), Tick: c.cfg.Tick, Transport: c.net,
		LivenessTicks: c.cfg.LivenessTicks, Tracer: c.cfg.Tracer}
	run := &instance{stores: map[multi.GroupID]*kv.Host{}, broken: map[multi.GroupID]bool{}}
	if s.dir != "" {
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return fmt.Errorf("node %d: %w", s.id, err)
		}
		l, err := storage.OpenSharedLog(vfs.OS{}, s.dir, storage.SharedOptions{})
		if err != nil {
			return fmt.Errorf("node %d: opening its shared log: %w", s.id, err)
		}
		// Groups whose replica was dropped while the server was down are
		// forgotten now.
		for _, g := range l.Groups() {
			if !s.hosted[multi.GroupID(g)] {
				l.Drop(g) //nolint:errcheck // written with the first Sync
			}
		}
		run.log, cfg.Log = l, l
	} else {
		cfg.Storage = func(g multi.GroupID) storage.Storage {
			if s.mem[g] == nil {
				s.mem[g] = storage.NewMemoryStorage()
			}
			return s.mem[g]
		}
	}
	cfg.Apply = func(g multi.GroupID, batch []node.CommitEntry) {
		if st := run.stores[g]; st != nil {
			st.Apply(batch) // no snapshot threshold: it asks for no job
			return
		}
		for _, e := range batch {
			if e.Snapshot != nil {
				e.Snapshot.Data.Close()
			}
		}
	}
	run.node = multinode.New(cfg)
	s.run = run
	c.net.attach(s.id, run.node)
	var err error
	if derr := run.node.Do(context.Background(), func(h *multi.Host) {
		for g := range s.hosted {
			if err = c.createReplica(s.id, run, h, g, members(g)); err != nil {
				return
			}
		}
	}); derr != nil {
		err = derr
	}
	if err != nil {
		c.stop(s)
	}
	return err
}

// createReplica creates the server's replica of g and its store (on the
// node goroutine).
func (c *Cluster) createReplica(id multi.NodeID, run *instance, h *multi.Host, g multi.GroupID, members []multi.NodeID) error {
	if err := h.CreateGroup(g, members); err != nil {
		return fmt.Errorf("node %d: %w", id, err)
	}
	broke := func(what string) {
		run.broken[g] = true
		c.violation(fmt.Sprintf("node %d group %d: %s (the replica serves nothing more)", id, g, what))
	}
	run.stores[g] = kv.NewHost(groupNode{h, g}, kv.NewStore(), kv.HostConfig{ID: int(id),
		OnViolation:      func(v core.InvariantViolation) { broke(v.Error()) },
		OnStorageFailure: func(err error) { broke(err.Error()) }})
	return nil
}

// stop crashes the server: its goroutine stops, and with a shared log
// what was not synced is lost (every round syncs, so nothing
// acknowledged is).
func (c *Cluster) stop(s *server) {
	run := s.run
	if run == nil {
		return
	}
	c.net.attach(s.id, nil)
	run.node.Stop()
	s.run = nil
	if run.log != nil {
		run.log.Close()
	}
}

// endpoint is one replica as a kv.Client reaches it.
type endpoint struct {
	id  multi.NodeID
	run *instance
	g   multi.GroupID
}

func (e endpoint) ID() int { return int(e.id) }

// Do runs a KV command at the replica as kv.Server does: a write through
// the group's log, a read through ReadIndex (thesis §6.4).
func (e endpoint) Do(ctx context.Context, cmd kv.Command) (kv.Result, error) {
	type answer struct {
		res any
		err error
	}
	done := make(chan answer, 1)
	var abandon func(*multi.Host)
	n := e.run.node
	err := n.Do(ctx, func(h *multi.Host) {
		st := e.run.stores[e.g]
		switch {
		case st == nil:
			done <- answer{err: fmt.Errorf("%w: node %d has no replica of group %d", multi.ErrUnknownGroup, e.id, e.g)}
			return
		case e.run.broken[e.g]:
			done <- answer{err: fmt.Errorf("node %d's replica of group %d is broken (see status)", e.id, e.g)}
			return
		}
		reply := func(res any, err error) { done <- answer{res, err} }
		if cmd.Op == kv.OpGet {
			r := kv.NewRead(cmd.Key, reply)
			h.ReadIndex(e.g, func(index uint64, err error) { st.ReadIndexed(r, index, err) })
			abandon = func(*multi.Host) { st.AbandonRead(r) }
			return
		}
		w := kv.NewWrite(kv.EncodeCommand(cmd), reply)
		st.Proposed(w, h.Propose(e.g, w.Command()))
		abandon = func(*multi.Host) { st.Abandon(w) }
	})
	if err != nil {
		return kv.Result{}, stoppedErr(e.id, err)
	}
	select {
	case a := <-done:
		if a.err != nil {
			return kv.Result{}, a.err
		}
		res, ok := a.res.(kv.Result)
		if !ok {
			return kv.Result{}, fmt.Errorf("node %d group %d answered %T, not a KV result", e.id, e.g, a.res)
		}
		return res, nil
	case <-ctx.Done():
		// Forget the waiter (the write may still commit: its session
		// makes a retry safe).
		if abandon != nil {
			go n.Do(context.Background(), abandon) //nolint:errcheck // a stopped node has forgotten it too
		}
		return kv.Result{}, ctx.Err()
	case <-n.Done():
		return kv.Result{}, stoppedErr(e.id, multinode.ErrStopped)
	}
}

// stoppedErr is what a client sees of a server that crashed under it.
func stoppedErr(id multi.NodeID, err error) error {
	if errors.Is(err, multinode.ErrStopped) {
		return fmt.Errorf("%w: node %d", errCrashed, id)
	}
	return err
}
