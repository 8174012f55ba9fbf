// Command dragonboat-shards measures lni/dragonboat (v3) with many Raft
// shards on the same NodeHosts: the workload of raft-consensus's
// "bench -groups G -active A" (client c writes to shard c mod A, each with
// SyncPropose on the shard leader's NodeHost), so that the two can be
// compared with many groups, which the one-shard baseline in
// ../../../shared/bench/dragonboat does not run. Its settings are that
// baseline's (TCP on 127.0.0.1, pebble LogDB on a MemFS or, with -store
// disk, in a temporary directory with fsync, 1 ms ticks, election 150 ticks,
// heartbeat 15, CheckQuorum, no snapshots), and it prints the same kind of
// one-line JSON. It is a module of its own, so that dragonboat and pebble
// stay out of raft-consensus's module.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lni/dragonboat/v3"
	"github.com/lni/dragonboat/v3/client"
	"github.com/lni/dragonboat/v3/config"
	"github.com/lni/dragonboat/v3/logger"
	sm "github.com/lni/dragonboat/v3/statemachine"
	gvfs "github.com/lni/goutils/vfs"
)

type options struct {
	nodes, shards, active, clients, size int
	store                                string
	duration, warmup, timeout            time.Duration
	verbose                              bool
}

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 3, "NodeHosts, each hosting a replica of every shard")
	flag.IntVar(&o.shards, "groups", 48, "Raft shards (\"clusters\" in v3) on every NodeHost")
	flag.IntVar(&o.active, "active", 0, "how many shards get the load (default: all, at most -clients)")
	flag.IntVar(&o.clients, "clients", 64, "client goroutines; client c writes to shard c mod -active")
	flag.IntVar(&o.size, "size", 64, "size in bytes of the whole command")
	flag.StringVar(&o.store, "store", "mem", "mem (pebble on a MemFS) or disk (pebble in a temp dir, fsync)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured phase")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up (load runs, nothing recorded)")
	flag.DurationVar(&o.timeout, "apply-timeout", 10*time.Second, "SyncPropose's deadline")
	flag.BoolVar(&o.verbose, "v", false, "progress on stderr")
	flag.Parse()
	if o.active == 0 {
		o.active = min(o.shards, o.clients)
	}
	switch {
	case o.nodes < 1 || o.shards < 1 || o.clients < 1 || o.size < 8:
		fatalf("-nodes, -groups and -clients must be >= 1, -size >= 8")
	case o.active < 1 || o.active > o.shards:
		fatalf("-active must be between 1 and -groups")
	case o.store != "mem" && o.store != "disk":
		fatalf("-store must be mem or disk")
	}
	logger.SetLoggerFactory(func(pkg string) logger.ILogger { return quiet{} })
	res, err := run(o)
	if err != nil {
		fatalf("%v", err)
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "dragonboat-shards: "+format+"\n", a...)
	os.Exit(2)
}

type quiet struct{}

func (quiet) SetLevel(logger.LogLevel)  {}
func (quiet) Debugf(string, ...any)     {}
func (quiet) Infof(string, ...any)      {}
func (quiet) Warningf(string, ...any)   {}
func (quiet) Errorf(string, ...any)     {}
func (quiet) Panicf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// kv is the baseline's state machine: "set <key> <value>" into a map.
type kv struct {
	mu sync.Mutex
	m  map[string]string
}

func (f *kv) Update(d []byte) (sm.Result, error) {
	d, ok := bytes.CutPrefix(d, []byte("set "))
	sp := bytes.IndexByte(d, ' ')
	if !ok || sp < 0 {
		return sm.Result{}, fmt.Errorf("bad command")
	}
	f.mu.Lock()
	f.m[string(d[:sp])] = string(d[sp+1:])
	f.mu.Unlock()
	return sm.Result{Value: 1}, nil
}
func (f *kv) Lookup(any) (any, error) { return nil, nil }
func (f *kv) SaveSnapshot(w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	return errors.New("no snapshots in this benchmark")
}
func (f *kv) RecoverFromSnapshot(io.Reader, []sm.SnapshotFile, <-chan struct{}) error {
	return errors.New("no snapshots in this benchmark")
}
func (f *kv) Close() error { return nil }

type result struct {
	Impl      string   `json:"impl"`
	Nodes     int      `json:"nodes"`
	Transport string   `json:"transport"`
	Store     string   `json:"store"`
	Clients   int      `json:"clients"`
	Ops       int      `json:"ops"`
	OpsPerSec float64  `json:"ops_per_sec"`
	P50Ms     float64  `json:"p50_ms"`
	P99Ms     float64  `json:"p99_ms"`
	Failover  *float64 `json:"failover_ms"`
	Size      int      `json:"size"`
	DurationS float64  `json:"duration_s"`
	Errors    int      `json:"errors"`
	P90Ms     float64  `json:"p90_ms"`
	MaxMs     float64  `json:"max_ms"`
	CPUS      float64  `json:"cpu_s"`
	CPUPerOp  float64  `json:"cpu_us_per_op"`
	Groups    int      `json:"groups"`
	Active    int      `json:"active"`
	Version   string   `json:"version"`
	GoMaxProc int      `json:"gomaxprocs"`
}

func run(o options) (*result, error) {
	dir := ""
	if o.store == "disk" {
		d, err := os.MkdirTemp("", "dragonboat-shards-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	members := map[uint64]string{}
	for i := range o.nodes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		members[uint64(i+1)] = l.Addr().String()
		l.Close()
	}
	hosts := make([]*dragonboat.NodeHost, o.nodes)
	defer func() {
		for _, nh := range hosts {
			if nh != nil {
				nh.Stop()
			}
		}
	}()
	for i := range o.nodes {
		id := uint64(i + 1)
		nhc := config.NodeHostConfig{RTTMillisecond: 1, RaftAddress: members[id],
			Expert: config.ExpertConfig{LogDB: config.GetDefaultLogDBConfig()}}
		if dir == "" {
			nhc.Expert.FS = gvfs.NewMem()
			nhc.NodeHostDir = fmt.Sprintf("/dragonboat-shards/nh%d", id)
		} else {
			nhc.NodeHostDir = filepath.Join(dir, fmt.Sprintf("nh%d", id))
		}
		nh, err := dragonboat.NewNodeHost(nhc)
		if err != nil {
			return nil, err
		}
		hosts[i] = nh
		for s := range o.shards {
			rc := config.Config{NodeID: id, ClusterID: uint64(s + 1), ElectionRTT: 150, HeartbeatRTT: 15, CheckQuorum: true}
			if err := nh.StartCluster(members, false, func(uint64, uint64) sm.IStateMachine { return &kv{m: map[string]string{}} }, rc); err != nil {
				return nil, err
			}
		}
	}
	leader := func(shard uint64) *dragonboat.NodeHost {
		for _, nh := range hosts {
			if id, ok, err := nh.GetLeaderID(shard); err == nil && ok {
				return hosts[id-1]
			}
		}
		return nil
	}
	t0 := time.Now()
	for s := range o.shards {
		for leader(uint64(s+1)) == nil {
			if time.Since(t0) > 60*time.Second {
				return nil, fmt.Errorf("shard %d has no leader after 60s", s+1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if o.verbose {
		fmt.Fprintf(os.Stderr, "dragonboat-shards: %d shards on %d NodeHosts up after %v\n", o.shards, o.nodes, time.Since(t0))
	}

	var measuring atomic.Bool
	stop := make(chan struct{})
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	for c := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			shard := uint64(c%o.active + 1)
			var sess *client.Session
			var at *dragonboat.NodeHost
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				nh := leader(shard)
				if nh == nil {
					time.Sleep(time.Millisecond)
					continue
				}
				if nh != at {
					sess, at = nh.GetNoOPSession(shard), nh
				}
				cmd := makeCmd(c, seq, o.size)
				ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
				t := time.Now()
				_, err := nh.SyncPropose(ctx, sess, cmd)
				d := time.Since(t)
				cancel()
				if !measuring.Load() {
					continue
				}
				mu.Lock()
				if err != nil {
					errs++
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(o.warmup)
	cpu0 := processCPU()
	measuring.Store(true)
	tm := time.Now()
	time.Sleep(o.duration)
	measuring.Store(false)
	elapsed, cpu := time.Since(tm), processCPU()-cpu0
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res := &result{Impl: "dragonboat-shards", Nodes: o.nodes, Transport: "tcp", Store: o.store, Clients: o.clients, Ops: len(lat),
		OpsPerSec: math.Round(float64(len(lat))/elapsed.Seconds()*10) / 10, Size: o.size, DurationS: o.duration.Seconds(), Errors: errs,
		P50Ms: ms(pct(lat, 0.5)), P90Ms: ms(pct(lat, 0.9)), P99Ms: ms(pct(lat, 0.99)), CPUS: math.Round(cpu.Seconds()*1000) / 1000,
		Groups: o.shards, Active: o.active, Version: "v3.3.8", GoMaxProc: runtime.GOMAXPROCS(0)}
	if len(lat) > 0 {
		res.MaxMs = ms(lat[len(lat)-1])
		res.CPUPerOp = math.Round(float64(cpu)/float64(len(lat))/10) / 100
	}
	return res, nil
}

// makeCmd is the baseline's command: "set c<client>-<seq mod 1024> xxx…".
func makeCmd(client, seq, size int) []byte {
	b := make([]byte, 0, size+16)
	b = append(b, "set c"...)
	b = strconv.AppendInt(b, int64(client), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(seq&1023), 10)
	b = append(b, ' ')
	for len(b) < size {
		b = append(b, 'x')
	}
	if b[len(b)-1] == ' ' {
		b = append(b, 'x')
	}
	return b
}

func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := min(max(int(math.Ceil(q*float64(len(sorted))))-1, 0), len(sorted)-1)
	return sorted[i]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000 }

// processCPU is the process's user and system CPU so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
