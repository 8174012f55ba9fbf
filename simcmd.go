package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"raft-consensus/raft/sim"
	"raft-consensus/raft/trace"
	"raft-consensus/utils/diagram"
)

const simUsage = `Usage: raft-consensus sim [flags]

Runs seeded deterministic simulations of a cluster: the shipped driver, KV
server, client logic and write-ahead log, in virtual time, on a simulated
network, clock and disk that inject faults. Every seed is checked for the
Raft safety properties, liveness once the faults stop, and linearizability.
A failing seed is printed with its summary; replay it with -seed.

Flags:
  -seeds N        run N seeds (default 1000)
  -first S        start at seed S (default 1)
  -seed S         run seed S alone and print its summary
  -faults LIST    kinds of fault: net,disk,clock (default), or all, or none
  -html FILE      with -seed: write the timing diagram of the run, in virtual
                  time, as a self-contained page
  -trace FILE     with -seed: write the run's trace events to FILE as JSON lines
                  (go run ./utils FILE draws them)
  -v              print every seed's summary
  -h              show this help

Examples:
  raft-consensus sim -seeds 5000
  raft-consensus sim -seed 42 -html seed42.html
`

type simFlags struct {
	seeds, first, seed int64
	faults             string
	html, trace        string
	verbose            bool
}

// runSim is the "sim" subcommand. It returns the exit status: 0 when every
// seed passed, 1 when one failed, 2 for bad flags.
func runSim(args []string, stdout, stderr io.Writer) int {
	var f simFlags
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, simUsage) }
	fs.Int64Var(&f.seeds, "seeds", 1000, "")
	fs.Int64Var(&f.first, "first", 1, "")
	fs.Int64Var(&f.seed, "seed", 0, "")
	fs.StringVar(&f.faults, "faults", "net,disk,clock", "")
	fs.StringVar(&f.html, "html", "", "")
	fs.StringVar(&f.trace, "trace", "", "")
	fs.BoolVar(&f.verbose, "v", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sim: "+format+"\n", a...)
		return 2
	}
	faults, err := sim.ParseFaults(f.faults)
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q (flags only; see sim -h)", fs.Arg(0))
	case err != nil:
		return bad("-faults: %v", err)
	case f.seeds <= 0:
		return bad("-seeds must be a positive number, not %d", f.seeds)
	case (f.html != "" || f.trace != "") && !given["seed"]:
		return bad("-html and -trace describe one run: give its seed with -seed")
	case given["seed"] && (given["seeds"] || given["first"]):
		return bad("-seed runs one seed: -seeds and -first are for a range of seeds")
	}
	if given["seed"] {
		return simOne(f, faults, stdout, stderr)
	}

	cfg := sim.RunConfig{First: f.first, Seeds: f.seeds, MaxFailures: 1 << 30, Options: sim.Options{Faults: &faults}}
	start := time.Now()
	var done, failed int64
	lastProgress := time.Time{}
	cfg.OnResult = func(r sim.Result) {
		done++
		if r.Err != nil {
			failed++
			fmt.Fprintf(stdout, "\rFAIL seed %d: %v\n  %s\n  replay: go run . sim -seed %d -faults %s\n", r.Seed, r.Err, r.Summary, r.Seed, faults)
		} else if f.verbose {
			fmt.Fprintf(stdout, "\r%s\n", r.Summary)
		}
		if now := time.Now(); now.Sub(lastProgress) > 200*time.Millisecond || done == f.seeds {
			lastProgress = now
			rate := float64(done) / now.Sub(start).Minutes()
			fmt.Fprintf(stderr, "\r%d/%d seeds, %d failed, %.0f runs/min ", done, f.seeds, failed, rate)
		}
	}
	rep := sim.Run(cfg)
	fmt.Fprintf(stderr, "\n")
	fmt.Fprintf(stdout, "%d seeds (%d to %d, faults %s) in %v: %d failed, %.0f runs per minute\n",
		rep.Ran, f.first, f.first+rep.Ran-1, faults, rep.Elapsed.Round(time.Millisecond), rep.Failed, rep.RunsPerMinute())
	if rep.Failed > 0 {
		return 1
	}
	return 0
}

// simOne runs one seed, with its trace and diagram if asked.
func simOne(f simFlags, faults sim.FaultSet, stdout, stderr io.Writer) int {
	opts := sim.Options{Faults: &faults}
	var traceFile *os.File
	if f.trace != "" {
		var err error
		if traceFile, err = os.Create(f.trace); err != nil {
			fmt.Fprintf(stderr, "sim: -trace: %v\n", err)
			return 2
		}
		defer traceFile.Close()
	}
	var htmlFile *os.File
	if f.html != "" { // created now: a bad path fails before the run, not after
		var err error
		if htmlFile, err = os.Create(f.html); err != nil {
			fmt.Fprintf(stderr, "sim: -html: %v\n", err)
			return 2
		}
		defer htmlFile.Close()
	}
	var ring *trace.RingTracer
	opts.TraceTo = func(now func() time.Time) trace.Tracer {
		var tracers trace.MultiTracer
		if f.html != "" {
			ring = trace.NewRingTracer(1<<20, now)
			tracers = append(tracers, ring)
		}
		if traceFile != nil {
			tracers = append(tracers, trace.NewJSONTracer(traceFile, now))
		}
		if len(tracers) == 0 {
			return nil
		}
		return tracers
	}
	res := sim.RunSeed(f.seed, opts)
	fmt.Fprintln(stdout, res.Summary)
	code := 0
	if res.Err != nil {
		fmt.Fprintf(stdout, "FAIL seed %d: %v\n", f.seed, res.Err)
		code = 1
	}
	if ring != nil {
		if err := writeSimDiagram(htmlFile, f.seed, ring); err != nil {
			fmt.Fprintf(stderr, "sim: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote the timing diagram of seed %d (virtual time) to %s\n", f.seed, f.html)
	}
	return code
}

func writeSimDiagram(out *os.File, seed int64, ring *trace.RingTracer) error {
	run, _ := diagram.FromRecords(fmt.Sprintf("simulation seed %d", seed), ring.Last(0))
	werr := diagram.WriteHTML(out, []*diagram.Run{run}, diagram.HTMLOptions{HideHeartbeats: true})
	if cerr := out.Close(); werr == nil {
		werr = cerr
	}
	return werr
}
