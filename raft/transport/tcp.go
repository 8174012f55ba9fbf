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

// Pipeliner is a Transport that can have several requests to one peer in
// flight: Go sends m and returns without waiting for the reply, which done
// receives exactly once, or the error that lost it; ctx bounds the call.
// done must not block: it may run on the caller's goroutine, before Go
// returns (a request lost at once), or on another. While a connection lasts, the requests one
// goroutine starts toward one peer reach the peer's OrderedHandler in the
// order of the calls (a TCP stream, read by one goroutine), so pipelined
// AppendEntries seldom arrive out of order; they still may, across a
// reconnection or through a faulty network, and the core copes with that.
type Pipeliner interface {
	Transport
	Go(ctx context.Context, m core.Message, done func(core.Message, error))
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

// OrderedHandler is a Handler that takes a request in two steps: Accept
// queues m for the server in the order of the calls and returns at once,
// and wait returns its reply. The listener accepts a connection's requests
// from the one goroutine that reads them, so the server steps them in the
// order they were sent (net/rpc runs each method on a goroutine of its
// own, which would otherwise race them).
type OrderedHandler interface {
	Handler
	Accept(m core.Message) (wait func() (core.Message, error))
}

// acceptor returns h's Accept, or for a plain Handler, one that handles
// the request when its reply is waited for.
func acceptor(h Handler) func(core.Message) func() (core.Message, error) {
	if oh, ok := h.(OrderedHandler); ok {
		return oh.Accept
	}
	return func(m core.Message) func() (core.Message, error) {
		return func() (core.Message, error) { return h.Handle(m) }
	}
}

// Request is a request as the listener's codec hands it to the service:
// the message, already accepted by the handler.
type Request struct {
	msg  core.Message
	wait func() (core.Message, error)
}

// TCPTransport calls peers' Servers with net/rpc over TCP on 127.0.0.1,
// with the binary codec of codec.go instead of gob. One connection per peer
// carries every call (net/rpc multiplexes them); a broken connection is
// redialled on the next call.
type TCPTransport struct {
	id int

	mu      sync.Mutex
	addrs   map[int]string
	clients map[int]*peerClient
	closed  bool
}

// peerClient is the net/rpc client of one peer's connection, with the
// connection itself, whose write deadline bounds each request's write.
type peerClient struct {
	*rpc.Client
	conn net.Conn
}

// NewTCPTransport returns a transport for server id.
func NewTCPTransport(id int) *TCPTransport {
	return &TCPTransport{id: id, addrs: map[int]string{}, clients: map[int]*peerClient{}}
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
	client, call, err := t.start(ctx, m)
	if err != nil {
		return core.Message{}, err
	}
	return t.finish(ctx, m.To, client, call)
}

// Go implements Pipeliner: the request is written to the peer's
// connection, behind the ones started before it, before Go returns.
func (t *TCPTransport) Go(ctx context.Context, m core.Message, done func(core.Message, error)) {
	client, call, err := t.start(ctx, m)
	if err != nil {
		done(core.Message{}, err)
		return
	}
	go func() { done(t.finish(ctx, m.To, client, call)) }()
}

// start sends m on the peer's connection (net/rpc writes it before
// returning). The write has ctx's deadline: a peer that stops reading (its
// node stalled, its process stopped) fills the socket's buffers, and the
// write must not then block the sender for good; a write cut short leaves
// a broken frame behind, so the call fails and finish drops the client.
func (t *TCPTransport) start(ctx context.Context, m core.Message) (*peerClient, *rpc.Call, error) {
	method, ok := rpcMethod(m.Type)
	if !ok {
		return nil, nil, fmt.Errorf("message type %v is not a request", m.Type)
	}
	client, err := t.client(ctx, m.To)
	if err != nil {
		return nil, nil, err
	}
	deadline, _ := ctx.Deadline() // none: the zero time
	if err := client.conn.SetWriteDeadline(deadline); err != nil {
		t.dropClient(m.To, client)
		return nil, nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return client, client.Go(method, &m, new(core.Message), make(chan *rpc.Call, 1)), nil
}

// finish waits for the reply of a call start made.
func (t *TCPTransport) finish(ctx context.Context, to int, client *peerClient, call *rpc.Call) (core.Message, error) {
	select {
	case <-call.Done:
	case <-ctx.Done():
		return core.Message{}, ctx.Err()
	}
	if call.Error != nil {
		if _, isServerErr := call.Error.(rpc.ServerError); !isServerErr {
			t.dropClient(to, client)
		}
		return core.Message{}, call.Error
	}
	return *call.Reply.(*core.Message), nil
}

func (t *TCPTransport) client(ctx context.Context, to int) (*peerClient, error) {
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
	c := &peerClient{Client: rpc.NewClientWithCodec(newClientCodec(conn)), conn: conn}
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

func (t *TCPTransport) dropClient(to int, c *peerClient) {
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
	if err := srv.RegisterName("Raft", &rpcService{}); err != nil {
		l.Close()
		return nil, err
	}
	s := &Listener{listener: l, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept(srv, h)
	return s, nil
}

func (s *Listener) accept(srv *rpc.Server, h Handler) {
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
			srv.ServeCodec(newServerCodec(conn, h))
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
// type ("Raft.<Method>"). The codec has already checked each request's
// type against its method and handed it to the handler.
type rpcService struct{}

// RequestVote is the RequestVote RPC (Figure 2), PreVote included.
func (s *rpcService) RequestVote(args *Request, reply *core.Message) error {
	return s.serve(args, reply)
}

// AppendEntries is the AppendEntries RPC (Figure 2).
func (s *rpcService) AppendEntries(args *Request, reply *core.Message) error {
	return s.serve(args, reply)
}

// InstallSnapshot is the InstallSnapshot RPC (Figure 13).
func (s *rpcService) InstallSnapshot(args *Request, reply *core.Message) error {
	return s.serve(args, reply)
}

// TimeoutNow is the leadership-transfer RPC (thesis §3.10).
func (s *rpcService) TimeoutNow(args *Request, reply *core.Message) error {
	return s.serve(args, reply)
}

func (s *rpcService) serve(args *Request, reply *core.Message) error {
	if args == nil || args.wait == nil {
		return errors.New("malformed request")
	}
	r, err := args.wait()
	if err != nil {
		return err
	}
	*reply = r
	return nil
}

// dialTimeout bounds how long a Call may wait for a connection.
const dialTimeout = time.Second
