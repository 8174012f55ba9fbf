// Package sim is the deterministic simulation of a cluster. It runs the
// code that ships — the protocol Core inside node.Driver, the KV Host and
// Store, the client's decisions (kv.ClientState), DiskStorage and its
// write-ahead log — on a virtual clock, a seeded network and a simulated
// disk (package simdisk), and injects faults into all three: crashes (also
// inside a driver step), partitions of every shape, one-way link cuts,
// drops, duplicates, very late messages, clock drift and process pauses,
// torn writes, lost unsynced data, failing fsyncs, corrupted reads, slow
// writes and full disks, membership changes and leadership transfers.
// After every step it checks the safety properties; at the end, liveness
// and the linearizability of the client history (porcupine).
//
// Every random choice comes from the seed and every event is ordered by
// (virtual time, sequence), so a seed replays the same run exactly.
package sim

import (
	"container/heap"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/lincheck"
	"raft-consensus/raft/node"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/trace"
)

// FaultSet chooses the kinds of fault a run injects.
type FaultSet struct {
	Net, Disk, Clock bool
}

// AllFaults injects every kind.
var AllFaults = FaultSet{Net: true, Disk: true, Clock: true}

// ParseFaults reads a list such as "net,disk,clock" (or "all", "none").
func ParseFaults(s string) (FaultSet, error) {
	var f FaultSet
	for _, part := range strings.Split(s, ",") {
		switch strings.TrimSpace(part) {
		case "all":
			f = AllFaults
		case "none":
		case "":
			return f, fmt.Errorf("empty kind of fault in %q (want a list of net, disk, clock, or all or none)", s)
		case "net":
			f.Net = true
		case "disk":
			f.Disk = true
		case "clock":
			f.Clock = true
		default:
			return f, fmt.Errorf("unknown kind of fault %q (want net, disk, clock, all or none)", part)
		}
	}
	return f, nil
}

func (f FaultSet) String() string {
	var parts []string
	if f.Net {
		parts = append(parts, "net")
	}
	if f.Disk {
		parts = append(parts, "disk")
	}
	if f.Clock {
		parts = append(parts, "clock")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// Options change a run. The zero value runs a seed as drawn, with every
// kind of fault.
type Options struct {
	// Trace, if set, receives the run's trace, stamped in virtual time.
	Trace io.Writer
	// TraceTo, if set, makes the run's tracer (Trace is ignored then); now
	// is the run's virtual clock.
	TraceTo func(now func() time.Time) trace.Tracer
	// Faults restricts the kinds of fault (nil: all).
	Faults *FaultSet
	// Core, Driver, Disk and Host, if set, change every server's
	// configuration of that layer: the mutation tests of the layers use
	// them, through their packages' export_test.go.
	Core   func(*core.CoreConfig)
	Driver func(*node.DriverConfig)
	Disk   func(*storage.DiskOptions)
	Host   func(*kv.HostConfig)
	// Store, if set, makes every server's state machine.
	Store func() kv.StateMachine
	// Params, if set, changes the parameters drawn from the seed.
	Params func(*Params)
	// MaxEvents and MaxWall bound a run (defaults 3,000,000 events and
	// 30 s of wall-clock time); past them it fails with its summary.
	MaxEvents int
	MaxWall   time.Duration
}

// Params are the knobs of one run, all drawn from the seed.
type Params struct {
	Seed          int64
	Nodes         int
	Clients       int
	OpsPerClient  int
	Keys          int
	FaultPhase    time.Duration // faults happen during [0, FaultPhase)
	MinFaults     int
	LivenessLimit time.Duration // after the faults stop, everything must finish within this
	Tick          time.Duration
	Disk          bool   // DiskStorage on a simulated disk; otherwise MemoryStorage
	SegmentBytes  int64  // WAL segment size on the simulated disk
	SnapshotEvery uint64 // 0: no snapshots
	Membership    bool
	AsyncWrites   bool // the leader writes through a LogWriter (thesis §10.2.1)
	// LeaderSyncGap is the log writer's rest after each write
	// (node.Config.LeaderSyncGap).
	LeaderSyncGap time.Duration
	// Pipeline is how many RPCs a server may have in flight to one peer
	// (RaftNode's Config.Pipeline); each draws its own delay, so
	// pipelined AppendEntries arrive out of order.
	Pipeline int
	Faults   FaultSet
	Core     core.CoreConfig
}

// DrawParams derives a run's parameters from its seed.
func DrawParams(seed int64, faults FaultSet) Params {
	r := rand.New(rand.NewSource(seed))
	p := Params{
		Seed:          seed,
		Nodes:         []int{3, 5}[r.Intn(2)],
		Clients:       3 + r.Intn(3),
		Keys:          2 + r.Intn(4),
		FaultPhase:    time.Duration(2000+r.Intn(2000)) * time.Millisecond,
		MinFaults:     10,
		LivenessLimit: 20 * time.Second,
		Tick:          10 * time.Millisecond,
		Disk:          r.Intn(2) == 0,
		SegmentBytes:  int64(4<<10) << r.Intn(5),
		Membership:    r.Intn(2) == 0,
		AsyncWrites:   r.Intn(2) == 0,
		Faults:        faults,
	}
	p.OpsPerClient = (200 + p.Clients - 1) / p.Clients
	if r.Intn(2) == 0 {
		p.SnapshotEvery = uint64(10 + r.Intn(40))
	}
	p.Core = core.CoreConfig{
		ElectionTicksMin: 15, ElectionTicksMax: 30, HeartbeatTicks: 5,
		PreVote: r.Intn(4) != 0, CheckQuorum: r.Intn(4) != 0,
		MaxEntriesPerAppend: 1 + r.Intn(64), MaxBytesPerAppend: 1 << 20, MaxInflight: 1 + r.Intn(8),
		SnapshotChunkBytes: 16 + r.Intn(256),
	}
	p.Pipeline = 1 + r.Intn(4)
	p.LeaderSyncGap = []time.Duration{0, node.DefaultLeaderSyncGap, 5 * time.Millisecond}[r.Intn(3)]
	return p
}

// rpcTimeout bounds one RPC, as RaftNode's default does: the maximum
// election timeout.
func (p Params) rpcTimeout() time.Duration {
	return time.Duration(p.Core.ElectionTicksMax) * p.Tick
}

type stats struct {
	events, steps, messages, dropped, duplicated, late, reordered, faults, ops, unknown, elections,
	snapshots, confChanges, jointChanges, stagedChanges, crashes, stepCrashes, storageStops, refusedStarts int
}

// world is one run: the servers, the network, the clients and the clock.
type world struct {
	p     Params
	opts  Options
	rng   *rand.Rand
	now   time.Duration
	seq   uint64
	queue eventQueue

	servers  map[int]*server
	clients  []*client
	net      network
	calls    uint64 // RPC ids
	checker  *safetyChecker
	history  []kv.Operation
	stats    stats
	err      error
	tracer   trace.Tracer
	nextID   int // next id for a server added by a membership change
	removals []removal
	healed   bool

	// flights, when set, tracks the messages on the wire, for a display
	// (the interactive Cluster sets it; the seeded runs do not).
	flights map[uint64]*Flight
	flight  uint64
}

type event struct {
	at  time.Duration
	seq uint64
	fn  func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// at runs fn at virtual time t (not before now).
func (w *world) at(t time.Duration, fn func()) {
	w.seq++
	heap.Push(&w.queue, &event{at: max(t, w.now), seq: w.seq, fn: fn})
}

// after runs fn after d.
func (w *world) after(d time.Duration, fn func()) { w.at(w.now+d, fn) }

// traceFault reports a fault; groups, if any, are a partition's.
func (w *world) traceFault(node string, groups [][]int, format string, args ...any) {
	if w.tracer != nil {
		w.tracer.Trace(node, core.Fault(groups, format, args...))
	}
}

// fail records the first failure of the run.
func (w *world) fail(err error) {
	if w.err == nil {
		w.err = fmt.Errorf("at %v: %w", w.now, err)
	}
}

func newWorld(p Params, opts Options) *world {
	w := &world{
		p: p, opts: opts,
		rng:     rand.New(rand.NewSource(p.Seed)),
		servers: map[int]*server{},
		checker: newSafetyChecker(),
		nextID:  p.Nodes,
	}
	w.net = newNetwork()
	// Trace events are stamped with the virtual time, from midnight.
	now := func() time.Time { return time.Unix(0, 0).UTC().Add(w.now) }
	if opts.TraceTo != nil {
		w.tracer = opts.TraceTo(now)
	} else if opts.Trace != nil {
		w.tracer = trace.NewTextTracer(opts.Trace, now)
	}
	voters := make([]int, p.Nodes)
	for i := range voters {
		voters[i] = i
	}
	for _, id := range voters {
		s := w.newServer(id)
		s.start(voters)
	}
	return w
}

// startWorkload starts the seed's clients and schedules its faults.
func (w *world) startWorkload() {
	for i := range w.p.Clients {
		c := newClient(w, i)
		w.clients = append(w.clients, c)
		w.after(time.Duration(w.rng.Intn(20))*time.Millisecond, c.next)
	}
	w.scheduleFaults()
}

// ids lists the servers that are members (running or not), in order.
func (w *world) ids() []int {
	ids := make([]int, 0, len(w.servers))
	for id, s := range w.servers {
		if !s.removed {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// errBudget marks a run stopped by its event or wall-clock budget.
var errBudget = errors.New("budget exhausted")

// run executes events until the clients are done and the faults over.
func (w *world) run() error {
	end := w.p.FaultPhase + w.p.LivenessLimit
	maxEvents := w.opts.MaxEvents
	if maxEvents <= 0 {
		maxEvents = 3_000_000
	}
	maxWall := w.opts.MaxWall
	if maxWall <= 0 {
		maxWall = 30 * time.Second
	}
	start := time.Now()
	stuckAt, stuck := time.Duration(-1), 0
	for w.queue.Len() > 0 && w.err == nil {
		e := heap.Pop(&w.queue).(*event)
		if e.at == stuckAt {
			stuck++
		} else {
			stuckAt, stuck = e.at, 0
		}
		w.now = e.at
		w.stats.events++
		switch {
		case w.now > end:
			return w.livenessFailure()
		case stuck > 200_000:
			return fmt.Errorf("%w: no progress in virtual time: %d events at %v (%s)", errBudget, stuck, w.now, w.describeServers())
		case w.stats.events > maxEvents:
			return fmt.Errorf("%w: %d events (%s)", errBudget, maxEvents, w.describeServers())
		case w.stats.events%4096 == 0 && time.Since(start) > maxWall:
			return fmt.Errorf("%w: %v of wall-clock time, at %v virtual (%s)", errBudget, maxWall, w.now, w.describeServers())
		}
		e.fn()
		if w.healed && w.allClientsDone() {
			break
		}
	}
	if w.err != nil {
		return w.err
	}
	if !w.allClientsDone() {
		return w.livenessFailure()
	}
	return w.finalChecks()
}

func (w *world) livenessFailure() error {
	var pending []string
	for _, c := range w.clients {
		if c.done < w.p.OpsPerClient {
			pending = append(pending, fmt.Sprintf("client %d at op %d/%d", c.id, c.done, w.p.OpsPerClient))
		}
	}
	return fmt.Errorf("liveness: %v after the faults stopped, still pending: %v (%s)", w.p.LivenessLimit, pending, w.describeServers())
}

func (w *world) describeServers() string {
	var parts []string
	for _, id := range w.ids() {
		s := w.servers[id]
		if !s.up {
			parts = append(parts, fmt.Sprintf("%d: down", id))
			continue
		}
		c := s.driver.Core()
		parts = append(parts, fmt.Sprintf("%d: %v t%d commit %d last %d cfg %v", id, c.Role(), c.Term(), c.Committed(), c.LastIndex(), c.Config()))
	}
	return strings.Join(parts, "; ")
}

func (w *world) allClientsDone() bool {
	for _, c := range w.clients {
		if c.done < w.p.OpsPerClient {
			return false
		}
	}
	return true
}

// finalChecks compares every pair of logs in full and checks the client
// history for linearizability.
func (w *world) finalChecks() error {
	ids := w.ids()
	for i, a := range ids {
		for _, b := range ids[i+1:] {
			sa, sb := w.servers[a], w.servers[b]
			if !sa.up || !sb.up {
				continue
			}
			if err := checkLogMatching(a, b, sa.driver.Core(), sb.driver.Core()); err != nil {
				return err
			}
		}
	}
	res := lincheck.CheckLinearizable(w.history, 10*time.Second)
	if !res.Linearizable() {
		return fmt.Errorf("linearizability: porcupine says %v for %d operations", res.Result, res.Ops)
	}
	return nil
}

// summary describes the run; it is identical every time a seed replays.
func (w *world) summary() string {
	h := fnv.New64a()
	for _, id := range w.ids() {
		s := w.servers[id]
		if !s.up {
			continue
		}
		c := s.driver.Core()
		fmt.Fprintf(h, "%d:%d:%d:%d;", id, c.Term(), c.Committed(), c.FirstIndex()-1)
		for i := c.FirstIndex(); i <= c.LastIndex(); i++ {
			e, _ := c.EntryAt(i)
			fmt.Fprintf(h, "%d/%d/%x,", e.Index, e.Term, entryDigest(&e))
		}
	}
	st := w.stats
	store := "memory"
	if w.p.Disk {
		store = "disk"
	}
	return fmt.Sprintf("seed %d: %d nodes, %s, faults %v, %v virtual, %d events, %d server steps, %d messages (%d dropped, %d duplicated, %d late, %d appends out of order), "+
		"%d faults (%d crashes, %d inside a step, %d storage stops, %d refused starts), %d elections, %d snapshots, %d membership changes (%d joint, %d staged), "+
		"%d ops (%d unknown), log hash %016x",
		w.p.Seed, w.p.Nodes, store, w.p.Faults, w.now.Round(time.Millisecond), st.events, st.steps, st.messages, st.dropped, st.duplicated, st.late, st.reordered,
		st.faults, st.crashes, st.stepCrashes, st.storageStops, st.refusedStarts, st.elections, st.snapshots, st.confChanges, st.jointChanges, st.stagedChanges,
		st.ops, st.unknown, h.Sum64())
}

// Result is the outcome of one seed.
type Result struct {
	Seed    int64
	Summary string
	Err     error
	Params  Params
	Stats   Stats
}

// Stats are a run's counts, for reports.
type Stats struct {
	Events, Ops, Faults int
	// Reordered counts AppendEntries a peer stepped after a later RPC of
	// the same link (pipelining and duplicates cause it).
	Reordered int
	Virtual   time.Duration
}

// RunSeed runs one seed and returns its summary and the first failure.
func RunSeed(seed int64, opts Options) Result {
	faults := AllFaults
	if opts.Faults != nil {
		faults = *opts.Faults
	}
	p := DrawParams(seed, faults)
	if opts.Params != nil {
		opts.Params(&p)
	}
	w := newWorld(p, opts)
	w.startWorkload()
	err := w.run()
	if err == nil && w.stats.faults < p.MinFaults {
		err = fmt.Errorf("only %d faults injected, want at least %d", w.stats.faults, p.MinFaults)
	}
	if err == nil && w.stats.ops < 200 {
		err = fmt.Errorf("only %d client operations completed, want at least 200", w.stats.ops)
	}
	return Result{Seed: seed, Summary: w.summary(), Err: err, Params: p,
		Stats: Stats{Events: w.stats.events, Ops: w.stats.ops, Faults: w.stats.faults, Reordered: w.stats.reordered, Virtual: w.now}}
}

func nodeName(id int) string { return strconv.Itoa(id) }
