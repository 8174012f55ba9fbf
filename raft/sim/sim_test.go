package sim

import (
	"fmt"
	"io"
	"os"
	"strconv"
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
//
// A failing seed is reported as soon as it is found, with the line that
// replays it.
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
		res := RunSeed(seed, Options{Trace: out})
		t.Log(res.Summary)
		if res.Err != nil {
			t.Fatalf("seed %d: %v", seed, res.Err)
		}
		return
	}
	cfg := RunConfig{First: 1, Budget: 10 * time.Second}
	if b := os.Getenv("RAFT_SIM_BASE"); b == "random" {
		cfg.First = time.Now().UnixNano() % 1_000_000_000
	} else if b != "" {
		v, err := strconv.ParseInt(b, 10, 64)
		if err != nil {
			t.Fatalf("RAFT_SIM_BASE=%q: %v", b, err)
		}
		cfg.First = v
	}
	if s := os.Getenv("RAFT_SIM_SEEDS"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			t.Fatalf("RAFT_SIM_SEEDS=%q: want a positive number", s)
		}
		cfg.Seeds = v
	}
	cfg.OnResult = func(r Result) {
		if r.Err != nil {
			t.Errorf("seed %d: %v\n\t%s\n\treplay: RAFT_SIM_SEED=%d go test -run 'TestSimulation$' -v ./raft/sim/", r.Seed, r.Err, r.Summary, r.Seed)
		}
	}
	rep := Run(cfg)
	t.Logf("%d seeds from %d in %v: %.0f runs per minute", rep.Ran, cfg.First, rep.Elapsed.Round(time.Millisecond), rep.RunsPerMinute())
}

// TestSimulationIsDeterministic replays seeds and expects identical runs.
func TestSimulationIsDeterministic(t *testing.T) {
	for _, seed := range []int64{7, 42, 1234} {
		a, b := RunSeed(seed, Options{}), RunSeed(seed, Options{})
		if a.Summary != b.Summary || fmt.Sprint(a.Err) != fmt.Sprint(b.Err) {
			t.Fatalf("seed %d replayed differently:\n%s (%v)\n%s (%v)", seed, a.Summary, a.Err, b.Summary, b.Err)
		}
	}
}

// TestPipelinedAppendsArriveOutOfOrder shows that the simulation exercises
// what pipelining allows: with several RPCs in flight per link, each with
// its own delay, followers step AppendEntries out of order, and every
// check still passes. With one RPC at a time and no network faults
// (hence no duplicates or late messages), nothing is reordered: the count
// measures what it says.
func TestPipelinedAppendsArriveOutOfOrder(t *testing.T) {
	noNet := FaultSet{Disk: true, Clock: true}
	for _, tc := range []struct {
		pipeline  int
		faults    *FaultSet
		reordered bool
	}{{4, nil, true}, {4, &noNet, true}, {1, &noNet, false}} {
		total := 0
		for seed := int64(1); seed <= 5; seed++ {
			r := RunSeed(seed, Options{Faults: tc.faults, Params: func(p *Params) { p.Pipeline = tc.pipeline }})
			if r.Err != nil {
				t.Fatalf("pipeline %d, seed %d: %v", tc.pipeline, seed, r.Err)
			}
			total += r.Stats.Reordered
		}
		t.Logf("pipeline %d, faults %v: %d appends stepped out of order in 5 seeds", tc.pipeline, tc.faults, total)
		if (total > 0) != tc.reordered {
			t.Errorf("pipeline %d, faults %v: %d appends out of order, want reordering %v", tc.pipeline, tc.faults, total, tc.reordered)
		}
	}
}
