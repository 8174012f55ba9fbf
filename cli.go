package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/peterh/liner"
	"golang.org/x/term"

	"raft-consensus/raft"
	"raft-consensus/raft/cluster"
	"raft-consensus/raft/remote"
	"raft-consensus/raft/trace"
	"raft-consensus/utils/web"
)

const prompt = "raft> "

const usageText = `Usage: raft-consensus [flags]
       raft-consensus bench [flags]   (the benchmark; bench -h)
       raft-consensus sim [flags]     (the deterministic simulation; sim -h)
       raft-consensus node [flags]    (one server as a process; node -h)
       raft-consensus cluster up [flags] (node processes, with this REPL over them)
       raft-consensus certs [flags]   (the certificates of mutual TLS; certs -h)
       raft-consensus health [flags]  (a node's health check; health -h)

Starts an interactive REPL over a simulated Raft cluster (servers on
127.0.0.1). Commands are typed as a number or a word, one per line, from a
terminal, a pipe or a file; "help" lists them.

Flags:
  -nodes N        create a cluster of N nodes (1-%d) at start
  -data-dir DIR   keep each node's durable storage in DIR/node-<id>; a cluster
                  created on a DIR that holds nodes recovers them
                  (default: a temporary directory per cluster, removed at exit,
                  so that crash and restart go through real recovery)
  -memory         keep each node's storage in memory instead (it survives
                  simulated crashes, not the process)
  -sim            run the cluster in virtual time (the deterministic simulation
                  of the same code): time stands still between commands; run,
                  step, play and pause move it; the same seed and commands give
                  the same output, byte for byte
  -seed S         the seed of -sim (default: drawn at random, and printed)
  -timeout D      bound each client operation to D, retries included (default 3s)
  -debug          write trace lines to stderr (HH:MM:SS.micros [node-id] message)
  -trace FILE     write trace events to FILE, one event a line
                  (go run ./utils FILE draws them)
  -trace-format F json (default: JSON lines) or text (the lines of -debug)
  -script FILE    run the commands in FILE first, then read more from the
                  terminal (if stdin is not a terminal, exit after FILE)
  -web ADDR       serve the live page at ADDR (loopback only, e.g.
                  127.0.0.1:8080; the "web" command does it later)
  -connect ADDRS  drive a running cluster (nodes started with "node", or in
                  containers) at HOST:PORT,HOST:PORT,… instead of creating one
  -cluster-id ID  the id of the cluster -connect reaches (default raft-consensus)
  -tls-dir DIR    the cluster's certificates, for -connect (see certs -h)
  -keep-going     in a script or a pipe, run every line even after one fails
                  (by default the run stops there and exits with status 1)
  -h              show this help

Examples:
  raft-consensus -nodes 3
  printf '1 3\nset x 5\nget x\n' | raft-consensus -memory
`

// config is what the flags say.
type config struct {
	nodes   int
	dataDir string
	memory  bool
	timeout time.Duration
	debug   bool
	trace   string
	format  string
	script  string
	sim     bool
	seed    int64
	seedSet bool
	keep    bool
	web     string
	// connect: the addresses of a running cluster's nodes (-connect), with
	// its id and certificates.
	connect   string
	clusterID string
	tlsDir    string
	// initial, if set, makes the cluster the REPL starts with (cluster up's
	// launcher, or -connect's connection), and says what it is.
	initial func() (cluster.Cluster, string, error)
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("raft-consensus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, usageText, raft.MaxNodes) }
	fs.IntVar(&c.nodes, "nodes", 0, "")
	fs.StringVar(&c.dataDir, "data-dir", "", "")
	fs.BoolVar(&c.memory, "memory", false, "")
	fs.DurationVar(&c.timeout, "timeout", 3*time.Second, "")
	fs.BoolVar(&c.debug, "debug", false, "")
	fs.StringVar(&c.trace, "trace", "", "")
	fs.StringVar(&c.format, "trace-format", "json", "")
	fs.BoolVar(&c.sim, "sim", false, "")
	fs.Int64Var(&c.seed, "seed", 0, "")
	fs.BoolVar(&c.keep, "keep-going", false, "")
	fs.StringVar(&c.web, "web", "", "")
	fs.StringVar(&c.script, "script", "", "")
	fs.StringVar(&c.connect, "connect", "", "")
	fs.StringVar(&c.clusterID, "cluster-id", defaultClusterID, "")
	fs.StringVar(&c.tlsDir, "tls-dir", "", "")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.connect != "" {
		switch {
		case c.sim || c.dataDir != "" || c.memory || c.nodes > 0:
			return c, errors.New("-connect drives a running cluster: -sim, -data-dir, -memory and -nodes do not go with it")
		}
		addrs := strings.Split(c.connect, ",")
		for _, a := range addrs {
			if _, _, err := net.SplitHostPort(strings.TrimSpace(a)); err != nil {
				return c, fmt.Errorf("-connect: %q is not host:port", a)
			}
		}
		c.initial = func() (cluster.Cluster, string, error) {
			rc, err := remote.ConnectAny(remote.ClusterConfig{Addrs: addrs, Cluster: c.clusterID, TLSDir: c.tlsDir, Timeout: c.timeout})
			if err != nil {
				return nil, "", fmt.Errorf("-connect: %w", err)
			}
			return rc, fmt.Sprintf("connected to a cluster of %d nodes (%s)%s; crash, restart, pause and resume need the launcher (cluster up)",
				len(rc.IDs()), idRange(rc.IDs()), hostingGroups(rc)), nil
		}
	}
	nodesSet := false
	fs.Visit(func(f *flag.Flag) {
		c.seedSet = c.seedSet || f.Name == "seed"
		nodesSet = nodesSet || f.Name == "nodes"
	})
	switch {
	case c.seedSet && !c.sim:
		return c, errors.New("-seed is the seed of virtual time: use it with -sim")
	case c.sim && c.dataDir != "":
		return c, errors.New("-sim keeps each node's storage on a simulated disk: -data-dir does not go with it")
	case c.web != "" && web.CheckLoopback(c.web) != nil:
		return c, fmt.Errorf("-web: %v", web.CheckLoopback(c.web))
	case c.format != "json" && c.format != "text":
		return c, fmt.Errorf("-trace-format must be json or text, not %q", c.format)
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q (commands are typed at the prompt, or given with -script)", fs.Arg(0))
	case c.nodes < 0 || c.nodes > raft.MaxNodes || nodesSet && c.nodes == 0:
		return c, fmt.Errorf("-nodes must be 1 to %d (leave it out to start with no cluster, and create one at the prompt: 1 3)", raft.MaxNodes)
	case c.timeout <= 0:
		return c, errors.New("-timeout must be positive, e.g. -timeout 3s")
	case c.memory && c.dataDir != "":
		return c, errors.New("-memory and -data-dir exclude each other")
	}
	if c.dataDir != "" {
		if fi, err := os.Stat(c.dataDir); err == nil && !fi.IsDir() {
			return c, fmt.Errorf("-data-dir %s is a file, not a directory", c.dataDir)
		}
	}
	return c, nil
}

// run is the whole program but the bench subcommand: it returns the exit
// status. stdin is read line by line; when it is a terminal the user gets a
// prompt (with line editing if stdout is the terminal too).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %v — see -h\n", err)
		return 2
	}
	return runREPL(c, stdin, stdout, stderr)
}

// runREPL runs the REPL that c configures.
func runREPL(c config, stdin io.Reader, stdout, stderr io.Writer) int {
	var err error

	opts := Options{DataDir: c.dataDir, Memory: c.memory, Timeout: c.timeout, Prompt: prompt, Sim: c.sim, Seed: c.seed,
		Color: isTerminal(stdout) && os.Getenv("NO_COLOR") == ""}
	if c.sim && !c.seedSet {
		opts.Seed = 1
		if c.script == "" {
			opts.Seed = time.Now().UnixNano() % 1_000_000 // a short seed, easy to type back
		}
	}
	var traceFile *os.File
	if c.debug {
		opts.Tracers = append(opts.Tracers, func(now func() time.Time) trace.Tracer { return trace.NewTextTracer(stderr, now) })
	}
	if c.trace != "" {
		if traceFile, err = os.Create(c.trace); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 2
		}
		mk := trace.NewJSONTracer
		if c.format == "text" {
			mk = trace.NewTextTracer
		}
		opts.Tracers = append(opts.Tracers, func(now func() time.Time) trace.Tracer { return mk(traceFile, now) })
	}
	var script *os.File
	if c.script != "" {
		if script, err = os.Open(c.script); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 2
		}
		defer script.Close()
	}

	r := NewREPL(stdout, opts)
	var startNote string
	if c.initial != nil {
		start, note, err := c.initial()
		if err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 2
		}
		r.setCluster(start)
		startNote = note
	}
	var editor *terminal // set once line editing is on
	var termMu sync.Mutex
	closeTerminal := func() {
		termMu.Lock()
		defer termMu.Unlock()
		if editor != nil {
			editor.Close()
			editor = nil
		}
	}
	var once sync.Once
	var cleanupErr error
	cleanup := func() error {
		once.Do(func() {
			cleanupErr = r.Close()
			closeTerminal()
			if traceFile != nil {
				traceFile.Close()
			}
		})
		return cleanupErr
	}
	defer cleanup()

	// Ctrl-C while a command runs cuts it short (at the prompt the line
	// editor reads it as a key, and clears the line). Ctrl-C between
	// commands of a pipe, SIGTERM and SIGHUP (the terminal closed) shut the
	// cluster down and leave. A second signal during that shutdown leaves
	// at once, should the shutdown hang.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == os.Interrupt && r.Interrupt() {
					continue // the command says it was interrupted
				}
			case <-done:
				return
			}
			break
		}
		fmt.Fprintln(stdout, "\ninterrupted: shutting down")
		code := make(chan int, 1)
		go func() {
			if err := cleanup(); err != nil {
				fmt.Fprintf(stdout, "error: %v\n", err)
				code <- 1
				return
			}
			code <- 0
		}()
		select {
		case c := <-code:
			os.Exit(c)
		case <-sigs:
			closeTerminal()
			fmt.Fprintln(stdout, "interrupted again: leaving at once")
			os.Exit(1)
		}
	}()

	switch {
	case c.sim:
		r.printf("Raft cluster simulator, in virtual time (seed %d).", opts.Seed)
	case c.initial != nil:
		r.printf("Raft cluster REPL, over servers that run as processes of their own.")
	default:
		r.printf("Raft cluster simulator.")
	}
	r.printMenu()
	if c.sim {
		// Again below the menu, which scrolls the first line away.
		r.printf("Virtual time, seed %d: time stands still until a command lets it pass; \"tour\" takes the guided tour.", opts.Seed)
	}
	if c.nodes > 0 {
		r.Exec("create " + strconv.Itoa(c.nodes))
	}
	if startNote != "" {
		r.printf("ok: %s", startNote)
	}
	if c.web != "" {
		if url, err := r.startWeb(c.web); err != nil {
			fmt.Fprintf(stderr, "error: -web: %v\n", err)
			return 2
		} else {
			r.printf("ok: the live page is at %s", url)
		}
	}
	defer r.shutdownCluster() // at EOF, Ctrl-D or exit
	stdinTerminal := isTerminal(stdin)
	if script != nil {
		// A script that fails stops; with a terminal to follow, the user
		// takes over there.
		exited, failed := r.serveLines(newPlainReader(script, nil, ""), true, !c.keep)
		switch {
		case exited:
			return 0
		case failed && !stdinTerminal:
			return 1
		}
	}
	switch {
	case stdinTerminal && stdin == os.Stdin && stdout == os.Stdout && isTerminal(stdout) && liner.TerminalSupported():
		termMu.Lock()
		editor = newTerminal()
		editor.out = r.out.(*lockedWriter)
		termMu.Unlock()
		r.serveLines(editor, false, false)
	case stdinTerminal:
		// No line editing: stdout is not the terminal, so the prompt goes
		// to stderr to keep stdout free of it.
		r.serveLines(newPlainReader(stdin, stderr, prompt), false, false)
	case script == nil:
		if _, failed := r.serveLines(newPlainReader(stdin, nil, ""), false, !c.keep); failed {
			return 1
		}
	}
	return 0
}

func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// terminal reads lines with editing and history (github.com/peterh/liner).
type terminal struct {
	state *liner.State
	out   *lockedWriter // told when the prompt waits, to print above it
}

func newTerminal() *terminal {
	state := liner.NewLiner()
	state.SetCtrlCAborts(true)
	state.SetTabCompletionStyle(liner.TabPrints)
	state.SetCompleter(completeCommand)
	return &terminal{state: state}
}

func (t *terminal) ReadLine() (string, error) {
	if t.out != nil {
		t.out.atPrompt(prompt)
		defer t.out.atPrompt("")
	}
	line, err := t.state.Prompt(prompt)
	switch {
	case errors.Is(err, liner.ErrPromptAborted):
		return "", errInterrupted
	case errors.Is(err, io.EOF):
		fmt.Println() // Ctrl-D leaves the cursor after the prompt
		return "", io.EOF
	case err != nil:
		return "", err
	}
	if strings.TrimSpace(line) != "" {
		t.state.AppendHistory(line)
	}
	return line, nil
}

// Close gives the terminal its mode back.
func (t *terminal) Close() { t.state.Close() }

// completeCommand completes the command word at the start of a line.
func completeCommand(line string) []string {
	if strings.ContainsAny(line, " \t") {
		return nil
	}
	var out []string
	for _, c := range commands {
		if c.run == nil {
			continue
		}
		for _, name := range c.names {
			if strings.HasPrefix(name, strings.ToLower(line)) && name != "?" {
				out = append(out, name+" ")
			}
		}
	}
	return out
}

// hostingGroups says how many groups the nodes host, when many.
func hostingGroups(c cluster.Cluster) string {
	if g, ok := c.(cluster.Grouped); ok {
		return fmt.Sprintf(", hosting %d groups each", g.GroupCount())
	}
	return ""
}
