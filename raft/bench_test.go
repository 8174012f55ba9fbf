package raft

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"testing"

	"raft-consensus/raft/kv"
	"raft-consensus/raft/trace"
)

// BenchmarkClusterSet measures KV writes through a 3-node cluster over TCP
// (memory storage), with tracing off and on (to io.Discard): the whole
// replication path, driver and sockets included.
func BenchmarkClusterSet(b *testing.B) {
	for _, traced := range []bool{false, true} {
		name := "trace=off"
		var tracer trace.Tracer
		if traced {
			name = "trace=on"
			tracer = trace.NewTextTracer(io.Discard, nil)
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
				cmd := kv.Command{Op: kv.OpSet, ClientID: nextClient.Add(1), Value: "0123456789012345678901234567890123456789"}
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
