//go:build long

package raft

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"
)

// TestBoundedMillionWrites writes 1,000,000 values over 1,000 keys into a
// 3-node cluster with durable storage and snapshots, and checks that each
// server's log, memory and disk stay bounded and that throughput does not
// fall as the total grows (first 10% against last 10%).
//
//	go test -tags long -run TestBoundedMillionWrites -v -timeout 30m ./raft/
//
// RAFT_BOUNDED_WRITES overrides the number of writes.
func TestBoundedMillionWrites(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	total := 1_000_000
	if s := os.Getenv("RAFT_BOUNDED_WRITES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 10_000 {
			t.Fatalf("RAFT_BOUNDED_WRITES=%q: want a number ≥ 10000", s)
		}
		total = v
	}
	const keys, clients, threshold = 1000, 16, 10_000
	dir := t.TempDir()
	// Not newHarness: recording every applied entry (or every client
	// operation) would itself grow without bound.
	sim, err := NewClusterSimulator(SimConfig{Nodes: 3, DataDir: dir, SnapshotThreshold: threshold, ClientTimeout: 30 * time.Second, NoHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{ClusterSimulator: sim, t: t}
	defer h.Shutdown()
	h.checkSingleLeader()

	tenth := total / 10
	var next atomic.Int64
	marks := make([]time.Time, 11)
	var markMu sync.Mutex
	var done atomic.Int64
	var maxLog, maxDisk, maxHeap, maxRSS uint64
	sample := func() {
		for _, st := range h.Status() {
			maxLog = max(maxLog, st.LogLength)
		}
		maxDisk = max(maxDisk, dirBytes(dir)/3)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		maxHeap = max(maxHeap, ms.HeapInuse)
		maxRSS = max(maxRSS, rssBytes())
	}
	marks[0] = time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := h.NewClient()
			value := strings.Repeat("v", 48)
			for {
				i := next.Add(1) - 1
				if i >= int64(total) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := client.Set(ctx, "key"+strconv.Itoa(int(i)%keys), value+strconv.Itoa(c))
				cancel()
				if err != nil {
					t.Errorf("write %d: %v", i, err)
					return
				}
				if n := done.Add(1); n%int64(tenth) == 0 {
					markMu.Lock()
					marks[n/int64(tenth)] = time.Now()
					markMu.Unlock()
				}
			}
		}()
	}
	ticker := time.NewTicker(500 * time.Millisecond)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
loop:
	for {
		select {
		case <-ticker.C:
			sample()
		case <-finished:
			break loop
		}
	}
	ticker.Stop()
	sample()
	elapsed := time.Since(marks[0])
	first := marks[1].Sub(marks[0])
	last := marks[10].Sub(marks[9])
	t.Logf("%d writes over %d keys in %v: %.0f writes/s", total, keys, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	t.Logf("first 10%%: %v (%.0f/s), last 10%%: %v (%.0f/s), last/first throughput %.2f",
		first.Round(time.Millisecond), float64(tenth)/first.Seconds(), last.Round(time.Millisecond), float64(tenth)/last.Seconds(), first.Seconds()/last.Seconds())
	t.Logf("per node at most: %d log entries kept, %.1f MiB on disk; process at most: %.1f MiB heap in use, %.1f MiB RSS (3 nodes)",
		maxLog, float64(maxDisk)/(1<<20), float64(maxHeap)/(1<<20), float64(maxRSS)/(1<<20))
	if maxLog > 3*threshold {
		t.Errorf("a log kept %d entries with a snapshot every %d", maxLog, threshold)
	}
	if last.Seconds() > first.Seconds()*1.10 {
		t.Errorf("throughput fell by more than 10%%: first tenth %v, last tenth %v", first, last)
	}
}

func dirBytes(dir string) uint64 {
	var n uint64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += uint64(info.Size())
		}
		return nil
	})
	return n
}

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
