package diagram

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/trace"
)

// Run is the events of one test (or of a REPL session), in time order.
type Run struct {
	Name    string // test name; "" for events outside any test
	Result  string // PASS, FAIL or SKIP from go test -v, if seen
	Elapsed string // "(0.12s)" as go test printed it
	Events  []Event

	lastAt  time.Duration
	dayWrap time.Duration
}

// FromRecords builds a Run from in-memory events (a RingTracer's), without
// going through text. Records with an invalid node id or nothing to say
// are dropped and counted in the second result, as Parse counts malformed
// lines.
func FromRecords(name string, recs []trace.Record) (*Run, int) {
	r := &Run{Name: name}
	dropped := 0
	var midnight time.Time
	if len(recs) > 0 {
		first := recs[0].Time
		for _, rec := range recs {
			if rec.Time.Before(first) {
				first = rec.Time
			}
		}
		y, m, d := first.Date()
		midnight = time.Date(y, m, d, 0, 0, 0, 0, first.Location())
	}
	// The events of a cluster of many groups name their group, unless
	// they are all of one (a diagram filtered by group).
	groups := map[string]bool{}
	for _, rec := range recs {
		if rec.Group != "" {
			groups[rec.Group] = true
		}
	}
	for _, rec := range recs {
		msg := cleanMessage(rec.Event.Text())
		if !validNode(rec.Node) || msg == "" {
			dropped++
			continue
		}
		if len(groups) > 1 && rec.Group != "" {
			msg = rec.Group + ": " + msg
		}
		e := Event{At: rec.Time.Sub(midnight), Node: rec.Node, Msg: msg}
		interpret(&e, rec.Event)
		r.Events = append(r.Events, e)
	}
	r.finish()
	return r, dropped
}

// add appends a parsed line. Trace clocks are times of day, so a run that
// crosses midnight would jump back 24h; a backwards jump of more than 12h is
// taken as that, anything smaller as the usual jitter of concurrent writers.
func (r *Run) add(at time.Duration, node string, ce core.Event, line int) {
	at += r.dayWrap
	if len(r.Events) > 0 && at < r.lastAt-12*time.Hour {
		r.dayWrap += 24 * time.Hour
		at += 24 * time.Hour
	}
	r.lastAt = max(r.lastAt, at)
	e := Event{At: at, Node: node, Msg: cleanMessage(ce.Text()), Line: line}
	interpret(&e, ce)
	r.Events = append(r.Events, e)
}

// finish orders the events and pairs the two ends of every RPC. Events are
// sorted by time because a tracer stamps an event before it takes the lock
// that orders the output, so lines can be slightly out of order.
func (r *Run) finish() {
	sort.SliceStable(r.Events, func(i, j int) bool { return r.Events[i].At < r.Events[j].At })
	r.matchRPCs()
	r.markHeartbeats()
}

// matchRPCs pairs each recv with the oldest unmatched send of the same
// message text (FIFO). Identical texts are common (heartbeats), so with
// message loss FIFO can pair a recv with an earlier lost copy; the arrow is
// then a little too long, which is the price of not tagging messages.
func (r *Run) matchRPCs() {
	pending := map[string][]int{}
	for i := range r.Events {
		e := &r.Events[i]
		e.Match = -1
		switch e.Kind {
		case KindSend:
			pending[e.RPC.Text] = append(pending[e.RPC.Text], i)
		case KindRecv:
			q := pending[e.RPC.Text]
			if len(q) == 0 {
				continue
			}
			s := q[0]
			if len(q) == 1 {
				delete(pending, e.RPC.Text)
			} else {
				pending[e.RPC.Text] = q[1:]
			}
			e.Match = s
			r.Events[s].Match = i
		}
	}
}

// markHeartbeats flags empty AppendEntries and the successful replies to
// them, which is what -no-heartbeats hides. A reply carries no entry count,
// so it is a heartbeat reply when the last AppendEntries its sender received
// from that peer was empty. Rejections are kept: they start log repair.
func (r *Run) markHeartbeats() {
	type pair struct{ from, to string }
	lastWasEmpty := map[pair]bool{}
	for i := range r.Events {
		e := &r.Events[i]
		if e.RPC == nil {
			continue
		}
		switch e.RPC.Name {
		case "AppendEntries":
			empty := e.RPC.HasCount && e.RPC.Entries == 0
			e.Heartbeat = empty
			if e.Kind == KindRecv {
				lastWasEmpty[pair{e.RPC.From, e.RPC.To}] = empty
			}
		case "AppendReply":
			if e.Kind == KindSend {
				e.Heartbeat = !e.RPC.Reject && lastWasEmpty[pair{e.RPC.To, e.RPC.From}]
			}
		}
	}
	// The receiving end inherits from its send, wherever the sort put it.
	for i := range r.Events {
		e := &r.Events[i]
		if e.Kind == KindRecv && e.RPC.Name == "AppendReply" && e.Match >= 0 {
			e.Heartbeat = r.Events[e.Match].Heartbeat
		}
	}
}

// Nodes returns the lanes of the run: every node that logged an event, is an
// endpoint of an RPC or is named in a partition, numerically, "sim" last.
func (r *Run) Nodes() []string {
	seen := map[string]bool{}
	for i := range r.Events {
		e := &r.Events[i]
		seen[e.Node] = true
		if e.RPC != nil {
			seen[e.RPC.From] = true
			seen[e.RPC.To] = true
		}
		if e.Fault != nil {
			for _, g := range e.Fault.Groups {
				for _, n := range g {
					seen[n] = true
				}
			}
		}
	}
	nodes := make([]string, 0, len(seen))
	for n := range seen {
		nodes = append(nodes, n)
	}
	sortNodes(nodes)
	return nodes
}

func sortNodes(nodes []string) {
	sort.Slice(nodes, func(i, j int) bool {
		a, b := nodes[i], nodes[j]
		if a == SimNode || b == SimNode {
			return b == SimNode && a != SimNode
		}
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x < y
	})
}

// Last returns a copy of the run with only its last n events (all if n <= 0),
// re-paired so that arrows whose other end fell off the window are treated
// as such.
func (r *Run) Last(n int) *Run {
	c := *r
	if n > 0 && len(r.Events) > n {
		c.Events = append([]Event(nil), r.Events[len(r.Events)-n:]...)
		c.matchRPCs()
		c.markHeartbeats()
	}
	return &c
}

// Window returns a copy of the run with only the events at or after from
// and, if to > 0, at or before to; times are the clock of the trace.
func (r *Run) Window(from, to time.Duration) *Run {
	c := *r
	c.Events = nil
	for _, e := range r.Events {
		if e.At >= from && (to <= 0 || e.At <= to) {
			c.Events = append(c.Events, e)
		}
	}
	c.matchRPCs()
	c.markHeartbeats()
	return &c
}

// Duration is the time between the first and the last event.
func (r *Run) Duration() time.Duration {
	if len(r.Events) == 0 {
		return 0
	}
	return r.Events[len(r.Events)-1].At - r.Events[0].At
}

// Episodes splits the run where nothing but heartbeats happened for longer
// than idle, so that each burst of activity gets the page's width at the
// default zoom (a typed session is mostly idle). The heartbeats of the idle
// stretches are left out. A run without such a stretch is one episode.
func (r *Run) Episodes(idle time.Duration) []*Run {
	var cuts []time.Duration // each episode's first event time
	var last time.Duration
	seen := false
	for _, e := range r.Events {
		if e.Heartbeat {
			continue
		}
		if !seen || e.At-last > idle {
			cuts = append(cuts, e.At)
		}
		last, seen = e.At, true
	}
	if len(cuts) <= 1 {
		return []*Run{r}
	}
	var out []*Run
	for i, from := range cuts {
		// An episode ends at its last event before the next one starts.
		to := last
		if i+1 < len(cuts) {
			to = cuts[i+1] - 1
		}
		ep := r.Window(from, to)
		// Trim the idle tail: up to the episode's last event but heartbeats.
		end := from
		for _, e := range ep.Events {
			if !e.Heartbeat {
				end = e.At
			}
		}
		ep = r.Window(from, end)
		ep.Name = fmt.Sprintf("%s, part %d of %d: %s to %s", r.Name, i+1, len(cuts), FormatClock(from), FormatClock(end))
		out = append(out, ep)
	}
	return out
}
