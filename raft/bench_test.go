package raft

import (
	"context"
	"fmt"
	"io"
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
