package shard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/multinode"
	"raft-consensus/raft/node"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/storage/vfs"
	"raft-consensus/raft/trace"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	ID            multi.NodeID
	Core          core.CoreConfig
	Tick          time.Duration
	LivenessTicks int
	Transport     multinode.Transport
	Tracer        trace.Tracer
	// Dir is the shared log's directory: one durable log for every
	// replica. If empty, Storage gives each replica its storage.
	Dir     string
	Storage func(multi.GroupID) storage.Storage
	// Hosted are the groups to run a replica of; Members, the founding
	// members of one that the storage does not hold yet (nil: none, the
	// replica waits for a leader to add it).
	Hosted  []multi.GroupID
	Members func(multi.GroupID) []multi.NodeID
	// VoteFloor, if set, is the vote floor of a replica the server was
	// added with (JoinReplica), kept across restarts (zero: none).
	VoteFloor func(multi.GroupID) core.VoteFloor
	// Attach, if set, is given the node before any replica exists, so
	// that the network can deliver to it.
	Attach func(*multinode.Node)
	// OnViolation is told of a replica that broke an invariant or could not
	// read its storage: it applies nothing more and serves no client.
	OnViolation func(what string)
}

// Server is one server of a sharded KV: a multinode.Node hosting its
// replicas, each with the shipped kv.Host and kv.Store, on one shared log
// (or a storage per replica). It runs from a start to a Stop: a crash in
// the REPL's cluster, a process's life in a node command.
type Server struct {
	cfg  ServerConfig
	node *multinode.Node
	log  *storage.SharedLog
	// stores are the replicas' KV stores; only the node goroutine touches
	// them (through node.Do and Config.Apply). broken are the replicas
	// whose store broke an invariant or could not read its storage.
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

// StartServer runs a server from its storage, with a replica of every
// group it hosts.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.OnViolation == nil {
		cfg.OnViolation = func(string) {}
	}
	if cfg.Members == nil {
		cfg.Members = func(multi.GroupID) []multi.NodeID { return nil }
	}
	mcfg := multinode.Config{ID: cfg.ID, Core: cfg.Core, Tick: cfg.Tick, Transport: cfg.Transport,
		LivenessTicks: cfg.LivenessTicks, Tracer: cfg.Tracer, Storage: cfg.Storage}
	s := &Server{cfg: cfg, stores: map[multi.GroupID]*kv.Host{}, broken: map[multi.GroupID]bool{}}
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("node %d: %w", cfg.ID, err)
		}
		l, err := storage.OpenSharedLog(vfs.OS{}, cfg.Dir, storage.SharedOptions{})
		if err != nil {
			return nil, fmt.Errorf("node %d: opening its shared log: %w", cfg.ID, err)
		}
		// Groups whose replica was dropped while the server was down are
		// forgotten now.
		hosted := map[uint64]bool{}
		for _, g := range cfg.Hosted {
			hosted[uint64(g)] = true
		}
		for _, g := range l.Groups() {
			if !hosted[g] {
				l.Drop(g) //nolint:errcheck // written with the first Sync
			}
		}
		s.log, mcfg.Log, mcfg.Storage = l, l, nil
	}
	mcfg.Apply = func(g multi.GroupID, batch []node.CommitEntry) {
		if st := s.stores[g]; st != nil {
			st.Apply(batch) // no snapshot threshold: it asks for no job
			return
		}
		for _, e := range batch {
			if e.Snapshot != nil {
				e.Snapshot.Data.Close()
			}
		}
	}
	s.node = multinode.New(mcfg)
	if cfg.Attach != nil {
		cfg.Attach(s.node)
	}
	var err error
	if derr := s.node.Do(context.Background(), func(h *multi.Host) {
		for _, g := range cfg.Hosted {
			if floor := s.voteFloor(g); floor != (core.VoteFloor{}) {
				err = s.JoinReplica(h, g, floor)
			} else {
				err = s.CreateReplica(h, g, cfg.Members(g))
			}
			if err != nil {
				return
			}
		}
	}); derr != nil {
		err = derr
	}
	if err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Node is the server's node.
func (s *Server) Node() *multinode.Node { return s.node }

// CreateReplica creates the server's replica of g and its store; it runs
// on the node goroutine (in a Node().Do).
func (s *Server) CreateReplica(h *multi.Host, g multi.GroupID, members []multi.NodeID) error {
	if err := h.CreateGroup(g, members); err != nil {
		return fmt.Errorf("node %d: %w", s.cfg.ID, err)
	}
	s.addStore(h, g)
	return nil
}

// JoinReplica creates the server's replica of g, a running group it is
// being added to, with the vote floor of multi.Host.JoinGroup, and its
// store; it runs on the node goroutine.
func (s *Server) JoinReplica(h *multi.Host, g multi.GroupID, floor core.VoteFloor) error {
	if err := h.JoinGroup(g, floor); err != nil {
		return fmt.Errorf("node %d: %w", s.cfg.ID, err)
	}
	s.addStore(h, g)
	return nil
}

func (s *Server) voteFloor(g multi.GroupID) core.VoteFloor {
	if s.cfg.VoteFloor == nil {
		return core.VoteFloor{}
	}
	return s.cfg.VoteFloor(g)
}

// addStore gives replica g its KV store.
func (s *Server) addStore(h *multi.Host, g multi.GroupID) {
	id := s.cfg.ID
	broke := func(what string) {
		s.broken[g] = true
		s.cfg.OnViolation(fmt.Sprintf("node %d group %d: %s (the replica serves nothing more)", id, g, what))
	}
	s.stores[g] = kv.NewHost(groupNode{h, g}, kv.NewStore(), kv.HostConfig{ID: int(id),
		OnViolation:      func(v core.InvariantViolation) { broke(v.Error()) },
		OnStorageFailure: func(err error) { broke(err.Error()) }})
}

// DropReplica destroys the server's replica of g and forgets its storage
// in the shared log; it runs on the node goroutine. It reports whether
// there was one.
func (s *Server) DropReplica(h *multi.Host, g multi.GroupID) bool {
	if h.DestroyGroup(g) != nil {
		return false
	}
	delete(s.stores, g)
	delete(s.broken, g)
	if s.log != nil {
		s.log.Drop(uint64(g)) //nolint:errcheck // a failed log fails the host's next Sync too
	}
	return true
}

// Stop stops the server: its goroutine stops, and with a shared log what
// was not synced is lost (every round syncs, so nothing acknowledged is).
func (s *Server) Stop() {
	s.node.Stop()
	if s.log != nil {
		s.log.Close()
	}
}

// Replica is one replica's state, as its node goroutine saw it.
type Replica struct {
	Summary core.Summary
	Quiet   bool
	// Applied is the index its KV store has applied.
	Applied uint64 `json:",omitempty"`
}

// Replicas reports the server's replicas of the groups in only (all of
// them when only is nil).
func (s *Server) Replicas(only []multi.GroupID) (map[multi.GroupID]Replica, error) {
	reps := map[multi.GroupID]Replica{}
	err := s.node.Do(context.Background(), func(h *multi.Host) {
		groups := only
		if groups == nil {
			groups = h.Groups()
		}
		for _, g := range groups {
			if sum, quiet, err := h.Summary(g); err == nil {
				sum.Config = sum.Config.Clone()
				r := Replica{Summary: sum, Quiet: quiet}
				if st := s.stores[g]; st != nil {
					r.Applied = st.Applied()
				}
				reps[g] = r
			}
		}
	})
	return reps, err
}

// GroupLog is the server's log of group g (found is false if it hosts no
// replica of it).
func (s *Server) GroupLog(g multi.GroupID, limit int) (l cluster.NodeLog, found bool, err error) {
	err = s.node.Do(context.Background(), func(h *multi.Host) {
		h.Inspect(g, func(cr *core.Core) { //nolint:errcheck // found says whether it ran
			found = true
			l = cluster.LogOf(int(s.cfg.ID), cr, cr.Applied(), limit)
		})
	})
	return l, found, err
}

// ReadStale reads key from the replica of group g as it stands.
func (s *Server) ReadStale(g multi.GroupID, key string) (cluster.StaleRead, error) {
	var out cluster.StaleRead
	var rerr error
	err := s.node.Do(context.Background(), func(h *multi.Host) {
		st := s.stores[g]
		sum, _, err := h.Summary(g)
		if st == nil || err != nil {
			rerr = fmt.Errorf("node %d has no replica of group %d", s.cfg.ID, g)
			return
		}
		res, err := st.StateMachine().Read(key)
		r, ok := res.(kv.Result)
		switch {
		case err != nil:
			rerr = err
		case !ok:
			rerr = fmt.Errorf("node %d's state machine answered %T, not a value", s.cfg.ID, res)
		default:
			out = cluster.StaleRead{Value: r.Value, Found: r.Found, Applied: st.Applied(), Role: sum.Role, Term: sum.Term}
		}
	})
	if err != nil {
		return out, stoppedErr(s.cfg.ID, err)
	}
	return out, rerr
}

// Snapshot snapshots every replica with something new to compact, and
// returns how many it compacted.
func (s *Server) Snapshot() (uint64, error) {
	var n uint64
	var serr error
	err := s.node.Do(context.Background(), func(h *multi.Host) {
		for _, g := range h.Groups() {
			st := s.stores[g]
			sum, _, _ := h.Summary(g)
			if st == nil || st.Applied() <= sum.SnapshotIndex {
				continue
			}
			job := st.SnapshotNow()
			if job == nil {
				continue
			}
			err := h.Snapshot(g, job.Index, nil, job.Write)
			st.SnapshotDone(job, err)
			if err != nil {
				serr = fmt.Errorf("group %d: %w", g, err)
				return
			}
			n++
		}
	})
	if err != nil {
		return 0, stoppedErr(s.cfg.ID, err)
	}
	return n, serr
}

// Do runs a KV command at the server's replica of group g as kv.Server
// does: a write through the group's log, a read through ReadIndex
// (thesis §6.4).
func (s *Server) Do(ctx context.Context, g multi.GroupID, cmd kv.Command) (kv.Result, error) {
	type answer struct {
		res any
		err error
	}
	done := make(chan answer, 1)
	var abandon func(*multi.Host)
	n := s.node
	err := n.Do(ctx, func(h *multi.Host) {
		st := s.stores[g]
		switch {
		case st == nil:
			done <- answer{err: fmt.Errorf("%w: node %d has no replica of group %d", multi.ErrUnknownGroup, s.cfg.ID, g)}
			return
		case s.broken[g]:
			done <- answer{err: fmt.Errorf("node %d's replica of group %d is broken (see status)", s.cfg.ID, g)}
			return
		}
		reply := func(res any, err error) { done <- answer{res, err} }
		if cmd.Op == kv.OpGet {
			r := kv.NewRead(cmd.Key, reply)
			h.ReadIndex(g, func(index uint64, err error) { st.ReadIndexed(r, index, err) })
			abandon = func(*multi.Host) { st.AbandonRead(r) }
			return
		}
		w := kv.NewWrite(kv.EncodeCommand(cmd), reply)
		st.Proposed(w, h.Propose(g, w.Command()))
		abandon = func(*multi.Host) { st.Abandon(w) }
	})
	if err != nil {
		return kv.Result{}, stoppedErr(s.cfg.ID, err)
	}
	select {
	case a := <-done:
		if a.err != nil {
			return kv.Result{}, a.err
		}
		res, ok := a.res.(kv.Result)
		if !ok {
			return kv.Result{}, fmt.Errorf("node %d group %d answered %T, not a KV result", s.cfg.ID, g, a.res)
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
		return kv.Result{}, stoppedErr(s.cfg.ID, multinode.ErrStopped)
	}
}

// VoteFloor is the vote floor for a replica of group g about to be added,
// from the server's replica, which must lead g: its position confirmed by
// a majority (multi.Host.VoteFloor).
func (s *Server) VoteFloor(ctx context.Context, g multi.GroupID) (core.VoteFloor, error) {
	type answer struct {
		floor core.VoteFloor
		err   error
	}
	done := make(chan answer, 1)
	n := s.node
	if err := n.Do(ctx, func(h *multi.Host) {
		h.VoteFloor(g, func(f core.VoteFloor, err error) { done <- answer{f, err} })
	}); err != nil {
		return core.VoteFloor{}, stoppedErr(s.cfg.ID, err)
	}
	select {
	case a := <-done:
		if a.err != nil {
			return core.VoteFloor{}, fmt.Errorf("node %d, group %d: %w", s.cfg.ID, g, a.err)
		}
		return a.floor, nil
	case <-ctx.Done():
		return core.VoteFloor{}, ctx.Err()
	case <-n.Done():
		return core.VoteFloor{}, stoppedErr(s.cfg.ID, multinode.ErrStopped)
	}
}

// stoppedErr is what a client sees of a server that crashed under it.
func stoppedErr(id multi.NodeID, err error) error {
	if errors.Is(err, multinode.ErrStopped) {
		return fmt.Errorf("%w: node %d", errCrashed, id)
	}
	return err
}
