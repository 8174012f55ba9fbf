package sim

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// FirstFailure runs seeds from 1 to limit with opts and returns the lowest
// failing one it finds (ok false if none fails): the mutation tests of
// every layer use it to show that the simulation catches a bug planted on
// purpose. Seeds run on every CPU; a worker stops at a seed above a failure
// already found, so the result is the first failure in seed order.
func FirstFailure(limit int64, opts Options) (res Result, ok bool) {
	var (
		next  atomic.Int64
		found atomic.Int64 // lowest failing seed so far; limit+1: none
		mu    sync.Mutex
		wg    sync.WaitGroup
	)
	found.Store(limit + 1)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed := next.Add(1)
				if seed > limit || seed > found.Load() {
					return
				}
				r := RunSeed(seed, opts)
				if r.Err == nil {
					continue
				}
				mu.Lock()
				if seed < found.Load() {
					found.Store(seed)
					res, ok = r, true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return res, ok
}
