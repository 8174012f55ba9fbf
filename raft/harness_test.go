package raft

import (
	"context"
	"fmt"
	"testing"
	"time"

	"raft-consensus/raft/trace"
)

// harness wraps a ClusterSimulator for the scenario tests: every check polls
// with a deadline instead of sleeping and hoping.
type harness struct {
	*ClusterSimulator
	t *testing.T
}

// waitTimeout bounds every wait for an election or a commit; generous so
// that a slow, loaded machine (the race detector on 2 cores) does not fail
// a correct run, while a correct run finishes in a fraction of it.
const waitTimeout = 10 * time.Second

func newHarness(t *testing.T, n int) *harness {
	t.Helper()
	return newHarnessWith(t, SimConfig{Nodes: n})
}

func newHarnessWith(t *testing.T, cfg SimConfig) *harness {
	t.Helper()
	cfg.RecordApplied = true
	if cfg.Tracer == nil {
		cfg.Tracer = trace.TracerFromEnv()
	}
	sim, err := NewClusterSimulator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{ClusterSimulator: sim, t: t}
}

// Shutdown stops the cluster and checks that no safety property was broken
// while it ran.
func (h *harness) Shutdown() {
	h.ClusterSimulator.Shutdown()
	for _, v := range h.Violations() {
		h.t.Error(v)
	}
}

func (h *harness) checkSingleLeader() (int, uint64) {
	h.t.Helper()
	id, term, err := h.CheckUniqueLeader(waitTimeout)
	if err != nil {
		h.t.Fatal(err)
	}
	return id, term
}

// checkNoLeader watches for two maximum election timeouts.
func (h *harness) checkNoLeader() {
	h.t.Helper()
	if err := h.CheckNoLeader(2 * h.electionTimeoutMax()); err != nil {
		h.t.Fatal(err)
	}
}

func cmd(i int) []byte { return []byte(fmt.Sprintf("cmd-%d", i)) }

// submit gives a raw command to server id and reports whether it leads.
func (h *harness) submit(id int, i int) bool {
	h.t.Helper()
	_, isLeader, err := h.Submit(id, cmd(i))
	if err != nil {
		h.t.Fatal(err)
	}
	return isLeader
}

// submitToLeader submits through the current leader, retrying if
// leadership moves in between.
func (h *harness) submitToLeader(i int) {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		l, _ := h.checkSingleLeader()
		if h.submit(l, i) {
			return
		}
	}
	h.t.Fatalf("no leader accepted command %d", i)
}

// checkCommittedN waits until n connected servers applied command i, all
// at one index, which it returns.
func (h *harness) checkCommittedN(i, n int) uint64 {
	h.t.Helper()
	_, index, err := h.CheckCommitted(cmd(i), n, waitTimeout)
	if err != nil {
		h.t.Fatal(err)
	}
	return index
}

// checkNotCommitted watches for two maximum election timeouts.
func (h *harness) checkNotCommitted(i int) {
	h.t.Helper()
	if err := h.CheckNotCommitted(cmd(i), 2*h.electionTimeoutMax()); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

// sleepMs lets the cluster run for a while where a scenario needs time to
// pass (a partition that lasts), not to wait for an outcome.
func sleepMs(ms int) { time.Sleep(time.Duration(ms) * time.Millisecond) }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
