package sim

import (
	"strings"
	"testing"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/lincheck"
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
	if err := c.observeEntry(0, &core.Entry{Index: 5, Term: 2, Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if err := c.observeEntry(1, &core.Entry{Index: 5, Term: 2, Data: []byte("b")}); err == nil {
		t.Fatal("two different entries with one index and term not caught")
	}
}

func TestSafetyCheckerCatchesDivergentCommittedEntries(t *testing.T) {
	c := newSafetyChecker()
	if err := c.observeCommitted(0, 2, &core.Entry{Index: 7, Term: 2, Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if err := c.observeCommitted(2, 3, &core.Entry{Index: 7, Term: 3, Data: []byte("b")}); err == nil || !strings.Contains(err.Error(), "state machine safety") {
		t.Fatalf("divergent committed entries not caught: %v", err)
	}
}

func TestSafetyCheckerCatchesIncompleteLeader(t *testing.T) {
	c := newSafetyChecker()
	for i := uint64(1); i <= 3; i++ {
		if err := c.observeCommitted(0, 1, &core.Entry{Index: i, Term: 1, Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	leader, err := core.NewCore(core.CoreConfig{ID: 1, ElectionTicksMin: 10, ElectionTicksMax: 20, HeartbeatTicks: 2}, core.InitialState{
		HardState: core.HardState{Term: 2, VotedFor: 1},
		Entries:   []core.Entry{{Index: 1, Term: 1, Data: []byte{1}}, {Index: 2, Term: 1, Data: []byte{2}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.checkLeaderCompleteness(1, 2, leader); err == nil || !strings.Contains(err.Error(), "leader completeness") {
		t.Fatalf("a leader missing committed entry 3 not caught: %v", err)
	}
}

// sliceLog is a logView of entries from index 1.
type sliceLog []core.Entry

func (l sliceLog) FirstIndex() uint64 { return 1 }
func (l sliceLog) LastIndex() uint64  { return uint64(len(l)) }
func (l sliceLog) EntryAt(i uint64) (core.Entry, bool) {
	if i < 1 || i > uint64(len(l)) {
		return core.Entry{}, false
	}
	return l[i-1], true
}

func TestLogMatchingCheckCatchesDivergentPrefix(t *testing.T) {
	a := sliceLog{{Index: 1, Term: 1, Data: []byte("x")}, {Index: 2, Term: 1, Data: []byte("y")}, {Index: 3, Term: 2}}
	b := sliceLog{{Index: 1, Term: 1, Data: []byte("x")}, {Index: 2, Term: 1, Data: []byte("z")}, {Index: 3, Term: 2}}
	if err := checkLogMatching(0, 1, a, b); err == nil {
		t.Fatal("logs that agree at index 3 but differ at 2 not caught")
	}
	b[1].Data = []byte("y")
	if err := checkLogMatching(0, 1, a, b); err != nil {
		t.Fatalf("identical logs: %v", err)
	}
}

func op(client uint64, kind kv.Op, key, value string, call, ret int, out kv.Result) kv.Operation {
	return kv.Operation{ClientID: client, Input: kv.Command{Op: kind, Key: key, Value: value},
		Call: time.Duration(call), Return: time.Duration(ret), Output: out}
}

func TestLinearizabilityCatchesStaleRead(t *testing.T) {
	history := []kv.Operation{
		op(1, kv.OpSet, "x", "1", 0, 10, kv.Result{}),
		op(1, kv.OpSet, "x", "2", 20, 30, kv.Result{Value: "1", Found: true}),
		// Starts after the second write returned, yet sees the first.
		op(2, kv.OpGet, "x", "", 40, 50, kv.Result{Value: "1", Found: true}),
	}
	if lincheck.CheckLinearizable(history, time.Second).Linearizable() {
		t.Fatal("a stale read passed the linearizability check")
	}
	history[2].Output.Value = "2"
	if !lincheck.CheckLinearizable(history, time.Second).Linearizable() {
		t.Fatal("a correct history failed the linearizability check")
	}
}

func TestLinearizabilityCatchesLostWrite(t *testing.T) {
	history := []kv.Operation{
		op(1, kv.OpSet, "x", "1", 0, 10, kv.Result{}),
		// The acknowledged write is gone.
		op(2, kv.OpGet, "x", "", 20, 30, kv.Result{}),
	}
	if lincheck.CheckLinearizable(history, time.Second).Linearizable() {
		t.Fatal("a lost write passed the linearizability check")
	}
}

func TestLinearizabilityCatchesDoubleApply(t *testing.T) {
	history := []kv.Operation{
		op(1, kv.OpSet, "x", "1", 0, 10, kv.Result{}),
		// Applied twice, a retried write reports itself as the previous value.
		op(1, kv.OpSet, "x", "2", 20, 30, kv.Result{Value: "2", Found: true}),
	}
	if lincheck.CheckLinearizable(history, time.Second).Linearizable() {
		t.Fatal("a doubly applied write passed the linearizability check")
	}
}

func TestLinearizabilityUnknownWriteMayLandLate(t *testing.T) {
	unknown := op(1, kv.OpSet, "x", "1", 0, 0, kv.Result{})
	unknown.Unknown = true
	history := []kv.Operation{
		unknown,
		op(2, kv.OpGet, "x", "", 20, 30, kv.Result{}),
		op(2, kv.OpGet, "x", "", 40, 50, kv.Result{Value: "1", Found: true}),
	}
	if !lincheck.CheckLinearizable(history, time.Second).Linearizable() {
		t.Fatal("a write of unknown outcome may take effect late; the history is linearizable")
	}
}
