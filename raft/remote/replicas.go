package remote

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"raft-consensus/raft/core"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/node"
	"raft-consensus/raft/shard"
)

// The replicas a node of many groups holds, and the admin calls that
// create and destroy them as the cluster's membership changes (run by
// the REPL's change loops, shard.Changer, through GroupedCluster).

// replicasFile records which groups a node of many groups holds, once a
// membership change has changed that: until then a founder holds every
// group and a node that joined holds none.
const replicasFile = "replicas.json"

// replicaRecord is replicas.json.
type replicaRecord struct {
	Hosted []uint64 `json:"hosted"`
	// Joined are the groups the node was added to by a membership change:
	// it never bootstraps them (see startGroups), even on an empty log.
	Joined []uint64 `json:"joined,omitempty"`
	// Floors are the vote floors of the replicas it was added with
	// (core.InitialState.VoteFloor), by group.
	Floors map[uint64]core.VoteFloor `json:"vote_floors,omitempty"`
}

func (r replicaRecord) hosts(g uint64) bool  { return slices.Contains(r.Hosted, g) }
func (r replicaRecord) joined(g uint64) bool { return slices.Contains(r.Joined, g) }

// loadReplicas reads the node's record, or makes the first one: every
// group for a founder, none for a node that joined.
func (n *Node) loadReplicas(joined bool) (replicaRecord, error) {
	path := filepath.Join(n.cfg.DataDir, replicasFile)
	var rec replicaRecord
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if !joined {
			for g := range n.cfg.Groups {
				rec.Hosted = append(rec.Hosted, uint64(g))
			}
		}
	case err != nil:
		return rec, err
	default:
		if err := jsonUnmarshal(b, &rec); err != nil {
			return rec, fmt.Errorf("%s: %v", path, err)
		}
		for _, g := range append(slices.Clone(rec.Hosted), rec.Joined...) {
			if err := n.checkGroup(g); err != nil {
				return rec, fmt.Errorf("%s: %v", path, err)
			}
		}
	}
	n.rmu.Lock()
	n.replicas = rec
	n.rmu.Unlock()
	return rec, nil
}

// saveReplicas writes rec to the data dir (synced) before the node acts on
// it: a node that crashes in between starts from what it was about to do.
func (n *Node) saveReplicas(rec replicaRecord) error {
	if err := writeJSON(filepath.Join(n.cfg.DataDir, replicasFile), rec); err != nil {
		return fmt.Errorf("node %d: saving its replicas: %w", n.cfg.ID, err)
	}
	n.replicas = rec
	return nil
}

// GroupArgs names one group; CreateReplica takes the vote floor of the
// replica it creates too (the position of the group's leader).
type GroupArgs struct {
	Group     uint64
	VoteFloor core.VoteFloor
}

// CreateReplica gives the node an empty replica of a group, which joins
// when the group's leader adds the node (nothing if it has one).
func (a *Admin) CreateReplica(args *GroupArgs, _ *struct{}) error {
	g := args.Group
	// Saved first: a restart creates it again, and never bootstraps it
	// (it was added, not founded).
	floor := args.VoteFloor
	if floor == core.NoVotes {
		// A replica given no floor any candidate reaches would vote for no
		// one as long as it lives: the floor is the leader's position.
		return fmt.Errorf("bad request: vote floor term %d, index %d is no leader's position", floor.Term, floor.Index)
	}
	return a.node.alterReplica(g, true, floor, func(srv *shard.Server, h *multi.Host) (string, error) {
		if _, _, err := h.Summary(multi.GroupID(g)); err == nil {
			return "", nil // one left from an earlier try, or a founder's
		}
		return fmt.Sprintf("created an empty replica of group %d (vote floor: term %d, index %d)", g, floor.Term, floor.Index), srv.JoinReplica(h, multi.GroupID(g), floor)
	})
}

// DropReplica destroys the node's replica of a group and its share of the
// shared log (a group the node was removed from; nothing if it has none).
func (a *Admin) DropReplica(args *GroupArgs, _ *struct{}) error {
	g := args.Group
	// Saved first: a node that crashes before the drop forgets the group
	// at its start (shard.StartServer drops what it does not host), and
	// never bootstraps it again from an emptied log.
	return a.node.alterReplica(g, false, core.VoteFloor{}, func(srv *shard.Server, h *multi.Host) (string, error) {
		if !srv.DropReplica(h, multi.GroupID(g)) {
			return "", nil
		}
		return fmt.Sprintf("dropped the replica of group %d", g), nil
	})
}

// alterReplica saves that the node holds group g's replica (hosted), with
// vote floor floor (kept if it holds one already), or that it does not,
// and marks g joined (never to be bootstrapped by this node); then it
// runs act on the node goroutine, one change at a time. act says what it
// did, for the log ("": nothing).
func (n *Node) alterReplica(g uint64, hosted bool, floor core.VoteFloor, act func(*shard.Server, *multi.Host) (string, error)) error {
	srv, err := n.shardServer()
	if err != nil {
		return err
	}
	if err := n.checkGroup(g); err != nil {
		return err
	}
	n.rmu.Lock()
	defer n.rmu.Unlock()
	if n.replicas.hosts(g) != hosted || !n.replicas.joined(g) {
		rec := replicaRecord{Hosted: slices.Clone(n.replicas.Hosted), Joined: slices.Clone(n.replicas.Joined),
			Floors: maps.Clone(n.replicas.Floors)}
		if rec.Floors == nil {
			rec.Floors = map[uint64]core.VoteFloor{}
		}
		switch {
		case !hosted:
			rec.Hosted = slices.DeleteFunc(rec.Hosted, func(h uint64) bool { return h == g })
			delete(rec.Floors, g)
		case !rec.hosts(g):
			// A replica it holds already (a founder's) keeps its floor,
			// or its lack of one: act creates nothing then.
			rec.Hosted = append(rec.Hosted, g)
			if floor != (core.VoteFloor{}) {
				rec.Floors[g] = floor
			}
		}
		if !rec.joined(g) {
			rec.Joined = append(rec.Joined, g)
		}
		if err := n.saveReplicas(rec); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	var did string
	var aerr error
	if err := srv.Node().Do(ctx, func(h *multi.Host) { did, aerr = act(srv, h) }); err != nil {
		return err
	}
	if aerr == nil && did != "" {
		n.cfg.Logf("membership: %s", did)
	}
	return aerr
}

// GroupChanges is a membership change to propose in one group.
type GroupChanges struct {
	Group   uint64
	Changes []core.ConfChange
}

// ProposeGroup proposes a membership change of one group at the node,
// which must lead it.
func (a *Admin) ProposeGroup(args *GroupChanges, r *ProposeReply) error {
	n := a.node
	srv, err := n.shardServer()
	if err != nil {
		return err
	}
	if err := n.checkGroup(args.Group); err != nil {
		return err
	}
	if err := checkChanges(args.Changes); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	var res node.ProposeResult
	if err := srv.Node().Do(ctx, func(h *multi.Host) { res = h.ProposeConfChanges(multi.GroupID(args.Group), args.Changes) }); err != nil {
		return err
	}
	*r = n.proposed(args.Group, args.Changes, res.Index, res.Err)
	return nil
}
