package sim

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"raft-consensus/raft/trace"
)

// TestSimulation runs the deterministic simulation over many seeds.
//
//	RAFT_SIM_SEEDS=n   run n seeds (default: as many as fit in about 10 s)
//	RAFT_SIM_BASE=b    start at seed b (default 1; "random" picks one)
//	RAFT_SIM_SEED=s    replay seed s alone (with -v: its summary; with
//	                   RAFT_DEBUG=1: its full trace, in virtual time)
func TestSimulation(t *testing.T) {
	if s := os.Getenv("RAFT_SIM_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("RAFT_SIM_SEED=%q: %v", s, err)
		}
		var out io.Writer
		if trace.TracerFromEnv() != nil {
			out = os.Stdout
		}
		summary, err := runSeed(seed, out)
		t.Log(summary)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		return
	}
	base := int64(1)
	if b := os.Getenv("RAFT_SIM_BASE"); b == "random" {
		base = time.Now().UnixNano() % 1_000_000_000
	} else if b != "" {
		v, err := strconv.ParseInt(b, 10, 64)
		if err != nil {
			t.Fatalf("RAFT_SIM_BASE=%q: %v", b, err)
		}
		base = v
	}
	n, budget := int64(0), 10*time.Second
	if s := os.Getenv("RAFT_SIM_SEEDS"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			t.Fatalf("RAFT_SIM_SEEDS=%q: want a positive number", s)
		}
		n, budget = v, 0
	}

	start := time.Now()
	var next, ran, failed atomic.Int64
	next.Store(base)
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed := next.Add(1) - 1
				if n > 0 && seed >= base+n {
					return
				}
				if budget > 0 && time.Since(start) > budget {
					return
				}
				if failed.Load() >= 5 {
					return
				}
				_, err := runSeed(seed, nil)
				ran.Add(1)
				if err != nil {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, fmt.Sprintf("seed %d: %v\n\treplay: RAFT_SIM_SEED=%d go test -run 'TestSimulation$' -v ./raft/", seed, err, seed))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d seeds from %d in %v: %.0f runs per minute", ran.Load(), base, elapsed.Round(time.Millisecond), float64(ran.Load())/elapsed.Minutes())
	for _, f := range failures {
		t.Error(f)
	}
}

// TestSimulationIsDeterministic replays seeds and expects identical runs.
func TestSimulationIsDeterministic(t *testing.T) {
	for _, seed := range []int64{7, 42, 1234} {
		a, errA := runSeed(seed, nil)
		b, errB := runSeed(seed, nil)
		if a != b || fmt.Sprint(errA) != fmt.Sprint(errB) {
			t.Fatalf("seed %d replayed differently:\n%s (%v)\n%s (%v)", seed, a, errA, b, errB)
		}
	}
}
