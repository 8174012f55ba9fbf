package remote

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/multi"
)

// AdminService is the name of the admin service on a node's listener.
const AdminService = "Admin"

// adminTimeout bounds what an admin call waits for at the node.
const adminTimeout = 10 * time.Second

// Admin is the service through which the REPL (and the launcher) looks
// at a node and acts on it: its status and log, a stale read, membership
// proposals, leadership transfer, snapshots, the address book and the
// network faults its transport applies. It decides nothing: the calls map
// onto the node's own operations, and Cluster strings them together.
type Admin struct {
	node *Node
	// server is the node's: the service gets it from the listener's start,
	// before Node.server is set, and may be called that early.
	server *kv.Server
}

// NodeInfo is what Admin.Info says about a node.
type NodeInfo struct {
	ID  int
	Pid int
	// Addr is the address the node was told to listen on (the listener
	// may not be known yet while the node starts).
	Addr    string
	Summary core.Summary
	Applied uint64
	Keys    int
	// Peers is the node's address book.
	Peers map[int]string
	// Faults are the network faults its transport applies.
	Faults Faults
	// Groups is the number of groups of a node of many (0: one); then
	// Summary and Applied are its replica of group 0's, and Replicas, Led
	// and Quiet count its replicas, those that lead and those that are
	// quiet.
	Groups               int `json:",omitempty"`
	Replicas, Led, Quiet int `json:",omitempty"`
}

// Faults is the network fault state a node's transport applies to the
// messages it sends (and so to their replies): the same state on every
// node makes a disconnect or a partition cut both ways.
type Faults struct {
	Disconnected []int    `json:",omitempty"`
	Cut          [][2]int `json:",omitempty"` // one-way: from → to
	Groups       [][]int  `json:",omitempty"` // a partition
	DropRate     float64  `json:",omitempty"`
	MaxDelay     time.Duration
}

// ConfChanges is a membership change to propose: one server's, or
// several in one step (a joint configuration, Raft paper §6).
type ConfChanges struct {
	Changes []core.ConfChange
}

// ProposeReply says how a proposal went: Refused for a change that can
// never be made (cluster.Refused), else an error to retry on.
type ProposeReply struct {
	Index   uint64
	Refused bool
	Error   string
}

// Peer is an address book entry.
type Peer struct {
	ID   int
	Addr string
}

// Info reports the node.
func (a *Admin) Info(_ *struct{}, info *NodeInfo) error {
	n := a.node
	n.mu.Lock()
	faults := n.faultState
	n.mu.Unlock()
	*info = NodeInfo{ID: n.cfg.ID, Pid: os.Getpid(), Addr: n.cfg.Listen, Peers: n.Book(), Faults: faults}
	if n.cfg.Groups > 1 {
		return a.groupsInfo(info)
	}
	srv := a.server
	info.Summary, info.Applied, info.Keys = srv.Node().Summary(), srv.Applied(), srv.KVLen()
	return nil
}

// Log reports the latest limit entries of the node's log.
func (a *Admin) Log(limit *int, l *cluster.NodeLog) error {
	if a.node.cfg.Groups > 1 {
		return a.GroupLog(&GroupLogArgs{Group: 0, Limit: *limit}, l)
	}
	srv := a.server
	applied := srv.Applied()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	return srv.Node().Inspect(ctx, func(c *core.Core) { *l = cluster.LogOf(a.node.cfg.ID, c, applied, *limit) })
}

// ReadStale reads a key from the node's state machine as it stands.
func (a *Admin) ReadStale(key *string, r *cluster.StaleRead) error {
	if n := a.node; n.cfg.Groups > 1 {
		srv, err := n.shardServer()
		if err == nil {
			*r, err = srv.ReadStale(multi.GroupOfKey(*key, n.cfg.Groups), *key)
		}
		return err
	}
	srv := a.server
	sum := srv.Node().Summary()
	res, applied, err := srv.ReadLocal(*key)
	if err != nil {
		return err
	}
	v, ok := res.(kv.Result)
	if !ok {
		return fmt.Errorf("the state machine answered %T, not a value", res)
	}
	*r = cluster.StaleRead{Value: v.Value, Found: v.Found, Applied: applied, Role: sum.Role, Term: sum.Term}
	return nil
}

// Propose proposes a membership change at the node (which must lead;
// group 0's leader on a node of many groups: see ProposeGroup).
func (a *Admin) Propose(c *ConfChanges, r *ProposeReply) error {
	if a.node.cfg.Groups > 1 {
		return a.ProposeGroup(&GroupChanges{Group: 0, Changes: c.Changes}, r)
	}
	if err := checkChanges(c.Changes); err != nil {
		return err
	}
	index, err := a.server.Node().ProposeConfChanges(c.Changes)
	*r = a.node.proposed(0, c.Changes, index, err)
	return nil
}

// checkChanges checks a membership change a client sent.
func checkChanges(changes []core.ConfChange) error {
	if len(changes) == 0 || len(changes) > 2*cluster.MaxNodes {
		return fmt.Errorf("a membership change names 1 to %d servers, not %d", 2*cluster.MaxNodes, len(changes))
	}
	for _, ch := range changes {
		switch ch.Type {
		case core.AddLearner, core.PromoteLearner, core.RemoveServer, core.AddVoter, core.AddStagedLearner:
		default:
			return fmt.Errorf("unknown membership change %d", ch.Type)
		}
		if ch.ID < 0 || ch.ID > MaxNodeID {
			return fmt.Errorf("node id %d is out of range (0–%d)", ch.ID, MaxNodeID)
		}
	}
	return nil
}

// proposed logs how a proposal of changes in group g went, and says it
// in a reply.
func (n *Node) proposed(g uint64, changes []core.ConfChange, index uint64, err error) ProposeReply {
	what := cluster.Change{Changes: changes}.String()
	if n.cfg.Groups > 1 {
		what = fmt.Sprintf("group %d: %s", g, what)
	}
	r := ProposeReply{Index: index}
	if err != nil {
		r.Refused, r.Error = cluster.Refused(err), err.Error()
		n.cfg.Logf("membership: %s not proposed here: %v", what, err)
	} else {
		n.cfg.Logf("membership: proposed %s at index %d", what, index)
	}
	return r
}

// Transfer hands the node's leadership to target (thesis §3.10).
func (a *Admin) Transfer(target *int, _ *struct{}) error {
	if a.node.cfg.Groups > 1 {
		return a.TransferGroup(&GroupTransfer{Group: 0, Target: *target}, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	return a.server.Node().TransferLeadership(ctx, *target)
}

// Snapshot makes the node snapshot its state machine now.
func (a *Admin) Snapshot(_ *struct{}, index *uint64) error {
	if n := a.node; n.cfg.Groups > 1 {
		srv, err := n.shardServer()
		if err == nil {
			*index, err = srv.Snapshot() // how many groups it compacted
		}
		return err
	}
	i, err := a.server.SnapshotNow()
	*index = i
	if errors.Is(err, core.ErrSnapshotTooOld) {
		return fmt.Errorf("node %d has applied nothing since its last snapshot", a.node.cfg.ID)
	}
	return err
}

// SetPeer adds a node to the address book, or moves it.
func (a *Admin) SetPeer(p *Peer, _ *struct{}) error {
	if p.ID < 0 || p.ID > MaxNodeID {
		return fmt.Errorf("node id %d is out of range (0–%d)", p.ID, MaxNodeID)
	}
	if _, _, err := splitAddr(p.Addr); err != nil {
		return err
	}
	if err := a.node.setPeer(p.ID, p.Addr); err != nil {
		return err
	}
	a.node.cfg.Logf("address book: node %d at %s", p.ID, p.Addr)
	return nil
}

// SetFaults replaces the network faults the node's transport applies.
func (a *Admin) SetFaults(f *Faults, _ *struct{}) error {
	n := a.node
	if err := n.applyFaults(*f); err != nil {
		return err
	}
	n.cfg.Logf("network faults now: %s", f)
	return nil
}

// applyFaults sets the transport's fault model to f.
func (n *Node) applyFaults(f Faults) error {
	if f.DropRate < 0 || f.DropRate > 1 || f.MaxDelay < 0 || f.MaxDelay > time.Minute {
		return fmt.Errorf("bad network settings: drop %v, delay %v", f.DropRate, f.MaxDelay)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.faults
	for _, id := range n.faultState.Disconnected {
		m.Reconnect(id)
	}
	m.Heal()
	for _, id := range f.Disconnected {
		m.Disconnect(id)
	}
	for _, l := range f.Cut {
		m.Cut(l[0], l[1])
	}
	if len(f.Groups) > 0 {
		m.Partition(f.Groups...)
	}
	if err := m.SetDropRate(f.DropRate); err != nil {
		return err
	}
	if err := m.SetMaxDelay(f.MaxDelay); err != nil {
		return err
	}
	n.faultState = f
	return nil
}

// String describes the faults in a few words.
func (f *Faults) String() string {
	if len(f.Disconnected)+len(f.Cut)+len(f.Groups) == 0 && f.DropRate == 0 && f.MaxDelay == 0 {
		return "none"
	}
	s := ""
	if len(f.Disconnected) > 0 {
		s += fmt.Sprintf("disconnected %v; ", slices.Sorted(slices.Values(f.Disconnected)))
	}
	if len(f.Cut) > 0 {
		s += fmt.Sprintf("cut links %v; ", f.Cut)
	}
	if len(f.Groups) > 0 {
		s += fmt.Sprintf("partition %v; ", f.Groups)
	}
	return s + fmt.Sprintf("drop %.0f%%, delay up to %v", 100*f.DropRate, f.MaxDelay)
}
