// Command utils renders Raft trace logs as timing diagrams.
//
//	RAFT_DEBUG=json go test -v -run TestX ./raft/ | go run ./utils
//	go run ./utils -test TestX -html TestX.html test.log
//
// It prints one table per test (a time column, one column per node) and can
// write an HTML page with a swim-lane diagram. The trace vocabulary it
// understands is in utils/TRACE.md.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"raft-consensus/utils/diagram"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type options struct {
	test         string
	list         bool
	htmlOut      string
	tableHTMLOut string
	noTable      bool
	noHeartbeats bool
	width        int
	color        string
	relative     bool
	last         int
	from, to     string
	command      string // the prompt line of the terminal picture
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("utils", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.test, "test", "", "render only the test with this exact `name` (e.g. TestElection or TestA/sub)")
	fs.BoolVar(&o.list, "list", false, "list the tests found in the input and exit")
	fs.StringVar(&o.htmlOut, "html", "", "write the swim-lane diagram page to `file`")
	fs.StringVar(&o.tableHTMLOut, "table-html", "", "write the table as a terminal-styled HTML page to `file` (for screenshots)")
	fs.BoolVar(&o.noTable, "no-table", false, "do not print the table on stdout")
	fs.BoolVar(&o.noHeartbeats, "no-heartbeats", false, "hide empty AppendEntries and their successful replies (in the HTML: hidden at first)")
	fs.IntVar(&o.width, "width", 0, "table width in `columns` (default $COLUMNS, else 120)")
	fs.StringVar(&o.color, "color", "auto", "color the table: auto, always or never")
	fs.BoolVar(&o.relative, "relative", false, "show time since the first event instead of the clock")
	fs.IntVar(&o.last, "last", 0, "keep only the last `n` events of each test (0: all)")
	fs.StringVar(&o.from, "from", "", "keep only events at or after this `clock` time (HH:MM:SS[.micros])")
	fs.StringVar(&o.to, "to", "", "keep only events at or before this `clock` time (HH:MM:SS[.micros])")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./utils [flags] [trace.log]   (reads stdin without a file)\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.command = commandLine(args)
	if fs.NArg() > 1 || (o.color != "auto" && o.color != "always" && o.color != "never") {
		fs.Usage()
		return 2
	}

	in := stdin
	if fs.NArg() == 1 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			fmt.Fprintln(stderr, "utils:", err)
			return 1
		}
		defer f.Close()
		in = f
	}
	log, err := diagram.Parse(in)
	if err != nil {
		fmt.Fprintln(stderr, "utils: reading input:", err)
		return 1
	}
	reportSkipped(stderr, log)

	if o.list {
		for _, r := range log.Runs {
			fmt.Fprintln(stdout, r.Summary())
		}
		return 0
	}
	runs, code := selectRuns(log, o, stderr)
	if code != 0 {
		return code
	}
	return render(runs, log, o, stdout, stderr)
}

// reportSkipped always says how many lines were skipped, so that a trace
// format drifting away from the parser does not go unnoticed.
func reportSkipped(stderr io.Writer, log *diagram.Log) {
	fmt.Fprintf(stderr, "utils: read %d lines, %d tests; skipped %d malformed lines\n", log.Lines, countTests(log), log.Malformed)
	if log.TextLines > 0 {
		fmt.Fprintf(stderr, "utils: %d text trace lines are shown as free text: trace with RAFT_DEBUG=json (or the REPL's -trace FILE) for events the diagram understands\n", log.TextLines)
	}
	for _, m := range log.Examples {
		fmt.Fprintf(stderr, "  line %d: %s: %q\n", m.Line, m.Reason, m.Text)
	}
	if log.Malformed > len(log.Examples) {
		fmt.Fprintf(stderr, "  …and %d more\n", log.Malformed-len(log.Examples))
	}
}

func countTests(log *diagram.Log) int {
	n := 0
	for _, r := range log.Runs {
		if r.Name != "" {
			n++
		}
	}
	return n
}

func selectRuns(log *diagram.Log, o options, stderr io.Writer) ([]*diagram.Run, int) {
	var runs []*diagram.Run
	if o.test != "" {
		r := log.Run(o.test)
		if r == nil {
			fmt.Fprintf(stderr, "utils: no test %q in the input; tests found:\n", o.test)
			for _, r := range log.Runs {
				if r.Name != "" {
					fmt.Fprintf(stderr, "  %s\n", r.Name)
				}
			}
			return nil, 1
		}
		runs = []*diagram.Run{r}
	} else {
		for _, r := range log.Runs {
			if len(r.Events) > 0 {
				runs = append(runs, r)
			}
		}
	}
	from, errFrom := parseClockFlag(o.from)
	to, errTo := parseClockFlag(o.to)
	if errFrom != nil || errTo != nil {
		fmt.Fprintln(stderr, "utils: -from and -to take a clock time like 14:03:21 or 14:03:21.5")
		return nil, 2
	}
	for i, r := range runs {
		if from > 0 || to > 0 {
			r = r.Window(from, to)
		}
		runs[i] = r.Last(o.last)
	}
	events := 0
	for _, r := range runs {
		events += len(r.Events)
	}
	if events == 0 {
		fmt.Fprintln(stderr, "utils: no trace events to draw (was the trace switched on, e.g. RAFT_DEBUG=json?)")
		return nil, 1
	}
	return runs, 0
}

func render(runs []*diagram.Run, log *diagram.Log, o options, stdout, stderr io.Writer) int {
	topt := diagram.TableOptions{
		Width:        tableWidth(o.width),
		NoHeartbeats: o.noHeartbeats,
		Relative:     o.relative,
		Color:        o.color == "always" || (o.color == "auto" && isTerminal(stdout)),
	}
	if !o.noTable {
		for _, r := range runs {
			if err := diagram.WriteTable(stdout, r, topt); err != nil {
				fmt.Fprintln(stderr, "utils:", err)
				return 1
			}
		}
	}
	if o.tableHTMLOut != "" {
		topt.Color = o.color != "never"
		var text bytes.Buffer
		for _, r := range runs {
			text.WriteString(diagram.Table(r, topt) + "\n")
		}
		title := runs[0].Title()
		if err := writeFile(o.tableHTMLOut, func(w io.Writer) error {
			return diagram.WriteTerminalHTML(w, strings.TrimRight(text.String(), "\n"), title, o.command)
		}); err != nil {
			fmt.Fprintln(stderr, "utils:", err)
			return 1
		}
		fmt.Fprintln(stderr, "utils: wrote", o.tableHTMLOut)
	}
	if o.htmlOut != "" {
		note := ""
		if log.Malformed > 0 {
			note = fmt.Sprintf("%d malformed input lines were skipped.", log.Malformed)
		}
		hopt := diagram.HTMLOptions{HideHeartbeats: o.noHeartbeats, Note: note}
		if err := writeFile(o.htmlOut, func(w io.Writer) error { return diagram.WriteHTML(w, runs, hopt) }); err != nil {
			fmt.Fprintln(stderr, "utils:", err)
			return 1
		}
		fmt.Fprintln(stderr, "utils: wrote", o.htmlOut)
	}
	return 0
}

// parseClockFlag reads HH:MM:SS with an optional fraction of up to six
// digits; "" is 0, meaning no limit.
func parseClockFlag(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	hms, frac, _ := strings.Cut(s, ".")
	parts := strings.Split(hms, ":")
	if len(parts) != 3 || len(frac) > 6 {
		return 0, fmt.Errorf("bad clock time %q", s)
	}
	var total time.Duration
	for i, unit := range []time.Duration{time.Hour, time.Minute, time.Second} {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 0 || n > 59 || (i == 0 && n > 23) {
			return 0, fmt.Errorf("bad clock time %q", s)
		}
		total += time.Duration(n) * unit
	}
	if frac != "" {
		n, err := strconv.Atoi(frac + strings.Repeat("0", 6-len(frac)))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad clock time %q", s)
		}
		total += time.Duration(n) * time.Microsecond
	}
	return total, nil
}

func tableWidth(flagWidth int) int {
	if flagWidth > 0 {
		return flagWidth
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 120
}

// commandLine is what the terminal picture shows as its prompt: the way to
// get the table again, without the flags that only made the picture.
func commandLine(args []string) string {
	parts := []string{"go run ./utils"}
	skip := false
	for _, a := range args {
		switch {
		case skip:
			skip = false
		case a == "-table-html" || a == "--table-html" || a == "-color" || a == "--color":
			skip = true
		case strings.HasPrefix(a, "-table-html=") || strings.HasPrefix(a, "--table-html=") ||
			strings.HasPrefix(a, "-color=") || strings.HasPrefix(a, "--color=") || a == "-no-table":
		default:
			parts = append(parts, a)
		}
	}
	return strings.Join(parts, " ")
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
