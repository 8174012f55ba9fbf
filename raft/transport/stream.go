package transport

// Frame streams between nodes, for hosts of many groups (raft/multinode):
// all a node sends a peer in one round, for every group, is one frame, and
// frames go one way; the peer's answers are frames of its own the other
// way. So each ordered pair of nodes has one connection, opened by the
// sender and kept, with the same door as the RPC transport's: TLS if
// configured, then the hello (cluster, sender, receiver), checked by the
// listener against its identity and the certificate. What a frame holds is
// the caller's; the listener hands each to Deliver with the sender the
// hello named, so that a frame cannot speak for another node.
//
//	frame: length uint32 | bytes
//
// A frame longer than MaxFrame, or a connection that breaks off inside a
// frame, closes the connection; nothing of it is delivered.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"sync"
	"sync/atomic"
	"time"
)

// StreamConfig configures a StreamListener.
type StreamConfig struct {
	// Addr, Cluster, ID, Known, TLS, AllowRemote and Logf are as in
	// ListenConfig. Known should be set: only known nodes may send.
	Addr        string
	Cluster     string
	ID          int
	Known       func(id int) bool
	TLS         *tls.Config
	AllowRemote bool
	Logf        func(format string, args ...any)
	// MaxFrame bounds a frame (default 64 MiB).
	MaxFrame int
	// Groups is how many groups each node of the cluster hosts: a node
	// whose hello says another figure is refused (see Hello.Groups).
	Groups int
	// Services, if set, are net/rpc services ("KV", "Admin") that clients
	// may call on the same port, as on a Listener: a connection whose
	// hello says Client is served them, one whose hello names a node
	// sends frames. Without Services, clients are refused.
	Services map[string]any
	// Deliver takes every frame, in the order its sender sent them, with
	// the sender's id (frame is its own: it may keep it). An error (a
	// frame it cannot decode) closes the connection, as a malformed or
	// oversized frame does.
	Deliver func(from int, frame []byte) error
}

// StreamListener accepts frame streams from other nodes.
type StreamListener struct {
	door *door
	cfg  StreamConfig
	rpc  *rpc.Server // serves clients the Services; nil: none
}

// ListenStreams accepts frame streams at cfg.Addr.
func ListenStreams(cfg StreamConfig) (*StreamListener, error) {
	if err := CheckListenAddr(cfg.Addr, cfg.AllowRemote, cfg.TLS != nil); err != nil {
		return nil, err
	}
	if len(cfg.Cluster) > MaxClusterID {
		return nil, fmt.Errorf("cluster id of %d bytes (at most %d)", len(cfg.Cluster), MaxClusterID)
	}
	if cfg.Deliver == nil {
		return nil, errors.New("a stream listener needs Deliver")
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 64 << 20
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	// Only known nodes may send frames; clients only call Services.
	id := identity{cluster: cfg.Cluster, id: cfg.ID, known: cfg.Known, nodesOnly: cfg.Services == nil, groups: cfg.Groups}
	s := &StreamListener{cfg: cfg, door: newDoor(l, cfg.TLS, id, cfg.Logf)}
	if cfg.Services != nil {
		s.rpc = rpc.NewServer()
		for name, svc := range cfg.Services {
			if err := s.rpc.RegisterName(name, svc); err != nil {
				l.Close()
				return nil, err
			}
		}
	}
	s.door.open(s.serve)
	return s, nil
}

// Addr is where the listener listens.
func (s *StreamListener) Addr() string { return s.door.addr() }

// serve reads an admitted connection's frames until it ends.
func (s *StreamListener) serve(conn net.Conn, h Hello) {
	if h.From == Client {
		// Only with Services (the door refuses clients otherwise); the
		// codec refuses Raft requests from a client.
		s.rpc.ServeCodec(newServerCodec(conn, nil, Client))
		return
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		frame, err := readFrame(r, s.cfg.MaxFrame)
		if err == nil {
			err = s.cfg.Deliver(h.From, frame)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && s.cfg.Logf != nil {
				s.cfg.Logf("closed the stream from node %d (%s): %v", h.From, conn.RemoteAddr(), err)
			}
			return
		}
	}
}

// readFrame reads one length-prefixed frame of at most max bytes.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("frame of %d bytes (at most %d)", n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // cut inside a frame
		}
		return nil, err
	}
	return b, nil
}

// Close stops listening, closes every connection and waits for the
// serving goroutines.
func (s *StreamListener) Close() { s.door.close() }

// SenderConfig configures a StreamSender.
type SenderConfig struct {
	ID      int // the sender's node id
	Cluster string
	Groups  int // said in every hello (see Hello.Groups)
	TLS     *tls.Config
	// Queue bounds the frames waiting for one peer (default 256): a frame
	// that finds the queue full is dropped, as a congested network would
	// (Raft sends again).
	Queue int
	// MaxFrame bounds a frame Send takes (default 64 MiB, the listener's
	// default): a longer one would only make the peer close the stream.
	MaxFrame int
	// WriteTimeout bounds one write of what has queued up (default 5 s):
	// a peer that stops reading (a paused process, a full link) has its
	// stream closed, and the next frame dials again, instead of holding
	// the peer's goroutine, and Close, for ever.
	WriteTimeout time.Duration
	Logf         func(format string, args ...any)
}

// StreamSender sends frames to peers, one connection and one goroutine
// per peer, in order. Send never blocks.
type StreamSender struct {
	cfg SenderConfig

	mu     sync.Mutex
	peers  map[int]*streamPeer
	closed bool
	wg     sync.WaitGroup
}

type streamPeer struct {
	id    int
	addr  string
	queue chan []byte
	// ctx ends when the peer is replaced or the sender closes: it cancels
	// a dial and closes the connection, even in the middle of a write.
	ctx    context.Context
	cancel context.CancelFunc
	// done closes when the peer's goroutine has returned; prev is the
	// peer this one replaced (SetAddr), whose goroutine must be done
	// before this one writes, so that frames do not overtake each other
	// on two connections.
	done chan struct{}
	prev *streamPeer
	// writing is when the write deadline in force was armed (UnixNano;
	// 0: no write in progress), for the tests to see a write blocked on a
	// peer that does not read.
	writing atomic.Int64
}

// NewStreamSender returns a sender with no peers.
func NewStreamSender(cfg SenderConfig) *StreamSender {
	if cfg.Queue <= 0 {
		cfg.Queue = 256
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 64 << 20
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	return &StreamSender{cfg: cfg, peers: map[int]*streamPeer{}}
}

// SetAddr sets (or changes) where peer id listens.
func (s *StreamSender) SetAddr(id int, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	prev := s.peers[id]
	if prev != nil {
		if prev.addr == addr {
			return
		}
		prev.cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &streamPeer{id: id, addr: addr, queue: make(chan []byte, s.cfg.Queue), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), prev: prev}
	s.peers[id] = p
	s.wg.Add(1)
	go s.run(p)
}

// Send queues frame for peer to; it is dropped if the peer is unknown,
// its queue is full or the frame is longer than MaxFrame. frame must not
// be changed afterwards.
func (s *StreamSender) Send(to int, frame []byte) bool {
	if len(frame) > s.cfg.MaxFrame {
		if s.cfg.Logf != nil {
			s.cfg.Logf("dropped a frame of %d bytes for node %d (at most %d)", len(frame), to, s.cfg.MaxFrame)
		}
		return false
	}
	s.mu.Lock()
	p := s.peers[to]
	s.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case p.queue <- frame:
		return true
	default:
		return false
	}
}

// run keeps one peer's connection and writes its frames: what has queued
// up goes out in one write.
func (s *StreamSender) run(p *streamPeer) {
	defer s.wg.Done()
	defer close(p.done)
	if p.prev != nil {
		select {
		case <-p.prev.done:
			p.prev = nil
		case <-p.ctx.Done():
			return
		}
	}
	var conn net.Conn
	var w *bufio.Writer
	var unwatch func() bool
	drop := func() {
		unwatch()
		conn.Close()
		conn, w = nil, nil
	}
	defer func() {
		if conn != nil {
			drop()
		}
	}()
	var backoff time.Duration
	for {
		var frame []byte
		select {
		case <-p.ctx.Done():
			return
		case frame = <-p.queue:
		}
		if conn == nil {
			c, err := dial(p.ctx, p.addr, Hello{Cluster: s.cfg.Cluster, From: s.cfg.ID, To: p.id, Groups: s.cfg.Groups}, s.cfg.TLS)
			if err != nil {
				if p.ctx.Err() != nil {
					return
				}
				// This frame and those behind it in the queue are lost, as
				// on a network that is down; the next try waits a little.
				if s.cfg.Logf != nil && backoff == 0 {
					s.cfg.Logf("no stream to node %d at %s: %v", p.id, p.addr, err)
				}
				backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
				s.drain(p, backoff)
				continue
			}
			backoff = 0
			conn, w = c, bufio.NewWriterSize(c, 64<<10)
			// Stopping the peer closes the connection, which ends a write
			// blocked on a peer that does not read.
			unwatch = context.AfterFunc(p.ctx, func() { c.Close() })
		}
		// The deadline bounds a write that makes no progress, not a drain
		// of a long queue by a peer that reads steadily, however slowly:
		// it is armed again, frame by frame, once half of it has passed.
		var armed time.Time
		arm := func() error {
			now := time.Now()
			if now.Sub(armed) < s.cfg.WriteTimeout/2 {
				return nil
			}
			armed = now
			p.writing.Store(now.UnixNano())
			return conn.SetWriteDeadline(now.Add(s.cfg.WriteTimeout))
		}
		err := arm()
		if err == nil {
			err = writeFrame(w, frame)
		}
		for more := true; more && err == nil; {
			select {
			case f := <-p.queue:
				if err = arm(); err == nil {
					err = writeFrame(w, f)
				}
			default:
				more = false
			}
		}
		if err == nil {
			err = w.Flush()
		}
		p.writing.Store(0)
		if err != nil {
			if p.ctx.Err() == nil && s.cfg.Logf != nil {
				s.cfg.Logf("closed the stream to node %d at %s: %v", p.id, p.addr, err)
			}
			drop()
		}
	}
}

// drain drops what is queued for a peer that cannot be reached, and waits
// d (or until the sender stops).
func (s *StreamSender) drain(p *streamPeer, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-p.queue:
		case <-p.ctx.Done():
			return
		case <-t.C:
			return
		}
	}
}

func writeFrame(w *bufio.Writer, frame []byte) error {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(frame)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(frame)
	return err
}

// Close stops every peer's goroutine and closes the connections.
func (s *StreamSender) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for _, p := range s.peers {
			p.cancel()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}
