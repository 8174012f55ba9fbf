package raft

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/trace"

	"github.com/fortytw2/leaktest"
)

// Snapshots and log compaction (§7, Figure 13) over real TCP.

// writeKeys sets n keys through the leader.
func (h *harness) writeKeys(prefix string, n int) {
	h.t.Helper()
	client := h.NewClient()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		err := client.Set(ctx, fmt.Sprintf("%s%d", prefix, i%100), fmt.Sprintf("v%d", i))
		cancel()
		h.must(err)
	}
}

// waitStatus waits until server id's status satisfies cond.
func (h *harness) waitStatus(id int, what string, cond func(NodeStatus) bool) NodeStatus {
	h.t.Helper()
	var last NodeStatus
	err := h.poll(waitTimeout, func() (bool, error) {
		for _, st := range h.Status() {
			if st.ID == id {
				last = st
				return cond(st), nil
			}
		}
		return false, nil
	})
	if err != nil {
		h.t.Fatalf("node %d: %s: last status %+v", id, what, last)
	}
	return last
}

// checkValues reads every key of prefix through server id alone (which
// must lead) or through the leader.
func (h *harness) checkValue(key, want string) {
	h.t.Helper()
	v, found, err := h.Get(key)
	if err != nil || !found || v != want {
		h.t.Fatalf("get %s = %q, %v, %v; want %q", key, v, found, err, want)
	}
}

func TestSnapshotFollowerFarBehindCatchesUp(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarnessWith(t, SimConfig{Nodes: 3, SnapshotThreshold: 100, SnapshotChunkBytes: 256, DataDir: t.TempDir()})
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	follower := (leader + 1) % 3
	h.must(h.DisconnectPeer(follower))
	h.writeKeys("k", 1000)
	st := h.waitStatus(leader, "snapshot taken", func(st NodeStatus) bool { return st.SnapshotIndex > 500 })
	if st.LogLength > 200 {
		t.Fatalf("leader keeps %d entries with a snapshot every 100", st.LogLength)
	}
	h.must(h.ReconnectPeer(follower))
	h.waitStatus(follower, "caught up by snapshot", func(f NodeStatus) bool {
		return f.SnapshotIndex > 0 && f.Applied >= st.Commit
	})
	// The follower serves the same data once it leads.
	h.must(h.TransferLeadership(follower))
	h.checkValue("k99", "v999")
	h.checkValue("k0", "v900")
}

// TestSnapshotCrashDuringInstall crashes a follower while it receives a
// snapshot in chunks; it restarts and completes the transfer.
func TestSnapshotCrashDuringInstall(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	midInstall := make(chan struct{}, 1)
	var follower atomic.Int64
	follower.Store(-1)
	var once sync.Once
	watch := trace.Func(func(node string, e core.Event) {
		if node == fmt.Sprint(follower.Load()) && e.Kind == core.EventRecv && e.RPC.Type == core.MsgInstallSnapshot &&
			e.RPC.Offset > 0 && !e.RPC.Done {
			once.Do(func() { midInstall <- struct{}{} })
		}
	})
	h := newHarnessWith(t, SimConfig{Nodes: 3, SnapshotThreshold: 50, SnapshotChunkBytes: 64, DataDir: t.TempDir(),
		Tracer: trace.MultiTracer{watch, nonNil(trace.TracerFromEnv())}})
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	f := (leader + 1) % 3
	follower.Store(int64(f))
	h.must(h.DisconnectPeer(f))
	h.writeKeys("k", 300)
	h.waitStatus(leader, "snapshot taken", func(st NodeStatus) bool { return st.SnapshotIndex > 0 })
	h.must(h.ReconnectPeer(f))
	select {
	case <-midInstall:
	case <-time.After(waitTimeout):
		t.Fatal("the follower never received a middle chunk of the snapshot")
	}
	h.must(h.CrashPeer(f))
	h.must(h.RestartPeer(f))
	commit := h.waitStatus(leader, "leader status", func(NodeStatus) bool { return true }).Commit
	h.waitStatus(f, "installed after the crash", func(st NodeStatus) bool {
		return st.SnapshotIndex > 0 && st.Applied >= commit
	})
	h.must(h.TransferLeadership(f))
	h.checkValue("k99", "v299")
}

// TestSnapshotAllNodesRestart: every server restarts from its snapshot
// plus the log after it, and the data is all there.
func TestSnapshotAllNodesRestart(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarnessWith(t, SimConfig{Nodes: 3, SnapshotThreshold: 64, DataDir: t.TempDir()})
	defer h.Shutdown()
	h.checkSingleLeader()
	h.writeKeys("k", 500)
	for id := range 3 {
		h.waitStatus(id, "snapshot taken", func(st NodeStatus) bool { return st.SnapshotIndex > 0 })
	}
	for id := range 3 {
		h.must(h.CrashPeer(id))
	}
	for id := range 3 {
		h.must(h.RestartPeer(id))
	}
	h.checkSingleLeader()
	for i := 400; i < 500; i++ {
		h.checkValue(fmt.Sprintf("k%d", i%100), fmt.Sprintf("v%d", i))
	}
	for _, st := range h.Status() {
		if st.SnapshotIndex == 0 {
			t.Fatalf("node %d restarted without its snapshot: %+v", st.ID, st)
		}
	}
}

// TestSnapshotOnDemand is the REPL's snapshot command.
func TestSnapshotOnDemand(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	h.writeKeys("k", 10)
	index, err := h.Snapshot(leader)
	h.must(err)
	st := h.waitStatus(leader, "snapshot", func(st NodeStatus) bool { return st.SnapshotIndex == index })
	if st.LogLength != st.LastIndex-index {
		t.Fatalf("status after snapshot: %+v", st)
	}
	if _, err := h.Snapshot(leader); err == nil {
		t.Fatal("a second snapshot with nothing new applied succeeded")
	}
}

func nonNil(t trace.Tracer) trace.Tracer {
	if t == nil {
		return trace.Func(func(string, core.Event) {})
	}
	return t
}

// TestSnapshotByBytes: the state machine snapshots when the commands it
// applied since the last snapshot pass a size, whatever their number.
func TestSnapshotByBytes(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	h := newHarnessWith(t, SimConfig{Nodes: 3, SnapshotThresholdBytes: 4 << 10})
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	client := h.NewClient()
	big := strings.Repeat("v", 1000)
	for i := range 10 {
		h.must(client.Set(context.Background(), fmt.Sprint("k", i), big))
	}
	st := h.waitStatus(leader, "snapshot by size", func(st NodeStatus) bool { return st.SnapshotIndex > 0 })
	if st.SnapshotIndex > st.Applied {
		t.Fatalf("status %+v", st)
	}
	h.checkValue("k9", big)
}

// TestSnapshotLogRatio: with SnapshotLogRatio 1 a large state is written
// out again only once the log since its last snapshot is as large as that
// snapshot (times the server's stagger), however many entries pass the
// count threshold meanwhile (thesis §5.1.3); then it is.
func TestSnapshotLogRatio(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	big := strings.Repeat("s", 1000)
	h := newHarnessWith(t, SimConfig{Nodes: 3, SnapshotThreshold: 5, SnapshotLogRatio: 1,
		StateMachine: func(int) kv.StateMachine {
			st := kv.NewStore() // about 100 KB of state on every node
			for i := range 100 {
				st.ApplyCommand(kv.Command{Op: kv.OpSet, Key: fmt.Sprint("state", i), Value: big})
			}
			return st
		}})
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	client := h.NewClient()
	for i := range 5 {
		h.must(client.Set(context.Background(), fmt.Sprint("k", i), "v"))
	}
	first := h.waitStatus(leader, "the first snapshot", func(st NodeStatus) bool { return st.SnapshotIndex > 0 }).SnapshotIndex
	// 60 small writes: twelve times the count threshold, a few KB.
	for i := range 60 {
		h.must(client.Set(context.Background(), fmt.Sprint("k", i), "w"))
	}
	if st := h.waitStatus(leader, "the writes applied", func(st NodeStatus) bool { return st.Applied >= first+60 }); st.SnapshotIndex != first {
		t.Fatalf("snapshot at %d after a few KB of log, want it held back at %d (the state is 100 KB)", st.SnapshotIndex, first)
	}
	// One write of one and a half times the state (a server waits up to
	// 1.5 times its thresholds: Host.snapshotStagger): the next snapshot
	// is due.
	large := strings.Repeat("l", 160<<10)
	h.must(client.Set(context.Background(), "large", large))
	h.waitStatus(leader, "the snapshot after a log larger than the state", func(st NodeStatus) bool { return st.SnapshotIndex > first })
	h.checkValue("large", large)
}

// slowSnapshots is a KV store whose snapshots take long to write out.
type slowSnapshots struct {
	*kv.Store
	delay   time.Duration
	written *atomic.Int64
}

func (s slowSnapshots) Snapshot() (kv.StateSnapshot, error) {
	st, err := s.Store.Snapshot()
	return slowState{st, s.delay, s.written}, err
}

type slowState struct {
	kv.StateSnapshot
	delay   time.Duration
	written *atomic.Int64
}

func (s slowState) WriteTo(w io.Writer) (int64, error) {
	time.Sleep(s.delay) // a big state, a slow disk: the writing takes this long
	s.written.Add(1)
	return s.StateSnapshot.WriteTo(w)
}

// TestSlowSnapshotStallsNothing: a state machine whose snapshots take
// longer than an election timeout to write. Writing happens on a goroutine
// of its own, off the node's (heartbeats) and off the applier's (writes):
// no election, no stalled write while the snapshots are being written.
func TestSlowSnapshotStallsNothing(t *testing.T) {
	defer leaktest.CheckTimeout(t, 15*time.Second)()
	var written atomic.Int64
	const delay = 400 * time.Millisecond // the maximum election timeout is 300 ms
	h := newHarnessWith(t, SimConfig{Nodes: 3, SnapshotThreshold: 20,
		StateMachine: func(int) kv.StateMachine { return slowSnapshots{kv.NewStore(), delay, &written} }})
	defer h.Shutdown()
	leader, term := h.checkSingleLeader()
	client := h.NewClient()
	var slowest time.Duration
	deadline := time.Now().Add(waitTimeout)
	for i := 0; written.Load() < 6; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("only %d snapshots written in %v", written.Load(), waitTimeout)
		}
		start := time.Now()
		if err := client.Set(context.Background(), fmt.Sprint("k", i%10), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(start))
	}
	t.Logf("%d snapshots of %v each written; slowest write %v", written.Load(), delay, slowest)
	if slowest >= delay {
		t.Errorf("a write took %v: it waited for a snapshot being written", slowest)
	}
	for _, st := range h.Status() {
		if st.Term != term {
			t.Errorf("node %d is in term %d, the cluster started in %d: there was an election", st.ID, st.Term, term)
		}
	}
	if l, _ := h.Leader(); l != leader {
		t.Errorf("leader %d, was %d", l, leader)
	}
	h.waitStatus(leader, "a snapshot installed", func(st NodeStatus) bool { return st.SnapshotIndex > 0 })
}
