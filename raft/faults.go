package raft

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"time"
)

// NetworkFaults is the simulator's model of a bad network between servers:
// links cut by disconnects and partitions, a random drop rate, and a random
// delay. A nil *NetworkFaults is a perfect network. Every knob is off by
// default.
type NetworkFaults struct {
	mu           sync.Mutex
	disconnected map[int]bool
	partitioned  bool
	group        map[int]int // partition group of each server while partitioned
	dropRate     float64
	maxDelay     time.Duration
	rand         *rand.Rand
}

// NewNetworkFaults returns a perfect network whose random choices come from seed.
func NewNetworkFaults(seed int64) *NetworkFaults {
	return &NetworkFaults{disconnected: map[int]bool{}, group: map[int]int{}, rand: rand.New(rand.NewSource(seed))}
}

// Disconnect cuts every link to and from id.
func (f *NetworkFaults) Disconnect(id int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disconnected[id] = true
}

// Reconnect restores id's links (a partition still applies).
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

// Partition splits the servers into groups that only talk among
// themselves. Servers in no group can talk to nobody.
func (f *NetworkFaults) Partition(groups ...[]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.group = map[int]int{}
	for g, ids := range groups {
		for _, id := range ids {
			f.group[id] = g
		}
	}
	f.partitioned = true
}

// Heal removes any partition (disconnected servers stay disconnected).
func (f *NetworkFaults) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.group = map[int]int{}
	f.partitioned = false
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

func (f *NetworkFaults) linkedLocked(from, to int) bool {
	if f.disconnected[from] || f.disconnected[to] {
		return false
	}
	if !f.partitioned {
		return true
	}
	gf, okf := f.group[from]
	gt, okt := f.group[to]
	return okf && okt && gf == gt
}

// deliver decides the fate of one message from → to: it returns an error if
// the message is lost, after waiting out its delay.
func (f *NetworkFaults) deliver(ctx context.Context, from, to int) error {
	if f == nil {
		return nil
	}
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
		return fmt.Errorf("%w: link %d→%d is cut", ErrUnreachable, from, to)
	case dropped:
		return fmt.Errorf("%w: message %d→%d dropped", ErrUnreachable, from, to)
	}
	if delay > 0 {
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
