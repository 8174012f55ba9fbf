package core_test

import (
	"fmt"
	"io"
	"testing"
	"time"

	"raft-consensus/raft/core"
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

// BenchmarkCoreStep measures a follower's core on the hot path: step an
// AppendEntries of 16 entries of 64 bytes, collect the Ready, advance.
func BenchmarkCoreStep(b *testing.B) {
	c, err := core.NewCore(testCoreConfig(1), core.InitialState{Bootstrap: core.Configuration{Voters: []int{0, 1, 2}}})
	if err != nil {
		b.Fatal(err)
	}
	c.Advance(c.Ready())
	const batch = 16
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		prev := uint64(1 + i*batch)
		m := core.Message{Type: core.MsgAppendEntries, From: 0, To: 1, Term: 2, PrevLogIndex: prev, PrevLogTerm: 1,
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
