package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"raft-consensus/raft"
	"raft-consensus/raft/cluster"
	"raft-consensus/raft/sim"
	"raft-consensus/raft/trace"
	"raft-consensus/utils/web"
)

// maxDiagramRows bounds "diagram N".
const maxDiagramRows = 100_000

// maxLineBytes bounds one input line; the rest of a longer line is skipped.
const maxLineBytes = 64 << 10

// Options configure a REPL.
type Options struct {
	// DataDir holds each node's durable storage in DataDir/node-<id>. A
	// cluster created on a DataDir that already holds nodes recovers them.
	DataDir string
	// Memory keeps each node's storage in memory (it survives simulated
	// crashes, not the process). With neither DataDir nor Memory every
	// cluster gets fresh durable storage in a temporary directory that
	// Close removes.
	Memory bool
	// Timeout bounds one client operation (SimConfig.ClientTimeout).
	Timeout time.Duration
	// Tracers make the tracers that receive every trace event besides the
	// REPL's own; now is the REPL's clock (virtual with Sim).
	Tracers []func(now func() time.Time) trace.Tracer
	// Color colours terms in the log view (for a terminal).
	Color bool
	// Sim runs every cluster in virtual time (sim.Cluster), from Seed.
	Sim  bool
	Seed int64
	// Prompt is written before each line read from a terminal.
	Prompt string
}

// REPL runs the numbered-menu commands against one cluster at a time: a
// raft.ClusterSimulator on the wall clock, or with Options.Sim a
// sim.Cluster in virtual time. Exec runs one line; Serve runs every line of a reader.
type REPL struct {
	out  io.Writer
	opts Options

	// Trace keeps what every cluster of the session did, for the timing
	// diagram: every event but heartbeats (up to a million), and the
	// latest heartbeats.
	Trace  *trace.SessionTracer
	tracer trace.Tracer

	// newCluster creates the wall-clock simulator; tests replace it.
	newCluster func(raft.SimConfig) (cluster.Cluster, error)

	// In virtual time: the running cluster's clock, and where it starts on
	// the session's clock (each cluster starts at its own time 0).
	vclock    atomic.Pointer[sim.Cluster]
	vbase     atomic.Int64
	seed      atomic.Int64 // the seed of the next cluster
	session   session
	mu        sync.Mutex // guards sim, closed and tempRoot against Close from a signal
	sim       cluster.Cluster
	closed    bool
	tempRoot  string // the default storage's temporary directory, made at the first create
	created   int    // clusters created so far, to name their temporary directories
	partition string // the partition in force, as typed, for status

	execMu  sync.Mutex  // one command at a time: the prompt's or the page's
	web     *web.Server // the live page, once "web" served it
	started time.Time   // the session's start, for the page's wall clock
	running atomic.Bool // a command runs (Interrupt has something to cut short)
	depth   int         // commands run by a command (the tour's), under execMu
	tour    *tourState  // the guided tour, while one is under way
	// tourCluster is the last tour's cluster, which "tour restart" may
	// shut down.
	tourCluster cluster.Cluster
	failures    atomic.Int64 // commands typed that failed (a script stops at one)
	errLines    atomic.Int64 // error lines printed, those of commands run by a command too
}

// NewREPL returns a REPL writing to out, with no cluster yet.
func NewREPL(out io.Writer, opts Options) *REPL {
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Second
	}
	r := &REPL{out: &lockedWriter{w: out}, opts: opts, started: time.Now(), newCluster: func(cfg raft.SimConfig) (cluster.Cluster, error) {
		c, err := raft.NewClusterSimulator(cfg)
		if err != nil {
			return nil, err
		}
		return c, nil
	}}
	r.seed.Store(opts.Seed)
	now := time.Now
	if opts.Sim {
		now = r.virtualNow
	}
	r.Trace = trace.NewSessionTracer(trace.DefaultSessionEvents, trace.DefaultSessionHeartbeats, now)
	tracers := trace.MultiTracer{r.Trace}
	for _, mk := range opts.Tracers {
		if t := mk(now); t != nil {
			tracers = append(tracers, t)
		}
	}
	r.tracer = r.Trace
	if len(tracers) > 1 {
		r.tracer = tracers
	}
	return r
}

// virtualNow is the session's clock in virtual time: the running
// cluster's, after the time of the clusters before it.
func (r *REPL) virtualNow() time.Time {
	t := time.Unix(0, 0).UTC().Add(time.Duration(r.vbase.Load()))
	if c := r.vclock.Load(); c != nil {
		t = t.Add(c.Now())
	}
	return t
}

// Virtual returns the running cluster if it runs in virtual time.
func (r *REPL) Virtual() *sim.Cluster {
	c, _ := r.Cluster().(*sim.Cluster)
	return c
}

// Cluster returns the running cluster, or nil.
func (r *REPL) Cluster() cluster.Cluster {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sim
}

// Close shuts the cluster down (waiting at most shutdownGrace) and removes
// the temporary storage. It is safe to call more than once and from another
// goroutine (a signal).
func (r *REPL) Close() error {
	r.mu.Lock()
	c, root, page := r.sim, r.tempRoot, r.web
	r.sim, r.tempRoot, r.closed, r.web = nil, "", true, nil
	r.mu.Unlock()
	if page != nil {
		page.Close()
	}
	err := shutdown(c)
	if root != "" {
		os.RemoveAll(root)
	}
	return err
}

// Serve runs every line of in until EOF or an exit command. It writes no
// prompt. It reports whether an exit command ended it.
func (r *REPL) Serve(in io.Reader) (exited bool) {
	exited, _ = r.serveLines(newPlainReader(in, nil, ""), false, false)
	return exited
}

// serveLines runs lines from lr until EOF, an error or an exit command;
// with echo it shows each line after the prompt, as if typed; with
// stopOnError it stops after the first command that failed, and says so
// (failed is then true). Ctrl-C at the prompt (errInterrupted) clears the
// line, as in a shell.
func (r *REPL) serveLines(lr lineReader, echo, stopOnError bool) (exited, failed bool) {
	for n := 1; ; n++ {
		line, err := lr.ReadLine()
		if errors.Is(err, errLineTooLong) {
			r.errorf("the line is too long (at most %d bytes) — it was skipped", maxLineBytes)
			if stopOnError {
				return false, r.stopped(n)
			}
			continue
		}
		if errors.Is(err, errInterrupted) {
			continue // a fresh prompt
		}
		if err != nil && line == "" {
			if !errors.Is(err, io.EOF) {
				r.errorf("reading input: %v", err)
			}
			return false, false
		}
		if echo {
			fmt.Fprintf(r.out, "%s%s\n", r.opts.Prompt, line)
		}
		before := r.failures.Load()
		if r.Exec(line) {
			return true, false
		}
		if stopOnError && r.failures.Load() > before {
			return false, r.stopped(n)
		}
		if err != nil {
			return false, false // a last line without a newline, then EOF
		}
	}
}

// stopped says that a run stops at line n, which failed.
func (r *REPL) stopped(n int) bool {
	fmt.Fprintf(r.out, "error: stopping at line %d, which failed (-keep-going runs every line)\n", n)
	return true
}

// Exec runs one input line and reports whether it asked to exit.
func (r *REPL) Exec(line string) (exit bool) {
	r.execMu.Lock()
	defer r.execMu.Unlock()
	return r.exec(line)
}

// exec is Exec with execMu held.
func (r *REPL) exec(line string) (exit bool) {
	defer func() {
		if p := recover(); p != nil {
			// A last resort: every input should be validated before it
			// gets here. No stack trace: one line, like every error.
			r.errorf("internal: %v — please report this input", p)
			exit = false
		}
	}()
	words, err := ParseCommand(line)
	if err != nil {
		r.errorf("%v", err)
		return false
	}
	if len(words) == 0 {
		return false
	}
	name, args := words[0], words[1:]
	cmd := lookupCommand(name)
	if cmd == nil {
		r.errorf("unknown command %s — type \"help\" for the menu", echo(name))
		return false
	}
	if cmd.run == nil {
		r.errorf("%q (%d) is not implemented yet — type \"help\" for the menu", cmd.names[0], cmd.num)
		return false
	}
	if len(args) < cmd.minArgs || (cmd.maxArgs >= 0 && len(args) > cmd.maxArgs) {
		r.errorf("usage: %s", cmd.usage())
		return false
	}
	// A command run by another (the tour's) is neither recorded nor
	// counted as running on its own: the outer one is.
	outer := r.depth == 0
	r.depth++
	defer func() { r.depth-- }()
	if outer && r.opts.Sim && !notRecorded[cmd.names[0]] {
		// The player stands still meanwhile, so that the command's start
		// and end are the instants the session's record says.
		if v := r.Virtual(); v != nil {
			release := v.Hold()
			defer release()
		}
		start, failures := r.sessionNow(), r.failures.Load()
		r.session.before(start)
		defer func() {
			end := r.sessionNow()
			failed := r.failures.Load() > failures
			// A command refused (it failed and no time passed) did nothing:
			// a replay must not run it.
			r.session.after(line, end, failed, failed && end == start)
		}()
	}
	var c cluster.Cluster
	if cmd.needsCluster {
		if c = r.Cluster(); c == nil {
			r.errorf("%v", errNoCluster)
			return false
		}
	}
	if outer {
		r.running.Store(true)
	}
	err = cmd.run(r, c, args)
	if outer {
		r.running.Store(false)
	}
	switch {
	case errors.Is(err, errExit):
		return true
	case errors.As(err, new(usageError)):
		r.errorf("%v", err)
	case err != nil:
		r.errorf("%s", describe(err))
	}
	return false
}

// Interrupt cuts the running command short (Ctrl-C), and reports whether
// one was running.
func (r *REPL) Interrupt() bool {
	if !r.running.Load() {
		return false
	}
	if c := r.Cluster(); c != nil {
		c.Interrupt()
	}
	return true
}

// errorf prints one error line.
func (r *REPL) errorf(format string, args ...any) {
	r.errLines.Add(1)
	if r.depth <= 1 {
		// A command run by another (the tour's deliberate failing write) is
		// that command's business: the outer one fails if it says so.
		r.failures.Add(1)
	}
	// Errors joined (errors.Join: one per group that failed) are parts of
	// one line; user input inside a message is quoted already (echo).
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "; ")
	fmt.Fprintln(r.out, "error: "+oneLine(msg))
}

// errNoCluster is the answer of a command that needs a cluster, before one
// is created.
var errNoCluster = errors.New("no cluster yet — create one with \"create <nodes>\", e.g. \"create 3\" (or \"1 3\")")

// printf prints one result line.
func (r *REPL) printf(format string, args ...any) {
	fmt.Fprintln(r.out, oneLine(fmt.Sprintf(format, args...)))
}

// oneLine keeps a message on one line whatever it quotes.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}

// clusterConfig returns the configuration of a new cluster and a few words
// on where its storage lives.
func (r *REPL) clusterConfig(nodes int) (raft.SimConfig, string, error) {
	cfg := raft.SimConfig{Nodes: nodes, Tracer: r.tracer, ClientTimeout: r.opts.Timeout}
	switch {
	case r.opts.Memory:
		return cfg, "storage in memory", nil
	case r.opts.DataDir != "":
		cfg.DataDir = r.opts.DataDir
		return cfg, "storage in " + r.opts.DataDir, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tempRoot == "" {
		root, err := os.MkdirTemp("", "raft-repl-")
		if err != nil {
			return cfg, "", fmt.Errorf("making a temporary directory for the storage: %w", err)
		}
		r.tempRoot = root
	}
	// Each cluster gets a directory of its own: created anew, it starts empty.
	r.created++
	cfg.DataDir = filepath.Join(r.tempRoot, "cluster-"+strconv.Itoa(r.created))
	return cfg, "storage in " + cfg.DataDir + ", removed at exit", nil
}

// setCluster installs a new cluster unless Close ran meanwhile.
func (r *REPL) setCluster(c cluster.Cluster) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.sim, r.partition = c, ""
	if v, ok := c.(*sim.Cluster); ok {
		r.vclock.Store(v)
	}
	return true
}

// takeCluster removes the cluster from the REPL, for shutdown.
func (r *REPL) takeCluster() cluster.Cluster {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.sim
	r.sim, r.partition = nil, ""
	if v := r.vclock.Swap(nil); v != nil {
		v.Pause()                   // its time stops here
		r.vbase.Add(int64(v.Now())) // the next cluster's time follows on
	}
	return c
}

func (r *REPL) setPartition(desc string) {
	r.mu.Lock()
	r.partition = desc
	r.mu.Unlock()
}

func (r *REPL) partitionDesc() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.partition
}

// lineReader reads input lines without their line ends.
type lineReader interface {
	ReadLine() (string, error)
}

var (
	errInterrupted = errors.New("interrupted")
	errLineTooLong = errors.New("line too long")
)

// plainReader reads lines from a pipe, a file, or a terminal without line
// editing. Every line is read, the last one even without a newline.
type plainReader struct {
	br     *bufio.Reader
	prompt io.Writer // where the prompt goes, or nil for none
	text   string
}

func newPlainReader(in io.Reader, promptTo io.Writer, prompt string) *plainReader {
	return &plainReader{br: bufio.NewReader(in), prompt: promptTo, text: prompt}
}

func (p *plainReader) ReadLine() (string, error) {
	if p.prompt != nil {
		fmt.Fprint(p.prompt, p.text)
	}
	var buf []byte
	tooLong := false
	for {
		chunk, isPrefix, err := p.br.ReadLine()
		if !tooLong {
			buf = append(buf, chunk...)
			if len(buf) > maxLineBytes {
				buf, tooLong = nil, true
			}
		}
		if err != nil {
			if tooLong {
				return "", errLineTooLong
			}
			return string(buf), err
		}
		if !isPrefix {
			break
		}
	}
	if tooLong {
		return "", errLineTooLong
	}
	// bufio.Reader.ReadLine drops "\n" and "\r\n"; a lone "\r" stays.
	return string(bytes.TrimSuffix(buf, []byte("\r"))), nil
}

// lockedWriter serializes writes: in virtual time, the player prints the
// events of a playing cluster while commands print their results.
type lockedWriter struct {
	mu   sync.Mutex
	w    io.Writer
	copy *strings.Builder // while the page's command runs: what it prints
	// prompt, while set, is on the terminal waiting for the user: what is
	// written meanwhile (the player's events, the page's commands) goes
	// above it, and the prompt is drawn again below.
	prompt string
	inLine bool // a write left the line unfinished
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.copy != nil {
		l.copy.Write(p)
	}
	if l.prompt == "" || len(p) == 0 {
		return l.w.Write(p)
	}
	if !l.inLine {
		io.WriteString(l.w, "\r\x1b[K") // over the prompt and what is typed
	}
	n, err := l.w.Write(p)
	l.inLine = p[len(p)-1] != '\n'
	if !l.inLine {
		io.WriteString(l.w, l.prompt) // the line editor redraws the rest at the next key
	}
	return n, err
}

// atPrompt says that the terminal shows the prompt (prompt != "") or not.
func (l *lockedWriter) atPrompt(prompt string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prompt, l.inLine = prompt, false
}
