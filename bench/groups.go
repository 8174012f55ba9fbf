package bench

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
	"sync"
	"sync/atomic"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/multinode"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/storage/vfs"
)

// GroupsResult extends Result with the figures of many groups per node.
type GroupsResult struct {
	Result
	Groups int `json:"groups"`
	Active int `json:"active"`
	// Per ordered node pair, per second: batches (one RPC each), and the
	// batches that carried heartbeats, under load and idle.
	RPCsPerSecPerPair          float64 `json:"rpcs_per_sec_per_pair"`
	HeartbeatMsgsPerSecPerPair float64 `json:"heartbeat_msgs_per_sec_per_pair"`
	IdleRPCsPerSecPerPair      float64 `json:"idle_rpcs_per_sec_per_pair"`
	IdleHeartbeatsPerSecPair   float64 `json:"idle_heartbeat_msgs_per_sec_per_pair"`
	// FsyncsPerSecPerNode counts the shared logs' fsyncs in the measured
	// phase (-store disk; 0 in memory).
	FsyncsPerSecPerNode float64 `json:"fsyncs_per_sec_per_node"`
	// IdleCPUPct is the process's CPU over an idle phase once every group
	// is quiet, in % of one core.
	IdleCPUPct float64 `json:"idle_cpu_pct"`
	// HeapBytesPerReplica is the heap per replica once every group has
	// elected a leader and committed one entry, before the load.
	HeapBytesPerReplica float64 `json:"heap_bytes_per_replica"`
	QuietAtIdle         int     `json:"quiet_replicas_at_idle"`
}

// runGroups runs the workload on o.nodes multinode.Nodes in this process
// (a LocalNetwork between them), hosting o.groups groups on every node, of
// which the clients load o.active.
func runGroups(ctx context.Context, o options, stderr io.Writer) (*GroupsResult, error) {
	logf := func(format string, a ...any) {
		if o.verbose {
			fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
		}
	}
	tick := 10 * time.Millisecond
	cc := core.CoreConfig{ElectionTicksMin: int(electionMin / tick), ElectionTicksMax: int(electionMax / tick), HeartbeatTicks: int(heartbeat / tick),
		PreVote: true, CheckQuorum: true, MaxInflight: 64, MaxEntriesPerAppend: 512, MaxBytesPerAppend: 1 << 20, SnapshotChunkBytes: 1 << 20}
	var m0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	net := multinode.NewLocalNetwork()
	nodes := make([]*multinode.Node, o.nodes)
	// With -transport tcp each node has a TCP transport (one stream per
	// ordered pair), kept across its restarts.
	var tcps []*multinode.TCP
	if o.transport == "tcp" {
		for i := range o.nodes {
			t, err := multinode.ListenTCP(multinode.TCPConfig{ID: multi.NodeID(i), Cluster: "bench", Listen: "127.0.0.1:0"})
			if err != nil {
				return nil, err
			}
			defer t.Close()
			tcps = append(tcps, t)
		}
		for i, t := range tcps {
			for j, u := range tcps {
				if i != j {
					t.SetPeer(multi.NodeID(j), u.Addr())
				}
			}
		}
	}
	logs := make([]*storage.SharedLog, o.nodes)
	dir := ""
	if o.store == "disk" {
		d, err := os.MkdirTemp("", "raft-bench-groups-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	var ids []multi.NodeID
	for i := range o.nodes {
		ids = append(ids, multi.NodeID(i))
	}
	// Each node's storage outlives it, for the failovers' restarts: its
	// shared log on disk, or its groups' MemoryStorages.
	mems := make([]map[multi.GroupID]*storage.MemoryStorage, o.nodes)
	start := func(i int) error {
		c := cc
		c.Seed = o.seed*7 + int64(i) + 1
		mc := multinode.Config{ID: multi.NodeID(i), Core: c, Tick: tick, Transport: net.Transport()}
		if tcps != nil {
			mc.Transport = tcps[i]
		}
		if dir != "" {
			l, err := storage.OpenSharedLog(vfs.OS{}, filepath.Join(dir, fmt.Sprint(i)), storage.SharedOptions{})
			if err != nil {
				return err
			}
			logs[i], mc.Log = l, l
		} else {
			if mems[i] == nil {
				mems[i] = map[multi.GroupID]*storage.MemoryStorage{}
			}
			mem := mems[i]
			mc.Storage = func(g multi.GroupID) storage.Storage {
				if mem[g] == nil {
					mem[g] = storage.NewMemoryStorage()
				}
				return mem[g]
			}
		}
		n := multinode.New(mc)
		if tcps != nil {
			tcps[i].Attach(n)
		} else {
			net.Add(n)
		}
		nodes[i] = n
		for g := range multi.GroupID(o.groups) {
			if err := n.CreateGroup(g, ids); err != nil {
				return err
			}
		}
		return nil
	}
	stop := func(i int) {
		nodes[i].Stop()
		if logs[i] != nil {
			logs[i].Close()
		}
	}
	defer func() {
		for i := range nodes {
			if nodes[i] != nil {
				stop(i)
			}
		}
	}()
	for i := range o.nodes {
		if err := start(i); err != nil {
			return nil, err
		}
	}
	propose := func(ctx context.Context, g multi.GroupID, data []byte) error {
		return multinode.ProposeAtLeader(ctx, nodes, g, data, 2*electionMax)
	}
	// Every group elects a leader and commits once before the load.
	t0 := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var werr atomic.Value
	for g := range multi.GroupID(o.groups) {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := propose(wctx, g, []byte("warm")); err != nil {
				werr.Store(fmt.Errorf("group %v: %w", g, err))
			}
		}()
	}
	wg.Wait()
	if err, _ := werr.Load().(error); err != nil {
		return nil, err
	}
	led := map[multi.NodeID]int{}
	for g := range multi.GroupID(o.groups) {
		led[nodes[0].Leader(g)]++
	}
	logf("%d groups on %d nodes up after %v; leaders by node: %v", o.groups, o.nodes, time.Since(t0), led)
	// The heap of replicas that hold one entry each, before the load
	// fills the active groups' logs.
	var m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m1)

	// The load: client c writes to active group c mod active.
	payload := make([]byte, o.size)
	lctx, lcancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var measuring atomic.Bool
	begin := make(chan struct{})
	for c := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := multi.GroupID(c % o.active)
			<-begin
			for lctx.Err() == nil {
				t := time.Now()
				err := propose(lctx, g, payload)
				d := time.Since(t)
				if !measuring.Load() {
					continue
				}
				mu.Lock()
				if err != nil && lctx.Err() == nil {
					errs++
				} else if err == nil {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	close(begin)
	time.Sleep(o.warmup)
	stats0, syncs0 := sumStats(nodes), sumSyncs(logs)
	cpu0 := processCPU()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			lcancel()
			wg.Wait()
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			lcancel()
			wg.Wait()
			return nil, err
		}
	}
	measuring.Store(true)
	tm := time.Now()
	time.Sleep(o.duration)
	measuring.Store(false)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	elapsed := time.Since(tm)
	cpu := processCPU() - cpu0
	stats1, syncs1 := sumStats(nodes), sumSyncs(logs)
	lcancel()
	wg.Wait()
	mu.Lock()
	slices.Sort(lat)
	ops := len(lat)
	mu.Unlock()
	pairs := float64(o.nodes * (o.nodes - 1))

	// Idle: wait until every replica is quiet (or 10 s), then measure.
	quietBy := time.Now().Add(10 * time.Second)
	quiet, all := 0, 0
	for time.Now().Before(quietBy) {
		quiet, all = 0, 0
		for _, n := range nodes {
			q, a, err := n.Quiet()
			if err != nil {
				return nil, err
			}
			quiet, all = quiet+q, all+a
		}
		if quiet == all {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	idle0, icpu0, it := sumStats(nodes), processCPU(), time.Now()
	time.Sleep(2 * time.Second)
	idle1, icpu, idleFor := sumStats(nodes), processCPU()-icpu0, time.Since(it)
	logf("idle: %d of %d replicas quiet; %v of CPU in %v", quiet, all, icpu, idleFor)
	for i, n := range nodes {
		logf("node %d: %d batches lost to a full inbox", i, n.Dropped())
	}
	for i, t := range tcps {
		st := t.Stats()
		logf("node %d's TCP transport: %d frames sent (%d bytes), %d dropped (a peer's queue full or unreachable), %d received", i, st.FramesSent, st.BytesSent, st.FramesDropped, st.FramesReceived)
	}

	res := &GroupsResult{
		Result: Result{Impl: "raft-consensus-multi", Nodes: o.nodes, Transport: o.transport, Store: o.store, Clients: o.clients, Ops: ops,
			OpsPerSec: math.Round(float64(ops)/elapsed.Seconds()*10) / 10,
			Size:      o.size, DurationS: o.duration.Seconds(), Errors: errs, FailoverAllMs: []float64{},
			ElectionTimeout: fmt.Sprintf("%v-%v", electionMin, electionMax), Heartbeat: heartbeat.String(),
			GoMaxProcs: runtime.GOMAXPROCS(0), CPUSeconds: math.Round(cpu.Seconds()*1000) / 1000, Fsync: o.store == "disk"},
		Groups: o.groups, Active: o.active,
		RPCsPerSecPerPair:          round1(float64(stats1.Batches-stats0.Batches) / pairs / elapsed.Seconds()),
		HeartbeatMsgsPerSecPerPair: round1(float64(stats1.HeartbeatSends-stats0.HeartbeatSends) / pairs / elapsed.Seconds()),
		IdleRPCsPerSecPerPair:      round1(float64(idle1.Batches-idle0.Batches) / pairs / idleFor.Seconds()),
		IdleHeartbeatsPerSecPair:   round1(float64(idle1.HeartbeatSends-idle0.HeartbeatSends) / pairs / idleFor.Seconds()),
		IdleCPUPct:                 math.Round(float64(icpu)/float64(idleFor)*10000) / 100,
		FsyncsPerSecPerNode:        round1(float64(syncs1-syncs0) / float64(o.nodes) / elapsed.Seconds()),
		HeapBytesPerReplica:        math.Round(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(o.nodes*o.groups)),
		QuietAtIdle:                quiet,
	}
	res.setLatencies(lat)
	if ops > 0 {
		res.CPUPerOpUs = math.Round(float64(cpu)/float64(ops)/10) / 100
	}
	if o.failovers > 0 && o.nodes >= 3 {
		var all, last []time.Duration
		for round := range o.failovers {
			f, err := groupsFailover(ctx, nodes, o.groups, stop, start)
			if err != nil {
				return nil, fmt.Errorf("failover %d: %w", round, err)
			}
			logf("failover %d: node %d led %d groups; every one had a new leader after %v (the first after %v, half after %v, 90%% after %v)",
				round, f.node, f.led, f.all, f.first, f.each[len(f.each)/2], f.each[len(f.each)*9/10])
			all, last = append(all, f.all), append(last, f.first)
			res.FailoverAllMs = append(res.FailoverAllMs, ms(f.all))
		}
		a, e := ms(median(all)), ms(median(last))
		res.FailoverMs, res.FailoverElectMs = &a, &e
	}
	return res, nil
}

// groupFailover is one failover of a node leading many groups.
type groupFailover struct {
	node, led  int
	first, all time.Duration   // until the first, and every, group it led has a new leader
	each       []time.Duration // until each had one, in order
}

// groupsFailover waits until every group has a leader and the groups
// are quiet, crashes the node leading the most groups, and measures the
// time until each of those groups has a new leader on another node (a
// quiet group's followers learn of the death from the node's silence,
// multi.Config.LivenessTicks, then elect). Then it restarts the node on
// its storage.
func groupsFailover(ctx context.Context, nodes []*multinode.Node, groups int, stop func(int), start func(int) error) (groupFailover, error) {
	var f groupFailover
	leaders := func(n *multinode.Node, only []multi.GroupID) (map[multi.GroupID]bool, error) {
		led := map[multi.GroupID]bool{}
		err := n.Do(ctx, func(h *multi.Host) {
			gs := only
			if gs == nil {
				gs = h.Groups()
			}
			for _, g := range gs {
				if sum, _, err := h.Summary(g); err == nil && sum.Role == core.Leader {
					led[g] = true
				}
			}
		})
		return led, err
	}
	// Settle: every group led, every replica quiet (the hard case: no
	// heartbeat tells a follower its leader died).
	deadline := time.Now().Add(60 * time.Second)
	var led []map[multi.GroupID]bool
	for {
		led = led[:0]
		total, quiet, all := 0, 0, 0
		for _, n := range nodes {
			l, err := leaders(n, nil)
			if err != nil {
				return f, err
			}
			q, a, err := n.Quiet()
			if err != nil {
				return f, err
			}
			led, total, quiet, all = append(led, l), total+len(l), quiet+q, all+a
		}
		distinct := map[multi.GroupID]bool{}
		for _, l := range led {
			for g := range l {
				distinct[g] = true
			}
		}
		// Each group led once, by one node: a deposed leader that does not
		// know it yet would count twice.
		if total == groups && len(distinct) == groups && quiet == all {
			break
		}
		if time.Now().After(deadline) {
			return f, fmt.Errorf("not settled after 60s: %d of %d groups led, %d of %d replicas quiet", total, groups, quiet, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range led {
		if len(led[i]) > len(led[f.node]) {
			f.node = i
		}
	}
	var affected []multi.GroupID
	for g := range led[f.node] {
		affected = append(affected, g)
	}
	f.led = len(affected)
	t0 := time.Now()
	stop(f.node)
	for len(affected) > 0 {
		if time.Since(t0) > 30*time.Second {
			return f, fmt.Errorf("%d of the %d groups node %d led have no leader 30s after it crashed", len(affected), f.led, f.node)
		}
		for i, n := range nodes {
			if i == f.node {
				continue
			}
			l, err := leaders(n, affected)
			if err != nil {
				return f, err
			}
			if len(l) > 0 && f.first == 0 {
				f.first = time.Since(t0)
			}
			for range l {
				f.each = append(f.each, time.Since(t0))
			}
			affected = slices.DeleteFunc(affected, func(g multi.GroupID) bool { return l[g] })
		}
		time.Sleep(time.Millisecond)
	}
	f.all = time.Since(t0)
	return f, start(f.node)
}

func sumStats(nodes []*multinode.Node) multi.Stats {
	var s multi.Stats
	for _, n := range nodes {
		x := n.Stats()
		s.Batches += x.Batches
		s.HeartbeatSends += x.HeartbeatSends
		s.Heartbeats += x.Heartbeats
		s.GroupTicks += x.GroupTicks
	}
	return s
}

func sumSyncs(logs []*storage.SharedLog) uint64 {
	var n uint64
	for _, l := range logs {
		if l != nil {
			n += l.Stats().Syncs
		}
	}
	return n
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
