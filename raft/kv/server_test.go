package kv_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/node"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/transport"
)

// waitFor polls cond until it holds or timeout passes.
func waitFor(cond func() bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// gatedStore is a Store whose Apply of the key "slow" and whose Restore wait
// until the test opens the gate: a state machine that takes its time.
type gatedStore struct {
	*kv.Store
	entered    chan struct{} // closed when Apply or Restore starts waiting
	gate       chan struct{}
	open       sync.Once
	restoreErr error
}

// release lets the waiting Apply or Restore go on.
func (g *gatedStore) release() { g.open.Do(func() { close(g.gate) }) }

func newGatedStore() *gatedStore {
	return &gatedStore{Store: kv.NewStore(), entered: make(chan struct{}), gate: make(chan struct{})}
}

func (g *gatedStore) Apply(entries []node.CommitEntry) []any {
	for _, e := range entries {
		if c, err := kv.DecodeCommand(e.Command); err == nil && c.Key == "slow" {
			close(g.entered)
			<-g.gate
		}
	}
	return g.Store.Apply(entries)
}

func (g *gatedStore) Restore(r io.Reader) error {
	close(g.entered)
	<-g.gate
	if g.restoreErr != nil {
		return g.restoreErr
	}
	return g.Store.Restore(r)
}

func startOne(t *testing.T, st storage.Storage, sm kv.StateMachine) *kv.Server {
	t.Helper()
	srv, err := kv.StartServer(kv.ServerConfig{
		Node:         node.Config{ID: 0, Members: []int{0}, Storage: st, Seed: 1},
		StateMachine: sm,
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func waitLeader(t *testing.T, srv *kv.Server) {
	t.Helper()
	if !waitFor(func() bool { return srv.Node().Summary().Role == core.Leader }, 5*time.Second) {
		t.Fatal("the single node never became leader")
	}
}

// While the state machine is stuck in an Apply, the node goroutine goes on:
// the answers it gives to new writes and reads are queued for the Host, not
// handed over under the lock that the Apply holds.
func TestSlowApplyStallsNotTheNode(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	sm := newGatedStore()
	srv := startOne(t, storage.NewMemoryStorage(), sm)
	defer srv.Stop()
	defer sm.release() // before Stop, if the test fails early
	waitLeader(t, srv)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	slow := make(chan error, 1)
	go func() {
		_, err := srv.Write(ctx, kv.Command{Op: kv.OpSet, ClientID: 1, Seq: 1, Key: "slow", Value: "1"})
		slow <- err
	}()
	<-sm.entered // the apply goroutine now holds the lock
	base := srv.Node().Summary().LastIndex
	later := make(chan error, 2)
	go func() {
		_, err := srv.Write(ctx, kv.Command{Op: kv.OpSet, ClientID: 2, Seq: 1, Key: "x", Value: "2"})
		later <- err
	}()
	// The node appends the write and goes on to its next round (where it
	// publishes its summary), instead of waiting to hand the write over.
	if !waitFor(func() bool { return srv.Node().Summary().LastIndex > base }, 5*time.Second) {
		t.Fatal("the node goroutine stalled on a write while the state machine was busy")
	}
	go func() {
		_, err := srv.Read(ctx, "x")
		later <- err
	}()
	// The node goroutine must still run work of its own: with the write
	// and the read in, a Status is served by it.
	for range 20 {
		sctx, scancel := context.WithTimeout(ctx, time.Second)
		_, err := srv.Node().Status(sctx)
		scancel()
		if err != nil {
			t.Fatalf("the node goroutine did not answer while the state machine was busy: %v", err)
		}
	}
	sm.release()
	for range 2 {
		if err := <-later; err != nil {
			t.Fatalf("a request made during the slow apply: %v", err)
		}
	}
	if err := <-slow; err != nil {
		t.Fatalf("the slow write: %v", err)
	}
	if r, err := srv.Read(ctx, "x"); err != nil || r.Value != "2" {
		t.Fatalf("read x after the slow apply: %+v, %v", r, err)
	}
}

// storageWithSnapshot holds a single-node log whose first two entries are
// compacted into a snapshot.
func storageWithSnapshot(t *testing.T) *storage.MemoryStorage {
	t.Helper()
	st := storage.NewMemoryStorage()
	if err := st.Save(&core.HardState{Term: 1, VotedFor: 0}, []core.Entry{
		{Index: 1, Term: 1, Type: core.EntryConfig, Data: core.EncodeConfiguration(core.Configuration{Voters: []int{0}})},
		{Index: 2, Term: 1, Data: kv.EncodeCommand(kv.Command{Op: kv.OpSet, ClientID: 1, Seq: 1, Key: "k", Value: "v"})},
	}); err != nil {
		t.Fatal(err)
	}
	w, err := st.CreateSnapshot(2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.InstallSnapshot(core.SnapshotMeta{LastIncludedIndex: 2, LastIncludedTerm: 1, Config: core.Configuration{Voters: []int{0}}, Size: 5}, w); err != nil {
		t.Fatal(err)
	}

	return st
}

// A snapshot the disk cannot read back stops the server, even with a read
// waiting on the node while the restore runs (it used to deadlock: the
// node's shutdown answered the read under the lock the restore held).
func TestUnreadableSnapshotStopsTheServer(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	st := storageWithSnapshot(t)
	sm := newGatedStore()
	sm.restoreErr = storage.ErrSnapshotRead
	srv := startOne(t, st, sm)
	defer srv.Stop()
	defer sm.release()
	<-sm.entered // restoring, under the lock
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	read := make(chan error, 1)
	go func() {
		_, err := srv.Read(ctx, "k")
		read <- err
	}()
	// The node goes on while the restore runs: it elects itself (and takes
	// the read) instead of waiting to hand the read over.
	if !waitFor(func() bool { return srv.Node().Summary().Role == core.Leader }, 5*time.Second) {
		t.Fatal("the node goroutine stalled while the state machine restored")
	}
	sm.release()
	select {
	case <-srv.Node().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the node did not stop after its snapshot could not be read")
	}
	if err := <-read; err == nil {
		t.Fatal("a read succeeded on a server whose state machine could not be restored")
	}
}

// A snapshot the state machine cannot restore (bytes as written, but not a
// state it understands) is a broken invariant: the hook hears of it and the
// server stops, applying nothing more.
func TestUnrestorableSnapshotIsAViolation(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	violations := make(chan core.InvariantViolation, 1)
	srv, err := kv.StartServer(kv.ServerConfig{
		Node: node.Config{ID: 0, Members: []int{0}, Storage: storageWithSnapshot(t), Seed: 1},
		// The snapshot holds "state", which a Store cannot decode.
		StateMachine: kv.NewStore(),
		OnViolation:  func(v core.InvariantViolation) { violations <- v },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	select {
	case v := <-violations:
		if !strings.Contains(v.What, "snapshot 2") {
			t.Errorf("violation %q does not name the snapshot", v.What)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no violation reported for an undecodable snapshot")
	}
	select {
	case <-srv.Node().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the node did not stop after a broken invariant")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var v core.InvariantViolation
	if _, err := srv.Read(ctx, "k"); !errors.As(err, &v) {
		t.Fatalf("read after the violation: %v, want the violation", err)
	}
}

// TestServiceRefusesBadCommands: a command from the network that no
// client of ours sends is refused with a reason, and never reaches the log.
func TestServiceRefusesBadCommands(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	srv := startOne(t, storage.NewMemoryStorage(), nil)
	defer srv.Stop()
	waitLeader(t, srv)
	client, err := transport.Dial(context.Background(), srv.Addr(), transport.DialConfig{To: transport.Client})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	do := func(c kv.Command) kv.WireReply {
		var reply kv.WireReply
		if err := client.Call(kv.ServiceName+".Do", &kv.WireRequest{Command: c, TimeoutMs: 5000}, &reply); err != nil {
			t.Fatal(err)
		}
		return reply
	}
	last := srv.Node().Summary().LastIndex
	for _, c := range []kv.Command{
		{Op: kv.Op(9), ClientID: 1, Seq: 1, Key: "k"},
		{Op: kv.OpSet, ClientID: 1, Seq: 1},
		{Op: kv.OpSet, ClientID: 0, Seq: 1, Key: "k"},
		{Op: kv.OpSet, ClientID: 1, Seq: 1, Key: "k", Value: strings.Repeat("x", kv.MaxValueBytes+1)},
	} {
		if r := do(c); !strings.HasPrefix(r.Error, "bad request") {
			t.Errorf("op %d key %q: %+v", c.Op, c.Key, r)
		}
	}
	if got := srv.Node().Summary().LastIndex; got != last {
		t.Fatalf("the log grew from %d to %d", last, got)
	}
	if r := do(kv.Command{Op: kv.OpSet, ClientID: 1, Seq: 1, Key: "k", Value: "v"}); r.Err() != nil {
		t.Fatalf("a good command: %v", r.Err())
	}
	if r := do(kv.Command{Op: kv.OpGet, Key: "k"}); r.Err() != nil || r.Result.Value != "v" {
		t.Fatalf("reading it back: %+v", r)
	}
}
