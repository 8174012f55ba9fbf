package diagram

import (
	"reflect"
	"testing"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/sim"
	"raft-consensus/raft/trace"
)

func interpreted(node string, ce core.Event) Event {
	e := Event{Node: node, Msg: ce.Text()}
	interpret(&e, ce)
	return e
}

// TestVocabulary covers every kind of event of utils/TRACE.md.
func TestVocabulary(t *testing.T) {
	with := func(e core.Event, f func(*core.Event)) core.Event { f(&e); return e }
	peer := func(k core.EventKind, p int) core.Event { return with(ev(k), func(e *core.Event) { e.Peer = p }) }
	cases := []struct {
		e    core.Event
		want Event
	}{
		{termEv(3, 4), Event{Kind: KindTerm, PrevTerm: 3, Term: 4, HasTerm: true}},
		{roleEv(core.Follower, core.Candidate, 4), Event{Kind: KindRole, PrevRole: RoleFollower, Role: RoleCandidate, Term: 4, HasTerm: true}},
		{roleEv(core.Follower, core.PreCandidate, 3), Event{Kind: KindRole, PrevRole: RoleFollower, Role: RolePreCandidate, Term: 3, HasTerm: true}},
		{roleEv(core.Leader, core.Follower, 5), Event{Kind: KindRole, PrevRole: RoleLeader, Role: RoleFollower, Term: 5, HasTerm: true}},
		{with(peer(core.EventLeader, 0), func(e *core.Event) { e.Term = 4 }), Event{Kind: KindLeader, Peer: "0", Term: 4, HasTerm: true}},
		{with(ev(core.EventElectionWon), func(e *core.Event) { e.Term = 4 }), Event{Kind: KindElection, Term: 4, HasTerm: true}},
		{with(ev(core.EventElectionTimeout), func(e *core.Event) { e.Term, e.Count = 3, 23 }), Event{Kind: KindElection, Term: 3, HasTerm: true}},
		{with(ev(core.EventCampaign), func(e *core.Event) { e.Term, e.Index, e.Term2 = 4, 7, 3 }), Event{Kind: KindElection, Term: 4, HasTerm: true}},
		{with(ev(core.EventCampaign), func(e *core.Event) { e.Term, e.PreVote = 4, true }), Event{Kind: KindElection, PreVote: true, Term: 4, HasTerm: true}},
		{with(ev(core.EventPreVoteWon), func(e *core.Event) { e.Count, e.Total = 2, 3 }), Event{Kind: KindElection, PreVote: true}},
		{with(ev(core.EventElectionLost), func(e *core.Event) { e.Term, e.Count = 4, 2 }), Event{Kind: KindElection, Term: 4, HasTerm: true}},
		{with(ev(core.EventCheckQuorum), func(e *core.Event) { e.Term = 4 }), Event{Kind: KindElection, Term: 4, HasTerm: true}},
		{with(peer(core.EventVote, 1), func(e *core.Event) { e.Term, e.Granted = 4, true }), Event{Kind: KindVote, Granted: true, Peer: "1", Term: 4, HasTerm: true}},
		{with(peer(core.EventVote, 2), func(e *core.Event) { e.Term, e.PreVote, e.Detail = 5, true, "candidate's log is behind ours" }), Event{Kind: KindVote, PreVote: true, Peer: "2", Term: 5, HasTerm: true}},
		{with(peer(core.EventAppended, 0), func(e *core.Event) { e.Index, e.Index2 = 6, 8 }), Event{Kind: KindLog, Lo: 6, Hi: 8, Peer: "0"}},
		{with(ev(core.EventTruncate), func(e *core.Event) { e.Index, e.Index2 = 6, 9 }), Event{Kind: KindLog}},
		{with(peer(core.EventReject, 0), func(e *core.Event) { e.Index, e.Term, e.Index2, e.Term2 = 5, 2, 3, 2 }), Event{Kind: KindLog, Peer: "0"}},
		{with(ev(core.EventCommit), func(e *core.Event) { e.Index, e.Index2 = 5, 8 }), Event{Kind: KindCommit, Lo: 5, Hi: 8}},
		{with(ev(core.EventApplied), func(e *core.Event) { e.Index, e.Index2 = 6, 8 }), Event{Kind: KindLog, Lo: 6, Hi: 8}},
		{with(ev(core.EventConfig), func(e *core.Event) { e.Index, e.Groups = 9, [][]int{{0, 1, 2}, {3}} }), Event{Kind: KindLog}},
		{with(ev(core.EventSnapshot), func(e *core.Event) { e.Index, e.Term, e.Count, e.Index2 = 100, 3, 2048, 120 }), Event{Kind: KindSnapshot}},
		{with(peer(core.EventSnapshotInstalled, 0), func(e *core.Event) { e.Index, e.Term, e.Count = 100, 3, 2048 }), Event{Kind: KindSnapshot, Peer: "0"}},
		{peer(core.EventTransfer, 2), Event{Kind: KindTransfer, Peer: "2"}},
		{peer(core.EventTimeoutNow, 0), Event{Kind: KindTransfer, Peer: "0"}},
		{with(ev(core.EventClient), func(e *core.Event) { e.Detail = "set x=5 (client 1 seq 1) → ok" }), Event{Kind: KindClient}},
		{with(ev(core.EventSafety), func(e *core.Event) { e.Detail = "two leaders in term 4: 0 and 2" }), Event{Kind: KindSafety}},
		{with(ev(core.EventStorageFailed), func(e *core.Event) { e.Detail = "no space left on device" }), Event{Kind: KindSafety}},
		{infoEv("something else entirely"), Event{Kind: KindOther}},
		// A plain text line has no kind: free text, never half understood.
		{freeText("term 3 → 4"), Event{Kind: KindOther}},
		// An RPC whose ends are not nodes is not drawn as an arrow.
		{send(&core.RPC{Type: core.MsgAppendEntries, From: -1, To: 2}), Event{Kind: KindOther, Peer: "2"}},
	}
	for _, c := range cases {
		got := interpreted("1", c.e)
		c.want.Node, c.want.Msg, c.want.Match, c.want.Type = "1", c.e.Text(), -1, c.e.Kind
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v %q:\n got %+v\nwant %+v", c.e.Kind, c.e.Text(), got, c.want)
		}
	}
}

func TestVocabularyRPCs(t *testing.T) {
	cases := []struct {
		e    core.Event
		kind Kind
		want RPC
	}{
		{send(voteRPC(1, 0, 4, false)), KindSend, RPC{Name: "RequestVote", From: "1", To: "0", Term: 4, HasTerm: true}},
		{recv(voteRPC(1, 0, 4, true)), KindRecv, RPC{Name: "PreVote", From: "1", To: "0", Term: 4, HasTerm: true, PreVote: true}},
		{send(&core.RPC{Type: core.MsgRequestVoteReply, From: 0, To: 1, Term: 4, Granted: true}), KindSend, RPC{Name: "VoteReply", From: "0", To: "1", Term: 4, HasTerm: true, Granted: true}},
		{send(&core.RPC{Type: core.MsgRequestVoteReply, From: 0, To: 1, Term: 4, PreVote: true}), KindSend, RPC{Name: "VoteReply", From: "0", To: "1", Term: 4, HasTerm: true, PreVote: true}},
		{send(appendRPC(0, 2, 3, 5, 2, 3, 5)), KindSend, RPC{Name: "AppendEntries", From: "0", To: "2", Term: 3, HasTerm: true, Entries: 3, HasCount: true}},
		{send(appendRPC(0, 2, 3, 5, 2, 0, 5)), KindSend, RPC{Name: "AppendEntries", From: "0", To: "2", Term: 3, HasTerm: true, HasCount: true}},
		{recv(appendReplyRPC(2, 0, 3, 8)), KindRecv, RPC{Name: "AppendReply", From: "2", To: "0", Term: 3, HasTerm: true}},
		{recv(rejectRPC(2, 0, 3, 5, 3, 2)), KindRecv, RPC{Name: "AppendReply", From: "2", To: "0", Term: 3, HasTerm: true, Reject: true}},
		{send(&core.RPC{Type: core.MsgInstallSnapshot, From: 0, To: 2, Term: 3}), KindSend, RPC{Name: "InstallSnapshot", From: "0", To: "2", Term: 3, HasTerm: true}},
		{send(&core.RPC{Type: core.MsgInstallSnapshotReply, From: 2, To: 0, Term: 3}), KindSend, RPC{Name: "InstallSnapshotReply", From: "2", To: "0", Term: 3, HasTerm: true}},
		{send(timeoutNowRPC(0, 1, 3)), KindSend, RPC{Name: "TimeoutNow", From: "0", To: "1", Term: 3, HasTerm: true}},
		{recv(&core.RPC{Type: core.MsgTimeoutNowReply, From: 1, To: 0, Term: 3}), KindRecv, RPC{Name: "TimeoutNowReply", From: "1", To: "0", Term: 3, HasTerm: true}},
	}
	for _, c := range cases {
		e := interpreted("1", c.e)
		if e.Kind != c.kind || e.RPC == nil {
			t.Errorf("%q: kind %v, rpc %v", c.e.Text(), e.Kind, e.RPC)
			continue
		}
		c.want.Text = c.e.RPC.String()
		if !reflect.DeepEqual(*e.RPC, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.e.Text(), *e.RPC, c.want)
		}
	}
}

func TestVocabularyFaults(t *testing.T) {
	cases := []struct {
		e    core.Event
		want Fault
	}{
		{faultEv("crash"), Fault{What: "crash"}},
		{faultEv("restart"), Fault{What: "restart"}},
		{faultEv("disconnect"), Fault{What: "disconnect"}},
		{faultEv("reconnect"), Fault{What: "reconnect"}},
		{faultEv("added"), Fault{What: "added"}},
		{faultEv("removed"), Fault{What: "removed"}},
		{faultEv("partition 0 1 | 2 3 4", []int{0, 1}, []int{2, 3, 4}), Fault{What: "partition", Arg: "0 1 | 2 3 4", Groups: [][]string{{"0", "1"}, {"2", "3", "4"}}}},
		{faultEv("partition 0 1 | 1 2", []int{0, 1}, []int{1, 2}), Fault{What: "partition", Arg: "0 1 | 1 2", Groups: [][]string{{"0", "1"}, {"1", "2"}}}},
		{faultEv("heal"), Fault{What: "heal"}},
		{faultEv("drop rate 0.10"), Fault{What: "drop", Arg: "0.10"}},
		{faultEv("delay 5ms"), Fault{What: "delay", Arg: "5ms"}},
		{faultEv("cut 0 → 1"), Fault{What: "cut", Arg: "0 → 1"}},
	}
	for _, c := range cases {
		e := interpreted("sim", c.e)
		if e.Kind != KindFault || !reflect.DeepEqual(*e.Fault, c.want) {
			t.Errorf("%q: got %v %+v, want %+v", c.e.Text(), e.Kind, e.Fault, c.want)
		}
	}
}

// TestEveryEventKindIsUnderstood: every kind the core defines has its
// meaning here; only free text (Info) is drawn as free text.
func TestEveryEventKindIsUnderstood(t *testing.T) {
	for _, k := range core.EventKinds() {
		dk, ok := kindOf[k]
		if !ok {
			t.Errorf("event kind %v is not in the diagram's vocabulary", k)
		} else if dk == KindOther && k != core.EventInfo {
			t.Errorf("event kind %v is drawn as free text", k)
		}
	}
}

// TestEventsOfARealRunAreUnderstood feeds the events that the real core,
// driver, host and simulation emit in simulated runs through the diagram,
// directly and as JSON lines, and fails on any it does not understand.
func TestEventsOfARealRunAreUnderstood(t *testing.T) {
	seen := map[core.EventKind]int{}
	for _, seed := range []int64{1, 2, 3, 4, 5, 6, 7, 8} {
		var ring *trace.RingTracer
		res := sim.RunSeed(seed, sim.Options{TraceTo: func(now func() time.Time) trace.Tracer {
			ring = trace.NewRingTracer(1<<20, now)
			return ring
		}})
		if res.Err != nil {
			t.Fatalf("seed %d: %v", seed, res.Err)
		}
		recs := ring.Last(0)
		run, dropped := FromRecords("sim", recs)
		if dropped != 0 {
			t.Errorf("seed %d: %d events dropped", seed, dropped)
		}
		var jsonl []byte
		for _, r := range recs {
			jsonl = trace.AppendJSON(jsonl, r.Time, r.Node, r.Event)
		}
		log := mustParse(t, string(jsonl))
		if log.Malformed != 0 || len(log.Runs) != 1 || len(log.Runs[0].Events) != len(run.Events) {
			t.Fatalf("seed %d: the JSON lines parse to %d runs, %d malformed lines", seed, len(log.Runs), log.Malformed)
		}
		for i, e := range run.Events {
			seen[e.Type]++
			if e.Kind == KindOther && e.Type != core.EventInfo {
				t.Errorf("seed %d: %v event not understood: %s", seed, e.Type, e.Msg)
			}
			if j := log.Runs[0].Events[i]; j.Kind != e.Kind || j.Msg != e.Msg || j.Type != e.Type {
				t.Errorf("seed %d: through JSON, %q became %v %q", seed, e.Msg, j.Kind, j.Msg)
			}
		}
	}
	for _, k := range []core.EventKind{core.EventSend, core.EventRecv, core.EventRole, core.EventTerm, core.EventCommit, core.EventFault, core.EventApplied} {
		if seen[k] == 0 {
			t.Errorf("no %v event in the runs: the test sees too little", k)
		}
	}
}
