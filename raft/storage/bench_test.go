package storage

import (
	"testing"

	"raft-consensus/raft/core"
)

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
			hs := &core.HardState{Term: 1, VotedFor: 0}
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

func benchEntries(prev, term uint64, n, size int) []core.Entry {
	ents := make([]core.Entry, n)
	for i := range ents {
		ents[i] = core.Entry{Index: prev + 1 + uint64(i), Term: term, Data: make([]byte, size)}
	}
	return ents
}
