package kv

import "testing"

// TestSnapshotStaggerSpreadsServers: every server's factor lies in
// [1, 1.5), and those of the servers of a small cluster are well apart, so
// their snapshots do not fall due together.
func TestSnapshotStaggerSpreadsServers(t *testing.T) {
	var fs []float64
	for id := range 16 {
		f := (&Host{id: id}).snapshotStagger()
		if f < 1 || f >= 1.5 {
			t.Fatalf("server %d: factor %v outside [1, 1.5)", id, f)
		}
		fs = append(fs, f)
	}
	for i := range 5 {
		for j := range i {
			if d := fs[i] - fs[j]; d < 0.05 && d > -0.05 {
				t.Errorf("servers %d and %d: factors %.3f and %.3f too close", j, i, fs[j], fs[i])
			}
		}
	}
}
