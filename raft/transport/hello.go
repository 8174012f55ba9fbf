package transport

// The hello exchange that opens every connection, before net/rpc takes
// it over. The dialer says which cluster it belongs to, who it is (a node
// id, or Client) and which node it means to reach; the listener checks all
// three against its own identity and answers with an empty error, or with
// the reason it refuses, and then closes the connection. So a node of
// another cluster, a node nobody configured, or a process that dialled the
// wrong port is turned away once, at the door, and a refused connection
// never reaches the node. Every Raft request on an accepted connection is
// then checked to come from the node the hello named (see wireCodec).
//
//	hello:  length uint32 | "RAFT2" | cluster | from varint | to varint | groups varint
//	answer: length uint32 | error
//
// (strings are uvarint length, bytes). With TLS (ListenConfig.TLS), the
// exchange runs inside the TLS session, and a node's hello must match the
// name on the certificate it presented: CertName(from).

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"raft-consensus/raft/internal/wire"
)

// Client is the "from" of a hello sent by a client (a KV client, the
// REPL's admin calls), and the "to" of one sent to whichever node listens.
const Client = -1

// helloMagic opens every hello: a process speaking anything else (or an
// older version) is refused before a byte of it is parsed further.
const helloMagic = "RAFT2"

// maxHello bounds a hello frame: a cluster id of up to maxClusterID bytes
// and two varints.
const maxHello = 512

// MaxClusterID is the longest cluster id.
const MaxClusterID = 128

// helloTimeout bounds the hello exchange: a connection that says nothing
// does not hold a goroutine of the listener for long.
const helloTimeout = 5 * time.Second

// ErrRefused wraps the reason a listener gave for refusing a connection.
var ErrRefused = errors.New("connection refused by the peer")

// Hello is what a dialer says about itself.
type Hello struct {
	Cluster string // the cluster id
	From    int    // the dialer's node id, or Client
	To      int    // the node it means to reach, or Client for any
	// Groups is how many groups every node of the dialer's cluster hosts
	// (0: one group, a single-group cluster). A node's hello must say
	// the listener's own figure: keys map to groups by their number, so
	// two nodes that disagree would route a key to different groups, and
	// a write acknowledged by one could be missed by a read through the
	// other. A client's is not checked (it learns the figure from the
	// nodes).
	Groups int
}

// CertName is the name a node's certificate must carry (its common name
// and a DNS name), and ClientCertName a client's.
func CertName(id int) string { return "node-" + strconv.Itoa(id) }

// ClientCertName: see CertName.
const ClientCertName = "client"

func appendHello(b []byte, h Hello) []byte {
	b = append(b, 0, 0, 0, 0)
	b = append(b, helloMagic...)
	b = appendBytes(b, h.Cluster)
	b = binary.AppendVarint(b, int64(h.From))
	b = binary.AppendVarint(b, int64(h.To))
	b = binary.AppendVarint(b, int64(h.Groups))
	binary.LittleEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// readSmallFrame reads a length-prefixed frame of at most max bytes.
func readSmallFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n > uint32(max) {
		return nil, fmt.Errorf("hello of %d bytes (at most %d)", n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// parseHello decodes a hello frame's body.
func parseHello(b []byte) (Hello, error) {
	if !strings.HasPrefix(string(b), helloMagic) {
		return Hello{}, errors.New("not a raft-consensus hello (another program, or another version)")
	}
	d := decoder{wire.Decoder{B: b[len(helloMagic):]}}
	h := Hello{Cluster: d.Str(), From: d.Int(), To: d.Int(), Groups: d.Int()}
	if d.Failed || len(d.B) != 0 {
		return Hello{}, errors.New("malformed hello")
	}
	if len(h.Cluster) > MaxClusterID {
		return Hello{}, errors.New("cluster id too long")
	}
	return h, nil
}

// sayHello sends h on conn and reads the answer; the caller closes conn on
// an error.
func sayHello(conn net.Conn, h Hello) error {
	if err := conn.SetDeadline(time.Now().Add(helloTimeout)); err != nil {
		return err
	}
	if _, err := conn.Write(appendHello(nil, h)); err != nil {
		return err
	}
	b, err := readSmallFrame(conn, maxHello)
	if err != nil {
		return fmt.Errorf("no answer to the hello: %v", err)
	}
	d := decoder{wire.Decoder{B: b}}
	reason := d.Str()
	if d.Failed || len(d.B) != 0 {
		return errors.New("malformed answer to the hello")
	}
	if reason != "" {
		return fmt.Errorf("%w: %s", ErrRefused, reason)
	}
	return conn.SetDeadline(time.Time{})
}

// identity is who a listener is, and whom it lets in.
type identity struct {
	cluster string
	id      int // the listener's node id, or Client if it has none
	// known says whether a node id may send Raft requests (nil: any).
	known func(id int) bool
	// nodesOnly refuses clients (a node-to-node stream).
	nodesOnly bool
	// groups is how many groups each node hosts (see Hello.Groups).
	groups int
}

// hear reads a connection's hello and answers it; the connection is
// refused (the reason sent, then an error returned) if the hello does not
// fit the listener's identity.
func (id identity) hear(conn net.Conn) (Hello, error) {
	if err := conn.SetDeadline(time.Now().Add(helloTimeout)); err != nil {
		return Hello{}, err
	}
	b, err := readSmallFrame(conn, maxHello)
	if err != nil {
		return Hello{}, fmt.Errorf("no hello: %v", err)
	}
	h, err := parseHello(b)
	if err == nil {
		err = id.admit(h, conn)
	}
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	answer := appendBytes([]byte{0, 0, 0, 0}, reason)
	binary.LittleEndian.PutUint32(answer, uint32(len(answer)-4))
	if _, werr := conn.Write(answer); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return h, err
	}
	return h, conn.SetDeadline(time.Time{})
}

// admit checks a hello against the listener's identity (and the TLS
// certificate behind it).
func (id identity) admit(h Hello, conn net.Conn) error {
	switch {
	case h.Cluster != id.cluster:
		return fmt.Errorf("cluster %q is not this node's cluster %q", h.Cluster, id.cluster)
	case h.To != Client && id.id != Client && h.To != id.id:
		return fmt.Errorf("this is node %d, not node %d (is the address book out of date?)", id.id, h.To)
	case h.From < Client:
		return fmt.Errorf("bad sender id %d", h.From)
	case h.From == Client && id.nodesOnly:
		return errors.New("a client may not send node frames")
	case h.From != Client && id.known != nil && !id.known(h.From):
		return fmt.Errorf("node %d is not a known member of this cluster", h.From)
	case h.From != Client && h.Groups != id.groups:
		return fmt.Errorf("node %d hosts %s, this node %s: every node of a cluster must be started with the same -groups",
			h.From, groupsWord(h.Groups), groupsWord(id.groups))
	}
	if tc, ok := conn.(*tls.Conn); ok {
		want := ClientCertName
		if h.From != Client {
			want = CertName(h.From)
		}
		state := tc.ConnectionState()
		if len(state.PeerCertificates) == 0 {
			return errors.New("no client certificate")
		}
		if err := state.PeerCertificates[0].VerifyHostname(want); err != nil {
			return fmt.Errorf("the certificate is not %s's: %v", want, err)
		}
	}
	return nil
}

// groupsWord says how many groups a node hosts, for an error message.
func groupsWord(g int) string {
	if g == 0 {
		return "one group (no -groups)"
	}
	return fmt.Sprintf("%d groups (-groups %d)", g, g)
}
