// Package bench measures this project's Raft on the workload of the
// hashicorp/raft baseline (shared/bench/hashicorp): N nodes of a
// ClusterSimulator in one process, net/rpc over TCP on 127.0.0.1, C client
// goroutines writing 64-byte KV commands on the leader in-process, an
// operation counted once the leader's state machine has applied it; then
// the median time of a number of leader crashes until a new leader commits.
//
// It prints the baseline's one-line JSON schema with "impl":"raft-consensus",
// so that the two programs' outputs can be compared line for line. The
// top-level command wires `go run . bench [flags]` to Run.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"raft-consensus/raft"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/node"
)

type options struct {
	nodes     int
	transport string
	store     string
	clients   int
	duration  time.Duration
	warmup    time.Duration
	size      int
	failovers int
	timeout   time.Duration
	seed      int64
	verbose   bool
	// snapshotEvery, if set, makes each node snapshot every that many
	// applied entries (off by default, as in the baselines' short runs).
	snapshotEvery uint64
	// snapshotRatio: see kv.HostConfig.SnapshotLogRatio.
	snapshotRatio float64
	// pipeline is the RPCs in flight per peer (0: the node's default);
	// delay, a random delay below it on every message.
	pipeline      int
	pipelineAfter time.Duration
	leaderSyncGap time.Duration
	delay         time.Duration
	// keys fills every state machine with that many keys before the run,
	// for the GC pressure of a large state machine.
	keys int

	cpuProfile string
	memProfile string
	// processes: run the nodes as processes of their own (binary is this
	// program, run as "binary node …").
	processes bool
	binary    string
	// nodeProfiles: with processes, each node writes a CPU profile of its
	// run into this directory (node-<id>.pprof).
	nodeProfiles string
	// groups > 1 runs many groups per node (raft/multinode), active of
	// them under the clients' load.
	groups, active int
}

// Run runs the benchmark with command-line arguments args (without the
// program and subcommand names), prints the JSON result line on stdout and
// diagnostics on stderr, and returns the process exit code: 0 on success,
// 2 for bad flags, 1 if the run failed.
func Run(args []string, stdout, stderr io.Writer) int {
	o, code, ok := parseFlags(args, stderr)
	if !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runner := run
	if o.processes {
		runner = runProcesses
	}
	var res any
	var err error
	if o.groups > 0 {
		res, err = runGroups(ctx, o, stderr)
	} else {
		res, err = runner(ctx, o, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	line, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", line)
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, int, bool) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.nodes, "nodes", 3, "number of raft nodes in the cluster (1 to 16)")
	fs.StringVar(&o.transport, "transport", "tcp", "transport: tcp (net/rpc on 127.0.0.1; with -groups, one stream per node pair on 127.0.0.1), or with -groups local (in process; the default there)")
	fs.StringVar(&o.store, "store", "mem", "storage: mem (MemoryStorage) or disk (DiskStorage with fsync, in a temp dir removed at exit)")
	fs.IntVar(&o.clients, "clients", 16, "concurrent client goroutines writing on the leader")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measured throughput phase")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before the measured phase (load runs, nothing recorded)")
	fs.IntVar(&o.size, "size", 64, "size in bytes of the whole encoded KV command")
	fs.IntVar(&o.failovers, "failovers", 5, "number of leader-failover measurements (0 to skip); needs -nodes >= 3")
	fs.DurationVar(&o.timeout, "apply-timeout", 10*time.Second, "how long a client write may outlive the measured phase (one deadline for the run, not a timer per write)")
	fs.Int64Var(&o.seed, "seed", 0, "seed of the simulator (0: from the clock)")
	fs.Uint64Var(&o.snapshotEvery, "snapshot-every", 0, "snapshot each node every N applied entries (0: never, as the baselines in a short run)")
	fs.IntVar(&o.pipeline, "pipeline", node.DefaultPipeline, "RPCs in flight per peer (1: wait for each reply before the next)")
	fs.DurationVar(&o.pipelineAfter, "pipeline-after", node.DefaultPipelineAfter, "how long the latest RPC to a peer waits for its reply before another may follow it")
	fs.DurationVar(&o.leaderSyncGap, "leader-sync-gap", node.DefaultLeaderSyncGap, "with -store disk, how long the leader's log writer rests after each write (0: none)")
	fs.DurationVar(&o.delay, "delay", 0, "delay every message by a random time below this (the REPL's network delay), to measure a slow link")
	fs.Float64Var(&o.snapshotRatio, "snapshot-ratio", 0, "with -snapshot-every: also wait until the log since the last snapshot is this many times its size (thesis §5.1.3; 0: off)")
	fs.IntVar(&o.keys, "keys", 0, "fill every node's state machine with this many keys of -size bytes before the run (a large state machine: GC and snapshot cost)")
	fs.BoolVar(&o.verbose, "v", false, "progress on stderr")
	fs.IntVar(&o.groups, "groups", 0, "Raft groups per node, hosted by raft/multinode (every group on every node, in this process; with -store disk in one shared log per node); 0: the single-group cluster")
	fs.IntVar(&o.active, "active", 0, "with -groups: how many of the groups get the clients' load (default: all, at most -clients)")
	fs.StringVar(&o.nodeProfiles, "node-cpuprofiles", "", "with -processes: each node writes a CPU profile of its run to DIR/node-<id>.pprof")
	fs.BoolVar(&o.processes, "processes", false, "run each node as a process of its own (durable storage) and send every write over the network, as a client of another process would")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the load phase to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile of the load phase to this file")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bench [flags]\n\n"+
			"Runs the hashicorp/raft baseline's workload on a ClusterSimulator and prints\n"+
			"one JSON line: impl, nodes, transport, store, clients, ops, ops_per_sec,\n"+
			"p50_ms, p99_ms, failover_ms, then extras.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, 0, false
		}
		return o, 2, false
	}
	bad := func(format string, a ...any) (options, int, bool) {
		fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
		fs.Usage()
		return o, 2, false
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q", fs.Arg(0))
	case o.nodes < 1 || o.nodes > raft.MaxNodes:
		return bad("-nodes must be between 1 and %d", raft.MaxNodes)
	case o.transport != "tcp" && (o.transport != "local" || o.groups == 0):
		return bad("-transport must be tcp (or, with -groups, local)")
	case o.store != "mem" && o.store != "disk":
		return bad("-store must be mem or disk")
	case o.clients < 1:
		return bad("-clients must be >= 1")
	case o.duration <= 0:
		return bad("-duration must be > 0")
	case o.warmup < 0:
		return bad("-warmup must be >= 0")
	case o.size < minSize:
		return bad("-size must be >= %d (the KV command's header)", minSize)
	case o.failovers < 0:
		return bad("-failovers must be >= 0")
	case o.timeout <= 0:
		return bad("-apply-timeout must be > 0")
	case o.pipeline < 1:
		return bad("-pipeline must be >= 1")
	case o.pipelineAfter <= 0:
		return bad("-pipeline-after must be > 0")
	case o.leaderSyncGap < 0:
		return bad("-leader-sync-gap must be >= 0 (0: none)")
	case o.snapshotRatio < 0 || math.IsNaN(o.snapshotRatio) || math.IsInf(o.snapshotRatio, 0):
		return bad("-snapshot-ratio must be a number >= 0")
	case o.keys < 0:
		return bad("-keys must be >= 0")
	case o.delay < 0:
		return bad("-delay must be >= 0")
	case o.processes && (o.keys > 0 || o.delay > 0 || o.memProfile != ""):
		return bad("-processes does not go with -keys, -delay or -memprofile")
	case o.processes && (o.pipeline != node.DefaultPipeline || o.pipelineAfter != node.DefaultPipelineAfter || o.leaderSyncGap != node.DefaultLeaderSyncGap):
		// The node command has no flags for them: its nodes run with the
		// defaults, which the result line then reports.
		return bad("-processes does not go with -pipeline, -pipeline-after or -leader-sync-gap: node processes run with the defaults")
	case o.groups < 0 || o.groups > 100000:
		return bad("-groups must be between 0 and 100000")
	case o.active < 0 || o.active > o.groups:
		return bad("-active must be between 1 and -groups")
	case o.groups > 0 && o.nodes < 2:
		return bad("-groups needs -nodes >= 2 (its figures are per node pair)")
	case o.groups > 0 && (o.processes || o.keys > 0 || o.delay > 0 || o.memProfile != ""):
		return bad("-groups does not go with -processes, -keys, -delay or -memprofile yet")
	}
	if o.groups > 0 && o.active == 0 {
		o.active = min(o.groups, o.clients)
	}
	if o.groups > 0 {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "transport" })
		if !set {
			o.transport = "local" // the groups' figures were first taken in one process
		}
	}
	return o, 0, true
}

// Result is the output line. The first ten fields are the baseline's
// common schema; the rest are extras.
type Result struct {
	Impl       string   `json:"impl"`
	Nodes      int      `json:"nodes"`
	Transport  string   `json:"transport"`
	Store      string   `json:"store"`
	Clients    int      `json:"clients"`
	Ops        int      `json:"ops"`
	OpsPerSec  float64  `json:"ops_per_sec"`
	P50Ms      float64  `json:"p50_ms"`
	P99Ms      float64  `json:"p99_ms"`
	FailoverMs *float64 `json:"failover_ms"`

	Size            int       `json:"size"`
	DurationS       float64   `json:"duration_s"`
	Errors          int       `json:"errors"`
	MeanMs          float64   `json:"mean_ms"`
	P90Ms           float64   `json:"p90_ms"`
	MaxMs           float64   `json:"max_ms"`
	FailoverElectMs *float64  `json:"failover_elect_ms"`
	FailoverAllMs   []float64 `json:"failover_all_ms"`
	ElectionTimeout string    `json:"election_timeout"`
	Heartbeat       string    `json:"heartbeat"`
	Fsync           bool      `json:"fsync"`
	CPUSeconds      float64   `json:"cpu_s"`
	CPUPerOpUs      float64   `json:"cpu_us_per_op"`
	GoMaxProcs      int       `json:"gomaxprocs"`
	// MaxGapMs is the longest stretch of the measured phase in which no
	// operation completed (1 ms resolution); LeaderChanges counts the
	// leader changes seen during it. A stall shows in them, not in p99.
	MaxGapMs      float64 `json:"max_gap_ms"`
	LeaderChanges int     `json:"leader_changes"`
	// AllocsPerOp is the process's heap allocations over the measured
	// phase per operation (servers and clients: all in this process).
	AllocsPerOp float64 `json:"allocs_per_op"`
	// Pipeline is the RPCs in flight per peer; NetDelayMs, the random delay
	// below which every message was held (-delay).
	Pipeline        int     `json:"pipeline"`
	PipelineAfterUs float64 `json:"pipeline_after_us"`
	NetDelayMs      float64 `json:"net_delay_ms"`
	// LeaderSyncGapUs is the leader's log writer's rest between writes
	// (-leader-sync-gap; durable runs only).
	LeaderSyncGapUs float64 `json:"leader_sync_gap_us,omitempty"`
	// Keys is the number of keys each state machine held before the run.
	Keys int `json:"keys"`
}

// longGap is the shortest gap, in milliseconds, that -v lists one by one.
const longGap = 100

// processStart is about when the process started (package initialization).
var processStart = time.Now()

// The project's defaults, spelled out: the comparison depends on them.
const (
	electionMin = 150 * time.Millisecond
	electionMax = 300 * time.Millisecond
	heartbeat   = 50 * time.Millisecond
)

func run(ctx context.Context, o options, stderr io.Writer) (*Result, error) {
	logf := func(format string, a ...any) {
		if o.verbose {
			fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
		}
	}
	cfg := raft.SimConfig{
		Nodes: o.nodes, Seed: o.seed,
		ElectionTimeoutMin: electionMin, ElectionTimeoutMax: electionMax, HeartbeatInterval: heartbeat,
		ClientTimeout: o.timeout, SnapshotThreshold: o.snapshotEvery, SnapshotLogRatio: o.snapshotRatio, Pipeline: o.pipeline, PipelineAfter: o.pipelineAfter,
		LeaderSyncGap: o.leaderSyncGap,
	}
	if o.leaderSyncGap == 0 {
		cfg.LeaderSyncGap = -1 // none (the simulator's zero is its default)
	}
	if o.keys > 0 {
		cfg.StateMachine = func(int) kv.StateMachine { return prefilledStore(o.keys, o.size) }
	}
	if o.store == "disk" {
		dir, err := os.MkdirTemp("", "raft-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
	}
	sim, err := raft.NewClusterSimulator(cfg)
	if err != nil {
		return nil, err
	}
	defer sim.Shutdown()
	c := &cluster{sim: sim, o: o}
	t := time.Now()
	if _, err := c.waitHealthy(ctx, 30*time.Second); err != nil {
		return nil, fmt.Errorf("initial election: %w", err)
	}
	logf("cluster up: %d nodes, healthy after %v", o.nodes, time.Since(t))
	if err := sim.SetMaxDelay(o.delay); err != nil {
		return nil, err
	}

	lr, err := c.runLoad(ctx)
	if err != nil {
		return nil, err
	}
	logf("load: %d ops, %d errors; longest gap %v, from %v into the measured phase (%v after the process started, the clock of GODEBUG=gctrace=1)",
		len(lr.lat), lr.errs, lr.maxGap, lr.maxGapAt, (lr.phaseAt + lr.maxGapAt).Round(time.Millisecond))
	for _, g := range lr.longGaps {
		logf("gap of %v at %v of the process", g[1], (lr.phaseAt + g[0]).Round(time.Millisecond))
	}

	res := &Result{
		Impl: "raft-consensus", Nodes: o.nodes, Transport: o.transport, Store: o.store,
		Clients: o.clients, Ops: len(lr.lat),
		OpsPerSec: math.Round(float64(len(lr.lat))/o.duration.Seconds()*10) / 10,
		Size:      o.size, DurationS: o.duration.Seconds(), Errors: lr.errs,
		ElectionTimeout: fmt.Sprintf("%v-%v", electionMin, electionMax), Heartbeat: heartbeat.String(),
		Fsync: o.store == "disk", GoMaxProcs: runtime.GOMAXPROCS(0),
		FailoverAllMs: []float64{},
		Keys:          o.keys,
		Pipeline:      o.pipeline, PipelineAfterUs: float64(o.pipelineAfter) / float64(time.Microsecond), NetDelayMs: float64(o.delay) / float64(time.Millisecond),
	}
	if o.store == "disk" {
		res.LeaderSyncGapUs = float64(o.leaderSyncGap) / float64(time.Microsecond)
	}
	res.setLatencies(lr.lat)
	if n := len(lr.lat); n > 0 {
		res.CPUSeconds = math.Round(lr.cpu.Seconds()*1000) / 1000
		res.CPUPerOpUs = math.Round(float64(lr.cpu)/float64(n)/10) / 100
		res.AllocsPerOp = math.Round(float64(lr.allocs)/float64(n)*10) / 10
	}
	res.MaxGapMs, res.LeaderChanges = float64(lr.maxGap/time.Millisecond), lr.leaderChanges

	if o.failovers > 0 && o.nodes >= 3 {
		var elects, totals []time.Duration
		for i := range o.failovers {
			e, tt, err := c.measureFailover(ctx, i)
			if err != nil {
				return nil, fmt.Errorf("failover %d: %w", i, err)
			}
			logf("failover %d: elected %v, first write %v", i, e, tt)
			elects = append(elects, e)
			totals = append(totals, tt)
			res.FailoverAllMs = append(res.FailoverAllMs, ms(tt))
		}
		f, e := ms(median(totals)), ms(median(elects))
		res.FailoverMs, res.FailoverElectMs = &f, &e
	} else if o.failovers > 0 {
		logf("failover skipped: needs -nodes >= 3 to keep a quorum")
	}
	return res, nil
}

type cluster struct {
	sim *raft.ClusterSimulator
	o   options
	// one client session for the health checks and failover writes
	healthID  uint64
	healthSeq uint64
}

// leader returns the running server that believes it leads, with the
// highest term, or nil.
func (c *cluster) leader() *kv.Server {
	var best *kv.Server
	var bestTerm uint64
	for _, id := range c.sim.IDs() {
		srv, err := c.sim.Server(id)
		if err != nil {
			continue
		}
		if _, term, isLeader := srv.Node().Report(); isLeader && (best == nil || term > bestTerm) {
			best, bestTerm = srv, term
		}
	}
	return best
}

// healthWrite writes one command through srv with the benchmark's health
// session; a retry after a failure reuses the sequence number, so the
// write applies once however often it is retried.
func (c *cluster) healthWrite(ctx context.Context, srv *kv.Server, key string) error {
	if c.healthID == 0 {
		c.healthID = rand.Uint64() | 1
		c.healthSeq = 1
	}
	cmd := kv.Command{Op: kv.OpSet, ClientID: c.healthID, Seq: c.healthSeq, Key: key, Value: "ok"}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := srv.Write(wctx, cmd); err != nil {
		return err
	}
	c.healthSeq++
	return nil
}

// waitHealthy waits until a leader applies a write and every running
// server has applied it too.
func (c *cluster) waitHealthy(ctx context.Context, timeout time.Duration) (*kv.Server, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		ld := c.leader()
		if ld == nil || c.healthWrite(ctx, ld, "_health") != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		idx := ld.Applied()
		for time.Now().Before(deadline) {
			all := true
			for _, id := range c.sim.IDs() {
				if srv, err := c.sim.Server(id); err == nil && srv.Applied() < idx {
					all = false
					break
				}
			}
			if all {
				return ld, nil
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil, errors.New("cluster did not become healthy in time")
}

// minSize is the encoded size of the smallest command makeCmd builds.
var minSize = len(kv.EncodeCommand(kv.Command{Op: kv.OpSet, ClientID: math.MaxUint64, Seq: 1 << 32, Key: "c99-1023", Value: "x"}))

// makeCmd builds client ci's write number seq (from 1) whose encoding is
// size bytes, as close as varints allow: "set c<ci>-<seq mod 1024> xxx…",
// keys cycling through 1024 per client as in the baseline.
func makeCmd(clientID uint64, ci int, seq uint64, size int) kv.Command {
	key := "c" + strconv.Itoa(ci) + "-" + strconv.FormatUint(seq&1023, 10)
	cmd := kv.Command{Op: kv.OpSet, ClientID: clientID, Seq: seq, Key: key}
	over := len(kv.EncodeCommand(cmd)) // with an empty value
	n := max(1, size-over)
	cmd.Value = values[:min(n, len(values))]
	return cmd
}

// prefilledStore is a Store holding n keys ("k0", "k1", …) whose commands
// would be size bytes: the same on every node, as if restored from one
// snapshot. The load's keys are others.
func prefilledStore(n, size int) *kv.Store {
	st := kv.NewStore()
	for i := range n {
		c := makeCmd(0, 0, 0, size)
		c.Key = "k" + strconv.Itoa(i)
		c.Value = strings.Clone(c.Value) // a string of its own, as a real store would hold
		st.ApplyCommand(c)
	}
	return st
}

var values = string(slices.Repeat([]byte{'x'}, 1<<16))

type loadResult struct {
	lat  []time.Duration
	errs int
	cpu  time.Duration // process CPU time used during the measured phase
	// allocs counts the heap allocations of the measured phase.
	allocs uint64
	// maxGap is the longest time without a completed operation in the
	// measured phase; leaderChanges, the leader changes seen in it.
	maxGap   time.Duration
	maxGapAt time.Duration // its start, from the measured phase's
	phaseAt  time.Duration // the measured phase's start, from the process's
	// longGaps are the gaps of at least longGap: start (from the measured
	// phase's) and length.
	longGaps      [][2]time.Duration
	leaderChanges int
}

// runLoad has C goroutines write back to back on the leader, each a client
// session with its own id and sequence numbers. A write that fails (a
// leader change) is retried with the same sequence number, so it applies
// once. Writes that complete inside [start+warmup, start+warmup+duration]
// are counted, with the latency of their successful attempt.
func (c *cluster) runLoad(ctx context.Context) (loadResult, error) {
	o := c.o
	var cur atomic.Pointer[kv.Server]
	cur.Store(c.leader())

	stopProfile := func() error { return nil }
	start := time.Now()
	mStart := start.Add(o.warmup)
	mEnd := mStart.Add(o.duration)
	phaseAt := mStart.Sub(processStart)
	if o.cpuProfile != "" || o.memProfile != "" {
		var pf *os.File
		profStarted := make(chan error, 1)
		if o.memProfile != "" {
			runtime.MemProfileRate = 64 << 10
		}
		timer := time.AfterFunc(o.warmup, func() {
			if o.cpuProfile == "" {
				profStarted <- nil
				return
			}
			f, err := os.Create(o.cpuProfile)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			pf = f
			profStarted <- err
		})
		stopProfile = func() error {
			timer.Stop()
			select {
			case err := <-profStarted:
				if err != nil {
					return err
				}
			default:
				return nil
			}
			if pf != nil {
				pprof.StopCPUProfile()
				if err := pf.Close(); err != nil {
					return err
				}
			}
			if o.memProfile != "" {
				f, err := os.Create(o.memProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				return pprof.Lookup("allocs").WriteTo(f, 0)
			}
			return nil
		}
	}

	// The process's CPU time over the measured phase: on a shared machine
	// it tells the cost of an operation better than the throughput does.
	var cpuStart, cpuEnd atomic.Int64 // end: read after the clients stopped
	var allocsStart atomic.Uint64
	cpuTimer := time.AfterFunc(o.warmup, func() {
		cpuStart.Store(int64(processCPU()))
		allocsStart.Store(heapAllocs())
	})
	defer cpuTimer.Stop()

	// Completions per millisecond of the measured phase: the longest run
	// of empty buckets is the longest stall.
	buckets := make([]atomic.Int32, int(o.duration/time.Millisecond)+1)
	// Leader changes during the measured phase, polled every 5 ms.
	var leaderChanges atomic.Int64
	watchDone := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		last, lastTerm, seen := 0, uint64(0), false
		for {
			select {
			case <-watchDone:
				return
			case now := <-t.C:
				if now.Before(mStart) || now.After(mEnd) {
					continue
				}
				id, term := c.sim.Leader()
				if seen && (id != last || term != lastTerm) && id != -1 {
					leaderChanges.Add(1)
				}
				if id != -1 {
					last, lastTerm, seen = id, term, true
				}
			}
		}
	}()

	type perClient struct {
		lat  []time.Duration
		errs int
	}
	res := make([]perClient, o.clients)
	// One deadline for every write of the run rather than a timer per
	// write: a write cannot outlive the run by more than -apply-timeout.
	wctx, cancel := context.WithDeadline(ctx, mEnd.Add(o.timeout))
	defer cancel()
	var wg sync.WaitGroup
	for ci := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc := &res[ci]
			pc.lat = make([]time.Duration, 0, 1<<14)
			id := rand.Uint64() | 1
			cmd := makeCmd(id, ci, 1, o.size)
			for {
				t0 := time.Now()
				if !t0.Before(mEnd) || ctx.Err() != nil {
					return
				}
				ld := cur.Load()
				if ld == nil {
					if l := c.leader(); l != nil {
						cur.Store(l)
					}
					time.Sleep(time.Millisecond)
					continue
				}
				_, err := ld.Write(wctx, cmd)
				t1 := time.Now()
				if err != nil {
					pc.errs++
					if l := c.leader(); l != nil {
						cur.CompareAndSwap(ld, l)
					}
					continue // the same command again: applied once
				}
				if !t1.Before(mStart) && !t1.After(mEnd) {
					pc.lat = append(pc.lat, t1.Sub(t0))
					if i := int(t1.Sub(mStart) / time.Millisecond); i < len(buckets) {
						buckets[i].Add(1)
					}
				}
				cmd = makeCmd(id, ci, cmd.Seq+1, o.size)
			}
		}()
	}
	wg.Wait()
	close(watchDone)
	<-watched
	if err := stopProfile(); err != nil {
		return loadResult{}, fmt.Errorf("profile: %w", err)
	}
	if ctx.Err() != nil {
		return loadResult{}, ctx.Err()
	}
	out := loadResult{phaseAt: phaseAt}
	// The clients stop at the end of the phase: read the end now.
	cpuEnd.Store(int64(processCPU()))
	if cpuStart.Load() > 0 && cpuEnd.Load() > 0 {
		out.cpu = time.Duration(cpuEnd.Load() - cpuStart.Load())
	}
	if a := allocsStart.Load(); a > 0 {
		out.allocs = heapAllocs() - a
	}
	for _, pc := range res {
		out.lat = append(out.lat, pc.lat...)
		out.errs += pc.errs
	}
	run := 0
	for i := range buckets {
		if buckets[i].Load() == 0 {
			run++
			if gap := time.Duration(run) * time.Millisecond; gap > out.maxGap {
				out.maxGap, out.maxGapAt = gap, time.Duration(i+1-run)*time.Millisecond
			}
			continue
		}
		if run >= longGap {
			out.longGaps = append(out.longGaps, [2]time.Duration{time.Duration(i-run) * time.Millisecond, time.Duration(run) * time.Millisecond})
		}
		run = 0
	}
	out.leaderChanges = int(leaderChanges.Load())
	slices.Sort(out.lat)
	return out, nil
}

// measureFailover crashes the leader (its server stops; its storage stays)
// and returns the time until a survivor reports being the leader and the
// time until a write through it is applied, both from just before the
// crash. Then it restarts the old leader from its storage.
func (c *cluster) measureFailover(ctx context.Context, round int) (elect, total time.Duration, err error) {
	old, err := c.waitHealthy(ctx, 30*time.Second)
	if err != nil {
		return 0, 0, err
	}
	oldID := old.ID()
	t0 := time.Now()
	if err := c.sim.CrashPeer(oldID); err != nil {
		return 0, 0, err
	}
	deadline := t0.Add(30 * time.Second)
	key := "failover-" + strconv.Itoa(round)
	for {
		if time.Now().After(deadline) {
			return 0, 0, errors.New("no new leader within 30s")
		}
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		ld := c.leader()
		if ld == nil {
			time.Sleep(250 * time.Microsecond)
			continue
		}
		if elect == 0 {
			elect = time.Since(t0)
		}
		if c.healthWrite(ctx, ld, key) == nil {
			total = time.Since(t0)
			break
		}
	}
	if err := c.sim.RestartPeer(oldID); err != nil {
		return 0, 0, fmt.Errorf("restart %d: %w", oldID, err)
	}
	return elect, total, nil
}

// setLatencies fills the latency fields from the sorted latencies of the
// measured phase.
func (r *Result) setLatencies(sorted []time.Duration) {
	r.P50Ms, r.P90Ms, r.P99Ms = ms(percentile(sorted, 0.50)), ms(percentile(sorted, 0.90)), ms(percentile(sorted, 0.99))
	if n := len(sorted); n > 0 {
		var sum time.Duration
		for _, d := range sorted {
			sum += d
		}
		r.MeanMs, r.MaxMs = ms(sum/time.Duration(n)), ms(sorted[n-1])
	}
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1 // nearest rank
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
