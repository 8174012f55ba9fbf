// Command fsyncprobe measures the disk alone: W goroutines each append
// -size bytes to a file of their own and fsync it, back to back, for
// -duration, as the three WALs of `bench -store disk` do, and it prints one
// JSON line with the latency percentiles of the syncs and how many took
// longer than 50 ms, 150 ms (the minimum election timeout) and 1 s. It
// tells a stall of the disk from a stall of the program: when every
// writer's sync takes a second at the same moment, no Raft can do better
// on that disk.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

type result struct {
	Writers      int     `json:"writers"`
	Preallocated bool    `json:"preallocated"`
	DurationS    float64 `json:"duration_s"`
	Syncs        int     `json:"syncs"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	Over50ms     int     `json:"over_50ms"`
	Over150ms    int     `json:"over_150ms"`
	Over1s       int     `json:"over_1s"`
}

func main() {
	writers := flag.Int("writers", 3, "concurrent writers, each with its own file (3: the bench's three nodes)")
	duration := flag.Duration("duration", 60*time.Second, "how long to write")
	size := flag.Int("size", 8192, "bytes appended before each fsync")
	dir := flag.String("dir", os.TempDir(), "directory for the files (removed at exit)")
	prealloc := flag.Bool("preallocated", false, "overwrite a file filled in advance and fdatasync it (no size change to commit: how pebble recycles its WAL files) instead of appending and fsyncing (as this project's WAL)")
	flag.Parse()
	if *writers < 1 || *duration <= 0 || *size < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "fsyncprobe: -writers, -duration and -size must be positive, and there are no arguments")
		os.Exit(2)
	}
	lat, err := probe(*dir, *writers, *size, *duration, *prealloc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fsyncprobe:", err)
		os.Exit(1)
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	at := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	r := result{Writers: *writers, Preallocated: *prealloc, DurationS: duration.Seconds(), Syncs: len(lat),
		P50Ms: ms(at(0.5)), P99Ms: ms(at(0.99)), MaxMs: ms(lat[len(lat)-1])}
	for _, d := range lat {
		if d > 50*time.Millisecond {
			r.Over50ms++
		}
		if d > 150*time.Millisecond {
			r.Over150ms++
		}
		if d > time.Second {
			r.Over1s++
		}
	}
	line, _ := json.Marshal(r)
	fmt.Println(string(line))
}

func probe(dir string, writers, size int, duration time.Duration, prealloc bool) ([]time.Duration, error) {
	var (
		mu   sync.Mutex
		all  []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	end := time.Now().Add(duration)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, err := writeAndSync(dir, size, end, prealloc)
			mu.Lock()
			defer mu.Unlock()
			all = append(all, lat...)
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("no sync completed")
	}
	return all, nil
}

// segmentBytes bounds each file, as the WAL's segments are bounded.
const segmentBytes = 64 << 20

func writeAndSync(dir string, size int, end time.Time, prealloc bool) ([]time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsyncprobe-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, size)
	var lat []time.Duration
	if prealloc {
		return overwriteAndSync(f, buf, end)
	}
	written := 0
	for time.Now().Before(end) {
		if written >= segmentBytes {
			// Start the file over, as the WAL starts a new segment.
			if err := f.Truncate(0); err != nil {
				return lat, err
			}
			if _, err := f.Seek(0, 0); err != nil {
				return lat, err
			}
			written = 0
		}
		written += size
		if _, err := f.Write(buf); err != nil {
			return lat, err
		}
		t := time.Now()
		if err := f.Sync(); err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(t))
	}
	return lat, nil
}

// overwriteAndSync fills f with zeros up to segmentBytes and syncs it, then
// writes buf over it in turn, with an fdatasync after each write.
func overwriteAndSync(f *os.File, buf []byte, end time.Time) ([]time.Duration, error) {
	zero := make([]byte, 1<<20)
	for off := 0; off < segmentBytes; off += len(zero) {
		if _, err := f.Write(zero); err != nil {
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	var lat []time.Duration
	off := int64(0)
	for time.Now().Before(end) {
		if off+int64(len(buf)) > segmentBytes {
			off = 0
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return lat, err
		}
		off += int64(len(buf))
		t := time.Now()
		if err := datasync(f); err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(t))
	}
	return lat, nil
}
