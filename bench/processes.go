package bench

// The benchmark on node processes (-processes): the same workload, but
// each node is a process of its own ("node", started by the launcher on
// 127.0.0.1, with its durable storage) and every client write crosses the
// network to the leader (kv.Client over the KV service) instead of being
// handed to the leader's server in this process. It measures what running
// as processes costs against the in-process cluster with -store disk.

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"raft-consensus/raft/remote"
)

func runProcesses(ctx context.Context, o options, stderr io.Writer) (*Result, error) {
	logf := func(format string, a ...any) {
		if o.verbose {
			fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
		}
	}
	dir, err := os.MkdirTemp("", "raft-bench-processes-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	nodeArgs := []string{"-election-timeout", electionMin.String(), "-heartbeat", heartbeat.String(),
		"-snapshot-every", strconv.FormatUint(o.snapshotEvery, 10)}
	if o.nodeProfiles != "" {
		nodeArgs = append(nodeArgs, "-cpuprofile", filepath.Join(o.nodeProfiles, "node-{id}.pprof"))
	}
	l, err := remote.Launch(remote.LauncherConfig{Dir: dir, Nodes: o.nodes, Cluster: "bench", Binary: o.binary, NodeArgs: nodeArgs})
	if err != nil {
		return nil, err
	}
	c, err := remote.Connect(remote.ClusterConfig{Addrs: l.Addrs(), Cluster: "bench", Processes: l, Timeout: o.timeout})
	if err != nil {
		l.Close()
		return nil, err
	}
	defer c.Shutdown()
	if _, _, err := c.CheckUniqueLeader(30 * time.Second); err != nil {
		return nil, err
	}
	logf("%d node processes up", o.nodes)

	start := time.Now()
	mStart := start.Add(o.warmup)
	mEnd := mStart.Add(o.duration)
	buckets := make([]int32, int(o.duration/time.Millisecond)+1)
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	// The CPU of every process (the nodes' and this one, the clients')
	// over the measured phase.
	pids := c.Pids()
	cpuNow := func() time.Duration {
		total := processCPU()
		for _, pid := range pids {
			total += pidCPU(pid)
		}
		return total
	}
	var cpuStart atomic.Int64
	var splitStart []time.Duration // this process's, then each node's
	split := func() []time.Duration {
		out := []time.Duration{processCPU()}
		for id := range o.nodes {
			out = append(out, pidCPU(pids[id]))
		}
		return out
	}
	cpuTimer := time.AfterFunc(o.warmup, func() {
		splitStart = split()
		cpuStart.Store(int64(cpuNow()))
	})
	if o.cpuProfile != "" {
		// The clients' process: the nodes' are -node-cpuprofiles.
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	var wg sync.WaitGroup
	for ci := range o.clients {
		client := c.NewClient()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			myErrs := 0
			defer func() {
				mu.Lock()
				lat = append(lat, mine...)
				errs += myErrs
				mu.Unlock()
			}()
			for seq := uint64(1); ; seq++ {
				t0 := time.Now()
				if !t0.Before(mEnd) || ctx.Err() != nil {
					return
				}
				cmd := makeCmd(client.ID(), ci, seq, o.size)
				wctx, cancel := context.WithTimeout(ctx, o.timeout)
				err := client.Set(wctx, cmd.Key, cmd.Value) // retried within, applied once
				cancel()
				t1 := time.Now()
				if err != nil {
					myErrs++
					continue
				}
				if !t1.Before(mStart) && !t1.After(mEnd) {
					mine = append(mine, t1.Sub(t0))
					if i := int(t1.Sub(mStart) / time.Millisecond); i < len(buckets) {
						mu.Lock()
						buckets[i]++
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	cpuTimer.Stop()
	cpu := cpuNow() - time.Duration(cpuStart.Load())
	if end := split(); cpuStart.Load() > 0 {
		logf("CPU in the measured phase: the clients' process %v, nodes %v → %v (10 ms ticks)", end[0]-splitStart[0], splitStart[1:], end[1:])
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	slices.Sort(lat)
	res := &Result{
		Impl: "raft-consensus-processes", Nodes: o.nodes, Transport: o.transport, Store: "disk",
		Clients: o.clients, Ops: len(lat),
		OpsPerSec: math.Round(float64(len(lat))/o.duration.Seconds()*10) / 10,
		Size:      o.size, DurationS: o.duration.Seconds(), Errors: errs,
		ElectionTimeout: fmt.Sprintf("%v-%v", electionMin, electionMax), Heartbeat: heartbeat.String(),
		Fsync: true, GoMaxProcs: runtime.GOMAXPROCS(0), FailoverAllMs: []float64{},
		Pipeline: o.pipeline, PipelineAfterUs: float64(o.pipelineAfter) / float64(time.Microsecond),
	}
	res.setLatencies(lat)
	if n := len(lat); n > 0 {
		if cpuStart.Load() > 0 {
			res.CPUSeconds = math.Round(cpu.Seconds()*1000) / 1000
			res.CPUPerOpUs = math.Round(float64(cpu)/float64(n)/10) / 100
		}
	}
	run, maxRun := 0, 0
	for _, b := range buckets {
		if b == 0 {
			run++
			maxRun = max(maxRun, run)
		} else {
			run = 0
		}
	}
	res.MaxGapMs = float64(maxRun)

	if o.failovers > 0 && o.nodes >= 3 {
		var totals []time.Duration
		probe := c.NewClient()
		for i := range o.failovers {
			leader, _, err := c.CheckUniqueLeader(30 * time.Second)
			if err != nil {
				return nil, fmt.Errorf("failover %d: %w", i, err)
			}
			t0 := time.Now()
			if err := c.CrashPeer(leader); err != nil {
				return nil, fmt.Errorf("failover %d: %w", i, err)
			}
			// The time until a write is applied through a new leader.
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = probe.Set(wctx, "_failover", strconv.Itoa(i))
			cancel()
			total := time.Since(t0)
			if err != nil {
				return nil, fmt.Errorf("failover %d: no write after SIGKILL of the leader: %w", i, err)
			}
			logf("failover %d: SIGKILL of the leader %d, a write through its successor after %v", i, leader, total)
			totals = append(totals, total)
			res.FailoverAllMs = append(res.FailoverAllMs, ms(total))
			if err := c.RestartPeer(leader); err != nil {
				return nil, fmt.Errorf("failover %d: restarting %d: %w", i, leader, err)
			}
		}
		f := ms(median(totals))
		res.FailoverMs = &f
	}
	return res, nil
}
