package raft

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"
)

// TestBlackHolePeerDoesNotSlowTheOthers points every server's address for
// one peer at a listener that accepts connections and never answers: the
// calls to it hang until their timeout, and the leader must keep committing
// with the other follower without waiting for them.
func TestBlackHolePeerDoesNotSlowTheOthers(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { // swallow everything, answer nothing
				defer conns.Done()
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	defer conns.Wait()
	defer l.Close()

	h := newHarness(t, 3)
	defer h.Shutdown()
	leader, _ := h.checkSingleLeader()
	hole := (leader + 1) % 3
	h.must(h.CrashPeer(hole))
	h.mu.Lock()
	for id, n := range h.nodes {
		if id != hole && n.server != nil {
			n.tcp.SetAddr(hole, l.Addr().String())
		}
	}
	h.mu.Unlock()
	client := h.NewClient()
	start := time.Now()
	const writes = 50
	for i := range writes {
		ctx, cancel := contextWithTimeout(waitTimeout)
		err := client.Set(ctx, "k", string(rune('a'+i%26)))
		cancel()
		h.must(err)
	}
	took := time.Since(start)
	t.Logf("%d writes with a black-hole peer in %v", writes, took)
	// The RPC timeout is 300 ms: had the leader waited for the black hole
	// even once per write, this would take 15 s.
	if took > 3*time.Second {
		t.Fatalf("%d writes took %v: the black-hole peer slowed the leader", writes, took)
	}
}
