package transport

// The wire codec of the net/rpc transport. net/rpc stays the RPC layer
// (calls, sequence numbers, multiplexing, errors); only its default gob
// encoding is replaced, because every argument and reply is a Message and a
// hand-written binary encoding of it costs a fraction of gob's reflection:
// see BenchmarkRPCEncode. Each request and each response is one frame:
//
//	length uint32 | seq uvarint | method byte | [method name] | [error] | message
//
// length counts what follows it, little-endian. method is the index of the
// service method in rpcMethodNames, or 0 followed by the name (uvarint
// length, bytes) for any other. A response carries the error string
// (uvarint length, bytes; empty for none) after the method. The message
// encoding is appendMessage's. A frame is written with one Write, and read
// into a buffer of its own that the decoded entries' Data alias, so that
// decoding copies nothing more.

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"slices"

	"raft-consensus/raft/core"
	"raft-consensus/raft/internal/wire"
)

// rpcMethodNames are the net/rpc names of the node's handlers, one per
// request type; on the wire a name is its one-byte code (index+1).
var rpcMethodNames = []string{"Raft.RequestVote", "Raft.AppendEntries", "Raft.InstallSnapshot", "Raft.TimeoutNow"}

// rpcRequestTypes are the request types of rpcMethodNames, in its order.
var rpcRequestTypes = []core.MessageType{core.MsgRequestVote, core.MsgAppendEntries, core.MsgInstallSnapshot, core.MsgTimeoutNow}

// rpcMethod is the net/rpc name of the handler of a request type.
func rpcMethod(t core.MessageType) (string, bool) {
	if i := slices.Index(rpcRequestTypes, t); i >= 0 {
		return rpcMethodNames[i], true
	}
	return "", false
}

// maxFrame bounds one frame, so that a corrupt length cannot make the
// reader allocate without limit. The largest legitimate frames are an
// AppendEntries of MaxBytesPerAppend (4 MiB by default) and a snapshot chunk.
const maxFrame = 256 << 20

var errFrameTooLarge = errors.New("raft codec: frame too large")

// wireCodec implements rpc.ClientCodec and rpc.ServerCodec over one
// connection. net/rpc serializes the writes (its sending lock) and does the
// reads from one goroutine, so the codec needs no lock of its own.
type wireCodec struct {
	rwc  io.ReadWriteCloser
	r    *bufio.Reader
	wbuf []byte // the frame being written, reused

	body []byte // the body of the frame just read, until its Read*Body

	// Server side only: method is the method of the request just read, and
	// accept hands a decoded request to the node (see Request).
	method string
	accept func(core.Message) func() (core.Message, error)
	// peer is who the connection's hello said it came from: a node id, or
	// Client, which may not send Raft requests.
	peer int
}

func newWireCodec(rwc io.ReadWriteCloser) *wireCodec {
	return &wireCodec{rwc: rwc, r: bufio.NewReaderSize(rwc, 64<<10)}
}

// newClientCodec and newServerCodec are the codecs the TCP transport uses.
func newClientCodec(rwc io.ReadWriteCloser) rpc.ClientCodec { return newWireCodec(rwc) }
func newServerCodec(rwc io.ReadWriteCloser, h Handler, peer int) rpc.ServerCodec {
	c := newWireCodec(rwc)
	c.accept = acceptor(h)
	c.peer = peer
	return c
}

// WriteRequest implements rpc.ClientCodec.
func (c *wireCodec) WriteRequest(r *rpc.Request, body any) error {
	b := c.beginFrame(r.Seq, r.ServiceMethod)
	b, err := appendBody(b, body)
	if err != nil {
		return err
	}
	return c.endFrame(b)
}

// WriteResponse implements rpc.ServerCodec.
func (c *wireCodec) WriteResponse(r *rpc.Response, body any) error {
	b := c.beginFrame(r.Seq, r.ServiceMethod)
	b = appendBytes(b, r.Error)
	if r.Error != "" {
		// net/rpc sends a placeholder body with an error; nobody reads it.
		body = nil
	}
	b, err := appendBody(b, body)
	if err != nil {
		return err
	}
	return c.endFrame(b)
}

func (c *wireCodec) beginFrame(seq uint64, method string) []byte {
	b := append(c.wbuf[:0], 0, 0, 0, 0)
	b = binary.AppendUvarint(b, seq)
	code := methodCode(method)
	b = append(b, code)
	if code == 0 {
		b = appendBytes(b, method)
	}
	return b
}

func (c *wireCodec) endFrame(b []byte) error {
	n := len(b) - 4
	if n > maxFrame {
		return errFrameTooLarge
	}
	binary.LittleEndian.PutUint32(b, uint32(n))
	if cap(b) <= 1<<20 {
		c.wbuf = b[:0] // keep a buffer of ordinary size for the next frame
	} else {
		c.wbuf = nil
	}
	_, err := c.rwc.Write(b)
	return err
}

// appendBody encodes a request's or a reply's body: a Message in the
// binary encoding below, anything else (the arguments and replies of the
// client services, which are few and small) as JSON.
func appendBody(b []byte, body any) ([]byte, error) {
	switch m := body.(type) {
	case *core.Message:
		if m != nil {
			return appendMessage(b, m), nil
		}
	case nil:
	default:
		j, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("raft codec: %v", err)
		}
		return append(b, j...), nil
	}
	return appendMessage(b, &core.Message{}), nil
}

func methodCode(method string) byte {
	for i, name := range rpcMethodNames {
		if name == method {
			return byte(i + 1)
		}
	}
	return 0
}

// readFrame reads the next frame and parses its header.
func (c *wireCodec) readFrame(response bool) (seq uint64, method, errStr string, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return 0, "", "", err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n > maxFrame {
		return 0, "", "", errFrameTooLarge
	}
	// A buffer per frame: the entries decoded from it keep aliasing it.
	frame := make([]byte, n)
	if _, err := io.ReadFull(c.r, frame); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, "", "", err
	}
	d := decoder{wire.Decoder{B: frame}}
	seq = d.Uvarint()
	code := d.Byte()
	switch {
	case code == 0:
		method = d.Str()
	case int(code) <= len(rpcMethodNames):
		method = rpcMethodNames[code-1]
	default:
		d.Fail()
	}
	if response {
		errStr = d.Str()
	}
	if d.Failed {
		return 0, "", "", errors.New("raft codec: malformed frame header")
	}
	c.body = d.B
	return seq, method, errStr, nil
}

// ReadRequestHeader implements rpc.ServerCodec.
func (c *wireCodec) ReadRequestHeader(r *rpc.Request) error {
	seq, method, _, err := c.readFrame(false)
	if err != nil {
		return err
	}
	r.Seq, r.ServiceMethod = seq, method
	c.method = method
	return nil
}

// ReadResponseHeader implements rpc.ClientCodec.
func (c *wireCodec) ReadResponseHeader(r *rpc.Response) error {
	seq, method, errStr, err := c.readFrame(true)
	if err != nil {
		return err
	}
	r.Seq, r.ServiceMethod, r.Error = seq, method, errStr
	return nil
}

// ReadRequestBody implements rpc.ServerCodec. net/rpc calls it from the
// goroutine that reads the connection, once per request in arrival order,
// and only then starts a goroutine for the method: so this is where a
// request is handed to the node, to keep pipelined requests in order.
func (c *wireCodec) ReadRequestBody(body any) error {
	req, ok := body.(*Request)
	if !ok {
		return c.readBody(body)
	}
	if c.peer == Client {
		c.body = nil
		return fmt.Errorf("raft codec: a client may not call %s", c.method)
	}
	if err := c.readBody(&req.msg); err != nil {
		return err
	}
	if want, ok := rpcMethod(req.msg.Type); !ok || want != c.method {
		return fmt.Errorf("raft codec: a %v message sent to %s", req.msg.Type, c.method)
	}
	if req.msg.From != c.peer {
		// The hello named the sender: nobody speaks for another node.
		return fmt.Errorf("raft codec: a message from node %d on node %d's connection", req.msg.From, c.peer)
	}
	req.wait = c.accept(req.msg)
	return nil
}

// ReadResponseBody implements rpc.ClientCodec.
func (c *wireCodec) ReadResponseBody(body any) error { return c.readBody(body) }

func (c *wireCodec) readBody(body any) error {
	b := c.body
	c.body = nil
	if body == nil {
		return nil // net/rpc discards the body
	}
	m, ok := body.(*core.Message)
	if !ok {
		if err := json.Unmarshal(b, body); err != nil {
			return fmt.Errorf("raft codec: %v", err)
		}
		return nil
	}
	return decodeMessage(b, m)
}

// Close implements rpc.ClientCodec and rpc.ServerCodec.
func (c *wireCodec) Close() error { return c.rwc.Close() }

// Message encoding: the fields in declaration order, integers as varints,
// booleans as bits of one flags byte, then the entries, the snapshot
// metadata if any, and the snapshot data.

const (
	flagPreVote = 1 << iota
	flagTransfer
	flagVoteGranted
	flagSuccess
	flagDone
	flagSnapshot
	flagJoint  // the snapshot's configuration is joint: its outgoing voters follow
	flagStaged // the snapshot's configuration has staged learners: they follow
)

// AppendMessage appends the binary encoding of m to b: the transport's,
// for other framings of messages (raft/multinode's batches).
func AppendMessage(b []byte, m *core.Message) []byte { return appendMessage(b, m) }

// DecodeMessage decodes what AppendMessage wrote, all of b; entry and
// snapshot data alias b. It never panics on bad input.
func DecodeMessage(b []byte, m *core.Message) error { return decodeMessage(b, m) }

func appendMessage(b []byte, m *core.Message) []byte {
	var flags byte
	joint := m.Snapshot != nil && m.Snapshot.Config.IsJoint()
	staged := m.Snapshot != nil && len(m.Snapshot.Config.Staged) > 0
	for i, set := range [...]bool{m.PreVote, m.Transfer, m.VoteGranted, m.Success, m.Done, m.Snapshot != nil, joint, staged} {
		if set {
			flags |= 1 << i
		}
	}
	b = append(b, byte(m.Type), flags)
	b = binary.AppendVarint(b, int64(m.From))
	b = binary.AppendVarint(b, int64(m.To))
	for _, v := range [...]uint64{m.Term, m.LastLogIndex, m.LastLogTerm, m.PrevLogIndex, m.PrevLogTerm,
		m.LeaderCommit, m.ReadRound, m.MatchIndex, m.ConflictTerm, m.ConflictIndex, m.Offset} {
		b = binary.AppendUvarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for i := range m.Entries {
		e := &m.Entries[i]
		b = binary.AppendUvarint(b, e.Index)
		b = binary.AppendUvarint(b, e.Term)
		b = append(b, byte(e.Type))
		b = binary.AppendUvarint(b, uint64(len(e.Data)))
		b = append(b, e.Data...)
	}
	if s := m.Snapshot; s != nil {
		b = binary.AppendUvarint(b, s.LastIncludedIndex)
		b = binary.AppendUvarint(b, s.LastIncludedTerm)
		b = appendIDs(b, s.Config.Voters)
		b = appendIDs(b, s.Config.Learners)
		b = binary.AppendUvarint(b, s.Size)
		b = binary.AppendUvarint(b, uint64(len(s.App)))
		b = append(b, s.App...)
		if joint {
			b = appendIDs(b, s.Config.Outgoing)
		}
		if staged {
			b = appendIDs(b, s.Config.Staged)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(m.Data)))
	return append(b, m.Data...)
}

func appendIDs(b []byte, ids []int) []byte {
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendVarint(b, int64(id))
	}
	return b
}

func appendBytes(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeMessage decodes appendMessage's output into m. Entry and snapshot
// data alias b.
func decodeMessage(b []byte, m *core.Message) error {
	d := decoder{wire.Decoder{B: b}}
	*m = core.Message{Type: core.MessageType(d.Byte())}
	flags := d.Byte()
	m.PreVote = flags&flagPreVote != 0
	m.Transfer = flags&flagTransfer != 0
	m.VoteGranted = flags&flagVoteGranted != 0
	m.Success = flags&flagSuccess != 0
	m.Done = flags&flagDone != 0
	m.From, m.To = d.Int(), d.Int()
	for _, p := range [...]*uint64{&m.Term, &m.LastLogIndex, &m.LastLogTerm, &m.PrevLogIndex, &m.PrevLogTerm,
		&m.LeaderCommit, &m.ReadRound, &m.MatchIndex, &m.ConflictTerm, &m.ConflictIndex, &m.Offset} {
		*p = d.Uvarint()
	}
	// Each entry takes at least 4 bytes: a count beyond that is corrupt.
	if n := d.Uvarint(); n > 0 && n <= uint64(len(d.B))/4 {
		m.Entries = make([]core.Entry, n)
		for i := range m.Entries {
			e := &m.Entries[i]
			e.Index = d.Uvarint()
			e.Term = d.Uvarint()
			e.Type = core.EntryType(d.Byte())
			e.Data = d.Bytes()
		}
	} else if n > 0 {
		d.Fail()
	}
	if flags&flagSnapshot != 0 {
		s := &core.SnapshotMeta{LastIncludedIndex: d.Uvarint(), LastIncludedTerm: d.Uvarint()}
		s.Config.Voters = d.ids()
		s.Config.Learners = d.ids()
		s.Size = d.Uvarint()
		s.App = d.Bytes()
		if flags&flagJoint != 0 {
			if s.Config.Outgoing = d.ids(); len(s.Config.Outgoing) == 0 {
				d.Fail()
			}
		}
		if flags&flagStaged != 0 {
			if s.Config.Staged = d.ids(); len(s.Config.Staged) == 0 || !s.Config.StagedAreLearners() {
				d.Fail()
			}
		}
		m.Snapshot = s
	}
	m.Data = d.Bytes()
	if d.Failed || len(d.B) != 0 || (flags&(flagJoint|flagStaged) != 0 && flags&flagSnapshot == 0) { // every bit of flags has a meaning
		*m = core.Message{}
		return errors.New("raft codec: malformed message")
	}
	return nil
}

// decoder reads varints and byte strings, remembering the first failure.
type decoder struct{ wire.Decoder }

func (d *decoder) ids() []int {
	n := d.Length()
	if n == 0 {
		return nil
	}
	ids := make([]int, n)
	for i := range ids {
		ids[i] = d.Int()
	}
	return ids
}
