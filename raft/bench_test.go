package raft

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/rpc"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkCoreReplication measures the protocol core alone on the
// replication path: a leader proposes a batch of 16 commands, replicates
// them to two followers and commits them, all in memory (no sockets, no
// disk). Tracing off must cost nothing: compare trace=off with trace=on.
func BenchmarkCoreReplication(b *testing.B) {
	for _, traced := range []bool{false, true} {
		name := "trace=off"
		if traced {
			name = "trace=on"
		}
		b.Run(name, func(b *testing.B) {
			n := newCoreNet(&testing.T{}, 3, func(c *CoreConfig) {
				if traced {
					tr := NewTextTracer(io.Discard, nil)
					id := fmt.Sprint(c.ID)
					c.Trace = func(msg string) { tr.Trace(id, msg) }
				}
			})
			n.tickAll(25)
			l := n.leader()
			cmd := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for range 16 {
					if _, _, err := n.cores[l].Propose(cmd); err != nil {
						b.Fatal(err)
					}
				}
				n.process(l, nil)
				n.deliver()
				for id := range n.applied {
					n.applied[id] = n.applied[id][:0]
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*16), "ns/entry")
		})
	}
}

// BenchmarkClusterSet measures KV writes through a 3-node cluster over TCP
// (memory storage), with tracing off and on (to io.Discard): the whole
// replication path, driver and sockets included.
func BenchmarkClusterSet(b *testing.B) {
	for _, traced := range []bool{false, true} {
		name := "trace=off"
		var tracer Tracer
		if traced {
			name = "trace=on"
			tracer = NewTextTracer(io.Discard, nil)
		}
		b.Run(name, func(b *testing.B) {
			sim, err := NewClusterSimulator(SimConfig{Nodes: 3, Tracer: tracer})
			if err != nil {
				b.Fatal(err)
			}
			defer sim.Shutdown()
			if _, _, err := sim.CheckUniqueLeader(waitTimeout); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(8) // 16 clients on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				client := sim.NewClient()
				for i := 0; pb.Next(); i++ {
					if err := client.Set(context.Background(), fmt.Sprint("k", i%100), "value"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// benchEntries returns n entries of the given payload size following prev.
func benchEntries(prev, term uint64, n, size int) []Entry {
	ents := make([]Entry, n)
	for i := range ents {
		ents[i] = Entry{Index: prev + 1 + uint64(i), Term: term, Data: make([]byte, size)}
	}
	return ents
}

// BenchmarkCoreStep measures a follower's core on the hot path: step an
// AppendEntries of 16 entries of 64 bytes, collect the Ready, advance.
func BenchmarkCoreStep(b *testing.B) {
	c, err := NewCore(testCoreConfig(1), InitialState{Bootstrap: Configuration{Voters: []int{0, 1, 2}}})
	if err != nil {
		b.Fatal(err)
	}
	c.Advance(c.Ready())
	const batch = 16
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		prev := uint64(1 + i*batch)
		m := Message{Type: MsgAppendEntries, From: 0, To: 1, Term: 2, PrevLogIndex: prev, PrevLogTerm: 1,
			Entries: benchEntries(prev, 2, batch, 64), LeaderCommit: prev}
		if i == 0 {
			m.PrevLogTerm = 1
		} else {
			m.PrevLogTerm = 2
		}
		if reply := c.Step(m); reply == nil || !reply.Success {
			b.Fatalf("step %d: %+v", i, reply)
		}
		rd := c.Ready()
		c.Advance(rd)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/entry")
}

// BenchmarkStorageAppend measures Storage.Save of 16 entries of 64 bytes
// and a hard state: memory, disk without fsync, and disk with fsync.
func BenchmarkStorageAppend(b *testing.B) {
	const batch = 16
	for _, kind := range []string{"memory", "disk-nosync", "disk-fsync"} {
		b.Run(kind, func(b *testing.B) {
			var st Storage
			switch kind {
			case "memory":
				st = NewMemoryStorage()
			default:
				ds, err := OpenDiskStorage(b.TempDir(), DiskOptions{NoSync: kind == "disk-nosync"})
				if err != nil {
					b.Fatal(err)
				}
				st = ds
			}
			defer st.Close()
			hs := &HardState{Term: 1, VotedFor: 0}
			ents := benchEntries(0, 1, batch, 64)
			b.ReportAllocs()
			b.SetBytes(batch * 64)
			b.ResetTimer()
			for i := range b.N {
				for j := range ents {
					ents[j].Index = uint64(i*batch + j + 1)
				}
				if err := st.Save(hs, ents); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRPCEncode measures the wire encoding of an AppendEntries of 16
// entries of 64 bytes and its reply, as net/rpc's codec writes and reads
// them on a connection in steady state (type information already sent).
func BenchmarkRPCEncode(b *testing.B) {
	args := Message{Type: MsgAppendEntries, From: 0, To: 1, Term: 7, PrevLogIndex: 1000, PrevLogTerm: 7,
		Entries: benchEntries(1000, 7, 16, 64), LeaderCommit: 990, ReadRound: 3}
	reply := Message{Type: MsgAppendEntriesReply, From: 1, To: 0, Term: 7, PrevLogIndex: 1000, Success: true, MatchIndex: 1016}
	cc, sc := benchCodecs()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		var gotArgs, gotReply Message
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

// BenchmarkServerWrite measures KV writes on the leader's Server, in
// process, by 16 concurrent writers: the bench package's workload, memory
// and disk (fsync) storage.
func BenchmarkServerWrite(b *testing.B) {
	for _, store := range []string{"memory", "disk-fsync"} {
		b.Run(store, func(b *testing.B) {
			cfg := SimConfig{Nodes: 3}
			if store != "memory" {
				cfg.DataDir = b.TempDir()
			}
			sim, err := NewClusterSimulator(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer sim.Shutdown()
			id, _, err := sim.CheckUniqueLeader(waitTimeout)
			if err != nil {
				b.Fatal(err)
			}
			srv, err := sim.Server(id)
			if err != nil {
				b.Fatal(err)
			}
			var nextClient atomic.Uint64
			b.SetParallelism(8) // 16 writers on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				cmd := KVCommand{Op: OpSet, ClientID: nextClient.Add(1), Value: "0123456789012345678901234567890123456789"}
				for i := 0; pb.Next(); i++ {
					cmd.Seq++
					cmd.Key = "k" + strconv.Itoa(i%1024)
					if _, err := srv.Write(context.Background(), cmd); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
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
	return newClientCodec(loopConn{r: b, w: a}), newServerCodec(loopConn{r: a, w: b})
}
