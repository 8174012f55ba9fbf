package core_test

import (
	"fmt"
	"io"
	"testing"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/node"
	"raft-consensus/raft/storage"
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
			n := newCoreNet(&testing.T{}, 3, func(c *core.CoreConfig) {
				if traced {
					// What a text tracer does per event (package trace
					// imports this one, so its tracer cannot be used here).
					id := fmt.Sprint(c.ID)
					var buf []byte
					c.Trace = func(e core.Event) {
						buf = time.Now().AppendFormat(buf[:0], "15:04:05.000000")
						buf = append(append(append(buf, " ["...), id...), "] "...)
						buf = append(append(buf, e.Text()...), '\n')
						io.Discard.Write(buf)
					}
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
				n.process(l)
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

// benchEntries returns n entries of the given payload size following prev.
func benchEntries(prev, term uint64, n, size int) []core.Entry {
	ents := make([]core.Entry, n)
	for i := range ents {
		ents[i] = core.Entry{Index: prev + 1 + uint64(i), Term: term, Data: make([]byte, size)}
	}
	return ents
}

// BenchmarkCoreStep measures a follower on the hot path, through the
// shipped driver on a MemoryStorage: step an AppendEntries of 16 entries of
// 64 bytes, save them, reply, apply.
func BenchmarkCoreStep(b *testing.B) {
	var applied int
	d, err := node.NewDriver(node.DriverConfig{Core: testCoreConfig(1), Members: []int{0, 1, 2},
		Storage: storage.NewMemoryStorage(), Outbox: discardOutbox{}, Applier: countApplied{&applied}})
	if err != nil {
		b.Fatal(err)
	}
	d.ProcessReady()
	const batch = 16
	var reply *core.Message
	keep := func(r *core.Message) { reply = r }
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		prev := uint64(1 + i*batch)
		m := core.Message{Type: core.MsgAppendEntries, From: 0, To: 1, Term: 2, PrevLogIndex: prev, PrevLogTerm: 2,
			Entries: benchEntries(prev, 2, batch, 64), LeaderCommit: prev}
		if i == 0 {
			m.PrevLogTerm = 1 // entry 1 is the bootstrap configuration, of term 1
		}
		reply = nil
		d.Step(m, keep)
		d.ProcessReady()
		if reply == nil || !reply.Success {
			b.Fatalf("step %d: reply %+v, driver failure %v", i, reply, d.Failed())
		}
	}
	b.StopTimer()
	if applied == 0 && b.N > 1 {
		b.Fatal("nothing applied")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/entry")
}

type discardOutbox struct{}

func (discardOutbox) Send(core.Message) {}

type countApplied struct{ n *int }

func (c countApplied) Apply(batch []node.CommitEntry) { *c.n += len(batch) }
