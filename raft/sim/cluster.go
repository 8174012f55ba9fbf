package sim

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/node"
	"raft-consensus/raft/trace"
)

// Cluster is a cluster in virtual time that a person or a program drives:
// the world of the simulation (the shipped Driver, Host, Store and
// DiskStorage on a simulated disk) without the seed's random clients and
// faults. Time stands still between calls: a call that waits (a client
// operation, a membership change, "until one leader") runs the world's
// events until what it waits for happens, or its timeout passes in virtual
// time; Run and Step move time on explicitly; Play moves it on in the
// background, paced by the wall clock. The same seed and the same calls
// give the same run, event for event.
//
// Cluster implements cluster.Cluster, so the REPL drives it as it drives
// the wall-clock raft.ClusterSimulator. Its methods may be called from
// several goroutines.
type Cluster struct {
	mu  sync.Mutex
	w   *world
	cfg ClusterConfig

	client    kv.ClientState
	clientNum int
	closed    bool
	now       atomic.Int64 // w.now, readable without mu (by tracers)
	// Interrupt counts in intr; a call that waits notes the count when it
	// starts (callGen) and stops waiting when it moves on. Calls made
	// afterwards, and the player, are not affected.
	intr      atomic.Uint64
	callGen   uint64
	callDepth int

	// held keeps the player still while a command runs (Hold).
	held bool

	// Stepping: the events traced while Step runs.
	capturing bool
	captured  []trace.Record

	// Playing: a goroutine moves time on while playing is set; waiting
	// marks a call that paces time itself meanwhile.
	playing  bool
	speed    float64
	stopPlay chan struct{}
	played   chan struct{}
	waiting  bool
	onPlay   func([]trace.Record)
}

// ClusterConfig configures a Cluster.
type ClusterConfig struct {
	// Nodes is the number of founding servers, 1 to cluster.MaxNodes.
	Nodes int
	// Seed draws every random choice: election timeouts, message delays.
	Seed int64
	// Memory keeps each server's storage in a MemoryStorage; by default it
	// is a DiskStorage on a simulated disk, so that a crash and a restart
	// go through the write-ahead log's recovery.
	Memory bool
	// ClientTimeout bounds one client operation, retries included, in
	// virtual time (default 3 s).
	ClientTimeout time.Duration
	// Tracer, if set, receives every event; Clock stamps them.
	Tracer trace.Tracer
}

// Cluster is a cluster.Cluster in virtual time.
var _ cluster.Cluster = (*Cluster)(nil)

// Virtual time starts at this instant (trace timestamps, Clock).
var epoch = time.Unix(0, 0).UTC()

// The timing a RaftNode and a kv.Client have by default.
const (
	interactiveTick   = 10 * time.Millisecond
	pollEvery         = 5 * time.Millisecond // how often a waiting call looks again
	membershipTimeout = 5 * time.Second
	stepLimit         = 10 * time.Second // Step gives up after this much quiet time
)

// NewCluster starts a cluster of cfg.Nodes servers at virtual time 0.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.Nodes < 1 || cfg.Nodes > cluster.MaxNodes {
		return nil, fmt.Errorf("%w: %d (a cluster has 1 to %d nodes)", cluster.ErrBadNodeCount, cfg.Nodes, cluster.MaxNodes)
	}
	if cfg.ClientTimeout <= 0 {
		cfg.ClientTimeout = clientTimeout
	}
	c := &Cluster{cfg: cfg, client: kv.NewClientState(uint64(cfg.Seed)<<1 | 1), clientNum: 1}
	cc := core.DefaultConfig(0, 0)
	cc.ID, cc.Seed = 0, 0 // per server, in start
	p := Params{
		Seed: cfg.Seed, Nodes: cfg.Nodes, Tick: interactiveTick,
		Disk: !cfg.Memory, SegmentBytes: 64 << 10,
		// As the ClusterSimulator: the leader writes in parallel with
		// replicating when the storage is a disk (thesis §10.2.1).
		AsyncWrites: !cfg.Memory, LeaderSyncGap: node.DefaultLeaderSyncGap,
		Pipeline: node.DefaultPipeline,
		Core:     cc,
	}
	tap := trace.Func(func(node string, e core.Event) {
		if c.capturing {
			c.captured = append(c.captured, trace.Record{Time: c.Clock(), Node: node, Event: e})
		}
		if cfg.Tracer != nil {
			cfg.Tracer.Trace(node, e)
		}
	})
	c.w = newWorld(p, Options{TraceTo: func(func() time.Time) trace.Tracer { return tap }})
	c.w.flights = map[uint64]*Flight{}
	c.settle()
	return c, nil
}

// Clock is the virtual time, as an instant from the Unix epoch: tracers
// stamp events with it. It may be called from any goroutine.
func (c *Cluster) Clock() time.Time { return epoch.Add(time.Duration(c.now.Load())) }

// Now is the virtual time since the cluster started.
func (c *Cluster) Now() time.Duration { return time.Duration(c.now.Load()) }

// Seed is the seed the cluster runs.
func (c *Cluster) Seed() int64 { return c.cfg.Seed }

// Err is the first safety violation or internal failure the simulation
// found, or nil. Once set, the run goes on no further.
func (c *Cluster) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.err
}

// settle runs the events due now (the servers' first steps).
func (c *Cluster) settle() { c.advance(c.w.now, nil) }

// advance runs the world's events up to virtual time until, or until stop
// reports true after an event; it returns whether stop ended it. Without
// stop, time stands at until afterwards.
func (c *Cluster) advance(until time.Duration, stop func() bool) bool {
	w := c.w
	for w.err == nil {
		if stop != nil && stop() {
			return true
		}
		if c.isInterrupted() {
			return false
		}
		if w.queue.Len() == 0 || w.queue[0].at > until {
			break
		}
		e := heap.Pop(&w.queue).(*event)
		w.now = e.at
		c.now.Store(int64(w.now))
		w.stats.events++
		e.fn()
	}
	if stop != nil && stop() {
		return true
	}
	if w.err == nil && w.now < until && !c.isInterrupted() {
		w.now = until
		c.now.Store(int64(w.now))
	}
	return false
}

// wait runs the world until cond holds or virtual time reaches deadline,
// and reports whether cond holds. While the cluster plays, it paces the
// virtual time to the wall clock itself (the player stands aside), so that
// it stops at the very event that satisfied cond.
func (c *Cluster) wait(cond func() bool, deadline time.Duration) bool {
	if !c.playing {
		return c.advance(deadline, cond)
	}
	c.waiting = true
	defer func() { c.waiting = false }()
	for c.playing {
		slice := time.Duration(float64(playSlice) * c.speed)
		// What happens meanwhile is shown as the player shows it.
		c.capturing, c.captured = c.onPlay != nil, nil
		done := c.advance(min(c.w.now+slice, deadline), cond)
		events, onPlay := c.captured, c.onPlay
		c.capturing, c.captured = false, nil
		if onPlay != nil && len(events) > 0 {
			c.mu.Unlock()
			onPlay(events)
			c.mu.Lock()
		}
		if done {
			return true
		}
		if c.w.now >= deadline || c.w.err != nil || c.isInterrupted() {
			return false
		}
		c.mu.Unlock()
		time.Sleep(playSlice)
		c.mu.Lock()
	}
	return c.advance(deadline, cond)
}

// sleep lets d of virtual time pass (a poll interval of a waiting call).
func (c *Cluster) sleep(d time.Duration) { c.wait(func() bool { return false }, c.w.now+d) }

// Interrupt makes the call waiting now return cluster.ErrInterrupted.
func (c *Cluster) Interrupt() { c.intr.Add(1) }

// begin starts a call that may wait (under mu), and returns its end.
func (c *Cluster) begin() (end func()) {
	if c.callDepth == 0 {
		c.callGen = c.intr.Load()
	}
	c.callDepth++
	return func() { c.callDepth-- }
}

// isInterrupted: the call in progress was interrupted.
func (c *Cluster) isInterrupted() bool { return c.callDepth > 0 && c.intr.Load() != c.callGen }

// Hold keeps the player from moving time on until release is called, so
// that a command's start and end are read at instants no event falls
// between (the session's record of a played session).
func (c *Cluster) Hold() (release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = true
	return func() {
		c.mu.Lock()
		c.held = false
		c.mu.Unlock()
	}
}

// Run lets d of virtual time pass.
func (c *Cluster) Run(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return cluster.ErrClusterDown
	}
	defer c.begin()()
	c.sleep(d)
	return c.failure(nil)
}

// Step runs the world until n more events have been traced (ticks that
// change nothing are not events), or stepLimit of virtual time passes
// without them, and returns them.
func (c *Cluster) Step(n int) ([]trace.Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, cluster.ErrClusterDown
	}
	defer c.begin()()
	c.capturing, c.captured = true, nil
	defer func() { c.capturing, c.captured = false, nil }()
	for len(c.captured) < n && c.w.err == nil && !c.isInterrupted() {
		before := c.w.now
		if !c.advance(c.w.now+stepLimit, func() bool { return len(c.captured) >= n }) && c.w.now-before >= stepLimit {
			break // quiet
		}
	}
	// One event of the world may trace several: all of them are returned,
	// so there may be a few more than n.
	return c.captured, c.failure(nil)
}

// playSlice is how often the player moves time on, in wall-clock time.
const playSlice = 20 * time.Millisecond

// Play moves virtual time on in the background, speed times as fast as
// the wall clock (1: real time; 0.1: ten times slower), until Pause.
// onEvents, if set, sees the events of every slice as it passes (on the
// player's goroutine). Calling Play while playing changes the speed.
func (c *Cluster) Play(speed float64, onEvents func([]trace.Record)) error {
	if speed <= 0 || speed > 100 {
		return fmt.Errorf("speed %v is out of range (above 0, at most 100)", speed)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return cluster.ErrClusterDown
	}
	c.speed, c.onPlay = speed, onEvents
	if c.playing {
		return nil
	}
	c.playing = true
	c.stopPlay, c.played = make(chan struct{}), make(chan struct{})
	go c.player(c.stopPlay, c.played)
	return nil
}

// Playing reports whether the cluster plays, and at which speed.
func (c *Cluster) Playing() (bool, float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.playing, c.speed
}

// Pause stops the player; virtual time stands still again.
func (c *Cluster) Pause() {
	c.mu.Lock()
	if !c.playing {
		c.mu.Unlock()
		return
	}
	c.playing = false
	stop, played := c.stopPlay, c.played
	c.mu.Unlock()
	close(stop)
	<-played
}

func (c *Cluster) player(stop, played chan struct{}) {
	defer close(played)
	t := time.NewTicker(playSlice)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		if !c.playing || c.waiting || c.held || c.w.err != nil {
			c.mu.Unlock()
			continue
		}
		c.capturing, c.captured = c.onPlay != nil, nil
		c.advance(c.w.now+time.Duration(float64(playSlice)*c.speed), nil)
		events, onPlay := c.captured, c.onPlay
		c.capturing, c.captured = false, nil
		c.mu.Unlock()
		if onPlay != nil && len(events) > 0 {
			onPlay(events)
		}
	}
}

// Shutdown stops the player and every server.
func (c *Cluster) Shutdown() {
	c.Pause()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	for _, id := range c.w.ids() {
		if s := c.w.servers[id]; s.up {
			s.down()
		}
	}
}

// server returns a member by id, or an error naming the members.
func (c *Cluster) server(id int) (*server, error) {
	if c.closed {
		return nil, cluster.ErrClusterDown
	}
	s, ok := c.w.servers[id]
	if !ok || s.removed {
		return nil, cluster.NoSuchNode(id, c.w.ids())
	}
	return s, nil
}

// running returns a running member.
func (c *Cluster) running(id int) (*server, error) {
	s, err := c.server(id)
	if err == nil && !s.up {
		err = fmt.Errorf("%w: node %d (restart it first)", cluster.ErrNodeCrashed, id)
	}
	return s, err
}

// IDs lists the members, crashed ones included.
func (c *Cluster) IDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.ids()
}

// knownConfig is the configuration a leader uses, or else the one the
// first running server knows; false if none runs.
func (c *Cluster) knownConfig() (core.Configuration, bool) {
	var sums []core.Summary
	for _, id := range c.w.ids() {
		if s := c.w.servers[id]; s.up {
			sums = append(sums, s.driver.Summary())
		}
	}
	return cluster.KnownConfig(sums)
}

// Status reports every member.
func (c *Cluster) Status() []cluster.NodeStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status()
}

func (c *Cluster) status() []cluster.NodeStatus {
	cfg, haveCfg := c.knownConfig()
	var out []cluster.NodeStatus
	for _, id := range c.w.ids() {
		s := c.w.servers[id]
		var sum core.Summary
		var applied uint64
		if s.up {
			sum, applied = s.driver.Summary(), s.host.Applied()
		}
		st := cluster.StatusOf(id, s.up, !c.w.net.links.IsDisconnected(id), sum, applied)
		leaving := slices.ContainsFunc(c.w.removals, func(r removal) bool { return r.id == id })
		st.Member = cluster.Member(cfg, haveCfg, id, leaving)
		out = append(out, st)
	}
	return out
}

// Logs reports every member's log.
func (c *Cluster) Logs(limit int) []cluster.NodeLog {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []cluster.NodeLog
	for _, id := range c.w.ids() {
		s := c.w.servers[id]
		if !s.up {
			out = append(out, cluster.NodeLog{ID: id})
			continue
		}
		out = append(out, cluster.LogOf(id, s.driver.Core(), s.host.Applied(), limit))
	}
	return out
}

// Flights lists the messages on the wire now, oldest first.
func (c *Cluster) Flights() []Flight {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Flight, 0, len(c.w.flights))
	for _, f := range c.w.flights {
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b Flight) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Timer is one server's clocks, for display.
type Timer struct {
	ID    int
	Alive bool
	Role  core.Role
	core.Timers
	Tick time.Duration
}

// Timers reports every member's election and heartbeat timers.
func (c *Cluster) Timers() []Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Timer
	for _, id := range c.w.ids() {
		s := c.w.servers[id]
		t := Timer{ID: id, Alive: s.up, Tick: time.Duration(float64(c.w.p.Tick) * s.drift)}
		if s.up {
			t.Role, t.Timers = s.driver.Core().Role(), s.driver.Core().Timers()
		}
		out = append(out, t)
	}
	return out
}

// leader is the running, connected leader with the highest term.
func (c *Cluster) leader() (int, uint64) { return cluster.LeaderOf(c.status()) }

// Leader returns the running, connected leader with the highest term.
func (c *Cluster) Leader() (int, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader()
}

// CheckUniqueLeader runs the world until exactly one running, connected
// server leads, for at most timeout of virtual time.
func (c *Cluster) CheckUniqueLeader(timeout time.Duration) (int, uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uniqueLeader(timeout)
}

func (c *Cluster) uniqueLeader(timeout time.Duration) (int, uint64, error) {
	if c.closed {
		return 0, 0, cluster.ErrClusterDown
	}
	defer c.begin()()
	var leader int
	var term uint64
	var err error
	found := func() bool {
		var ok bool
		leader, term, ok, err = cluster.UniqueLeader(c.status())
		return ok || err != nil
	}
	deadline := c.w.now + timeout
	for !found() {
		if c.w.now >= deadline || c.w.err != nil || c.isInterrupted() {
			return 0, 0, c.failure(fmt.Errorf("%w: no single leader within %v", cluster.ErrNoLeader, timeout))
		}
		c.sleep(min(pollEvery, deadline-c.w.now))
	}
	return leader, term, err
}

// failure is err, or the simulation's own failure if it found one, or
// ErrInterrupted if the call was interrupted.
func (c *Cluster) failure(err error) error {
	if c.w.err != nil {
		return c.w.err
	}
	if c.isInterrupted() {
		return cluster.ErrInterrupted
	}
	return err
}

// History is every client operation so far.
func (c *Cluster) History() []kv.Operation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.w.history)
}

// ReadStale reads key from one server's state machine, without ReadIndex.
func (c *Cluster) ReadStale(key string, id int) (cluster.StaleRead, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.running(id)
	if err != nil {
		return cluster.StaleRead{}, err
	}
	res, err := s.host.StateMachine().Read(key)
	if err != nil {
		return cluster.StaleRead{}, err
	}
	r, _ := res.(kv.Result)
	co := s.driver.Core()
	return cluster.StaleRead{Value: r.Value, Found: r.Found, Applied: s.host.Applied(), Role: co.Role(), Term: co.Term()}, nil
}

// CrashPeer crashes a server: volatile state is lost, its disk keeps what
// a crash keeps (what was synced).
func (c *Cluster) CrashPeer(id int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.server(id)
	if err != nil {
		return err
	}
	if !s.up {
		return fmt.Errorf("%w: node %d is already crashed", cluster.ErrNodeCrashed, id)
	}
	s.crash("")
	return nil
}

// RestartPeer restarts a crashed server from its storage.
func (c *Cluster) RestartPeer(id int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.server(id)
	if err != nil {
		return err
	}
	if s.up {
		return fmt.Errorf("%w: node %d is running (crash it first)", cluster.ErrNodeAlive, id)
	}
	s.restart()
	c.settle()
	if !s.up {
		return fmt.Errorf("node %d did not start (its storage could not be read: see the trace); it is tried again in a moment", id)
	}
	return c.w.err
}

// DisconnectPeer cuts every link between id and the others.
func (c *Cluster) DisconnectPeer(id int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.server(id); err != nil {
		return err
	}
	if c.w.net.links.IsDisconnected(id) {
		return fmt.Errorf("node %d is already disconnected", id)
	}
	c.w.net.links.Disconnect(id)
	c.w.traceFault(nodeName(id), nil, "disconnect")
	return nil
}

// ReconnectPeer restores id's links.
func (c *Cluster) ReconnectPeer(id int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.server(id); err != nil {
		return err
	}
	if !c.w.net.links.IsDisconnected(id) {
		return fmt.Errorf("node %d is not disconnected", id)
	}
	c.w.net.links.Reconnect(id)
	c.w.traceFault(nodeName(id), nil, "reconnect")
	return nil
}

// Partition splits the members into groups (see cluster.CheckPartition).
func (c *Cluster) Partition(groups ...[]int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return cluster.ErrClusterDown
	}
	desc, err := cluster.CheckPartition(groups, c.w.ids())
	if err != nil {
		return err
	}
	c.w.net.links.Partition(groups...)
	c.w.traceFault(trace.SimNode, groups, "partition %s", desc)
	return nil
}

// Heal removes the partition and every cut link.
func (c *Cluster) Heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.net.links.Heal()
	c.w.traceFault(trace.SimNode, nil, "heal")
}

// CutLink cuts the link from → to in that direction only.
func (c *Cluster) CutLink(from, to int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.link(from, to); err != nil {
		return err
	}
	if slices.Contains(c.w.net.links.CutLinks(), [2]int{from, to}) {
		return fmt.Errorf("the link %d → %d is already cut", from, to)
	}
	c.w.net.links.Cut(from, to)
	c.w.traceFault(trace.SimNode, nil, "cut %d → %d", from, to)
	return nil
}

func (c *Cluster) link(from, to int) error {
	for _, id := range []int{from, to} {
		if _, err := c.server(id); err != nil {
			return err
		}
	}
	if from == to {
		return fmt.Errorf("a link joins two different nodes, not %d and itself", from)
	}
	return nil
}

// RestoreLink restores a link cut by CutLink.
func (c *Cluster) RestoreLink(from, to int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if slices.Contains(c.w.net.links.CutLinks(), [2]int{from, to}) {
		c.w.net.links.Uncut(from, to)
		c.w.traceFault(trace.SimNode, nil, "restore %d → %d", from, to)
		return nil
	}
	return fmt.Errorf("the link %d → %d is not cut", from, to)
}

// CutLinks lists the links cut one way.
func (c *Cluster) CutLinks() [][2]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.net.links.CutLinks()
}

// DropNext loses the next message from → to (a request or a reply).
func (c *Cluster) DropNext(from, to int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.link(from, to); err != nil {
		return err
	}
	c.w.net.nextDrop[[2]int{from, to}] = true
	c.w.traceFault(trace.SimNode, nil, "the next message %d → %d will be lost", from, to)
	return nil
}

// SetDropRate makes every message lost with probability p.
func (c *Cluster) SetDropRate(p float64) error {
	if !(p >= 0 && p <= 1) {
		return fmt.Errorf("drop rate %v is not a probability (0 to 1)", p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.net.dropRate = p
	c.w.traceFault(trace.SimNode, nil, "drop rate %.2f", p)
	return nil
}

// SetMaxDelay delays every message by a further random time below d.
func (c *Cluster) SetMaxDelay(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("delay %v is negative", d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.net.extraDelay = d
	c.w.traceFault(trace.SimNode, nil, "delay %v", d)
	return nil
}

// NetworkSettings returns the drop rate and the delay in force.
func (c *Cluster) NetworkSettings() (float64, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.net.dropRate, c.w.net.extraDelay
}

// Snapshot makes a running server snapshot its state machine and waits,
// in virtual time, until the driver has it.
func (c *Cluster) Snapshot(id int) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.running(id)
	if err != nil {
		return 0, err
	}
	defer c.begin()()
	job := s.host.SnapshotNow()
	if job == nil {
		return 0, errors.New("a snapshot is being written already")
	}
	done := false
	var serr error
	s.writeSnapshot(job, func(err error) { done, serr = true, err })
	if !c.wait(func() bool { return done || !s.up }, c.w.now+membershipTimeout) || !done {
		return 0, c.failure(fmt.Errorf("node %d: %w", id, errGone))
	}
	if errors.Is(serr, core.ErrSnapshotTooOld) {
		serr = fmt.Errorf("node %d has applied nothing since its last snapshot", id)
	}
	return job.Index, c.failure(serr)
}

// inStep runs fn in a step of server s, as RaftNode runs calls on its
// goroutine, and waits for it.
func (c *Cluster) inStep(s *server, fn func()) error {
	done := false
	s.input(func() { fn(); done = true })
	if !c.wait(func() bool { return done || !s.up }, c.w.now+membershipTimeout) || !done {
		return c.failure(fmt.Errorf("node %d: %w", s.id, errGone))
	}
	return nil
}
