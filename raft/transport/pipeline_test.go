package transport

import (
	"context"
	"errors"
	"net/rpc"
	"sync"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
)

// orderedRecorder is an OrderedHandler that records the order in which
// requests were accepted and answers each after a random-ish delay, so
// that the replies come back out of order.
type orderedRecorder struct {
	mu       sync.Mutex
	accepted []uint64 // PrevLogIndex of each request, in acceptance order
	msgs     []core.Message
}

func (h *orderedRecorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.accepted)
}

func (h *orderedRecorder) Handle(m core.Message) (core.Message, error) { return h.Accept(m)() }

func (h *orderedRecorder) Accept(m core.Message) func() (core.Message, error) {
	h.mu.Lock()
	h.accepted = append(h.accepted, m.PrevLogIndex)
	h.msgs = append(h.msgs, m)
	h.mu.Unlock()
	return func() (core.Message, error) {
		time.Sleep(time.Duration(m.PrevLogIndex%7) * 100 * time.Microsecond)
		return core.Message{Type: core.MsgAppendEntriesReply, From: m.To, To: m.From, Term: m.Term,
			Success: true, MatchIndex: m.PrevLogIndex}, nil
	}
}

// pipelineOver starts n AppendEntries through p without waiting, and
// returns once every reply is in, checking each.
func pipelineOver(t *testing.T, p Pipeliner, n int) {
	t.Helper()
	type result struct {
		sent  uint64
		reply core.Message
		err   error
	}
	results := make(chan result, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 1; i <= n; i++ {
		m := core.Message{Type: core.MsgAppendEntries, From: 1, To: 2, Term: 1, PrevLogIndex: uint64(i)}
		p.Go(ctx, m, func(r core.Message, err error) { results <- result{uint64(i), r, err} })
	}
	for range n {
		r := <-results
		if r.err != nil || r.reply.MatchIndex != r.sent {
			t.Fatalf("request %d: reply %+v, error %v", r.sent, r.reply, r.err)
		}
	}
}

func checkInOrder(t *testing.T, h *orderedRecorder, n int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.accepted) != n {
		t.Fatalf("%d requests accepted, want %d", len(h.accepted), n)
	}
	for i, got := range h.accepted {
		if got != uint64(i+1) {
			t.Fatalf("request %d accepted at position %d: pipelined requests reached the handler out of order", got, i+1)
		}
	}
}

// TestPipelinedRequestsArriveInOrder: requests started one after the other
// with Go reach the peer's OrderedHandler in that order, although net/rpc
// serves each on a goroutine of its own and the replies come back in
// another order; the same through the fault decorator with random delays.
func TestPipelinedRequestsArriveInOrder(t *testing.T) {
	defer leaktest.Check(t)()
	for _, delay := range []time.Duration{0, 2 * time.Millisecond} {
		h := &orderedRecorder{}
		l, err := Listen("127.0.0.1:0", h)
		if err != nil {
			t.Fatal(err)
		}
		tcp := NewTCPTransport(1)
		tcp.SetAddr(2, l.Addr())
		faults := NewNetworkFaults(1)
		if err := faults.SetMaxDelay(delay); err != nil {
			t.Fatal(err)
		}
		p := WithFaults(tcp, faults).(Pipeliner)
		const n = 300
		pipelineOver(t, p, n)
		checkInOrder(t, h, n)
		tcp.Close()
		l.Close()
	}
}

// TestListenerRefusesAMethodOfAnotherType: a request whose message type is
// not its method's is answered with an error and never reaches the handler.
func TestListenerRefusesAMethodOfAnotherType(t *testing.T) {
	defer leaktest.Check(t)()
	h := &orderedRecorder{}
	l, err := Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conn, err := dial(context.Background(), l.Addr(), Hello{From: 1, To: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := rpc.NewClientWithCodec(newClientCodec(conn))
	defer client.Close()
	vote := core.Message{Type: core.MsgRequestVote, From: 1, To: 2, Term: 3}
	var reply core.Message
	if err := client.Call("Raft.AppendEntries", &vote, &reply); err == nil {
		t.Fatal("a RequestVote sent as Raft.AppendEntries was served")
	}
	if err := client.Call("Raft.RequestVote", &vote, &reply); err != nil {
		t.Fatalf("the connection no longer serves after a refused request: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.accepted) != 1 {
		t.Fatalf("the handler accepted %d requests, want only the well-formed one", len(h.accepted))
	}
}

// stuckHandler is a node whose loop has stalled: Accept blocks until
// released, as RaftNode.Accept does on a full input queue.
type stuckHandler struct{ release chan struct{} }

func (h stuckHandler) Handle(m core.Message) (core.Message, error) { return h.Accept(m)() }

func (h stuckHandler) Accept(core.Message) func() (core.Message, error) {
	<-h.release
	return func() (core.Message, error) { return core.Message{}, errors.New("stalled") }
}

// TestWriteToAStalledPeerIsBounded: a peer that stops reading (its node
// stalled) fills the socket's buffers; the sender's writes must then end
// at their context's deadline instead of blocking it for good, and every
// call must report.
func TestWriteToAStalledPeerIsBounded(t *testing.T) {
	defer leaktest.Check(t)()
	h := stuckHandler{release: make(chan struct{})}
	l, err := Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	tcp := NewTCPTransport(1)
	tcp.SetAddr(2, l.Addr())
	big := core.Message{Type: core.MsgAppendEntries, From: 1, To: 2, Term: 1,
		Entries: []core.Entry{{Index: 1, Term: 1, Data: make([]byte, 1<<20)}}}
	const calls = 12
	results := make(chan error, calls)
	start := time.Now()
	for range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		tcp.Go(ctx, big, func(_ core.Message, err error) { cancel(); results <- err })
	}
	for range calls {
		if err := <-results; err == nil {
			t.Fatal("a call to a stalled peer succeeded")
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("%d calls of 100 ms to a stalled peer took %v", calls, took)
	}
	close(h.release)
	tcp.Close()
	l.Close()
}
