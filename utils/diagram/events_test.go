package diagram

import (
	"strings"
	"testing"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/trace"
)

// Helpers that write the tests' traces as JSON lines of typed events, the
// form the tracers write.

// line is one trace event: a clock (HH:MM:SS.micros), a node, an event.
type line struct {
	clock, node string
	e           core.Event
}

func at(clock, node string, e core.Event) line { return line{clock, node, e} }

// lines renders trace lines as the JSON tracer writes them.
func lines(ls ...line) string {
	var b []byte
	for _, l := range ls {
		d, ok := parseClock(l.clock)
		if !ok {
			panic("bad clock in test: " + l.clock)
		}
		b = trace.AppendJSON(b, time.Unix(0, 0).UTC().Add(d), l.node, l.e)
	}
	return string(b)
}

func ev(k core.EventKind) core.Event { return core.Event{Kind: k, Peer: core.None} }

func termEv(from, to uint64) core.Event {
	e := ev(core.EventTerm)
	e.PrevTerm, e.Term = from, to
	return e
}

func roleEv(from, to core.Role, term uint64) core.Event {
	e := ev(core.EventRole)
	e.PrevRole, e.Role, e.Term = from, to, term
	return e
}

func faultEv(detail string, groups ...[]int) core.Event { return core.Fault(groups, "%s", detail) }

func infoEv(text string) core.Event { return core.Info("%s", text) }

func appendRPC(from, to int, term, prev, prevTerm uint64, entries int, commit uint64) *core.RPC {
	return &core.RPC{Type: core.MsgAppendEntries, From: from, To: to, Term: term, PrevLogIndex: prev, PrevLogTerm: prevTerm, Entries: entries, LeaderCommit: commit}
}

func appendReplyRPC(from, to int, term uint64, match uint64) *core.RPC {
	return &core.RPC{Type: core.MsgAppendEntriesReply, From: from, To: to, Term: term, Success: true, MatchIndex: match}
}

func rejectRPC(from, to int, term, prev, conflictIndex, conflictTerm uint64) *core.RPC {
	return &core.RPC{Type: core.MsgAppendEntriesReply, From: from, To: to, Term: term, PrevLogIndex: prev, Conflict: [2]uint64{conflictIndex, conflictTerm}}
}

func voteRPC(from, to int, term uint64, preVote bool) *core.RPC {
	return &core.RPC{Type: core.MsgRequestVote, From: from, To: to, Term: term, PreVote: preVote}
}

func timeoutNowRPC(from, to int, term uint64) *core.RPC {
	return &core.RPC{Type: core.MsgTimeoutNow, From: from, To: to, Term: term}
}

func send(r *core.RPC) core.Event {
	return core.Event{Kind: core.EventSend, Term: r.Term, Peer: r.To, RPC: r}
}

func recv(r *core.RPC) core.Event {
	return core.Event{Kind: core.EventRecv, Term: r.Term, Peer: r.From, RPC: r}
}

func TestHelpersWriteWhatTheTracerWrites(t *testing.T) {
	got := lines(at("22:41:07.123456", "2", termEv(3, 4)))
	want := `{"time":"22:41:07.123456","node":"2","kind":"term","term":4,"prev_term":3,"text":"term 3 → 4"}` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if !strings.HasSuffix(lines(at("00:00:00.000001", "0", infoEv("x"))), "\"text\":\"x\"}\n") {
		t.Errorf("info line")
	}
}
