package sim

import (
	"fmt"
	"strings"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/node"
	"raft-consensus/raft/transport"
)

// network is the simulated network between servers: links cut one way or
// both (a partition is a list of groups, which may overlap: bridge and
// ring partitions), random drops and duplicates, random delays, and now
// and then a message delivered very late. A request to a server that is
// down, or lost on the way, gets no answer: the caller gives up after its
// RPC timeout, as RaftNode's sender does. A cut link sometimes refuses at
// once instead (a connection reset).
type network struct {
	// links holds the partition and the links cut one way; its own drop
	// rate and delay stay off (the simulation draws those from the seed).
	links              *transport.NetworkFaults
	dropRate, dupRate  float64
	lateRate           float64
	minDelay, maxDelay time.Duration
	// extraDelay adds a random delay below it to every message, as a
	// user's "network delay" does (the seeded runs leave it off).
	extraDelay time.Duration
	nextDrop   map[[2]int]bool // lose the next message on the link
}

func newNetwork() network {
	return network{links: transport.NewNetworkFaults(0), nextDrop: map[[2]int]bool{},
		minDelay: 100 * time.Microsecond, maxDelay: 3 * time.Millisecond}
}

// linked reports whether a message from → to can get through (drops aside).
func (n *network) linked(from, to int) bool { return n.links.Linked(from, to) }

func (n *network) describe() string {
	var parts []string
	for _, g := range n.links.Groups() {
		parts = append(parts, fmt.Sprint(g))
	}
	return strings.Join(parts, " | ")
}

// delay draws one message's delay: usually short, now and then (with the
// late rate) several election timeouts.
func (w *world) delay() time.Duration {
	n := &w.net
	if n.lateRate > 0 && w.rng.Float64() < n.lateRate {
		w.stats.late++
		return time.Duration(2+w.rng.Intn(4)) * w.p.rpcTimeout()
	}
	d := n.minDelay + time.Duration(w.rng.Int63n(int64(n.maxDelay-n.minDelay)+1))
	if n.extraDelay > 0 {
		d += time.Duration(w.rng.Int63n(int64(n.extraDelay)))
	}
	return d
}

// lost decides whether one message from → to is lost.
func (w *world) lost(from, to int) bool {
	n := &w.net
	if !n.linked(from, to) {
		return true
	}
	if n.nextDrop[[2]int{from, to}] {
		delete(n.nextDrop, [2]int{from, to})
		return true
	}
	return n.dropRate > 0 && w.rng.Float64() < n.dropRate
}

// link carries one server's requests to one peer, up to Params.Pipeline
// RPCs at a time, from the driver's PeerQueue (which merges the
// AppendEntries queued behind the RPCs in flight), as RaftNode's peer
// sender does. Each RPC draws its own delay, so pipelined requests may
// arrive out of order: the follower must cope (Figure 2's receiver never
// truncates on a stale message), and the run counts how often it happens.
type link struct {
	s        *server
	to       int
	queue    *node.PeerQueue
	inflight map[uint64]struct{} // the RPCs in flight, by id
	// delivered is the id of the latest RPC of this link stepped by the
	// peer; one stepped after it arrived out of order.
	delivered uint64
}

func (s *server) link(to int) *link {
	l := s.links[to]
	if l == nil {
		cc := s.w.p.Core
		l = &link{s: s, to: to, queue: node.NewPeerQueue(cc.MaxEntriesPerAppend, cc.MaxBytesPerAppend),
			inflight: map[uint64]struct{}{}}
		s.links[to] = l
	}
	return l
}

func (l *link) push(m core.Message) {
	l.queue.Push(m)
	l.sendMore()
}

// depth is how many RPCs the link may have in flight.
func (l *link) depth() int { return max(1, l.s.w.p.Pipeline) }

// sendMore sends queued messages while the pipeline has room.
func (l *link) sendMore() {
	for len(l.inflight) < l.depth() && l.sendNext() {
	}
}

// sendNext sends the next queued message as an RPC; false if none waits.
func (l *link) sendNext() bool {
	m, ok := l.queue.Take()
	if !ok {
		return false
	}
	w := l.s.w
	w.calls++
	id := w.calls
	l.inflight[id] = struct{}{}
	w.stats.messages++
	from, to, inc := m.From, m.To, l.s.inc
	finished := func() {
		if _, waiting := l.inflight[id]; waiting {
			delete(l.inflight, id)
			if l.s.inc == inc {
				l.sendMore()
			}
		}
	}
	if w.lost(from, to) {
		w.stats.dropped++
		if w.flights != nil { // only then: a draw would change the seeded runs
			w.fly(m, w.delay(), true)
		}
		if !w.net.linked(from, to) && w.rng.Intn(3) == 0 {
			w.after(w.delay(), finished) // refused at once
			return true
		}
		w.after(w.p.rpcTimeout(), finished)
		return true
	}
	copies := 1
	if w.net.dupRate > 0 && w.rng.Float64() < w.net.dupRate {
		copies = 2
		w.stats.duplicated++
	}
	for c := range copies {
		first := c == 0
		d := w.delay()
		landed := w.fly(m, d, false)
		w.after(d, func() {
			landed()
			t := w.servers[to]
			if t == nil || !t.up || t.removed {
				return // nobody there: the caller times out
			}
			if id < l.delivered && m.Type == core.MsgAppendEntries {
				w.stats.reordered++
			}
			l.delivered = max(l.delivered, id)
			t.input(func() {
				t.driver.Step(m, func(r *core.Message) {
					if r != nil {
						t.checkActedTerm(*r)
					}
					t.emit(func() {
						if r != nil && first {
							w.reply(l, id, inc, *r)
						}
					})
				})
			})
		})
	}
	w.after(w.p.rpcTimeout(), finished)
	return true
}

// reply carries a reply back to the caller of RPC id.
func (w *world) reply(l *link, id uint64, inc int, r core.Message) {
	if w.lost(r.From, r.To) {
		w.stats.dropped++
		if w.flights != nil {
			w.fly(r, w.delay(), true)
		}
		return
	}
	d := w.delay()
	landed := w.fly(r, d, false)
	w.after(d, func() {
		landed()
		s := l.s
		if _, waiting := l.inflight[id]; !waiting || s.inc != inc || !s.up {
			return // the caller gave up, or is gone
		}
		delete(l.inflight, id)
		s.input(func() { s.driver.Step(r, nil) })
		l.sendMore()
	})
}

// Flight is a message on the wire, for a display: sent at Sent, it arrives
// (or, Lost, would have arrived) at Arrive, in virtual time.
type Flight struct {
	ID           uint64
	From, To     int
	Type         string
	Entries      int
	Sent, Arrive time.Duration
	Lost         bool
}

// fly records a message that takes d to arrive (or is lost on the way)
// when flights are tracked; it returns what to call when it lands. The
// random delay is drawn by the caller, so tracking changes no run.
func (w *world) fly(m core.Message, d time.Duration, lost bool) (landed func()) {
	if w.flights == nil {
		return func() {}
	}
	w.flight++
	id := w.flight
	w.flights[id] = &Flight{ID: id, From: m.From, To: m.To, Type: m.Type.String(), Entries: len(m.Entries),
		Sent: w.now, Arrive: w.now + d, Lost: lost}
	landed = func() { delete(w.flights, id) }
	if lost {
		w.after(d, landed) // gone from the display once it would have arrived
	}
	return landed
}
