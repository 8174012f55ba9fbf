package raft

import (
	"strings"
	"testing"
	"time"
)

// The checkers must bite: known-bad logs and histories must fail them.

func TestSafetyCheckerCatchesTwoLeadersInOneTerm(t *testing.T) {
	c := newSafetyChecker()
	if err := c.observeLeader(0, 3); err != nil {
		t.Fatal(err)
	}
	if err := c.observeLeader(0, 3); err != nil {
		t.Fatalf("the same leader seen twice: %v", err)
	}
	if err := c.observeLeader(1, 3); err == nil || !strings.Contains(err.Error(), "election safety") {
		t.Fatalf("two leaders in term 3 not caught: %v", err)
	}
}

func TestSafetyCheckerCatchesDivergentEntries(t *testing.T) {
	c := newSafetyChecker()
	if err := c.observeEntry(0, &Entry{Index: 5, Term: 2, Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if err := c.observeEntry(1, &Entry{Index: 5, Term: 2, Data: []byte("b")}); err == nil {
		t.Fatal("two different entries with one index and term not caught")
	}
}

func TestSafetyCheckerCatchesDivergentCommittedEntries(t *testing.T) {
	c := newSafetyChecker()
	if err := c.observeCommitted(0, &Entry{Index: 7, Term: 2, Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if err := c.observeCommitted(2, &Entry{Index: 7, Term: 3, Data: []byte("b")}); err == nil || !strings.Contains(err.Error(), "state machine safety") {
		t.Fatalf("divergent committed entries not caught: %v", err)
	}
}

func TestSafetyCheckerCatchesIncompleteLeader(t *testing.T) {
	c := newSafetyChecker()
	for i := uint64(1); i <= 3; i++ {
		if err := c.observeCommitted(0, &Entry{Index: i, Term: 1, Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	core, err := NewCore(testCoreConfig(1), InitialState{
		HardState: HardState{Term: 2, VotedFor: 1},
		Entries:   []Entry{{Index: 1, Term: 1, Data: []byte{1}}, {Index: 2, Term: 1, Data: []byte{2}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.checkLeaderCompleteness(1, 2, core); err == nil || !strings.Contains(err.Error(), "leader completeness") {
		t.Fatalf("a leader missing committed entry 3 not caught: %v", err)
	}
}

func TestLogMatchingCheckCatchesDivergentPrefix(t *testing.T) {
	a := &raftLog{entries: []Entry{{Index: 1, Term: 1, Data: []byte("x")}, {Index: 2, Term: 1, Data: []byte("y")}, {Index: 3, Term: 2}}}
	b := &raftLog{entries: []Entry{{Index: 1, Term: 1, Data: []byte("x")}, {Index: 2, Term: 1, Data: []byte("z")}, {Index: 3, Term: 2}}}
	if err := checkLogMatching(0, 1, a, b); err == nil {
		t.Fatal("logs that agree at index 3 but differ at 2 not caught")
	}
	b.entries[1].Data = []byte("y")
	if err := checkLogMatching(0, 1, a, b); err != nil {
		t.Fatalf("identical logs: %v", err)
	}
}

func op(client uint64, kind KVOp, key, value string, call, ret int, out KVResult) Operation {
	return Operation{ClientID: client, Input: KVCommand{Op: kind, Key: key, Value: value},
		Call: time.Duration(call), Return: time.Duration(ret), Output: out}
}

func TestLinearizabilityCatchesStaleRead(t *testing.T) {
	history := []Operation{
		op(1, OpSet, "x", "1", 0, 10, KVResult{}),
		op(1, OpSet, "x", "2", 20, 30, KVResult{Value: "1", Found: true}),
		// Starts after the second write returned, yet sees the first.
		op(2, OpGet, "x", "", 40, 50, KVResult{Value: "1", Found: true}),
	}
	if CheckLinearizable(history, time.Second).Linearizable() {
		t.Fatal("a stale read passed the linearizability check")
	}
	history[2].Output.Value = "2"
	if !CheckLinearizable(history, time.Second).Linearizable() {
		t.Fatal("a correct history failed the linearizability check")
	}
}

func TestLinearizabilityCatchesLostWrite(t *testing.T) {
	history := []Operation{
		op(1, OpSet, "x", "1", 0, 10, KVResult{}),
		// The acknowledged write is gone.
		op(2, OpGet, "x", "", 20, 30, KVResult{}),
	}
	if CheckLinearizable(history, time.Second).Linearizable() {
		t.Fatal("a lost write passed the linearizability check")
	}
}

func TestLinearizabilityCatchesDoubleApply(t *testing.T) {
	history := []Operation{
		op(1, OpSet, "x", "1", 0, 10, KVResult{}),
		// Applied twice, a retried write reports itself as the previous value.
		op(1, OpSet, "x", "2", 20, 30, KVResult{Value: "2", Found: true}),
	}
	if CheckLinearizable(history, time.Second).Linearizable() {
		t.Fatal("a doubly applied write passed the linearizability check")
	}
}

func TestLinearizabilityUnknownWriteMayLandLate(t *testing.T) {
	unknown := op(1, OpSet, "x", "1", 0, 0, KVResult{})
	unknown.Unknown = true
	history := []Operation{
		unknown,
		op(2, OpGet, "x", "", 20, 30, KVResult{}),
		op(2, OpGet, "x", "", 40, 50, KVResult{Value: "1", Found: true}),
	}
	if !CheckLinearizable(history, time.Second).Linearizable() {
		t.Fatal("a write of unknown outcome may take effect late; the history is linearizable")
	}
}

// TestSimulationCatchesBrokenCores breaks a safety rule of the core on
// purpose and expects the simulation to notice within a few hundred seeds.
func TestSimulationCatchesBrokenCores(t *testing.T) {
	cases := []struct {
		name    string
		breakIt func(*brokenRules)
	}{
		{"votes for stale logs (no §5.4.1 election restriction)", func(b *brokenRules) { b.voteForStaleLogs = true }},
		{"commits old-term entries by counting (no §5.4.2 rule)", func(b *brokenRules) { b.commitOldTerms = true }},
	}
	for _, tc := range cases {
		caught := false
		for seed := int64(1); seed <= 500 && !caught; seed++ {
			_, err := runSeedWith(seed, nil, func(p *simParams) { tc.breakIt(&p.core.broken) })
			if err != nil {
				t.Logf("%s: seed %d caught it: %v", tc.name, seed, err)
				caught = true
			}
		}
		if !caught {
			t.Errorf("%s: 500 seeds ran the broken core and none failed", tc.name)
		}
	}
}
