// Package trace carries the events that servers and simulators report:
// structured core.Event values, stamped with a time and a node, rendered as
// text lines for people and as JSON lines for tools.
//
// Every node, and the simulator, reports what it does as one event; the
// text rendering is the prototype's format
//
//	HH:MM:SS.micros [node-id] message
//
// where node-id is a node's number or "sim" for the fault injector, and
// message is core.Event.Text. The JSON rendering has the event's fields,
// the time, the node and the text:
//
//	{"time":"22:41:07.123456","node":"2","kind":"term","term":4,"prev_term":3,"text":"term 3 → 4"}
//
// The renderer in utils/ reads the JSON lines (or the events themselves,
// from a RingTracer); the vocabulary is in utils/TRACE.md.
//
// Tracing is switched on at run time (RAFT_DEBUG=1 for text, RAFT_DEBUG=json
// for JSON lines, in go test; -debug or -trace FILE in the REPL). When it is
// off the tracer is nil and no event is even built.
package trace

import (
	"encoding/json"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"raft-consensus/raft/core"
)

// Tracer receives trace events. Implementations must be safe for
// concurrent use.
type Tracer interface {
	Trace(node string, e core.Event)
}

// SimNode is the node-id of events the simulator itself reports (faults).
const SimNode = "sim"

// TextTracer writes events as text lines, or JSON lines if JSON is set.
type TextTracer struct {
	mu   sync.Mutex
	w    io.Writer
	now  func() time.Time
	json bool
	buf  []byte
}

// NewTextTracer writes events to w as text lines, stamped by now
// (time.Now if nil).
func NewTextTracer(w io.Writer, now func() time.Time) *TextTracer {
	if now == nil {
		now = time.Now
	}
	return &TextTracer{w: w, now: now}
}

// NewJSONTracer writes one JSON object per event and line.
func NewJSONTracer(w io.Writer, now func() time.Time) *TextTracer {
	t := NewTextTracer(w, now)
	t.json = true
	return t
}

// Trace implements Tracer.
func (t *TextTracer) Trace(node string, e core.Event) { t.TraceGroup(node, "", e) }

// TraceGroup implements GroupTracer: the line names the group (a "group"
// field in JSON, "g5: " before the message in text), as events of many
// groups on one node would be a muddle without it.
func (t *TextTracer) TraceGroup(node, group string, e core.Event) {
	ts := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.json {
		t.buf = appendJSON(t.buf[:0], ts, node, group, e)
	} else {
		msg := e.Text()
		if group != "" {
			msg = group + ": " + msg
		}
		t.buf = FormatTraceLine(t.buf[:0], ts, node, msg)
	}
	t.w.Write(t.buf)
}

// FormatTraceLine appends one text trace line (with its newline) to b.
func FormatTraceLine(b []byte, ts time.Time, node, msg string) []byte {
	b = ts.AppendFormat(b, "15:04:05.000000")
	b = append(b, " ["...)
	b = append(b, node...)
	b = append(b, "] "...)
	b = append(b, msg...)
	return append(b, '\n')
}

// AppendJSON appends one JSON trace line (with its newline) to b: the time,
// the node, the event's fields and its text.
func AppendJSON(b []byte, ts time.Time, node string, e core.Event) []byte {
	return appendJSON(b, ts, node, "", e)
}

// appendJSON is AppendJSON with the event's group ("" for none).
func appendJSON(b []byte, ts time.Time, node, group string, e core.Event) []byte {
	fields, err := json.Marshal(e)
	if err != nil { // cannot happen: an Event always marshals
		fields = []byte(`{"kind":"info"}`)
	}
	b = append(b, `{"time":"`...)
	b = ts.AppendFormat(b, "15:04:05.000000")
	b = append(b, `","node":`...)
	nodeJSON, _ := json.Marshal(node) // not strconv.Quote: Go's \x escapes are not JSON
	b = append(b, nodeJSON...)
	if group != "" {
		groupJSON, _ := json.Marshal(group)
		b = append(b, `,"group":`...)
		b = append(b, groupJSON...)
	}
	b = append(b, ',')
	b = append(b, fields[1:len(fields)-1]...)
	text, _ := json.Marshal(e.Text())
	b = append(b, `,"text":`...)
	b = append(b, text...)
	return append(b, "}\n"...)
}

// Record is one event as a tracer saw it.
type Record struct {
	Time  time.Time
	Node  string
	Event core.Event
	// Group is the group of the replica that traced it ("g5"), in a
	// cluster of many groups; "" otherwise.
	Group string
}

// Msg is the record's text.
func (r Record) Msg() string { return r.Event.Text() }

// RingTracer keeps the last N events in memory (the REPL's diagram command).
type RingTracer struct {
	mu     sync.Mutex
	now    func() time.Time
	events []Record
	next   int
	full   bool
}

// NewRingTracer keeps up to n events.
func NewRingTracer(n int, now func() time.Time) *RingTracer {
	if now == nil {
		now = time.Now
	}
	return &RingTracer{now: now, events: make([]Record, max(n, 1))}
}

// Trace implements Tracer.
func (r *RingTracer) Trace(node string, e core.Event) {
	ts := r.now()
	r.mu.Lock()
	r.events[r.next] = Record{Time: ts, Node: node, Event: e}
	r.next++
	if r.next == len(r.events) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

// Last returns up to n of the latest events, oldest first (n ≤ 0: all).
func (r *RingTracer) Last(n int) []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []Record
	if r.full {
		all = append(append(all, r.events[r.next:]...), r.events[:r.next]...)
	} else {
		all = append(all, r.events[:r.next]...)
	}
	if n > 0 && len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}

// MultiTracer sends every event to each of its tracers.
type MultiTracer []Tracer

// Trace implements Tracer.
func (m MultiTracer) Trace(node string, e core.Event) {
	for _, t := range m {
		t.Trace(node, e)
	}
}

// Func adapts a function to a Tracer.
type Func func(node string, e core.Event)

// Trace implements Tracer.
func (f Func) Trace(node string, e core.Event) { f(node, e) }

// TracerFromEnv returns a text tracer on stdout when RAFT_DEBUG is set to
// something other than "" or "0", and nil otherwise. RAFT_DEBUG=json gives
// JSON lines (which the diagram tools in utils/ read).
func TracerFromEnv() Tracer {
	switch v := os.Getenv("RAFT_DEBUG"); v {
	case "", "0", "false":
		return nil
	case "json":
		return NewJSONTracer(os.Stdout, nil)
	}
	return NewTextTracer(os.Stdout, nil)
}

// NodeTracer binds a Tracer to one node id. A nil *NodeTracer traces
// nothing, so callers guard the building of an event with On.
type NodeTracer struct {
	t    Tracer
	node string
}

// ForNode returns a NodeTracer for node id, or nil if t is nil.
func ForNode(t Tracer, id int) *NodeTracer {
	if t == nil {
		return nil
	}
	return &NodeTracer{t: t, node: strconv.Itoa(id)}
}

// On reports whether events are traced.
func (n *NodeTracer) On() bool { return n != nil }

// Event traces e.
func (n *NodeTracer) Event(e core.Event) {
	if n != nil {
		n.t.Trace(n.node, e)
	}
}
