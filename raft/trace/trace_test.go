package trace

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"raft-consensus/raft/core"
)

var at = time.Date(2026, 12, 1, 22, 41, 7, 123456000, time.UTC)

func fixedNow() time.Time { return at }

func TestTextTracerWritesThePrototypeFormat(t *testing.T) {
	var out bytes.Buffer
	NewTextTracer(&out, fixedNow).Trace("2", core.Event{Kind: core.EventTerm, Term: 4, PrevTerm: 3})
	if got, want := out.String(), "22:41:07.123456 [2] term 3 → 4\n"; got != want {
		t.Fatalf("text line %q, want %q", got, want)
	}
}

// Events of one of many groups name the group, in text and in JSON.
func TestTracersNameTheGroup(t *testing.T) {
	var text, js bytes.Buffer
	e := core.Event{Kind: core.EventTerm, Term: 4, PrevTerm: 3}
	ForGroup(NewTextTracer(&text, fixedNow), "g5").Trace("2", e)
	ForGroup(NewJSONTracer(&js, fixedNow), "g5").Trace("2", e)
	if got, want := text.String(), "22:41:07.123456 [2] g5: term 3 → 4\n"; got != want {
		t.Errorf("text line %q, want %q", got, want)
	}
	var head struct{ Node, Group, Text string }
	if err := json.Unmarshal(js.Bytes(), &head); err != nil || head.Node != "2" || head.Group != "g5" || head.Text != e.Text() {
		t.Errorf("JSON line %s read as %+v (%v), want node 2, group g5", js.String(), head, err)
	}
}

// A JSON line must be valid JSON whatever the node and text hold, carry the
// event's fields (which read back into the same event) and its text.
func TestJSONTracerLinesReadBack(t *testing.T) {
	events := []struct {
		node string
		e    core.Event
	}{
		{"2", core.Event{Kind: core.EventTerm, Term: 4, PrevTerm: 3}},
		{SimNode, core.Event{Kind: core.EventFault, Detail: "partition \"0 1\" | 2\n\ttab\x01"}},
		{"nöde\x7f\"", core.Event{Kind: core.EventInfo, Detail: "ünïcode ✓"}},
	}
	var out bytes.Buffer
	tr := NewJSONTracer(&out, fixedNow)
	for _, ev := range events {
		tr.Trace(ev.node, ev.e)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(events), out.String())
	}
	for i, line := range lines {
		var head struct{ Time, Node, Text string }
		if err := json.Unmarshal([]byte(line), &head); err != nil {
			t.Fatalf("line %d is not JSON (%v): %s", i, err, line)
		}
		var e core.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %d does not read back as an event (%v): %s", i, err, line)
		}
		want := events[i]
		if head.Time != "22:41:07.123456" || head.Node != want.node || head.Text != want.e.Text() {
			t.Errorf("line %d: time %q node %q text %q, want %q %q %q", i, head.Time, head.Node, head.Text, "22:41:07.123456", want.node, want.e.Text())
		}
		if e.Kind != want.e.Kind || e.Term != want.e.Term || e.PrevTerm != want.e.PrevTerm || e.Detail != want.e.Detail {
			t.Errorf("line %d read back as %+v, want %+v", i, e, want.e)
		}
	}
}

func TestRingTracerKeepsTheLatestOldestFirst(t *testing.T) {
	r := NewRingTracer(3, fixedNow)
	if got := r.Last(0); len(got) != 0 {
		t.Fatalf("empty ring returned %d records", len(got))
	}
	for term := uint64(1); term <= 5; term++ {
		r.Trace("0", core.Event{Kind: core.EventTerm, Term: term})
	}
	terms := func(recs []Record) (ts []uint64) {
		for _, rec := range recs {
			ts = append(ts, rec.Event.Term)
		}
		return ts
	}
	if got := terms(r.Last(0)); len(got) != 3 || got[0] != 3 || got[2] != 5 {
		t.Fatalf("after 5 events in a ring of 3: terms %v, want [3 4 5]", got)
	}
	if got := terms(r.Last(2)); len(got) != 2 || got[0] != 4 || got[1] != 5 {
		t.Fatalf("Last(2): terms %v, want [4 5]", got)
	}
}

func TestNilNodeTracerTracesNothing(t *testing.T) {
	n := ForNode(nil, 1)
	if n.On() {
		t.Fatal("a node tracer of no tracer is on")
	}
	n.Event(core.Event{Kind: core.EventInfo}) // must not panic

	var got []string
	n = ForNode(MultiTracer{Func(func(node string, e core.Event) { got = append(got, node+":"+e.Text()) })}, 7)
	n.Event(core.Event{Kind: core.EventInfo, Detail: "hello"})
	if len(got) != 1 || got[0] != "7:hello" {
		t.Fatalf("traced %q, want [7:hello]", got)
	}
}
