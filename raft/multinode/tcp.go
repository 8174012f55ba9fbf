package multinode

import (
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"raft-consensus/raft/multi"
	"raft-consensus/raft/transport"
)

// TCPConfig configures a node's TCP transport.
type TCPConfig struct {
	ID      multi.NodeID
	Cluster string // every connection's hello names it
	// Groups is how many groups every node hosts, said in each hello: a
	// peer started with another figure is refused (transport.Hello.Groups).
	Groups int
	// Listen is the address to accept peers' streams on (127.0.0.1 unless
	// AllowRemote, which needs TLS); Peers, the other nodes' addresses.
	Listen      string
	Peers       map[multi.NodeID]string
	TLS         *tls.Config
	AllowRemote bool
	// Services, if set, are served to clients on the same port (see
	// transport.StreamConfig).
	Services map[string]any
	// Faults, if set, decide the fate of every batch sent: lost, or
	// delayed (a node process's faults, which the REPL sets through the
	// admin service).
	Faults *transport.NetworkFaults
	Logf   func(format string, args ...any)
}

// TCP carries batches between nodes in different processes: one stream
// per ordered pair of nodes (transport.StreamSender, StreamListener), each
// batch one frame (AppendBatch). Only the nodes of Peers may send, each
// only batches from itself to this node.
type TCP struct {
	cfg      TCPConfig
	sender   *transport.StreamSender
	listener *transport.StreamListener
	node     atomic.Pointer[Node]

	mu    sync.Mutex
	peers map[multi.NodeID]string
	stats TCPStats
}

// TCPStats count a TCP transport's traffic.
type TCPStats struct {
	FramesSent, BytesSent, FramesDropped uint64
	FramesReceived, BytesReceived        uint64
}

// ListenTCP starts the transport: it listens at once, and dials each peer
// on the first batch for it. Attach gives it the node to deliver to.
func ListenTCP(cfg TCPConfig) (*TCP, error) {
	t := &TCP{cfg: cfg, peers: map[multi.NodeID]string{}}
	known := func(id int) bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		_, ok := t.peers[multi.NodeID(id)]
		return ok
	}
	l, err := transport.ListenStreams(transport.StreamConfig{Addr: cfg.Listen, Cluster: cfg.Cluster, ID: int(cfg.ID), Known: known,
		TLS: cfg.TLS, AllowRemote: cfg.AllowRemote, Logf: cfg.Logf, Deliver: t.deliver, Services: cfg.Services, Groups: cfg.Groups})
	if err != nil {
		return nil, err
	}
	t.listener = l
	t.sender = transport.NewStreamSender(transport.SenderConfig{ID: int(cfg.ID), Cluster: cfg.Cluster, Groups: cfg.Groups, TLS: cfg.TLS, Logf: cfg.Logf})
	for id, addr := range cfg.Peers {
		t.SetPeer(id, addr)
	}
	return t, nil
}

// SetPeer adds node id, at addr, to the nodes this one sends to and
// accepts streams from.
func (t *TCP) SetPeer(id multi.NodeID, addr string) {
	if id == t.cfg.ID {
		return
	}
	t.mu.Lock()
	t.peers[id] = addr
	t.mu.Unlock()
	t.sender.SetAddr(int(id), addr)
}

// Addr is where the transport listens.
func (t *TCP) Addr() string { return t.listener.Addr() }

// Attach makes n the node the transport delivers to.
func (t *TCP) Attach(n *Node) { t.node.Store(n) }

// Send implements Transport.
func (t *TCP) Send(b *multi.Batch) {
	if f := t.cfg.Faults; f != nil {
		delay, err := f.Fate(int(b.From), int(b.To))
		if err != nil {
			t.mu.Lock()
			t.stats.FramesDropped++
			t.mu.Unlock()
			return
		}
		if delay > 0 {
			// The batch is encoded now: the caller may reuse it.
			to, frame := int(b.To), AppendBatch(nil, b)
			time.AfterFunc(delay, func() { t.sendFrame(to, frame) })
			return
		}
	}
	t.sendFrame(int(b.To), AppendBatch(nil, b))
}

func (t *TCP) sendFrame(to int, frame []byte) {
	ok := t.sender.Send(to, frame)
	t.mu.Lock()
	if ok {
		t.stats.FramesSent++
		t.stats.BytesSent += uint64(len(frame))
	} else {
		t.stats.FramesDropped++
	}
	t.mu.Unlock()
}

func (t *TCP) deliver(from int, frame []byte) error {
	b, err := DecodeBatch(frame)
	if err != nil {
		return err
	}
	if b.From != multi.NodeID(from) || b.To != t.cfg.ID {
		return fmt.Errorf("a batch from node %d to node %d on node %d's stream to node %d", b.From, b.To, from, t.cfg.ID)
	}
	t.mu.Lock()
	t.stats.FramesReceived++
	t.stats.BytesReceived += uint64(len(frame))
	t.mu.Unlock()
	if n := t.node.Load(); n != nil {
		n.Deliver(b)
	}
	return nil
}

// Stats returns the transport's counters.
func (t *TCP) Stats() TCPStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Close stops listening and sending.
func (t *TCP) Close() {
	t.listener.Close()
	t.sender.Close()
}
