package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"sync"
	"time"

	"raft-consensus/raft/core"
)

// Transport carries one request to another server and brings back its
// reply. The node calls it from one goroutine per peer, never under a lock
// and never from the protocol core; a slow or dead peer only delays the
// messages meant for it.
type Transport interface {
	// Call delivers m to server m.To and returns the reply, or an error if
	// the message or its reply was lost.
	Call(ctx context.Context, m core.Message) (core.Message, error)
}

// Errors of the transports.
var (
	// ErrUnreachable is returned when a message could not be delivered.
	ErrUnreachable = errors.New("peer unreachable")
	// ErrClosed is returned by a transport after Close.
	ErrClosed = errors.New("transport is closed")
)

// Handler serves the requests a server receives: it steps m and returns
// the reply once it may be sent (after what it depends on is durable).
type Handler interface {
	Handle(m core.Message) (core.Message, error)
}

// TCPTransport calls peers' Servers with net/rpc over TCP on 127.0.0.1,
// with the binary codec of codec.go instead of gob. One connection per peer
// carries every call (net/rpc multiplexes them); a broken connection is
// redialled on the next call.
type TCPTransport struct {
	id int

	mu      sync.Mutex
	addrs   map[int]string
	clients map[int]*rpc.Client
	closed  bool
}

// NewTCPTransport returns a transport for server id.
func NewTCPTransport(id int) *TCPTransport {
	return &TCPTransport{id: id, addrs: map[int]string{}, clients: map[int]*rpc.Client{}}
}

// SetAddr tells the transport where server id listens.
func (t *TCPTransport) SetAddr(id int, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.addrs[id] != addr {
		t.addrs[id] = addr
		if c := t.clients[id]; c != nil {
			c.Close()
			delete(t.clients, id)
		}
	}
}

// Call implements Transport.
func (t *TCPTransport) Call(ctx context.Context, m core.Message) (core.Message, error) {
	method, ok := rpcMethod(m.Type)
	if !ok {
		return core.Message{}, fmt.Errorf("message type %v is not a request", m.Type)
	}
	client, err := t.client(ctx, m.To)
	if err != nil {
		return core.Message{}, err
	}
	var reply core.Message
	call := client.Go(method, &m, &reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		return core.Message{}, ctx.Err()
	}
	if call.Error != nil {
		if _, isServerErr := call.Error.(rpc.ServerError); !isServerErr {
			t.dropClient(m.To, client)
		}
		return core.Message{}, call.Error
	}
	return reply, nil
}

func (t *TCPTransport) client(ctx context.Context, to int) (*rpc.Client, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if c := t.clients[to]; c != nil {
		t.mu.Unlock()
		return c, nil
	}
	addr, ok := t.addrs[to]
	t.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: no address for server %d", ErrUnreachable, to)
	}
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	c := rpc.NewClientWithCodec(newClientCodec(conn))
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return nil, ErrClosed
	}
	if old := t.clients[to]; old != nil {
		c.Close() // another caller won the race
		return old, nil
	}
	t.clients[to] = c
	return c, nil
}

func (t *TCPTransport) dropClient(to int, c *rpc.Client) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clients[to] == c {
		delete(t.clients, to)
	}
	c.Close()
}

// Close closes every connection; later calls fail.
func (t *TCPTransport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for id, c := range t.clients {
		c.Close()
		delete(t.clients, id)
	}
	return nil
}

// Listener serves a Handler's RPCs over net/rpc on a TCP listener.
type Listener struct {
	listener net.Listener
	wg       sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Listen serves h on addr, which must be on 127.0.0.1 (":0" picks a port).
func Listen(addr string, h Handler) (*Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %v", addr, err)
	}
	if host != "127.0.0.1" {
		// Never on every interface: this is a simulator, not a service.
		return nil, fmt.Errorf("listen address %q: only 127.0.0.1 is allowed", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Raft", &rpcService{h: h}); err != nil {
		l.Close()
		return nil, err
	}
	s := &Listener{listener: l, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept(srv)
	return s, nil
}

func (s *Listener) accept(srv *rpc.Server) {
	defer s.wg.Done()
	for {
		conn, err := s.listener.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			srv.ServeCodec(newServerCodec(conn))
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
		}()
	}
}

// Addr is where the server listens.
func (s *Listener) Addr() string { return s.listener.Addr().String() }

// Close stops listening, closes every connection and waits for the
// serving goroutines to finish.
func (s *Listener) Close() {
	s.mu.Lock()
	s.closed = true
	s.listener.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// rpcService gives net/rpc the methods it dispatches to, one per request
// type ("Raft.<Method>").
type rpcService struct{ h Handler }

// RequestVote is the RequestVote RPC (Figure 2), PreVote included.
func (s *rpcService) RequestVote(args, reply *core.Message) error {
	return s.serve(core.MsgRequestVote, args, reply)
}

// AppendEntries is the AppendEntries RPC (Figure 2).
func (s *rpcService) AppendEntries(args, reply *core.Message) error {
	return s.serve(core.MsgAppendEntries, args, reply)
}

// InstallSnapshot is the InstallSnapshot RPC (Figure 13).
func (s *rpcService) InstallSnapshot(args, reply *core.Message) error {
	return s.serve(core.MsgInstallSnapshot, args, reply)
}

// TimeoutNow is the leadership-transfer RPC (thesis §3.10).
func (s *rpcService) TimeoutNow(args, reply *core.Message) error {
	return s.serve(core.MsgTimeoutNow, args, reply)
}

func (s *rpcService) serve(t core.MessageType, args, reply *core.Message) error {
	if args == nil || args.Type != t {
		return fmt.Errorf("malformed %v request", t)
	}
	r, err := s.h.Handle(*args)
	if err != nil {
		return err
	}
	*reply = r
	return nil
}

// dialTimeout bounds how long a Call may wait for a connection.
const dialTimeout = time.Second
