package raft

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/lincheck"

	"github.com/fortytw2/leaktest"
)

// TestLinearizableUnderFaults runs concurrent clients against a real
// cluster over TCP while servers are partitioned, crashed and restarted,
// then checks the recorded history with porcupine.
func TestLinearizableUnderFaults(t *testing.T) {
	testLinearizableUnderFaults(t, SimConfig{Nodes: 5, ClientTimeout: 5 * time.Second, Seed: 1})
}

// TestLinearizableUnderFaultsOnDisk is the same with durable storage, so
// with the leader's asynchronous log writes (AsyncLeaderWrites): a crashed
// leader loses the entries its writer had not synced yet.
func TestLinearizableUnderFaultsOnDisk(t *testing.T) {
	testLinearizableUnderFaults(t, SimConfig{Nodes: 5, ClientTimeout: 5 * time.Second, Seed: 1, DataDir: t.TempDir()})
}

func testLinearizableUnderFaults(t *testing.T, cfg SimConfig) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarnessWith(t, cfg)
	defer h.Shutdown()
	h.checkSingleLeader()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := map[string]int{}
	for c := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := h.NewClient()
			r := rand.New(rand.NewSource(int64(c)))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("k%d", r.Intn(3))
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				var err error
				switch r.Intn(3) {
				case 0:
					_, _, err = client.Get(ctx, key)
				case 1:
					err = client.Set(ctx, key, fmt.Sprintf("c%d-%d", c, i))
				default:
					_, err = client.Delete(ctx, key)
				}
				cancel()
				if err != nil {
					mu.Lock()
					errs[err.Error()]++
					mu.Unlock()
				}
			}
		}()
	}

	r := rand.New(rand.NewSource(7))
	for round := range 6 {
		sleepMs(300)
		switch round % 3 {
		case 0:
			leader, _ := h.Leader()
			if leader != core.None {
				h.must(h.Partition([]int{leader, (leader + 1) % 5}, []int{(leader + 2) % 5, (leader + 3) % 5, (leader + 4) % 5}))
			}
		case 1:
			h.Heal()
			victim := r.Intn(5)
			h.must(h.CrashPeer(victim))
			sleepMs(300)
			h.must(h.RestartPeer(victim))
		case 2:
			h.Heal()
		}
	}
	h.Heal()
	sleepMs(500)
	close(stop)
	wg.Wait()

	history := h.History()
	done := 0
	for _, op := range history {
		if !op.Unknown {
			done++
		}
	}
	t.Logf("%d operations (%d with an answer); errors: %v", len(history), done, errs)
	if done < 100 {
		t.Fatalf("only %d operations completed", done)
	}
	res := lincheck.CheckLinearizable(history, 30*time.Second)
	if !res.Linearizable() {
		t.Fatalf("history of %d operations is not linearizable: %v", res.Ops, res.Result)
	}
}
