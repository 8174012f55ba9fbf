package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// door is what every listener of the package does the same way: accept
// connections, run the TLS handshake if configured and the hello, refuse
// (and log) what does not fit the identity, hand the rest to serve, and
// on close end every connection and wait for their goroutines.
type door struct {
	listener net.Listener
	tls      *tls.Config
	id       identity
	logf     func(format string, args ...any)
	wg       sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newDoor(l net.Listener, tlsCfg *tls.Config, id identity, logf func(string, ...any)) *door {
	return &door{listener: l, tls: tlsCfg, id: id, logf: logf, conns: map[net.Conn]struct{}{}}
}

// open accepts connections until close; serve runs each admitted one, with
// the hello it said, until it returns (the door closes the connection).
func (d *door) open(serve func(conn net.Conn, h Hello)) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		var backoff time.Duration
		for {
			conn, err := d.listener.Accept()
			if err != nil {
				d.mu.Lock()
				closed := d.closed
				d.mu.Unlock()
				if closed || errors.Is(err, net.ErrClosed) {
					return
				}
				// Out of file descriptors, or the like: the listener
				// still works once some close, so wait and accept again
				// (as net/http does) rather than stop for good.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				if d.logf != nil {
					d.logf("accepting connections: %v (again in %v)", err, backoff)
				}
				time.Sleep(backoff)
				continue
			}
			backoff = 0
			d.mu.Lock()
			if d.closed {
				d.mu.Unlock()
				conn.Close()
				return
			}
			d.conns[conn] = struct{}{}
			d.mu.Unlock()
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.admit(conn, serve)
				d.mu.Lock()
				delete(d.conns, conn)
				d.mu.Unlock()
			}()
		}
	}()
}

// admit runs one connection: the TLS handshake if any, the hello, then
// serve.
func (d *door) admit(raw net.Conn, serve func(net.Conn, Hello)) {
	defer raw.Close()
	conn := raw
	if d.tls != nil {
		tc := tls.Server(raw, d.tls)
		ctx, cancel := context.WithTimeout(context.Background(), helloTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			d.refused(raw, err)
			return
		}
		conn = tc
	}
	h, err := d.id.hear(conn)
	if err != nil {
		d.refused(raw, err)
		return
	}
	serve(conn, h)
}

func (d *door) refused(conn net.Conn, err error) {
	if d.logf != nil {
		d.logf("refused a connection from %s: %v", conn.RemoteAddr(), err)
	}
}

func (d *door) addr() string { return d.listener.Addr().String() }

// close stops accepting, closes every connection and waits for the
// serving goroutines to finish.
func (d *door) close() {
	d.mu.Lock()
	d.closed = true
	d.listener.Close()
	for c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
}
