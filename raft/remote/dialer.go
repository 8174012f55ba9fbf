package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/rpc"
	"sync"

	"raft-consensus/raft/kv"
	"raft-consensus/raft/transport"
)

// Dialer calls nodes' services as a client: one connection per address,
// opened on first use with a client's hello (and TLS if configured), and
// dropped when it breaks.
type Dialer struct {
	cluster string
	tls     *tls.Config

	mu     sync.Mutex
	conns  map[string]*rpc.Client
	closed bool
}

// NewDialer returns a dialer for the cluster; tlsDir, if set, holds the
// cluster's certificates (the client's is used).
func NewDialer(clusterID, tlsDir string) (*Dialer, error) {
	d := &Dialer{cluster: clusterID, conns: map[string]*rpc.Client{}}
	if tlsDir != "" {
		c, err := transport.LoadTLS(tlsDir, transport.ClientCertName)
		if err != nil {
			return nil, err
		}
		d.tls = c
	}
	return d, nil
}

// ErrDialerClosed is returned by calls after Close.
var ErrDialerClosed = errors.New("closed")

// Call calls method at the node listening at addr, and waits at most until
// ctx is done. A connection found broken (the node restarted since) is
// dialled again once.
func (d *Dialer) Call(ctx context.Context, addr, method string, args, reply any) error {
	for attempt := 0; ; attempt++ {
		c, cached, err := d.conn(ctx, addr)
		if err != nil {
			return err
		}
		call := c.Go(method, args, reply, make(chan *rpc.Call, 1))
		select {
		case <-call.Done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if call.Error == nil {
			return nil
		}
		if _, ok := call.Error.(rpc.ServerError); ok {
			return call.Error
		}
		d.drop(addr, c) // the connection broke: dial again
		if !cached || attempt > 0 || !errors.Is(call.Error, rpc.ErrShutdown) {
			return call.Error
		}
	}
}

// conn returns the connection to addr; cached says it was open already.
func (d *Dialer) conn(ctx context.Context, addr string) (c *rpc.Client, cached bool, err error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, false, ErrDialerClosed
	}
	if c := d.conns[addr]; c != nil {
		d.mu.Unlock()
		return c, true, nil
	}
	d.mu.Unlock()
	c, err = transport.Dial(ctx, addr, transport.DialConfig{Cluster: d.cluster, To: transport.Client, TLS: d.tls})
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", addr, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		c.Close()
		return nil, false, ErrDialerClosed
	}
	if old := d.conns[addr]; old != nil {
		c.Close()
		return old, true, nil
	}
	d.conns[addr] = c
	return c, false, nil
}

func (d *Dialer) drop(addr string, c *rpc.Client) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns[addr] == c {
		delete(d.conns, addr)
	}
	c.Close()
}

// Forget closes the connection to addr, if any (its process is gone).
func (d *Dialer) Forget(addr string) {
	d.mu.Lock()
	c := d.conns[addr]
	delete(d.conns, addr)
	d.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// Close closes every connection.
func (d *Dialer) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for addr, c := range d.conns {
		c.Close()
		delete(d.conns, addr)
	}
}

// Endpoint is a server in another process, as a KV client reaches it.
type Endpoint struct {
	id     int
	addr   string
	dialer *Dialer
	group  uint64 // the group the commands are for, on a node of many
}

var _ kv.Endpoint = (*Endpoint)(nil)

// ID implements kv.Endpoint.
func (e *Endpoint) ID() int { return e.id }

// Do implements kv.Endpoint: the command goes over the network, with the
// time left before ctx's deadline.
func (e *Endpoint) Do(ctx context.Context, cmd kv.Command) (kv.Result, error) {
	req := kv.WireRequest{Command: cmd, Group: e.group}
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutMs = max(1, timeUntilMs(dl))
	}
	var reply kv.WireReply
	if err := e.dialer.Call(ctx, e.addr, kv.ServiceName+".Do", &req, &reply); err != nil {
		return kv.Result{}, err
	}
	return reply.Result, reply.Err()
}
