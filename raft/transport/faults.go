package transport

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"slices"
	"sync"
	"time"

	"raft-consensus/raft/core"
)

// NetworkFaults is a model of a bad network between servers: servers
// disconnected from everyone, links cut in one direction, partitions, a
// random drop rate and a random delay. Every knob is off by default. It
// acts on any Transport through WithFaults, so the TCP transport itself
// stays a plain transport.
//
// A partition is a list of groups; two servers can talk when some group
// holds both. Groups may overlap, which gives Jepsen's bridge (a server in
// both halves) and ring partitions (each server sees its neighbours only).
type NetworkFaults struct {
	mu           sync.Mutex
	disconnected map[int]bool
	cut          map[[2]int]bool // one-way: from → to
	groups       [][]int         // nil: no partition
	dropRate     float64
	maxDelay     time.Duration
	rand         *rand.Rand
}

// NewNetworkFaults returns a perfect network whose random choices come from seed.
func NewNetworkFaults(seed int64) *NetworkFaults {
	return &NetworkFaults{disconnected: map[int]bool{}, cut: map[[2]int]bool{}, rand: rand.New(rand.NewSource(seed))}
}

// Disconnect cuts every link to and from id.
func (f *NetworkFaults) Disconnect(id int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disconnected[id] = true
}

// Reconnect restores id's links (a partition or a cut link still applies).
func (f *NetworkFaults) Reconnect(id int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.disconnected, id)
}

// IsDisconnected reports whether id was disconnected.
func (f *NetworkFaults) IsDisconnected(id int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.disconnected[id]
}

// Cut cuts the link from → to in that direction only: from's messages to
// to are lost, and so are to's replies to from's requests.
func (f *NetworkFaults) Cut(from, to int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut[[2]int{from, to}] = true
}

// Uncut restores the link from → to.
func (f *NetworkFaults) Uncut(from, to int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.cut, [2]int{from, to})
}

// The checked forms of the four above, as a person asks for them: each
// refuses what would change nothing, with the reason. Every cluster's
// fault commands use them.

// DisconnectChecked disconnects id, unless it is disconnected already.
func (f *NetworkFaults) DisconnectChecked(id int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.disconnected[id] {
		return fmt.Errorf("node %d is already disconnected", id)
	}
	f.disconnected[id] = true
	return nil
}

// ReconnectChecked reconnects id, if it was disconnected.
func (f *NetworkFaults) ReconnectChecked(id int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.disconnected[id] {
		return fmt.Errorf("node %d is not disconnected", id)
	}
	delete(f.disconnected, id)
	return nil
}

// CutChecked cuts from → to, refusing a link of a node to itself and one
// cut already.
func (f *NetworkFaults) CutChecked(from, to int) error {
	if from == to {
		return fmt.Errorf("a link joins two different nodes, not %d and itself", from)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut[[2]int{from, to}] {
		return fmt.Errorf("the link %d → %d is already cut", from, to)
	}
	f.cut[[2]int{from, to}] = true
	return nil
}

// UncutChecked restores from → to, if it was cut.
func (f *NetworkFaults) UncutChecked(from, to int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.cut[[2]int{from, to}] {
		return fmt.Errorf("the link %d → %d is not cut", from, to)
	}
	delete(f.cut, [2]int{from, to})
	return nil
}

// CutLinks lists the links cut one way, in order.
func (f *NetworkFaults) CutLinks() [][2]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][2]int
	for l := range f.cut {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	return out
}

// Partition makes servers talk only within the groups that hold them both.
// Servers in no group can talk to nobody.
func (f *NetworkFaults) Partition(groups ...[]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups = make([][]int, len(groups))
	for i, g := range groups {
		f.groups[i] = slices.Clone(g)
	}
}

// Groups returns the partition in force (nil if none).
func (f *NetworkFaults) Groups() [][]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.groups == nil {
		return nil
	}
	out := make([][]int, len(f.groups))
	for i, g := range f.groups {
		out[i] = slices.Clone(g)
	}
	return out
}

// Heal removes any partition and every cut link (disconnected servers stay
// disconnected).
func (f *NetworkFaults) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups = nil
	clear(f.cut)
}

// SetDropRate makes each message (request or reply) lost with probability p.
func (f *NetworkFaults) SetDropRate(p float64) error {
	if p < 0 || p > 1 {
		return fmt.Errorf("drop rate %v is not between 0 and 1", p)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropRate = p
	return nil
}

// SetMaxDelay delays each message by a random time in [0, d).
func (f *NetworkFaults) SetMaxDelay(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("delay %v is negative", d)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maxDelay = d
	return nil
}

// Settings returns the drop rate and delay in force.
func (f *NetworkFaults) Settings() (dropRate float64, maxDelay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropRate, f.maxDelay
}

// Linked reports whether a message from → to can get through (drops aside).
func (f *NetworkFaults) Linked(from, to int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.linkedLocked(from, to)
}

func (f *NetworkFaults) linkedLocked(from, to int) bool {
	if f.disconnected[from] || f.disconnected[to] || f.cut[[2]int{from, to}] {
		return false
	}
	if f.groups == nil {
		return true
	}
	for _, g := range f.groups {
		if slices.Contains(g, from) && slices.Contains(g, to) {
			return true
		}
	}
	return false
}

// fate decides what happens to one message from → to: an error if it is
// lost, else the delay it takes.
func (f *NetworkFaults) fate(from, to int) (time.Duration, error) {
	f.mu.Lock()
	linked := f.linkedLocked(from, to)
	dropped := f.dropRate > 0 && f.rand.Float64() < f.dropRate
	var delay time.Duration
	if f.maxDelay > 0 {
		delay = time.Duration(f.rand.Int63n(int64(f.maxDelay)))
	}
	f.mu.Unlock()
	switch {
	case !linked:
		return 0, fmt.Errorf("%w: link %d→%d is cut", ErrUnreachable, from, to)
	case dropped:
		return 0, fmt.Errorf("%w: message %d→%d dropped", ErrUnreachable, from, to)
	}
	return delay, nil
}

// Fate decides what happens to one message (or batch) from → to, for a
// transport that applies the faults itself: an error if it is lost, else
// the delay it takes.
func (f *NetworkFaults) Fate(from, to int) (time.Duration, error) { return f.fate(from, to) }

// deliver decides the fate of one message from → to: it returns an error if
// the message is lost, after waiting out its delay.
func (f *NetworkFaults) deliver(ctx context.Context, from, to int) error {
	delay, err := f.fate(from, to)
	if err != nil {
		return err
	}
	return sleep(ctx, delay)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WithFaults returns a Transport that sends through inner, the request and
// then the reply each subject to f. It is a Pipeliner; when inner is one
// too, the requests started toward a peer stay in order through their
// delays, as on a TCP connection with latency.
func WithFaults(inner Transport, f *NetworkFaults) Transport {
	return &faultyTransport{inner: inner, faults: f, lines: map[int]*delayLine{}}
}

type faultyTransport struct {
	inner  Transport
	faults *NetworkFaults

	mu    sync.Mutex
	lines map[int]*delayLine // by peer
}

// Call implements Transport.
func (t *faultyTransport) Call(ctx context.Context, m core.Message) (core.Message, error) {
	if err := t.faults.deliver(ctx, m.From, m.To); err != nil {
		return core.Message{}, err
	}
	reply, err := t.inner.Call(ctx, m)
	if err != nil {
		return core.Message{}, err
	}
	if err := t.faults.deliver(ctx, m.To, m.From); err != nil {
		return core.Message{}, err
	}
	return reply, nil
}

// Go implements Pipeliner.
func (t *faultyTransport) Go(ctx context.Context, m core.Message, done func(core.Message, error)) {
	inner, ok := t.inner.(Pipeliner)
	if !ok {
		go func() { done(t.Call(ctx, m)) }()
		return
	}
	delay, err := t.faults.fate(m.From, m.To)
	if err != nil {
		done(core.Message{}, err)
		return
	}
	send := func() {
		if err := ctx.Err(); err != nil {
			done(core.Message{}, err)
			return
		}
		inner.Go(ctx, m, func(reply core.Message, err error) {
			if err == nil {
				err = t.faults.deliver(ctx, m.To, m.From)
			}
			done(reply, err)
		})
	}
	t.mu.Lock()
	line := t.lines[m.To]
	if line == nil {
		line = &delayLine{}
		t.lines[m.To] = line
	}
	t.mu.Unlock()
	line.add(ctx, time.Now().Add(delay), send)
}

// delayLine holds the requests toward one peer during their delays and
// sends them in the order they came, none before its time: the random
// delays of the faults then reorder nothing, as on one TCP connection.
type delayLine struct {
	mu      sync.Mutex
	queue   []delayed
	running bool // a goroutine is sending the queue
}

type delayed struct {
	ctx  context.Context
	at   time.Time
	send func()
}

// add queues send for at (it runs at once, on the caller's goroutine, when
// it is due and nothing waits before it).
func (l *delayLine) add(ctx context.Context, at time.Time, send func()) {
	l.mu.Lock()
	if !l.running && len(l.queue) == 0 && !time.Now().Before(at) {
		l.mu.Unlock()
		send()
		return
	}
	l.queue = append(l.queue, delayed{ctx: ctx, at: at, send: send})
	start := !l.running
	l.running = true
	l.mu.Unlock()
	if start {
		go l.run()
	}
}

func (l *delayLine) run() {
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.running = false
			l.mu.Unlock()
			return
		}
		next := l.queue[0]
		l.queue[0] = delayed{} // let go of the message once sent
		l.queue = l.queue[1:]
		l.mu.Unlock()
		_ = sleep(next.ctx, time.Until(next.at)) // send reports a cancelled ctx
		next.send()
	}
}

// Close closes the transport inside, if it can be closed.
func (t *faultyTransport) Close() error {
	if c, ok := t.inner.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
