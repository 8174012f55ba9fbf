package bench

import "runtime/metrics"

// heapAllocs is the number of heap objects the process has allocated so
// far (runtime/metrics: no stop-the-world, unlike ReadMemStats).
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
