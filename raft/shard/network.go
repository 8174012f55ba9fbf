package shard

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"raft-consensus/raft/multi"
	"raft-consensus/raft/multinode"
)

// network carries batches between the servers of one process and injects
// the faults the REPL asks for: a server cut off, a partition, links cut
// one way, loss and delay. A batch is all a server sends a peer in one
// round, for every group, so a fault on a link hits every group at once,
// as it would between two machines.
type network struct {
	mu           sync.Mutex
	nodes        map[multi.NodeID]*multinode.Node
	disconnected map[multi.NodeID]bool
	partition    [][]int // nil: none
	cut          map[[2]int]bool
	drop         float64
	delay        time.Duration
	rng          *rand.Rand
	closed       bool
	timers       sync.WaitGroup // delayed deliveries in flight
}

func newNetwork(seed int64) *network {
	return &network{nodes: map[multi.NodeID]*multinode.Node{}, disconnected: map[multi.NodeID]bool{},
		cut: map[[2]int]bool{}, rng: rand.New(rand.NewPCG(uint64(seed), 0x5eed))}
}

// attach makes n the server with its id (nil: none, crashed).
func (nw *network) attach(id multi.NodeID, n *multinode.Node) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if n == nil {
		delete(nw.nodes, id)
	} else {
		nw.nodes[id] = n
	}
}

// linked reports whether a batch from a can reach b now.
func (nw *network) linked(a, b multi.NodeID) bool {
	if nw.disconnected[a] || nw.disconnected[b] || nw.cut[[2]int{int(a), int(b)}] {
		return false
	}
	if nw.partition == nil {
		return true
	}
	for _, g := range nw.partition {
		if slices.Contains(g, int(a)) && slices.Contains(g, int(b)) {
			return true
		}
	}
	return false
}

// Send implements multinode.Transport: it never blocks.
func (nw *network) Send(b *multi.Batch) {
	nw.mu.Lock()
	to := nw.nodes[b.To]
	if nw.closed || to == nil || !nw.linked(b.From, b.To) || nw.drop > 0 && nw.rng.Float64() < nw.drop {
		nw.mu.Unlock()
		return
	}
	var wait time.Duration
	if nw.delay > 0 {
		wait = time.Duration(nw.rng.Int64N(int64(nw.delay)))
		nw.timers.Add(1)
	}
	nw.mu.Unlock()
	if wait == 0 {
		to.Deliver(b)
		return
	}
	time.AfterFunc(wait, func() {
		defer nw.timers.Done()
		// Checked again on arrival: a link cut meanwhile loses it.
		nw.mu.Lock()
		ok := !nw.closed && nw.nodes[b.To] == to && nw.linked(b.From, b.To)
		nw.mu.Unlock()
		if ok {
			to.Deliver(b)
		}
	})
}

// close stops every delivery and waits for the delayed ones.
func (nw *network) close() {
	nw.mu.Lock()
	nw.closed = true
	nw.mu.Unlock()
	nw.timers.Wait()
}

func (nw *network) setDisconnected(id multi.NodeID, off bool) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if off {
		nw.disconnected[id] = true
	} else {
		delete(nw.disconnected, id)
	}
}

func (nw *network) isDisconnected(id multi.NodeID) bool {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.disconnected[id]
}

func (nw *network) setPartition(groups [][]int) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.partition = groups
}

// heal undoes the partition and every cut link.
func (nw *network) heal() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.partition = nil
	clear(nw.cut)
}

func (nw *network) setCut(from, to int, cut bool) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if cut {
		nw.cut[[2]int{from, to}] = true
	} else {
		delete(nw.cut, [2]int{from, to})
	}
}

func (nw *network) cutLinks() [][2]int {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var links [][2]int
	for l := range nw.cut {
		links = append(links, l)
	}
	slices.SortFunc(links, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	return links
}

func (nw *network) settings() (float64, time.Duration) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.drop, nw.delay
}

func (nw *network) set(drop float64, delay time.Duration) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.drop, nw.delay = drop, delay
}
