package sim

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// RunConfig says which seeds Run runs.
type RunConfig struct {
	First int64 // the first seed
	// Seeds is how many to run (0: until Budget runs out).
	Seeds int64
	// Budget bounds the wall-clock time when Seeds is 0.
	Budget time.Duration
	// MaxFailures stops the run after that many failing seeds (default 5).
	MaxFailures int
	// Workers run seeds in parallel (default GOMAXPROCS).
	Workers int
	// Options for every seed.
	Options Options
	// OnResult, if set, sees every result as it comes (from the workers,
	// one at a time): a failure is reported as soon as it is found.
	OnResult func(Result)
}

// RunReport is what Run did.
type RunReport struct {
	Ran, Failed int64
	Elapsed     time.Duration
	Failures    []Result
}

// RunsPerMinute is the rate of the run.
func (r RunReport) RunsPerMinute() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ran) / r.Elapsed.Minutes()
}

// Run runs seeds from cfg.First on, in parallel. Each seed is bounded by
// its event and wall-clock budget (Options.MaxEvents, MaxWall), so a seed
// that hangs fails with its seed instead of stalling the rest.
func Run(cfg RunConfig) RunReport {
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	start := time.Now()
	var next, ran, failed atomic.Int64
	next.Store(cfg.First)
	var mu sync.Mutex
	var rep RunReport
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed := next.Add(1) - 1
				switch {
				case cfg.Seeds > 0 && seed >= cfg.First+cfg.Seeds:
					return
				case cfg.Seeds == 0 && time.Since(start) > cfg.Budget:
					return
				case failed.Load() >= int64(cfg.MaxFailures):
					return
				}
				res := RunSeed(seed, cfg.Options)
				ran.Add(1)
				mu.Lock()
				if res.Err != nil {
					failed.Add(1)
					rep.Failures = append(rep.Failures, res)
				}
				if cfg.OnResult != nil {
					cfg.OnResult(res)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	rep.Ran, rep.Failed, rep.Elapsed = ran.Load(), failed.Load(), time.Since(start)
	return rep
}
