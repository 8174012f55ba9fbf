package transport

import (
	"bytes"
	"net/rpc"
	"testing"

	"raft-consensus/raft/core"
)

// BenchmarkRPCEncode measures the wire encoding of an AppendEntries of 16
// entries of 64 bytes and its reply, as net/rpc's codec writes and reads
// them on a connection in steady state (type information already sent).
func BenchmarkRPCEncode(b *testing.B) {
	args := core.Message{Type: core.MsgAppendEntries, From: 0, To: 1, Term: 7, PrevLogIndex: 1000, PrevLogTerm: 7,
		Entries: benchEntries(1000, 7, 16, 64), LeaderCommit: 990, ReadRound: 3}
	reply := core.Message{Type: core.MsgAppendEntriesReply, From: 1, To: 0, Term: 7, PrevLogIndex: 1000, Success: true, MatchIndex: 1016}
	cc, sc := benchCodecs()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		var gotArgs, gotReply core.Message
		var req rpc.Request
		var resp rpc.Response
		if err := cc.WriteRequest(&rpc.Request{ServiceMethod: "Raft.AppendEntries", Seq: uint64(i)}, &args); err != nil {
			b.Fatal(err)
		}
		if err := sc.ReadRequestHeader(&req); err != nil {
			b.Fatal(err)
		}
		if err := sc.ReadRequestBody(&gotArgs); err != nil {
			b.Fatal(err)
		}
		if err := sc.WriteResponse(&rpc.Response{ServiceMethod: req.ServiceMethod, Seq: req.Seq}, &reply); err != nil {
			b.Fatal(err)
		}
		if err := cc.ReadResponseHeader(&resp); err != nil {
			b.Fatal(err)
		}
		if err := cc.ReadResponseBody(&gotReply); err != nil {
			b.Fatal(err)
		}
		if len(gotArgs.Entries) != 16 || gotReply.MatchIndex != 1016 {
			b.Fatal("bad round trip")
		}
	}
}

// loopConn is one end of an in-memory connection: it reads what the other
// end wrote. Single goroutine only; enough for codec benchmarks.
type loopConn struct {
	r, w *bytes.Buffer
}

func (c loopConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c loopConn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c loopConn) Close() error                { return nil }

// benchCodecs returns the client and server codecs the transport uses,
// connected back to back in memory.
func benchCodecs() (rpc.ClientCodec, rpc.ServerCodec) {
	a, b := new(bytes.Buffer), new(bytes.Buffer)
	return newClientCodec(loopConn{r: b, w: a}), newServerCodec(loopConn{r: a, w: b}, nil, 1)
}

func benchEntries(prev, term uint64, n, size int) []core.Entry {
	ents := make([]core.Entry, n)
	for i := range ents {
		ents[i] = core.Entry{Index: prev + 1 + uint64(i), Term: term, Data: make([]byte, size)}
	}
	return ents
}
