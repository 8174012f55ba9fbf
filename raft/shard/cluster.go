// Package shard is a sharded KV on many Raft groups: a cluster of servers
// in one process, each a multinode.Node hosting a replica of every group
// (raft/multi: coalesced heartbeats, quiescence, one shared log per
// server), with a kv.Store per replica. A key belongs to the group its
// FNV-1a hash picks (multi.GroupOfKey); a client has one kv.Client per
// group, so its writes are exactly-once in each group's sessions and its
// reads are linearizable per key (ReadIndex in the key's group).
//
// Cluster implements cluster.Grouped, so the REPL drives it as it drives
// the single-group cluster: faults act on servers, and so on every group
// they host; membership changes and transfers may name one group.
package shard

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/trace"
)

// MaxGroups bounds the groups of a cluster made here (the REPL's); the
// host itself has no limit.
const MaxGroups = 4096

// Config configures a Cluster.
type Config struct {
	// Nodes is the number of servers (1 to cluster.MaxNodes), Groups the
	// number of groups (1 to MaxGroups), each on every server at first.
	Nodes, Groups int
	// DataDir, if set, gives each server one durable shared log for all
	// its groups in DataDir/node-<id>; otherwise each replica has a
	// MemoryStorage that outlives the server's crashes.
	DataDir string
	// Tick is the length of a tick (10 ms); ElectionTicksMin/Max (15, 30)
	// and HeartbeatTicks (5) are in ticks.
	Tick                               time.Duration
	ElectionTicksMin, ElectionTicksMax int
	HeartbeatTicks                     int
	// LivenessTicks: see multi.Config (default the minimum election
	// timeout).
	LivenessTicks int
	// ClientTimeout bounds one client operation, retries included (3 s).
	ClientTimeout time.Duration
	// ChangeTimeout bounds one group's membership change or transfer
	// (default the larger of 10 s and 3 client timeouts).
	ChangeTimeout time.Duration
	// Seed seeds election timeouts and the network's faults.
	Seed int64
	// Tracer, if set, receives every replica's protocol events, tagged
	// with its group, and the faults injected.
	Tracer trace.Tracer
}

// errCrashed is what a call on a crashed server wraps.
var errCrashed = cluster.ErrNodeCrashed

// Cluster is the servers, their network and a client.
type Cluster struct {
	cfg        Config
	net        *network
	began      time.Time
	history    kv.History
	interrupts cluster.Interrupts

	mu      sync.Mutex
	servers map[int]*server
	clients map[multi.GroupID]*kv.Client
	// members are each group's members as last known, for the clients.
	members map[multi.GroupID][]int
	down    bool
	// clientID is where the client's ids in the groups come from: random,
	// so that a recovered log does not take it for an old client.
	clientID uint64

	vmu        sync.Mutex // guards violations, which node goroutines append to
	violations []string
}

var _ cluster.Grouped = (*Cluster)(nil)

// New starts a cluster: every group on every server, all founding voters.
func New(cfg Config) (*Cluster, error) {
	if cfg.Nodes < 1 || cfg.Nodes > cluster.MaxNodes {
		return nil, fmt.Errorf("%w: %d nodes (1 to %d)", cluster.ErrBadNodeCount, cfg.Nodes, cluster.MaxNodes)
	}
	if cfg.Groups < 1 || cfg.Groups > MaxGroups {
		return nil, fmt.Errorf("%d groups: the number of groups must be 1 to %d", cfg.Groups, MaxGroups)
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	if cfg.ElectionTicksMin <= 0 {
		cfg.ElectionTicksMin, cfg.ElectionTicksMax = 15, 30
	}
	if cfg.ElectionTicksMax <= cfg.ElectionTicksMin {
		cfg.ElectionTicksMax = cfg.ElectionTicksMin + 1
	}
	if cfg.HeartbeatTicks <= 0 {
		cfg.HeartbeatTicks = 5
	}
	if cfg.ClientTimeout <= 0 {
		cfg.ClientTimeout = 3 * time.Second
	}
	c := &Cluster{cfg: cfg, net: newNetwork(cfg.Seed), began: time.Now(), servers: map[int]*server{},
		clients: map[multi.GroupID]*kv.Client{}, members: map[multi.GroupID][]int{}, clientID: rand.Uint64() | 1}
	var founders []multi.NodeID
	for i := range cfg.Nodes {
		founders = append(founders, multi.NodeID(i))
	}
	all := func(multi.GroupID) []multi.NodeID { return founders }
	for g := range multi.GroupID(cfg.Groups) {
		c.members[g] = ids(founders)
	}
	for i := range cfg.Nodes {
		s := c.newServer(i)
		for g := range multi.GroupID(cfg.Groups) {
			s.hosted[g] = true
		}
		if err := c.start(s, all); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) newServer(id int) *server {
	s := &server{id: multi.NodeID(id), mem: map[multi.GroupID]*storage.MemoryStorage{}, hosted: map[multi.GroupID]bool{}, floors: map[multi.GroupID]core.VoteFloor{}}
	if c.cfg.DataDir != "" {
		s.dir = filepath.Join(c.cfg.DataDir, "node-"+strconv.Itoa(id))
	}
	c.servers[id] = s
	return s
}

func (c *Cluster) coreConfig(id multi.NodeID) core.CoreConfig {
	return CoreConfig(c.cfg.ElectionTicksMin, c.cfg.ElectionTicksMax, c.cfg.HeartbeatTicks, c.cfg.Seed*7919+int64(id)+1,
		// A broken invariant stops the replica (its driver does), and is
		// reported: it never panics the process.
		func(v core.InvariantViolation) { c.violation(fmt.Sprintf("node %d: %v (the replica stopped)", id, v)) })
}

// CoreConfig is the configuration of a sharded server's replicas: timing
// in ticks, PreVote and CheckQuorum, pipelined appends of bounded size.
func CoreConfig(electionMin, electionMax, heartbeat int, seed int64, onViolation func(core.InvariantViolation)) core.CoreConfig {
	return core.CoreConfig{ElectionTicksMin: electionMin, ElectionTicksMax: electionMax,
		HeartbeatTicks: heartbeat, PreVote: true, CheckQuorum: true, MaxInflight: 8,
		MaxEntriesPerAppend: 64, MaxBytesPerAppend: 1 << 20, SnapshotChunkBytes: 1 << 16,
		Seed: seed, OnViolation: onViolation}
}

// violation records a broken invariant (a bug, which no input may cause).
func (c *Cluster) violation(v string) {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	c.violations = append(c.violations, v)
	c.traceSim(core.Info("SAFETY: %s", v))
}

// Violations lists the invariants replicas broke, if any.
func (c *Cluster) Violations() []string {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	return slices.Clone(c.violations)
}

func ids(nodes []multi.NodeID) []int {
	out := make([]int, len(nodes))
	for i, n := range nodes {
		out[i] = int(n)
	}
	return out
}

// GroupCount is the number of groups; ids are 0 to GroupCount()-1.
func (c *Cluster) GroupCount() int { return c.cfg.Groups }

// GroupOf is the group holding key.
func (c *Cluster) GroupOf(key string) uint64 { return uint64(multi.GroupOfKey(key, c.cfg.Groups)) }

// HasGroup reports whether group g exists.
func (c *Cluster) HasGroup(g uint64) bool { return g < uint64(c.cfg.Groups) }

// IDs lists the servers, in order.
func (c *Cluster) IDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idsLocked()
}

func (c *Cluster) idsLocked() []int {
	out := make([]int, 0, len(c.servers))
	for id := range c.servers {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// running returns a running server's instance, or why there is none.
func (c *Cluster) running(id int) (*Server, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, cluster.ErrClusterDown
	}
	s, ok := c.servers[id]
	switch {
	case !ok:
		return nil, cluster.NoSuchNode(id, c.idsLocked())
	case s.run == nil:
		return nil, fmt.Errorf("%w: node %d", errCrashed, id)
	}
	return s.run, nil
}

// replicas reports every running server's replicas (the groups in only,
// or all of them when only is nil), by server and group.
func (c *Cluster) replicas(only []multi.GroupID) map[int]map[multi.GroupID]Replica {
	out := map[int]map[multi.GroupID]Replica{}
	for id, run := range c.instances() {
		if reps, err := run.Replicas(only); err == nil {
			out[id] = reps
		}
	}
	return out
}

// instances are the running servers' instances, by id.
func (c *Cluster) instances() map[int]*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int]*Server{}
	for id, s := range c.servers {
		if s.run != nil {
			out[id] = s.run
		}
	}
	return out
}

// Groups reports every group, in id order.
func (c *Cluster) Groups() []cluster.GroupStatus { return MergeGroups(c.cfg.Groups, c.replicas(nil)) }

// NodeGroups counts each server's groups.
func (c *Cluster) NodeGroups() []cluster.NodeGroups { return CountGroups(c.IDs(), c.replicas(nil)) }

// Status reports every server, with group 0's role, term and log.
func (c *Cluster) Status() []cluster.NodeStatus {
	st, _ := c.GroupNodes(0)
	return st
}

// GroupNodes reports every server, with group g's role, term and log.
func (c *Cluster) GroupNodes(group uint64) ([]cluster.NodeStatus, error) {
	if !c.HasGroup(group) {
		return nil, c.noSuchGroup(group)
	}
	g := multi.GroupID(group)
	connected := func(id int) bool { return !c.net.isDisconnected(multi.NodeID(id)) }
	return NodesOfGroup(c.IDs(), c.replicas([]multi.GroupID{g}), g, connected, c.groupMembers(g)), nil
}

// Logs reports group 0's log on every server.
func (c *Cluster) Logs(limit int) []cluster.NodeLog {
	logs, _ := c.GroupLogs(0, limit)
	return logs
}

// GroupLogs reports group g's log on every server that hosts it.
func (c *Cluster) GroupLogs(g uint64, limit int) ([]cluster.NodeLog, error) {
	if !c.HasGroup(g) {
		return nil, c.noSuchGroup(g)
	}
	runs := c.instances()
	var out []cluster.NodeLog
	for _, id := range c.IDs() {
		run := runs[id]
		if run == nil {
			out = append(out, cluster.NodeLog{ID: id})
			continue
		}
		if l, found, err := run.GroupLog(multi.GroupID(g), limit); err == nil && found {
			out = append(out, l)
		}
	}
	return out, nil
}

func (c *Cluster) noSuchGroup(g uint64) error {
	return fmt.Errorf("no such group: group %d does not exist (groups 0–%d)", g, c.cfg.Groups-1)
}

// Leader is group 0's leader.
func (c *Cluster) Leader() (int, uint64) { return c.GroupLeader(0) }

// GroupLeader is group g's running, connected leader.
func (c *Cluster) GroupLeader(g uint64) (int, uint64) {
	if !c.HasGroup(g) {
		return core.None, 0
	}
	l, r := LeaderOf(c.replicas([]multi.GroupID{multi.GroupID(g)}), multi.GroupID(g))
	if l != core.None && c.net.isDisconnected(multi.NodeID(l)) {
		return core.None, 0
	}
	return l, r.Summary.Term
}

// CheckUniqueLeader waits until group 0 has exactly one running,
// connected leader.
func (c *Cluster) CheckUniqueLeader(timeout time.Duration) (int, uint64, error) {
	var leader int
	var term uint64
	err := cluster.Poll(c.interrupts.Context(), timeout, c.cfg.Tick, func() (bool, error) {
		reps := c.replicas([]multi.GroupID{0})
		n := 0
		terms := map[uint64]int{}
		for id, rs := range reps {
			r, ok := rs[0]
			if !ok || r.Summary.Role != core.Leader || c.net.isDisconnected(multi.NodeID(id)) {
				continue
			}
			if terms[r.Summary.Term]++; terms[r.Summary.Term] > 1 {
				return false, fmt.Errorf("%w: term %d", cluster.ErrTwoLeaders, r.Summary.Term)
			}
			n++
			leader, term = id, r.Summary.Term
		}
		return n == 1, nil
	})
	if err != nil {
		if errors.Is(err, cluster.ErrTimeout) {
			return core.None, 0, fmt.Errorf("%w within %v", cluster.ErrNoLeader, timeout)
		}
		return core.None, 0, err
	}
	return leader, term, nil
}

// WaitLeaders waits until every group has a leader, and returns how many
// each server leads.
func (c *Cluster) WaitLeaders(timeout time.Duration) (map[int]int, error) {
	var led map[int]int
	err := cluster.Poll(c.interrupts.Context(), timeout, c.cfg.Tick, func() (bool, error) {
		reps := c.replicas(nil)
		led = map[int]int{}
		for g := range multi.GroupID(c.cfg.Groups) {
			l, _ := LeaderOf(reps, g)
			if l == core.None || c.net.isDisconnected(multi.NodeID(l)) {
				return false, nil
			}
			led[l]++
		}
		return true, nil
	})
	if errors.Is(err, cluster.ErrTimeout) {
		var missing []multi.GroupID
		reps := c.replicas(nil)
		for g := range multi.GroupID(c.cfg.Groups) {
			if l, _ := LeaderOf(reps, g); l == core.None {
				missing = append(missing, g)
			}
		}
		return nil, fmt.Errorf("%w: %d of %d groups have none after %v (%s)", cluster.ErrNoLeader, len(missing), c.cfg.Groups, timeout, GroupList(missing))
	}
	return led, err
}

// groupMembers are group g's members as last known.
func (c *Cluster) groupMembers(g multi.GroupID) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.members[g])
}

// groupView is one group as a kv.Client reaches it.
type groupView struct {
	c *Cluster
	g multi.GroupID
}

func (v groupView) IDs() []int { return v.c.groupMembers(v.g) }

func (v groupView) Endpoint(id int) (kv.Endpoint, error) {
	run, err := v.c.running(id)
	if err != nil {
		return nil, err
	}
	return endpoint{run: run, g: v.g}, nil
}

// client is the cluster's client of group g.
func (c *Cluster) client(g multi.GroupID) *kv.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.clients[g]; cl != nil {
		return cl
	}
	// A client id of its own in each group (its sessions are per group's
	// store anyway), so that a (client, sequence number) pair names one
	// write in the whole history.
	cl := kv.NewClient(groupView{c, g}, kv.ClientConfig{ID: (c.clientID ^ (uint64(g)+1)*0x9e3779b97f4a7c15) | 1,
		Timeout: c.cfg.ClientTimeout, History: &c.history, Since: func() time.Duration { return time.Since(c.began) }})
	c.clients[g] = cl
	return cl
}

// Do runs one client operation in key's group: through its leader, which
// the client finds, when node is core.None; at that node only otherwise.
func (c *Cluster) Do(op kv.Op, key, value string, node int) (kv.Result, error) {
	ctx := c.interrupts.Context()
	g := multi.GroupOfKey(key, c.cfg.Groups)
	if node != core.None {
		if _, err := c.running(node); err != nil {
			return kv.Result{}, err
		}
		return c.client(g).On(ctx, node, op, key, value)
	}
	return c.client(g).Do(ctx, op, key, value)
}

// ReadStale reads key from node's replica of its group as it stands.
func (c *Cluster) ReadStale(key string, node int) (cluster.StaleRead, error) {
	run, err := c.running(node)
	if err != nil {
		return cluster.StaleRead{}, err
	}
	return run.ReadStale(multi.GroupOfKey(key, c.cfg.Groups), key)
}

// History is every client operation so far.
func (c *Cluster) History() []kv.Operation { return c.history.Operations() }

// CrashPeer stops a server: every replica it hosts goes down at once.
func (c *Cluster) CrashPeer(id int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.servers[id]
	switch {
	case c.down:
		return cluster.ErrClusterDown
	case !ok:
		return cluster.NoSuchNode(id, c.idsLocked())
	case s.run == nil:
		return fmt.Errorf("%w: node %d is already crashed", errCrashed, id)
	}
	c.stop(s)
	c.traceNode(id, core.Fault(nil, "crash"))
	return nil
}

// RestartPeer starts a crashed server again from its storage.
func (c *Cluster) RestartPeer(id int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.servers[id]
	switch {
	case c.down:
		return cluster.ErrClusterDown
	case !ok:
		return cluster.NoSuchNode(id, c.idsLocked())
	case s.run != nil:
		return fmt.Errorf("%w: node %d is running (crash it first)", cluster.ErrNodeAlive, id)
	}
	// Every replica it hosts has state in its storage: no founders needed.
	if err := c.start(s, func(multi.GroupID) []multi.NodeID { return nil }); err != nil {
		return err
	}
	c.traceNode(id, core.Fault(nil, "restart"))
	return nil
}

func (c *Cluster) traceNode(id int, e core.Event) {
	if c.cfg.Tracer != nil {
		c.cfg.Tracer.Trace(strconv.Itoa(id), e)
	}
}

func (c *Cluster) traceSim(e core.Event) {
	if c.cfg.Tracer != nil {
		c.cfg.Tracer.Trace(trace.SimNode, e)
	}
}

func (c *Cluster) exists(id int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.servers[id]; !ok {
		return cluster.NoSuchNode(id, c.idsLocked())
	}
	return nil
}

// DisconnectPeer cuts a server off from every other.
func (c *Cluster) DisconnectPeer(id int) error {
	if err := c.exists(id); err != nil {
		return err
	}
	if c.net.isDisconnected(multi.NodeID(id)) {
		return fmt.Errorf("node %d is already disconnected", id)
	}
	c.net.setDisconnected(multi.NodeID(id), true)
	c.traceNode(id, core.Fault(nil, "disconnect"))
	return nil
}

// ReconnectPeer restores a disconnected server's links.
func (c *Cluster) ReconnectPeer(id int) error {
	if err := c.exists(id); err != nil {
		return err
	}
	if !c.net.isDisconnected(multi.NodeID(id)) {
		return fmt.Errorf("node %d is not disconnected", id)
	}
	c.net.setDisconnected(multi.NodeID(id), false)
	c.traceNode(id, core.Fault(nil, "reconnect"))
	return nil
}

// Partition splits the servers into groups that do not talk.
func (c *Cluster) Partition(groups ...[]int) error {
	desc, err := cluster.CheckPartition(groups, c.IDs())
	if err != nil {
		return err
	}
	c.net.setPartition(groups)
	c.traceSim(core.Fault(groups, "partition %s", desc))
	return nil
}

// Heal undoes the partition and every cut link.
func (c *Cluster) Heal() {
	c.net.heal()
	c.traceSim(core.Fault(nil, "heal"))
}

// CutLink loses what from sends to.
func (c *Cluster) CutLink(from, to int) error {
	if err := c.link(from, to); err != nil {
		return err
	}
	c.net.setCut(from, to, true)
	c.traceSim(core.Fault(nil, "cut %d → %d", from, to))
	return nil
}

// RestoreLink undoes CutLink.
func (c *Cluster) RestoreLink(from, to int) error {
	if err := c.link(from, to); err != nil {
		return err
	}
	c.net.setCut(from, to, false)
	c.traceSim(core.Fault(nil, "restore %d → %d", from, to))
	return nil
}

func (c *Cluster) link(from, to int) error {
	if err := c.exists(from); err != nil {
		return err
	}
	if err := c.exists(to); err != nil {
		return err
	}
	if from == to {
		return fmt.Errorf("a link joins two nodes: %d and %d are one", from, to)
	}
	return nil
}

// CutLinks lists the links cut one way.
func (c *Cluster) CutLinks() [][2]int { return c.net.cutLinks() }

// SetDropRate makes every batch (all groups' messages to one server in
// one round) lost with probability p.
func (c *Cluster) SetDropRate(p float64) error {
	if p < 0 || p > 1 {
		return fmt.Errorf("drop rate %v is not between 0 and 1", p)
	}
	_, d := c.net.settings()
	c.net.set(p, d)
	c.traceSim(core.Fault(nil, "drop rate %.2f", p))
	return nil
}

// SetMaxDelay delays every batch by a random time below d.
func (c *Cluster) SetMaxDelay(d time.Duration) error {
	if d < 0 || d > 10*time.Second {
		return fmt.Errorf("delay %v is not between 0 and 10s", d)
	}
	p, _ := c.net.settings()
	c.net.set(p, d)
	c.traceSim(core.Fault(nil, "delay %v", d))
	return nil
}

// NetworkSettings reports the loss and delay.
func (c *Cluster) NetworkSettings() (float64, time.Duration) { return c.net.settings() }

// Interrupt cuts the waiting calls short.
func (c *Cluster) Interrupt() { c.interrupts.Interrupt() }

// Shutdown stops every server.
func (c *Cluster) Shutdown() {
	c.mu.Lock()
	c.down = true
	for _, s := range c.servers {
		c.stop(s)
	}
	c.mu.Unlock()
	c.interrupts.Interrupt()
	c.net.close()
}
