package raft

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/node"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/trace"
	"raft-consensus/raft/transport"
)

// MaxNodes is the largest cluster the simulator creates.
const MaxNodes = cluster.MaxNodes

// ClusterSimulator is a cluster.Cluster on the wall clock.
var _ cluster.Cluster = (*ClusterSimulator)(nil)

// SimConfig configures a ClusterSimulator.
type SimConfig struct {
	// Nodes is the number of servers, 1 to MaxNodes; ids are 0..Nodes-1.
	Nodes int
	// DataDir, if set, gives each server durable storage in DataDir/node-<id>;
	// otherwise each server has a MemoryStorage that outlives its crashes.
	DataDir string
	// DiskNoSync skips fsync in durable storage (benchmarks only).
	DiskNoSync bool
	// Tracer receives the trace of every server and every injected fault.
	Tracer trace.Tracer
	// ClientTimeout bounds one client operation, retries included (3 s).
	ClientTimeout time.Duration

	ElectionTimeoutMin time.Duration // default 150 ms
	ElectionTimeoutMax time.Duration // default 300 ms
	HeartbeatInterval  time.Duration // default 50 ms
	TickInterval       time.Duration // default 10 ms
	DisablePreVote     bool
	DisableCheckQuorum bool
	MaxInflight        int
	// Pipeline is how many RPCs a server may have in flight to one peer
	// (default node.DefaultPipeline; 1: one at a time), PipelineAfter how
	// long the latest must wait for its reply before another follows it.
	Pipeline      int
	PipelineAfter time.Duration
	// LeaderSyncGap is the leader's log writer's rest between writes, with
	// a DataDir (default node.DefaultLeaderSyncGap; negative: none).
	LeaderSyncGap time.Duration

	// SnapshotThreshold makes each state machine snapshot every that many
	// applied entries, SnapshotThresholdBytes every that many bytes of
	// applied commands (0: never).
	SnapshotThreshold      uint64
	SnapshotThresholdBytes uint64
	// SnapshotLogRatio holds a snapshot back until the log since the last
	// one is this many times its size (kv.HostConfig.SnapshotLogRatio).
	SnapshotLogRatio float64
	// SnapshotChunkBytes is the size of one InstallSnapshot chunk (64 KiB).
	SnapshotChunkBytes int
	// StateMachine, if set, makes each server's state machine (default: a
	// KV Store). The simulator's clients speak KV: a replacement should
	// wrap a kv.Store.
	StateMachine func(id int) kv.StateMachine
	// RecordApplied keeps every entry each server applies, for the Check
	// helpers and the state machine safety check.
	RecordApplied bool
	// NoHistory keeps no record of client operations (History is empty):
	// for long runs whose memory must stay bounded.
	NoHistory bool
	// Seed seeds election timeouts, network faults and client ids.
	Seed int64
}

// ClusterSimulator runs a cluster of Servers in one process, over TCP on
// 127.0.0.1, and injects faults: disconnects, partitions, crashes, message
// drops and delays, membership changes.
type ClusterSimulator struct {
	cfg    SimConfig
	faults *transport.NetworkFaults
	start  time.Time

	mu      sync.Mutex
	nodes   map[int]*simNode
	rand    *rand.Rand
	client  *kv.Client // the default client of Set/Get/Delete
	clients int        // clients created, to number them in traces
	history *kv.History
	closed  bool

	appliedMu  sync.Mutex
	appliedAt  map[uint64]appliedEntry // the first command applied at each index, by anyone
	violations []string
	recovered  string // what was recovered from DataDir

	// interrupts: what Interrupt cancels.
	interrupts cluster.Interrupts
}

type simNode struct {
	id      int
	server  *kv.Server              // nil while crashed or removed
	tcp     *transport.TCPTransport // the server's, to tell it where peers moved
	storage storage.Storage
	addr    string
	removed bool
	// member: the server has been in a committed configuration (a server
	// being added is not, until it is).
	member  bool
	applied []node.CommitEntry // this incarnation's, if RecordApplied
}

type appliedEntry struct {
	term uint64
	data string
	by   int
}

// Errors of the simulator: those of every cluster.Cluster.
var (
	ErrNoSuchNode   = cluster.ErrNoSuchNode
	ErrNodeCrashed  = cluster.ErrNodeCrashed
	ErrNodeAlive    = cluster.ErrNodeAlive
	ErrClusterDown  = cluster.ErrClusterDown
	ErrTimeout      = cluster.ErrTimeout
	ErrNoLeader     = cluster.ErrNoLeader
	ErrTwoLeaders   = cluster.ErrTwoLeaders
	ErrBadNodeCount = cluster.ErrBadNodeCount
)

// NewClusterSimulator starts a cluster of cfg.Nodes servers.
func NewClusterSimulator(cfg SimConfig) (*ClusterSimulator, error) {
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("%w: %d (a cluster has 1 to %d nodes)", ErrBadNodeCount, cfg.Nodes, MaxNodes)
	}
	if cfg.ClientTimeout == 0 {
		cfg.ClientTimeout = 3 * time.Second
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	s := &ClusterSimulator{
		cfg:       cfg,
		faults:    transport.NewNetworkFaults(cfg.Seed),
		start:     time.Now(),
		nodes:     map[int]*simNode{},
		rand:      rand.New(rand.NewSource(cfg.Seed)),
		history:   &kv.History{},
		appliedAt: map[uint64]appliedEntry{},
	}
	members := make([]int, cfg.Nodes)
	for i := range members {
		members[i] = i
	}
	boot := members
	if cfg.DataDir != "" {
		// A data directory that holds a cluster is recovered, whatever
		// cfg.Nodes says: its stored configuration says who the members are.
		rec, err := readDataDir(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		if len(rec.found) > 0 {
			members, boot, s.recovered = rec.members, nil, rec.note(cfg.DataDir)
		}
	}
	for _, id := range members {
		st, err := s.openStorage(id, false)
		if err != nil {
			s.Shutdown()
			return nil, err
		}
		s.nodes[id] = &simNode{id: id, storage: st, addr: "127.0.0.1:0", member: true}
	}
	for _, id := range members {
		if err := s.startNode(s.nodes[id], boot); err != nil {
			s.Shutdown()
			return nil, err
		}
	}
	s.client = s.NewClient()
	return s, nil
}

// NewClient returns a client of the cluster with a fresh client id.
func (s *ClusterSimulator) NewClient() *kv.Client {
	s.mu.Lock()
	// Random, so that a cluster recovered from a data directory does not
	// mistake a new client for an old one with the same id.
	id := uint64(s.rand.Int63()) | 1
	s.clients++
	num := s.clients
	s.mu.Unlock()
	cfg := kv.ClientConfig{
		ID: id, Num: num, Timeout: s.cfg.ClientTimeout,
		AttemptTimeout: 2 * s.electionTimeoutMax(), Pause: s.heartbeat(),
		Since: s.sinceStart, Tracer: s.cfg.Tracer,
	}
	if !s.cfg.NoHistory {
		cfg.History = s.history
	}
	return kv.NewClient(s, cfg)
}

func (s *ClusterSimulator) heartbeat() time.Duration {
	if s.cfg.HeartbeatInterval > 0 {
		return s.cfg.HeartbeatInterval
	}
	return 50 * time.Millisecond
}

func (s *ClusterSimulator) sinceStart() time.Duration { return time.Since(s.start) }

// Recovered says what the cluster recovered from its data directory ("" if
// it started afresh).
func (s *ClusterSimulator) Recovered() string { return s.recovered }

func (s *ClusterSimulator) openStorage(id int, fresh bool) (storage.Storage, error) {
	if s.cfg.DataDir == "" {
		return storage.NewMemoryStorage(), nil
	}
	dir := s.nodeDir(id)
	if fresh {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	return storage.OpenDiskStorage(dir, storage.DiskOptions{NoSync: s.cfg.DiskNoSync})
}

// nodeDir is where a server's durable storage lives, with DataDir.
func (s *ClusterSimulator) nodeDir(id int) string {
	return filepath.Join(s.cfg.DataDir, "node-"+strconv.Itoa(id))
}

// startNode starts (or restarts) a server from its storage. members is
// the bootstrap configuration (nil for a server joining later).
func (s *ClusterSimulator) startNode(n *simNode, members []int) error {
	tcp := transport.NewTCPTransport(n.id)
	for id, other := range s.nodes {
		if id != n.id && other.addr != "" {
			tcp.SetAddr(id, other.addr)
		}
	}
	cfg := kv.ServerConfig{
		Node: node.Config{
			ID: n.id, Members: members, Storage: n.storage, Tracer: s.cfg.Tracer,
			ElectionTimeoutMin: s.cfg.ElectionTimeoutMin, ElectionTimeoutMax: s.cfg.ElectionTimeoutMax,
			HeartbeatInterval: s.cfg.HeartbeatInterval, TickInterval: s.cfg.TickInterval,
			DisablePreVote: s.cfg.DisablePreVote, DisableCheckQuorum: s.cfg.DisableCheckQuorum,
			MaxInflight: s.cfg.MaxInflight, Pipeline: s.cfg.Pipeline, PipelineAfter: s.cfg.PipelineAfter, SnapshotChunkBytes: s.cfg.SnapshotChunkBytes,
			AsyncLeaderWrites: s.cfg.DataDir != "", LeaderSyncGap: s.cfg.LeaderSyncGap,
			OnViolation: s.recordViolation,
			Seed:        s.cfg.Seed*31 + int64(n.id) + time.Now().UnixNano(),
		},
		Addr:              n.addr,
		Transport:         transport.WithFaults(tcp, s.faults),
		SnapshotThreshold: s.cfg.SnapshotThreshold, SnapshotThresholdBytes: s.cfg.SnapshotThresholdBytes,
		SnapshotLogRatio: s.cfg.SnapshotLogRatio,
		OnViolation:      s.recordViolation,
	}
	if s.cfg.StateMachine != nil {
		cfg.StateMachine = s.cfg.StateMachine(n.id)
	}
	if s.cfg.RecordApplied {
		n.applied = nil
		cfg.OnApply = func(e node.CommitEntry) { s.recordApplied(n, e) }
	}
	srv, err := kv.StartServer(cfg)
	if err != nil && n.addr != "127.0.0.1:0" {
		// The old port was taken meanwhile: take another and tell everyone.
		cfg.Addr = "127.0.0.1:0"
		srv, err = kv.StartServer(cfg)
	}
	if err != nil {
		tcp.Close()
		return fmt.Errorf("starting node %d: %w", n.id, err)
	}
	n.server, n.tcp = srv, tcp
	if n.addr != srv.Addr() {
		n.addr = srv.Addr()
		for id, other := range s.nodes {
			if id != n.id && other.server != nil {
				other.tcp.SetAddr(n.id, n.addr)
			}
		}
	}
	return nil
}

func (s *ClusterSimulator) recordApplied(n *simNode, e node.CommitEntry) {
	s.appliedMu.Lock()
	defer s.appliedMu.Unlock()
	if e.Snapshot != nil {
		n.applied = append(n.applied, e)
		return
	}
	n.applied = append(n.applied, e)
	if e.Type != core.EntryNormal {
		return
	}
	prev, ok := s.appliedAt[e.Index]
	if !ok {
		s.appliedAt[e.Index] = appliedEntry{term: e.Term, data: string(e.Command), by: n.id}
		return
	}
	if prev.term != e.Term || prev.data != string(e.Command) {
		v := fmt.Sprintf("state machine safety: node %d applied %q (term %d) at index %d, node %d applied %q (term %d)",
			n.id, e.Command, e.Term, e.Index, prev.by, prev.data, prev.term)
		s.violations = append(s.violations, v)
		s.traceSim(core.Event{Kind: core.EventSafety, Peer: core.None, Detail: v})
	}
}

// recordViolation keeps a broken invariant for Violations; the node that
// broke it stops.
func (s *ClusterSimulator) recordViolation(v core.InvariantViolation) {
	s.appliedMu.Lock()
	defer s.appliedMu.Unlock()
	s.violations = append(s.violations, v.Error())
}

// Violations lists the safety violations seen: broken invariants, and
// with RecordApplied, servers that applied different commands at an index.
func (s *ClusterSimulator) Violations() []string {
	s.appliedMu.Lock()
	defer s.appliedMu.Unlock()
	return slices.Clone(s.violations)
}

func (s *ClusterSimulator) traceNode(id int, e core.Event) {
	if s.cfg.Tracer != nil {
		s.cfg.Tracer.Trace(strconv.Itoa(id), e)
	}
}

func (s *ClusterSimulator) traceSim(e core.Event) {
	if s.cfg.Tracer != nil {
		s.cfg.Tracer.Trace(trace.SimNode, e)
	}
}

// node returns a node by id, or an error naming the valid ids.
func (s *ClusterSimulator) nodeLocked(id int) (*simNode, error) {
	if s.closed {
		return nil, ErrClusterDown
	}
	n, ok := s.nodes[id]
	if !ok || n.removed {
		return nil, cluster.NoSuchNode(id, s.memberIDsLocked())
	}
	return n, nil
}

func (s *ClusterSimulator) memberIDsLocked() []int {
	var ids []int
	for id, n := range s.nodes {
		if !n.removed {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// IDs lists the ids of the servers (crashed ones included, removed ones not).
func (s *ClusterSimulator) IDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memberIDsLocked()
}

// Server returns a running server, or an error.
func (s *ClusterSimulator) Server(id int) (*kv.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.nodeLocked(id)
	if err != nil {
		return nil, err
	}
	if n.server == nil {
		return nil, fmt.Errorf("%w: node %d (restart it first)", ErrNodeCrashed, id)
	}
	return n.server, nil
}

// Endpoint returns a running server, for clients.
func (s *ClusterSimulator) Endpoint(id int) (kv.Endpoint, error) {
	srv, err := s.Server(id)
	if err != nil {
		return nil, err // not a nil *Server in an interface
	}
	return srv, nil
}

// DisconnectPeer cuts every link between id and the others.
func (s *ClusterSimulator) DisconnectPeer(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.nodeLocked(id); err != nil {
		return err
	}
	if err := s.faults.DisconnectChecked(id); err != nil {
		return err
	}
	s.traceNode(id, core.Fault(nil, "disconnect"))
	return nil
}

// ReconnectPeer restores id's links.
func (s *ClusterSimulator) ReconnectPeer(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.nodeLocked(id); err != nil {
		return err
	}
	if err := s.faults.ReconnectChecked(id); err != nil {
		return err
	}
	s.traceNode(id, core.Fault(nil, "reconnect"))
	return nil
}

// Partition splits the cluster into groups that only talk among
// themselves. Every server must be in a group; a server may be in several,
// which makes a bridge ("0 1 2 | 2 3 4": 2 talks to both halves, which do
// not talk to each other) or a ring.
func (s *ClusterSimulator) Partition(groups ...[]int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClusterDown
	}
	desc, err := cluster.CheckPartition(groups, s.memberIDsLocked())
	if err != nil {
		return err
	}
	s.faults.Partition(groups...)
	s.traceSim(core.Fault(groups, "partition %s", desc))
	return nil
}

// Heal removes the partition and every cut link (disconnected servers
// stay disconnected).
func (s *ClusterSimulator) Heal() {
	s.faults.Heal()
	s.traceSim(core.Fault(nil, "heal"))
}

// CutLink cuts the link from → to in that direction only: from's messages
// to to are lost, and so are from's replies to to's requests.
func (s *ClusterSimulator) CutLink(from, to int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range []int{from, to} {
		if _, err := s.nodeLocked(id); err != nil {
			return err
		}
	}
	if err := s.faults.CutChecked(from, to); err != nil {
		return err
	}
	s.traceSim(core.Fault(nil, "cut %d → %d", from, to))
	return nil
}

// RestoreLink restores a link cut by CutLink.
func (s *ClusterSimulator) RestoreLink(from, to int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.faults.UncutChecked(from, to); err != nil {
		return err
	}
	s.traceSim(core.Fault(nil, "restore %d → %d", from, to))
	return nil
}

// CutLinks lists the links cut one way, in order.
func (s *ClusterSimulator) CutLinks() [][2]int { return s.faults.CutLinks() }

// SetDropRate makes every message lost with probability p.
func (s *ClusterSimulator) SetDropRate(p float64) error {
	if err := s.faults.SetDropRate(p); err != nil {
		return err
	}
	s.traceSim(core.Fault(nil, "drop rate %.2f", p))
	return nil
}

// SetMaxDelay delays every message by a random time below d.
func (s *ClusterSimulator) SetMaxDelay(d time.Duration) error {
	if err := s.faults.SetMaxDelay(d); err != nil {
		return err
	}
	s.traceSim(core.Fault(nil, "delay %v", d))
	return nil
}

// NetworkSettings returns the drop rate and maximum delay in force.
func (s *ClusterSimulator) NetworkSettings() (float64, time.Duration) { return s.faults.Settings() }

// CrashPeer stops a server: its volatile state is lost, its storage kept.
func (s *ClusterSimulator) CrashPeer(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.nodeLocked(id)
	if err != nil {
		return err
	}
	if n.server == nil {
		return fmt.Errorf("%w: node %d is already crashed", ErrNodeCrashed, id)
	}
	s.stopNodeLocked(n)
	s.traceNode(id, core.Fault(nil, "crash"))
	return nil
}

func (s *ClusterSimulator) stopNodeLocked(n *simNode) {
	n.server.Stop()
	n.server = nil
	if s.cfg.DataDir != "" {
		// A real crash loses the open files; the directory stays.
		n.storage.Close()
	}
}

// RestartPeer restarts a crashed server from its storage.
func (s *ClusterSimulator) RestartPeer(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.nodeLocked(id)
	if err != nil {
		return err
	}
	if n.server != nil {
		return fmt.Errorf("%w: node %d is running (crash it first)", ErrNodeAlive, id)
	}
	if s.cfg.DataDir != "" {
		if n.storage, err = s.openStorage(id, false); err != nil {
			return fmt.Errorf("reopening node %d's storage: %w", id, err)
		}
	}
	if err := s.startNode(n, nil); err != nil {
		return err
	}
	s.traceNode(id, core.Fault(nil, "restart"))
	return nil
}

// Shutdown stops every server and frees every port and goroutine.
func (s *ClusterSimulator) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	var wg sync.WaitGroup
	for _, n := range s.nodes {
		if n.server != nil {
			wg.Add(1)
			go func(srv *kv.Server) {
				defer wg.Done()
				srv.Stop()
			}(n.server)
			n.server = nil
		}
	}
	wg.Wait()
	for _, n := range s.nodes {
		if n.storage != nil {
			n.storage.Close()
		}
	}
}

// NodeStatus describes one server for the status table.
type NodeStatus = cluster.NodeStatus

// knownConfigLocked is the configuration a leader uses, or else the one the
// first running server knows; false if no server runs.
func (s *ClusterSimulator) knownConfigLocked() (core.Configuration, bool) {
	var sums []core.Summary
	for _, id := range s.memberIDsLocked() {
		if n := s.nodes[id]; n.server != nil {
			sums = append(sums, n.server.Node().Summary())
		}
	}
	return cluster.KnownConfig(sums)
}

// Status reports every server (removed ones excluded), by id.
func (s *ClusterSimulator) Status() []NodeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.followCommittedLocked()
	cfg, haveCfg := s.knownConfigLocked()
	var out []NodeStatus
	for _, id := range s.memberIDsLocked() {
		n := s.nodes[id]
		var sum core.Summary
		var applied uint64
		if n.server != nil {
			sum, applied = n.server.Node().Summary(), n.server.Applied()
		}
		out = append(out, cluster.StatusOf(id, n.server != nil, !s.faults.IsDisconnected(id), sum, applied))
	}
	for i := range out {
		out[i].Member = cluster.Member(cfg, haveCfg, out[i].ID, s.nodes[out[i].ID].member)
	}
	return out
}

// followCommittedLocked makes the simulator's list of servers follow the
// configuration a leader has committed, whatever the calls that changed it
// saw: a removal that timed out and committed later removes the server
// then; a server being added counts as a member once a committed
// configuration holds it.
func (s *ClusterSimulator) followCommittedLocked() {
	// The leader of the highest term holds every committed entry (Leader
	// Completeness, §5.4): its configuration, once committed, is the
	// latest committed one. An older leader's may be out of date.
	// A deposed leader that has not heard of its successor yet may still
	// lead a lower term: only a leader of the highest term any running
	// server knows counts.
	var best core.Summary
	var maxTerm uint64
	found := false
	for _, n := range s.nodes {
		if n.removed || n.server == nil {
			continue
		}
		sum := n.server.Node().Summary()
		maxTerm = max(maxTerm, sum.Term)
		if sum.Role == core.Leader && (!found || sum.Term > best.Term) {
			best, found = sum, true
		}
	}
	if !found || best.Term < maxTerm || best.Commit < best.ConfigIndex {
		return
	}
	cfg := best.Config
	for id, n := range s.nodes {
		switch {
		case n.removed:
		case cfg.IsMember(id):
			n.member = true
		case n.member:
			s.removeLocked(n, "removed (the committed configuration does not hold it)")
		}
	}
}

// removeLocked stops a server that left the cluster and forgets it.
func (s *ClusterSimulator) removeLocked(n *simNode, why string) {
	if n.server != nil {
		s.stopNodeLocked(n)
	} else if n.storage != nil && s.cfg.DataDir != "" {
		n.storage.Close()
	}
	n.removed = true
	s.faults.Reconnect(n.id)
	s.traceNode(n.id, core.Fault(nil, "%s", why))
}

// Leader returns the leader among running, connected servers with the
// highest term, or None.
func (s *ClusterSimulator) Leader() (int, uint64) { return cluster.LeaderOf(s.Status()) }

// CheckUniqueLeader waits up to timeout until exactly one running,
// connected server leads, and returns it. Two leaders of one term is an
// immediate error.
func (s *ClusterSimulator) CheckUniqueLeader(timeout time.Duration) (int, uint64, error) {
	return cluster.WaitUniqueLeader(s.callContext(), timeout, pollInterval, s.Status)
}

// CheckNoLeader watches for d and fails if any running, connected server
// claims leadership at any moment.
func (s *ClusterSimulator) CheckNoLeader(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, st := range s.Status() {
			if st.Alive && st.Connected && st.Role == core.Leader {
				return fmt.Errorf("node %d leads term %d", st.ID, st.Term)
			}
		}
		time.Sleep(pollInterval)
	}
	return nil
}

const pollInterval = 5 * time.Millisecond

// Interrupt makes the calls in progress return cluster.ErrInterrupted.
func (s *ClusterSimulator) Interrupt() { s.interrupts.Interrupt() }

// callContext is what Interrupt cancels, for a call starting now.
func (s *ClusterSimulator) callContext() context.Context { return s.interrupts.Context() }

// pause waits a poll interval, or less if ctx is cancelled; false then.
func pause(ctx context.Context) bool { return cluster.Sleep(ctx, pollInterval) }

// poll calls cond until it returns true or an error, or timeout passes,
// or the call is interrupted.
func (s *ClusterSimulator) poll(timeout time.Duration, cond func() (bool, error)) error {
	return cluster.Poll(s.callContext(), timeout, pollInterval, cond)
}

// Applied returns the normal entries server id applied in its current
// incarnation (RecordApplied only).
func (s *ClusterSimulator) Applied(id int) []node.CommitEntry {
	s.mu.Lock()
	n, ok := s.nodes[id]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	s.appliedMu.Lock()
	defer s.appliedMu.Unlock()
	var out []node.CommitEntry
	for _, e := range n.applied {
		if e.Snapshot == nil && e.Type == core.EntryNormal {
			out = append(out, e)
		}
	}
	return out
}

// CheckCommitted waits up to timeout until at least n running, connected
// servers have applied cmd, and checks they all applied it at the same
// index. It returns how many did and the index.
func (s *ClusterSimulator) CheckCommitted(cmd []byte, n int, timeout time.Duration) (count int, index uint64, err error) {
	err = s.poll(timeout, func() (bool, error) {
		count, index = 0, 0
		for _, st := range s.Status() {
			if !st.Alive || !st.Connected {
				continue
			}
			for _, e := range s.Applied(st.ID) {
				if string(e.Command) == string(cmd) {
					if index != 0 && e.Index != index {
						return false, fmt.Errorf("command %q applied at index %d and at %d", cmd, index, e.Index)
					}
					index = e.Index
					count++
					break
				}
			}
		}
		return count >= n, nil
	})
	if errors.Is(err, ErrTimeout) {
		err = fmt.Errorf("command %q applied by %d servers, want %d, within %v", cmd, count, n, timeout)
	}
	return count, index, err
}

// CheckNotCommitted watches for d and fails if any server applies cmd.
func (s *ClusterSimulator) CheckNotCommitted(cmd []byte, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, id := range s.IDs() {
			for _, e := range s.Applied(id) {
				if string(e.Command) == string(cmd) {
					return fmt.Errorf("node %d applied %q at index %d", id, cmd, e.Index)
				}
			}
		}
		time.Sleep(pollInterval)
	}
	return nil
}

// Snapshot makes server id snapshot its state machine now; it returns the
// index the snapshot covers.
func (s *ClusterSimulator) Snapshot(id int) (uint64, error) {
	srv, err := s.Server(id)
	if err != nil {
		return 0, err
	}
	index, err := srv.SnapshotNow()
	if errors.Is(err, core.ErrSnapshotTooOld) {
		return index, fmt.Errorf("node %d has applied nothing since its last snapshot", id)
	}
	return index, err
}

// Submit hands a raw command to server id, as the prototype's tests did.
// The KV state machine ignores payloads that are not KV commands.
func (s *ClusterSimulator) Submit(id int, cmd []byte) (index uint64, isLeader bool, err error) {
	srv, err := s.Server(id)
	if err != nil {
		return 0, false, err
	}
	index, _, isLeader = srv.Node().Submit(cmd)
	return index, isLeader, nil
}

// Set, Get and Delete use the simulator's default client with the client
// timeout; Do with a node goes to one server only.

// Set sets key to value through the leader.
func (s *ClusterSimulator) Set(key, value string) error {
	return s.client.Set(context.Background(), key, value)
}

// Get reads key through the leader (linearizable: ReadIndex).
func (s *ClusterSimulator) Get(key string) (string, bool, error) {
	return s.client.Get(context.Background(), key)
}

// Delete removes key through the leader.
func (s *ClusterSimulator) Delete(key string) (bool, error) {
	return s.client.Delete(context.Background(), key)
}

// Do runs one operation, at server node (None: the leader, found by the client).
func (s *ClusterSimulator) Do(op kv.Op, key, value string, node int) (kv.Result, error) {
	ctx := s.callContext()
	var res kv.Result
	var err error
	if node == core.None {
		res, err = s.client.Do(ctx, op, key, value)
	} else {
		res, err = s.client.On(ctx, node, op, key, value)
	}
	return res, cluster.Interrupted(ctx, op, err)
}

// History returns the recorded client operations (none with NoHistory).
func (s *ClusterSimulator) History() []kv.Operation { return s.history.Operations() }
