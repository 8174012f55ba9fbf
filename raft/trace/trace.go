package trace

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// Tracing: every node, and the simulator, can report what it does as one
// line per event, in the prototype's format
//
//	HH:MM:SS.micros [node-id] message
//
// where node-id is a node's number or "sim" for the fault injector. The
// renderer in utils/ turns such lines (mixed with go test -v output) into
// timing diagrams; the vocabulary it understands is in utils/TRACE.md.
//
// Tracing is switched on at run time (RAFT_DEBUG=1 for go test, -debug or
// -trace FILE in the REPL). When it is off the tracer is nil and no message
// is even formatted.

// Tracer receives trace events. Implementations must be safe for
// concurrent use.
type Tracer interface {
	Trace(node string, msg string)
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

// NewTextTracer writes events to w, stamped by now (time.Now if nil).
func NewTextTracer(w io.Writer, now func() time.Time) *TextTracer {
	if now == nil {
		now = time.Now
	}
	return &TextTracer{w: w, now: now}
}

// NewJSONTracer writes one JSON object per line: {"time","node","msg"}.
func NewJSONTracer(w io.Writer, now func() time.Time) *TextTracer {
	t := NewTextTracer(w, now)
	t.json = true
	return t
}

// Trace implements Tracer.
func (t *TextTracer) Trace(node, msg string) {
	ts := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.json {
		b, _ := json.Marshal(struct {
			Time string `json:"time"`
			Node string `json:"node"`
			Msg  string `json:"msg"`
		}{ts.Format("15:04:05.000000"), node, msg})
		t.buf = append(b, '\n')
	} else {
		t.buf = FormatTraceLine(t.buf[:0], ts, node, msg)
	}
	t.w.Write(t.buf)
}

// FormatTraceLine appends one trace line (with its newline) to b.
func FormatTraceLine(b []byte, ts time.Time, node, msg string) []byte {
	b = ts.AppendFormat(b, "15:04:05.000000")
	b = append(b, " ["...)
	b = append(b, node...)
	b = append(b, "] "...)
	b = append(b, msg...)
	return append(b, '\n')
}

// RingTracer keeps the last N events in memory (the REPL's diagram command).
type RingTracer struct {
	mu     sync.Mutex
	now    func() time.Time
	events []TraceEvent
	next   int
	full   bool
}

// TraceEvent is one recorded event.
type TraceEvent struct {
	Time time.Time
	Node string
	Msg  string
}

// NewRingTracer keeps up to n events.
func NewRingTracer(n int, now func() time.Time) *RingTracer {
	if now == nil {
		now = time.Now
	}
	return &RingTracer{now: now, events: make([]TraceEvent, max(n, 1))}
}

// Trace implements Tracer.
func (r *RingTracer) Trace(node, msg string) {
	ts := r.now()
	r.mu.Lock()
	r.events[r.next] = TraceEvent{ts, node, msg}
	r.next++
	if r.next == len(r.events) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

// Last returns up to n of the latest events, oldest first.
func (r *RingTracer) Last(n int) []TraceEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []TraceEvent
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
func (m MultiTracer) Trace(node, msg string) {
	for _, t := range m {
		t.Trace(node, msg)
	}
}

// TracerFromEnv returns a text tracer on stdout when RAFT_DEBUG is set to
// something other than "" or "0", and nil otherwise. RAFT_DEBUG=json gives
// JSON lines.
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
// nothing, so callers guard expensive formatting with On.
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

// Event traces msg.
func (n *NodeTracer) Event(msg string) {
	if n != nil {
		n.t.Trace(n.node, msg)
	}
}

// Eventf traces a formatted message.
func (n *NodeTracer) Eventf(format string, args ...any) {
	if n != nil {
		n.t.Trace(n.node, fmt.Sprintf(format, args...))
	}
}
