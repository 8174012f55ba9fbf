package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/rpc"
	"strings"
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

// TCPTransport calls peers' Servers with net/rpc over TCP, with the binary
// codec of codec.go instead of gob. One connection per peer carries every
// call (net/rpc multiplexes them); it opens with a hello (hello.go), and,
// with TLS, inside a TLS session; a broken connection is redialled on the
// next call.
type TCPTransport struct {
	cfg TCPConfig

	mu       sync.Mutex
	addrs    map[int]string
	clients  map[int]*peerClient
	refusals map[int]string // the last refusal logged, per peer
	closed   bool
}

// TCPConfig configures a TCPTransport.
type TCPConfig struct {
	ID      int    // the node's id, said in every hello
	Cluster string // the cluster id, said in every hello
	// TLS, if set, holds the node's certificate and the cluster's CA: every
	// connection is then mutual TLS, and the peer's certificate must be the
	// node's it dialled (CertName).
	TLS *tls.Config
	// Logf, if set, is told when a peer refuses the connection (once per
	// reason, not at every retry).
	Logf func(format string, args ...any)
}

// peerClient is the net/rpc client of one peer's connection, with the
// connection itself, whose write deadline bounds each request's write.
type peerClient struct {
	*rpc.Client
	conn net.Conn
}

// NewTCPTransport returns a transport for server id, in the cluster with
// the empty id, without TLS: the in-process clusters'.
func NewTCPTransport(id int) *TCPTransport { return NewTCPTransportWith(TCPConfig{ID: id}) }

// NewTCPTransportWith returns a transport configured by cfg.
func NewTCPTransportWith(cfg TCPConfig) *TCPTransport {
	return &TCPTransport{cfg: cfg, addrs: map[int]string{}, clients: map[int]*peerClient{}, refusals: map[int]string{}}
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

// Addrs returns the address book: where each peer listens.
func (t *TCPTransport) Addrs() map[int]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.addrs)
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
	conn, err := dial(ctx, addr, Hello{Cluster: t.cfg.Cluster, From: t.cfg.ID, To: to}, t.cfg.TLS)
	if err != nil {
		if errors.Is(err, ErrRefused) {
			t.logRefusal(to, addr, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
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

// logRefusal logs a peer's refusal, unless it is the one logged last.
func (t *TCPTransport) logRefusal(to int, addr string, err error) {
	t.mu.Lock()
	repeated := t.refusals[to] == err.Error()
	t.refusals[to] = err.Error()
	t.mu.Unlock()
	if !repeated && t.cfg.Logf != nil {
		t.cfg.Logf("node %d at %s: %v", to, addr, err)
	}
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

// Listener serves a Handler's RPCs over net/rpc on a TCP listener, and
// any further services its ListenConfig names.
type Listener struct {
	door *door
	cfg  ListenConfig
}

// ListenConfig configures a Listener.
type ListenConfig struct {
	// Addr to listen on: on 127.0.0.1 unless AllowRemote (":0" picks a port).
	Addr    string
	Handler Handler // serves the Raft RPCs
	// Cluster and ID are the node's identity: a hello must name this
	// cluster, and this node or any (Client). Known says which node ids may
	// send Raft requests (nil: any).
	Cluster string
	ID      int
	Known   func(id int) bool
	// Services are further net/rpc services, by name ("KV", "Admin"),
	// which clients may call too; their arguments and replies travel as
	// JSON (see appendBody).
	Services map[string]any
	// TLS, if set, makes every connection mutual TLS: its certificate is
	// the node's, and ClientCAs verify the peers' (tls.RequireAndVerifyClientCert).
	TLS *tls.Config
	// AllowRemote allows an address beyond loopback, with TLS only.
	AllowRemote bool
	// Logf, if set, is told of every connection refused, and why.
	Logf func(format string, args ...any)
}

// Listen serves h on addr, which must be on 127.0.0.1 (":0" picks a port),
// in the cluster with the empty id, to any node: the in-process clusters'.
func Listen(addr string, h Handler) (*Listener, error) {
	return ListenWith(ListenConfig{Addr: addr, Handler: h, ID: Client})
}

// CheckListenAddr says whether addr may be listened on: loopback
// (127.0.0.1) always, anything else only with allowRemote and TLS.
func CheckListenAddr(addr string, allowRemote, withTLS bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %v", addr, err)
	}
	if host == "127.0.0.1" {
		return nil
	}
	if !allowRemote {
		return fmt.Errorf("listen address %q: only 127.0.0.1 is allowed unless remote listening is asked for explicitly", addr)
	}
	if !withTLS {
		return fmt.Errorf("listen address %q: listening beyond loopback needs TLS (mutual, with the cluster's certificates)", addr)
	}
	return nil
}

// ListenWith serves what cfg says.
func ListenWith(cfg ListenConfig) (*Listener, error) {
	if err := CheckListenAddr(cfg.Addr, cfg.AllowRemote, cfg.TLS != nil); err != nil {
		return nil, err
	}
	if len(cfg.Cluster) > MaxClusterID {
		return nil, fmt.Errorf("cluster id of %d bytes (at most %d)", len(cfg.Cluster), MaxClusterID)
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Raft", &rpcService{}); err != nil {
		l.Close()
		return nil, err
	}
	for name, svc := range cfg.Services {
		if name == "Raft" {
			l.Close()
			return nil, errors.New(`the service name "Raft" is taken`)
		}
		if err := srv.RegisterName(name, svc); err != nil {
			l.Close()
			return nil, err
		}
	}
	s := &Listener{cfg: cfg, door: newDoor(l, cfg.TLS, identity{cluster: cfg.Cluster, id: cfg.ID, known: cfg.Known}, cfg.Logf)}
	s.door.open(func(conn net.Conn, h Hello) {
		// ServeCodec returns when the connection ends.
		srv.ServeCodec(newServerCodec(conn, cfg.Handler, h.From))
	})
	return s, nil
}

// Addr is where the server listens.
func (s *Listener) Addr() string { return s.door.addr() }

// Close stops listening, closes every connection and waits for the
// serving goroutines to finish.
func (s *Listener) Close() { s.door.close() }

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

// DialConfig says who a client is, for Dial.
type DialConfig struct {
	Cluster string
	// To is the node the client means to reach, or Client for whichever
	// listens at the address.
	To int
	// TLS, if set, holds the client's certificate and the cluster's CA.
	TLS *tls.Config
}

// Dial opens a client's connection to a node: the hello says it is a
// Client, so it may call the listener's Services but not the Raft RPCs.
func Dial(ctx context.Context, addr string, cfg DialConfig) (*rpc.Client, error) {
	conn, err := dial(ctx, addr, Hello{Cluster: cfg.Cluster, From: Client, To: cfg.To}, cfg.TLS)
	if err != nil {
		return nil, err
	}
	return rpc.NewClientWithCodec(newClientCodec(conn)), nil
}

// dial connects to addr (in TLS if tlsCfg is set) and says hello.
func dial(ctx context.Context, addr string, h Hello, tlsCfg *tls.Config) (conn net.Conn, err error) {
	d := net.Dialer{Timeout: dialTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake and the hello end when ctx does, not only at their
	// timeouts (a sender that stops must not wait on a paused peer).
	unwatch := context.AfterFunc(ctx, func() { raw.Close() })
	defer func() {
		if !unwatch() && err == nil {
			conn.Close()
			conn, err = nil, ctx.Err()
		}
	}()
	conn = raw
	if tlsCfg != nil {
		tc := tls.Client(raw, peerTLS(tlsCfg, h.To))
		hctx, cancel := context.WithTimeout(ctx, helloTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %v", addr, err)
		}
		conn = tc
	}
	if err := sayHello(conn, h); err != nil {
		conn.Close()
		if tlsCfg == nil && !errors.Is(err, ErrRefused) {
			err = fmt.Errorf("%w (a node that listens beyond loopback speaks TLS only: give the cluster's certificates, -tls-dir)", err)
		}
		return nil, err
	}
	return conn, nil
}

// peerTLS is the TLS configuration to dial node to: its certificate must
// carry CertName(to). For Client (any node), any node's certificate signed
// by the cluster's CA will do.
func peerTLS(cfg *tls.Config, to int) *tls.Config {
	c := cfg.Clone()
	if to != Client {
		c.ServerName = CertName(to)
		return c
	}
	// The name is not known in advance: verify the chain here, then the name.
	c.InsecureSkipVerify = true
	roots := cfg.RootCAs
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the node presented no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, ic := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(ic)
		}
		leaf := cs.PeerCertificates[0]
		if _, err := leaf.Verify(opts); err != nil {
			return err
		}
		for _, name := range leaf.DNSNames {
			if strings.HasPrefix(name, "node-") {
				return nil
			}
		}
		return errors.New("the certificate is not a node's")
	}
	return c
}
