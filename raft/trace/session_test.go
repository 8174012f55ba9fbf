package trace

import (
	"strings"
	"testing"
	"time"

	"raft-consensus/raft/core"
)

func heartbeat(from, to int) core.Event {
	return core.Event{Kind: core.EventSend, Peer: to, RPC: &core.RPC{Type: core.MsgAppendEntries, From: from, To: to}}
}

func heartbeatReply(from, to int) core.Event {
	return core.Event{Kind: core.EventSend, Peer: to, RPC: &core.RPC{Type: core.MsgAppendEntriesReply, From: from, To: to, Success: true}}
}

// TestSessionKeepsTheElectionPastTheHeartbeats: a crash, an election, and
// then far more heartbeats than kept: the election is still there, in
// order, and the note says what was left out.
func TestSessionKeepsTheElectionPastTheHeartbeats(t *testing.T) {
	var clock time.Duration
	s := NewSessionTracer(1000, 50, func() time.Time { clock += time.Millisecond; return time.Unix(0, 0).Add(clock) })
	s.Trace("sim", core.Fault(nil, "crash"))
	s.Trace("1", core.Event{Kind: core.EventLeader, Peer: 1, Term: 2})
	for range 10000 {
		s.Trace("1", heartbeat(1, 2))
		s.Trace("2", heartbeatReply(2, 1))
	}
	s.Trace("1", core.Event{Kind: core.EventSend, Peer: 2, RPC: &core.RPC{Type: core.MsgAppendEntries, From: 1, To: 2, Entries: 3}})
	s.Trace("2", core.Event{Kind: core.EventSend, Peer: 1, RPC: &core.RPC{Type: core.MsgAppendEntriesReply, From: 2, To: 1, Success: true}})
	recs, note := s.Records()
	if len(recs) != 2+50+2 {
		t.Fatalf("kept %d records, want the 4 events and 50 heartbeats", len(recs))
	}
	if recs[0].Event.Kind != core.EventFault || recs[1].Event.Kind != core.EventLeader {
		t.Fatalf("the crash and the election are not first: %v, %v", recs[0].Event.Kind, recs[1].Event.Kind)
	}
	if recs[len(recs)-1].Event.RPC == nil || recs[len(recs)-2].Event.RPC.Entries != 3 {
		t.Fatal("the append with entries and its reply are not last")
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Time.Before(recs[i-1].Time) {
			t.Fatalf("records out of order at %d", i)
		}
	}
	if !strings.Contains(note, "the latest 50 of 20000") {
		t.Fatalf("note %q", note)
	}
}

// TestSessionTellsGroupsApart: the reply to one group's append with
// entries is no heartbeat, though another group's heartbeat went on the
// same link in between.
func TestSessionTellsGroupsApart(t *testing.T) {
	s := NewSessionTracer(1000, 50, nil)
	s.TraceGroup("1", "g1", core.Event{Kind: core.EventSend, Peer: 2, RPC: &core.RPC{Type: core.MsgAppendEntries, From: 1, To: 2, Entries: 3}})
	s.TraceGroup("1", "g2", heartbeat(1, 2))
	s.TraceGroup("2", "g1", heartbeatReply(2, 1)) // the reply to g1's entries
	s.TraceGroup("2", "g2", heartbeatReply(2, 1))
	if got := len(s.events); got != 2 {
		t.Fatalf("%d events kept apart from the heartbeats, want 2 (g1's append and its reply)", got)
	}
	for _, r := range s.events {
		if r.Group != "g1" {
			t.Errorf("a %s event was kept as no heartbeat: %v", r.Group, r.Event.Text())
		}
	}
}

// TestSessionDropsTheOldestEvents: past the bound, the oldest go, counted.
func TestSessionDropsTheOldestEvents(t *testing.T) {
	s := NewSessionTracer(100, 10, nil)
	for i := range 250 {
		s.Trace("0", core.Info("event %d", i))
	}
	recs, note := s.Records()
	if len(recs) > 100 || recs[len(recs)-1].Event.Detail != "event 249" {
		t.Fatalf("kept %d, last %q", len(recs), recs[len(recs)-1].Event.Detail)
	}
	if !strings.Contains(note, "oldest events were dropped") {
		t.Fatalf("note %q", note)
	}
}
