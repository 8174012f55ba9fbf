package diagram

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/trace"
)

func TestMatchRPCsFIFOAndLost(t *testing.T) {
	hb := appendRPC(0, 1, 1, 0, 0, 0, 0)
	log := mustParse(t, lines(
		at("22:00:00.000100", "0", send(hb)),
		at("22:00:00.000200", "0", send(hb)),
		at("22:00:00.000300", "0", send(appendRPC(0, 2, 1, 0, 0, 1, 0))),
		at("22:00:00.000400", "1", recv(hb)),
		at("22:00:00.000500", "1", recv(hb)),
		at("22:00:00.000600", "2", recv(voteRPC(1, 2, 2, false))),
	))
	evs := log.Runs[0].Events
	wantMatch := []int{3, 4, -1, 0, 1, -1}
	for i, e := range evs {
		if e.Match != wantMatch[i] {
			t.Errorf("event %d (%s) matches %d, want %d", i, e.Msg, e.Match, wantMatch[i])
		}
	}
}

func TestHeartbeatMarking(t *testing.T) {
	hb, ok3 := appendRPC(0, 1, 1, 3, 1, 0, 3), appendReplyRPC(1, 0, 1, 3)
	ae, ok5 := appendRPC(0, 1, 1, 3, 1, 2, 3), appendReplyRPC(1, 0, 1, 5)
	probe, no := appendRPC(0, 1, 1, 7, 1, 0, 5), rejectRPC(1, 0, 1, 7, 5, 1)
	log := mustParse(t, lines(
		at("22:00:00.000100", "0", send(hb)),
		at("22:00:00.000200", "1", recv(hb)),
		at("22:00:00.000300", "1", send(ok3)),
		at("22:00:00.000400", "0", recv(ok3)),
		at("22:00:00.000500", "0", send(ae)),
		at("22:00:00.000600", "1", recv(ae)),
		at("22:00:00.000700", "1", send(ok5)),
		at("22:00:00.000800", "0", recv(ok5)),
		at("22:00:00.000900", "0", send(probe)),
		at("22:00:00.001000", "1", recv(probe)),
		at("22:00:00.001100", "1", send(no)),
		at("22:00:00.001200", "0", recv(no)),
	))
	var got []bool
	for _, e := range log.Runs[0].Events {
		got = append(got, e.Heartbeat)
	}
	// A rejected heartbeat stays visible: it is the start of log repair.
	want := []bool{true, true, true, true, false, false, false, false, true, true, false, false}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("heartbeat flags\n got %v\nwant %v", got, want)
	}
}

func TestNodesSortedNumericallyWithSimLast(t *testing.T) {
	log := mustParse(t, "22:00:00.000100 [10] a\n"+lines(at("22:00:00.000200", "sim", faultEv("heal")))+
		"22:00:00.000300 [2] b\n"+lines(at("22:00:00.000400", "0", send(timeoutNowRPC(0, 11, 1)))))
	got := log.Runs[0].Nodes()
	want := []string{"0", "2", "10", "11", "sim"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("nodes = %v, want %v", got, want)
	}
}

func TestFromRecords(t *testing.T) {
	day := time.Date(2025, 3, 1, 22, 41, 7, 123456000, time.UTC)
	rv := voteRPC(0, 1, 2, false)
	recs := []trace.Record{
		{Time: day, Node: "0", Event: send(rv)},
		{Time: day.Add(time.Millisecond), Node: "1", Event: recv(rv)},
		{Time: day.Add(2 * time.Millisecond), Node: "bad", Event: infoEv("dropped")},
		{Time: day.Add(3 * time.Millisecond), Node: "1", Event: infoEv("")},
		{Time: day.Add(-time.Millisecond), Node: "sim", Event: faultEv("heal")},
	}
	r, dropped := FromRecords("repl", recs)
	if dropped != 2 {
		t.Errorf("dropped = %d, want 2", dropped)
	}
	if len(r.Events) != 3 || r.Events[0].Node != "sim" {
		t.Fatalf("events = %+v, want 3 sorted by time", r.Events)
	}
	if r.Events[1].Clock() != "22:41:07.123456" || r.Events[1].Match != 2 {
		t.Errorf("event = %+v", r.Events[1])
	}
	if r.Name != "repl" {
		t.Errorf("name = %q", r.Name)
	}
}

func TestLastAndWindowRepair(t *testing.T) {
	tn := timeoutNowRPC(0, 1, 1)
	log := mustParse(t, lines(at("22:00:00.000100", "0", send(tn)), at("22:00:00.000200", "1", recv(tn)))+
		"22:00:00.000300 [1] something\n")
	r := log.Runs[0]
	last := r.Last(2)
	if len(last.Events) != 2 || last.Events[0].Match != -1 {
		t.Errorf("last = %+v: the recv whose send fell off must be unmatched", last.Events)
	}
	if len(r.Events) != 3 || r.Events[1].Match != 0 {
		t.Errorf("Last changed the original run")
	}
	w := r.Window(clock("22:00:00.000150"), clock("22:00:00.000250"))
	if len(w.Events) != 1 || w.Events[0].Match != -1 {
		t.Errorf("window = %+v", w.Events)
	}
	if r.Last(0) == r || len(r.Last(0).Events) != 3 {
		t.Errorf("Last(0) must be a full copy")
	}
}

func TestFormatClock(t *testing.T) {
	cases := map[time.Duration]string{
		0:                                "00:00:00.000000",
		clock("22:41:07.123456"):         "22:41:07.123456",
		24*time.Hour + time.Microsecond:  "00:00:00.000001",
		-time.Second:                     "00:00:00.000000",
		clock("23:59:59.999999") + 999:   "23:59:59.999999",
		clock("12:00:00.000000") + 12345: "12:00:00.000012",
	}
	for d, want := range cases {
		if got := FormatClock(d); got != want {
			t.Errorf("FormatClock(%v) = %s, want %s", d, got, want)
		}
	}
}

// TestEpisodesSplitAtIdleStretches: a burst, minutes of heartbeats only, and
// another burst make two episodes, each with its own events and no idle
// heartbeats; a run without idle stretches stays whole.
func TestEpisodesSplitAtIdleStretches(t *testing.T) {
	at := func(d time.Duration) time.Time { return time.Unix(0, 0).UTC().Add(d) }
	hb := func(d time.Duration) []trace.Record {
		return []trace.Record{
			{Time: at(d), Node: "0", Event: core.Event{Kind: core.EventSend, Peer: 1, RPC: &core.RPC{Type: core.MsgAppendEntries, From: 0, To: 1, Term: 2}}},
			{Time: at(d + time.Millisecond), Node: "1", Event: core.Event{Kind: core.EventRecv, Peer: 0, RPC: &core.RPC{Type: core.MsgAppendEntries, From: 0, To: 1, Term: 2}}},
		}
	}
	recs := []trace.Record{
		{Time: at(0), Node: "0", Event: core.Event{Kind: core.EventLeader, Peer: 0, Term: 2}},
		{Time: at(50 * time.Millisecond), Node: "sim", Event: core.Fault(nil, "crash")},
	}
	for d := 100 * time.Millisecond; d < 3*time.Minute; d += 50 * time.Millisecond {
		recs = append(recs, hb(d)...)
	}
	recs = append(recs, trace.Record{Time: at(3 * time.Minute), Node: "sim", Event: core.Fault(nil, "restart")},
		trace.Record{Time: at(3*time.Minute + 20*time.Millisecond), Node: "1", Event: core.Event{Kind: core.EventLeader, Peer: 1, Term: 3}})
	run, _ := FromRecords("s", recs)
	eps := run.Episodes(time.Second)
	if len(eps) != 2 {
		t.Fatalf("%d episodes, want 2", len(eps))
	}
	if eps[0].Duration() > time.Second || eps[1].Duration() > time.Second {
		t.Fatalf("episodes of %v and %v: the idle heartbeats were kept", eps[0].Duration(), eps[1].Duration())
	}
	if !strings.Contains(eps[1].Name, "part 2 of 2") || len(eps[1].Events) != 2 {
		t.Fatalf("second episode %q with %d events", eps[1].Name, len(eps[1].Events))
	}
	if busy, _ := FromRecords("b", recs[:2]); len(busy.Episodes(time.Second)) != 1 {
		t.Fatal("a run without idle stretches was split")
	}
}

// The events of many groups name their group; one group's (a diagram
// filtered by group) and the faults, which belong to none, do not.
func TestRecordsOfManyGroupsNameTheirGroup(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	won := core.Event{Kind: core.EventElectionWon, Term: 2, Peer: core.None}
	fault := core.Info("node 2 crashed")
	msgs := func(recs []trace.Record) []string {
		r, _ := FromRecords("x", recs)
		var out []string
		for _, e := range r.Events {
			out = append(out, e.Msg)
		}
		return out
	}
	many := []trace.Record{{Time: at, Node: "0", Group: "g1", Event: won}, {Time: at, Node: "1", Group: "g5", Event: won}, {Time: at, Node: "2", Event: fault}}
	if got, want := msgs(many), []string{"g1: won the election for term 2", "g5: won the election for term 2", "node 2 crashed"}; !reflect.DeepEqual(got, want) {
		t.Errorf("many groups: %q, want %q", got, want)
	}
	one := []trace.Record{{Time: at, Node: "0", Group: "g5", Event: won}, {Time: at, Node: "2", Event: fault}}
	if got, want := msgs(one), []string{"won the election for term 2", "node 2 crashed"}; !reflect.DeepEqual(got, want) {
		t.Errorf("one group: %q, want %q", got, want)
	}
}
