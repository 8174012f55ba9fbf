package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
)

// logRecorder keeps what a listener or a transport logs.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logRecorder) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func vote(from, to int) core.Message {
	return core.Message{Type: core.MsgRequestVote, From: from, To: to, Term: 3}
}

// TestHelloRefusesStrangers: a node of another cluster, a node the
// listener does not know, and a node that dialled the wrong node are
// refused at the hello, with the reason on both sides; nothing they send
// reaches the handler. A known node of the cluster is served.
func TestHelloRefusesStrangers(t *testing.T) {
	defer leaktest.Check(t)()
	h := &orderedRecorder{}
	var logged logRecorder
	l, err := ListenWith(ListenConfig{Addr: "127.0.0.1:0", Handler: h, Cluster: "blue", ID: 2,
		Known: func(id int) bool { return id == 1 || id == 3 }, Logf: logged.logf})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, c := range []struct {
		name    string
		cluster string
		from    int
		to      int
		reason  string
	}{
		{"another cluster", "green", 1, 2, `cluster "green" is not this node's cluster "blue"`},
		{"an unknown node", "blue", 7, 2, "node 7 is not a known member"},
		{"the wrong node", "blue", 1, 4, "this is node 2, not node 4"},
	} {
		var dialLog logRecorder
		tcp := NewTCPTransportWith(TCPConfig{ID: c.from, Cluster: c.cluster, Logf: dialLog.logf})
		tcp.SetAddr(c.to, l.Addr())
		for range 3 {
			_, err := tcp.Call(context.Background(), vote(c.from, c.to))
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.reason) {
				t.Errorf("%s: got %v, want a refusal saying %q", c.name, err, c.reason)
			}
		}
		tcp.Close()
		if n := strings.Count(dialLog.text(), c.reason); n != 1 {
			t.Errorf("%s: the dialer logged the refusal %d times, want once:\n%s", c.name, n, dialLog.text())
		}
	}
	if got := h.count(); got != 0 {
		t.Fatalf("%d requests of refused connections reached the handler", got)
	}
	if !strings.Contains(logged.text(), "node 7 is not a known member") {
		t.Errorf("the listener did not log the refusals:\n%s", logged.text())
	}
	tcp := NewTCPTransportWith(TCPConfig{ID: 3, Cluster: "blue"})
	defer tcp.Close()
	tcp.SetAddr(2, l.Addr())
	if _, err := tcp.Call(context.Background(), vote(3, 2)); err != nil {
		t.Fatalf("a known node of the cluster: %v", err)
	}
}

// TestNoOneSpeaksForAnotherNode: on node 1's connection, a message that
// says it is from node 3 is refused; a client may not send Raft requests.
func TestNoOneSpeaksForAnotherNode(t *testing.T) {
	defer leaktest.Check(t)()
	h := &orderedRecorder{}
	l, err := ListenWith(ListenConfig{Addr: "127.0.0.1:0", Handler: h, ID: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, c := range []struct {
		hello Hello
		msg   core.Message
		want  string
	}{
		{Hello{From: 1, To: 2}, vote(3, 2), "a message from node 3 on node 1's connection"},
		{Hello{From: Client, To: 2}, vote(1, 2), "a client may not call Raft.RequestVote"},
	} {
		conn, err := dial(context.Background(), l.Addr(), c.hello, nil)
		if err != nil {
			t.Fatal(err)
		}
		client := rpc.NewClientWithCodec(newClientCodec(conn))
		var reply core.Message
		err = client.Call("Raft.RequestVote", &c.msg, &reply)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an error saying %q", err, c.want)
		}
		client.Close()
	}
	if got := h.count(); got != 0 {
		t.Fatalf("%d refused requests reached the handler", got)
	}
}

// TestGarbageClosesTheConnection: a connection that says something other
// than a hello, or a hello and then a malformed frame, is closed; the
// listener goes on serving.
func TestGarbageClosesTheConnection(t *testing.T) {
	defer leaktest.Check(t)()
	h := &orderedRecorder{}
	l, err := Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, garbage := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		append(appendHello(nil, Hello{From: 1, To: Client}), 0xff, 0xff, 0xff, 0x7f), // a frame of 2 GiB
		append(appendHello(nil, Hello{From: 1, To: Client}), 3, 0, 0, 0, 1, 2),       // a truncated frame
	} {
		conn, err := net.Dial("tcp", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(garbage); err != nil {
			t.Fatal(err)
		}
		if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			tcp.CloseWrite() // the truncated frame ends here
		}
		// EOF or a reset: closed either way; a timeout: not closed.
		if _, err := io.Copy(io.Discard, conn); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the listener did not close the connection: %v", err)
		}
		conn.Close()
	}
	tcp := NewTCPTransport(1)
	defer tcp.Close()
	tcp.SetAddr(2, l.Addr())
	if _, err := tcp.Call(context.Background(), vote(1, 2)); err != nil {
		t.Fatalf("the listener stopped serving: %v", err)
	}
	if got := h.count(); got != 1 {
		t.Fatalf("%d requests reached the handler, want 1", got)
	}
}

// TestMutualTLS: nodes with the cluster's certificates talk; a node whose
// hello claims another node's id than its certificate's, a client without
// a certificate and a node with a certificate of another CA are refused.
func TestMutualTLS(t *testing.T) {
	defer leaktest.Check(t)()
	dir, other := t.TempDir(), t.TempDir()
	if _, err := WriteCerts(dir, []string{CertName(1), CertName(2), ClientCertName}); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteCerts(other, []string{CertName(1)}); err != nil {
		t.Fatal(err)
	}
	load := func(dir, name string) *tls.Config {
		c, err := LoadTLS(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	h := &orderedRecorder{}
	var logged logRecorder
	l, err := ListenWith(ListenConfig{Addr: "127.0.0.1:0", Handler: h, ID: 2, TLS: load(dir, CertName(2)), Logf: logged.logf})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	call := func(cfg TCPConfig) error {
		tcp := NewTCPTransportWith(cfg)
		defer tcp.Close()
		tcp.SetAddr(2, l.Addr())
		_, err := tcp.Call(context.Background(), vote(cfg.ID, 2))
		return err
	}
	if err := call(TCPConfig{ID: 1, TLS: load(dir, CertName(1))}); err != nil {
		t.Fatalf("node 1 with its certificate: %v", err)
	}
	if err := call(TCPConfig{ID: 3, TLS: load(dir, CertName(1))}); err == nil || !strings.Contains(err.Error(), "not node-3's") {
		t.Errorf("node 1's certificate claiming node 3: %v", err)
	}
	if err := call(TCPConfig{ID: 1, TLS: load(other, CertName(1))}); err == nil {
		t.Error("a certificate of another CA was let in")
	}
	if err := call(TCPConfig{ID: 1}); err == nil {
		t.Error("a plain TCP connection was let in")
	}
	// A client, with the client certificate, reaches any node.
	client, err := Dial(context.Background(), l.Addr(), DialConfig{To: Client, TLS: load(dir, ClientCertName)})
	if err != nil {
		t.Fatalf("the client with its certificate: %v", err)
	}
	client.Close()
	if got := h.count(); got != 1 {
		t.Fatalf("%d requests reached the handler, want the one of node 1", got)
	}
	if err := CheckListenAddr("0.0.0.0:7000", true, false); err == nil {
		t.Error("listening beyond loopback without TLS was allowed")
	}
	if err := CheckListenAddr("0.0.0.0:7000", false, true); err == nil {
		t.Error("listening beyond loopback without asking for it was allowed")
	}
}

// FuzzServerConnection: whatever bytes follow an accepted hello, the
// server codec never panics, and what reaches the handler is a well-formed
// request from the connection's node, of its method's type.
func FuzzServerConnection(f *testing.F) {
	var frames bytes.Buffer
	c := newWireCodec(loopConn{r: new(bytes.Buffer), w: &frames})
	m := vote(1, 2)
	if err := c.WriteRequest(&rpc.Request{ServiceMethod: "Raft.RequestVote", Seq: 1}, &m); err != nil {
		f.Fatal(err)
	}
	f.Add(frames.Bytes())
	f.Add([]byte{5, 0, 0, 0, 1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		h := &orderedRecorder{}
		srv := rpc.NewServer()
		if err := srv.RegisterName("Raft", &rpcService{}); err != nil {
			t.Fatal(err)
		}
		srv.ServeCodec(newServerCodec(fuzzConn{bytes.NewReader(b)}, h, 1))
		for _, m := range h.msgs {
			if m.From != 1 {
				t.Fatalf("a message from %d reached the handler on node 1's connection", m.From)
			}
		}
	})
}

// fuzzConn is a connection that reads the fuzzer's bytes and writes
// nowhere.
type fuzzConn struct{ io.Reader }

func (fuzzConn) Write(p []byte) (int, error) { return len(p), nil }
func (fuzzConn) Close() error                { return nil }

// failingListener fails its first Accepts, as a listener out of file
// descriptors does.
type failingListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, errors.New("accept tcp: too many open files")
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestDoorOutlivesAcceptErrors: an Accept error that is not the
// listener's close (EMFILE) is logged and waited out; the door goes on
// serving.
func TestDoorOutlivesAcceptErrors(t *testing.T) {
	defer leaktest.Check(t)()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logged logRecorder
	d := newDoor(&failingListener{Listener: raw, fails: 3}, nil, identity{cluster: "c", id: 1}, logged.logf)
	served := make(chan Hello, 1)
	d.open(func(conn net.Conn, h Hello) { served <- h })
	defer d.close()
	conn, err := dial(context.Background(), raw.Addr().String(), Hello{Cluster: "c", From: 2, To: 1}, nil)
	if err != nil {
		t.Fatalf("dial after accept errors: %v\n%s", err, logged.text())
	}
	defer conn.Close()
	select {
	case h := <-served:
		if h.From != 2 {
			t.Fatalf("served %+v", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the door stopped serving after accept errors")
	}
	if n := strings.Count(logged.text(), "too many open files"); n != 3 {
		t.Fatalf("logged %d accept errors, want 3:\n%s", n, logged.text())
	}
}
