package trace

import (
	"fmt"
	"sync"
	"time"

	"raft-consensus/raft/core"
)

// SessionTracer keeps what a whole session did, for the timing diagram:
// every event but heartbeats, up to a bound (the oldest go first, and are
// counted), and the latest heartbeats only, so that hours of idle
// heartbeats never push out the election after a crash.
type SessionTracer struct {
	mu        sync.Mutex
	now       func() time.Time
	max       int
	events    []seqRecord
	dropped   int
	hb        []seqRecord // a ring of the latest heartbeats
	hbNext    int
	hbTotal   int
	seq       uint64
	lastEmpty map[link]bool // the last AppendEntries on the link was empty
}

// link is one direction between two nodes in one group ("" for a cluster
// of one group): the groups of a multi-raft node pair interleave their
// appends, and a reply answers its own group's.
type link struct {
	group    string
	from, to int
}

type seqRecord struct {
	seq uint64
	Record
}

// Session bounds: events kept, and heartbeats kept.
const (
	DefaultSessionEvents     = 1_000_000
	DefaultSessionHeartbeats = 2000
)

// NewSessionTracer keeps up to maxEvents events besides heartbeats, and
// the latest maxHeartbeats heartbeats; now stamps them (nil: the wall clock).
func NewSessionTracer(maxEvents, maxHeartbeats int, now func() time.Time) *SessionTracer {
	if now == nil {
		now = time.Now
	}
	return &SessionTracer{now: now, max: max(maxEvents, 1), hb: make([]seqRecord, 0, max(maxHeartbeats, 1)), lastEmpty: map[link]bool{}}
}

// isHeartbeat reports whether e, of group ("" for none), is the sending
// or receiving of an empty AppendEntries, or of a successful reply to
// one; lastEmpty remembers, per link, whether the last AppendEntries was
// empty.
func isHeartbeat(group string, e core.Event, lastEmpty map[link]bool) bool {
	if (e.Kind != core.EventSend && e.Kind != core.EventRecv) || e.RPC == nil {
		return false
	}
	r := e.RPC
	switch r.Type {
	case core.MsgAppendEntries:
		empty := r.Entries == 0
		lastEmpty[link{group, r.From, r.To}] = empty
		return empty
	case core.MsgAppendEntriesReply:
		return r.Success && lastEmpty[link{group, r.To, r.From}]
	}
	return false
}

// Trace implements Tracer.
func (s *SessionTracer) Trace(node string, e core.Event) { s.TraceGroup(node, "", e) }

// TraceGroup implements GroupTracer: the record keeps the group.
func (s *SessionTracer) TraceGroup(node, group string, e core.Event) {
	ts := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	rec := seqRecord{s.seq, Record{ts, node, e, group}}
	if isHeartbeat(group, e, s.lastEmpty) {
		s.hbTotal++
		if len(s.hb) < cap(s.hb) {
			s.hb = append(s.hb, rec)
			return
		}
		s.hb[s.hbNext] = rec
		s.hbNext = (s.hbNext + 1) % len(s.hb)
		return
	}
	if len(s.events) >= s.max {
		// Drop the oldest tenth at once, so that dropping costs little.
		n := max(1, s.max/10)
		s.dropped += n
		s.events = append(s.events[:0], s.events[n:]...)
	}
	s.events = append(s.events, rec)
}

// Records returns what is kept, oldest first, and a note on what is not
// ("" when nothing was left out).
func (s *SessionTracer) Records() ([]Record, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hb := append(append([]seqRecord(nil), s.hb[s.hbNext:]...), s.hb[:s.hbNext]...)
	out := make([]Record, 0, len(s.events)+len(hb))
	i, j := 0, 0
	for i < len(s.events) || j < len(hb) {
		if j >= len(hb) || (i < len(s.events) && s.events[i].seq < hb[j].seq) {
			out = append(out, s.events[i].Record)
			i++
		} else {
			out = append(out, hb[j].Record)
			j++
		}
	}
	var note string
	if s.dropped > 0 {
		note = fmt.Sprintf("the %d oldest events were dropped (at most %d are kept)", s.dropped, s.max)
	}
	if s.hbTotal > len(hb) {
		if note != "" {
			note += "; "
		}
		note += fmt.Sprintf("heartbeats: the latest %d of %d are shown", len(hb), s.hbTotal)
	}
	return out, note
}

// Latest returns the latest n events but heartbeats, oldest first, and a
// note on what the session left out ("" if nothing).
func (s *SessionTracer) Latest(n int) ([]Record, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.events[max(0, len(s.events)-n):]
	out := make([]Record, len(evs))
	for i, e := range evs {
		out[i] = e.Record
	}
	note := ""
	if s.dropped > 0 {
		note = fmt.Sprintf("the %d oldest events were dropped", s.dropped)
	}
	return out, note
}
