package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/storage"
)

// Vote floors (core.InitialState.VoteFloor) of nodes that join a running
// cluster with an empty log. A node id can be a member, be removed, and
// join again on an empty data dir; a server removed while it was down
// keeps its old log and configuration, which may name that id, and when
// it is started again it campaigns. An empty log is behind every
// candidate, so without a floor the rejoined node would vote for it, and
// the stale server could win an election in its old configuration beside
// the cluster's real leader. So a node started with -join on an empty log
// votes for no one until the cluster's add gives it a floor: the position
// of the leader, confirmed by a majority, before the change that adds it
// (node.Driver.VoteFloor). A node of many groups gets one per group with
// each replica (CreateReplica).

// joinWithoutFloor makes a joining node start with no floor and the
// cluster's add give none: the tests show what follows. Never set
// otherwise.
var joinWithoutFloor bool

// joinVotesBeforeFloor makes a joining node vote on its log (empty) until
// the add gives it its floor. Test only, as joinWithoutFloor.
var joinVotesBeforeFloor bool

// voteFloorFile keeps the floor a joining single-group node was given, so
// that it holds across restarts until its log passes it.
const voteFloorFile = "vote_floor.json"

// joinFloor is the vote floor a single-group node starts with: the one it
// was given, or, for a node started to join with an empty log, none that
// any candidate reaches (core.NoVotes).
func (n *Node) joinFloor(joined bool, st storage.Storage) (core.VoteFloor, error) {
	if !joined || joinWithoutFloor || joinVotesBeforeFloor {
		return core.VoteFloor{}, nil
	}
	path := filepath.Join(n.cfg.DataDir, voteFloorFile)
	switch b, err := os.ReadFile(path); {
	case err == nil:
		var floor core.VoteFloor
		if err := json.Unmarshal(b, &floor); err != nil {
			return core.VoteFloor{}, fmt.Errorf("%s: %v", path, err)
		}
		if floor == (core.VoteFloor{}) || floor == core.NoVotes {
			// SetVoteFloor saves neither: the file was not written by it.
			return core.VoteFloor{}, fmt.Errorf("%s: holds no leader's position (term %d, index %d): it is damaged — remove it, and \"add %d\" gives the node a floor again", path, floor.Term, floor.Index, n.cfg.ID)
		}
		return floor, nil
	case !errors.Is(err, os.ErrNotExist):
		return core.VoteFloor{}, err
	}
	_, snap, ents, err := st.Load()
	if err != nil {
		return core.VoteFloor{}, err
	}
	if snap != nil || len(ents) > 0 {
		// Its floor is lost: its log may still be behind it (caught up
		// part way), so it must not vote on its log alone.
		n.cfg.Logf("joined, with a log and no %s: this node votes for no one until it is given a vote floor again (\"add %d\" in the REPL does it)", voteFloorFile, n.cfg.ID)
		return core.NoVotes, nil
	}
	n.cfg.Logf("joining with an empty log: this node votes for no one until it is given a vote floor (the cluster's add gives it one)")
	return core.NoVotes, nil
}

// VoteFloor answers, at a node that leads the group (group 0 on a node of
// one group), the vote floor for a server about to be added to it: the
// leader's position confirmed by a majority (node.Driver.VoteFloor).
func (a *Admin) VoteFloor(args *GroupArgs, r *core.VoteFloor) error {
	n := a.node
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if n.cfg.Groups <= 1 {
		if args.Group != 0 {
			return fmt.Errorf("bad request: this node hosts one group (group 0), not group %d", args.Group)
		}
		if a.server == nil {
			return errors.New("this node is still starting")
		}
		f, err := a.server.Node().VoteFloor(ctx)
		*r = f
		return err
	}
	srv, err := n.shardServer()
	if err != nil {
		return err
	}
	if err := n.checkGroup(args.Group); err != nil {
		return err
	}
	*r, err = srv.VoteFloor(ctx, multi.GroupID(args.Group))
	return err
}

// SetVoteFloor gives a single-group node that joins the cluster its vote
// floor, saved before it is used.
func (a *Admin) SetVoteFloor(f *core.VoteFloor, _ *struct{}) error {
	n := a.node
	switch {
	case n.cfg.Groups > 1:
		return errors.New("bad request: a node of many groups gets a vote floor with each replica (CreateReplica)")
	case *f == core.VoteFloor{}:
		return errors.New("bad request: a zero vote floor would let the node vote for stale candidates")
	case a.server == nil:
		return errors.New("this node is still starting")
	}
	if err := writeJSON(filepath.Join(n.cfg.DataDir, voteFloorFile), f); err != nil {
		return fmt.Errorf("saving the vote floor: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := a.server.Node().SetVoteFloor(ctx, *f); err != nil {
		return err
	}
	n.cfg.Logf("vote floor: term %d, index %d (it votes only for candidates at least that far)", f.Term, f.Index)
	return nil
}

// GiveVoteFloor gives member id of a single-group cluster a vote floor if
// it votes for no one (it joined and was never given one: its floor file
// was lost, or it was added by other means than this client), and says
// whether it did. A floor confirmed by the leader is safe to give at any
// time: the node then votes only for candidates at least as far as the
// leader was. Not a member, or one that votes: nothing (given false).
func (c *Cluster) GiveVoteFloor(id int) (given bool, err error) {
	if c.groups > 1 || !slices.Contains(c.IDs(), id) {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(c.callContext(), infoTimeout)
	var info NodeInfo
	err = c.admin(ctx, id, "Info", &struct{}{}, &info)
	cancel()
	if err != nil || !info.Summary.NoVotes {
		return false, nil // one that does not answer is not known to need one
	}
	if err := c.giveFloors([]int{id}); err != nil {
		return false, err
	}
	return true, nil
}

// giveFloors gives the single-group nodes ids, about to be added, the
// leader's position confirmed by a majority as their vote floor (asking
// again, of whichever node leads, until one confirms).
func (c *Cluster) giveFloors(ids []int) error {
	if len(ids) == 0 || joinWithoutFloor {
		return nil
	}
	ctx := c.callContext()
	deadline := time.Now().Add(c.membershipTimeout())
	var floor core.VoteFloor
	var lastErr error
	for {
		if leader, _, ok := c.leaderSummary(); ok {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			lastErr = c.admin(actx, leader, "VoteFloor", &GroupArgs{}, &floor)
			cancel()
			if lastErr == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			if lastErr == nil {
				lastErr = errors.New("no node said it leads")
			}
			return fmt.Errorf("no leader confirmed by a majority gave the vote floor within %v: %w", c.membershipTimeout(), lastErr)
		}
		if c.sleep(ctx) != nil {
			return cluster.ErrInterrupted
		}
	}
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.adminAt(ctx, id, "SetVoteFloor", &floor, &struct{}{})
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}
