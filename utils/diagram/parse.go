package diagram

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"time"

	"raft-consensus/raft/core"
)

// MaxLineBytes is the longest line Parse keeps. Longer lines are skipped and
// counted as malformed instead of ending the parse (bufio.Scanner's default
// would stop at 64 KiB with an error).
const MaxLineBytes = 1 << 20

// maxExamples is how many malformed lines Log keeps for error messages.
const maxExamples = 5

// Log is everything Parse found in one input.
type Log struct {
	Runs      []*Run      // in order of first appearance
	Lines     int         // lines read
	Malformed int         // lines skipped as malformed
	Examples  []Malformed // the first few of them
	// TextLines counts the trace lines that were text, not structured
	// events: they are shown as free text (trace with RAFT_DEBUG=json).
	TextLines int
}

// Malformed describes a skipped line.
type Malformed struct {
	Line   int
	Text   string // a cleaned prefix of the line
	Reason string
}

// Run returns the run with the given test name ("" for the events outside any
// test), or nil.
func (l *Log) Run(name string) *Run {
	for _, r := range l.Runs {
		if r.Name == name {
			return r
		}
	}
	return nil
}

var (
	reTestStart = regexp.MustCompile(`^=== (RUN|CONT|NAME|PAUSE)\s+(\S+)`)
	reTestEnd   = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+)(?: (.*))?$`)
	// A t.Log line: "    file_test.go:12: message".
	reTLog = regexp.MustCompile(`^\s+[\w.-]+\.go:\d+: `)
)

// goToolPrefixes start lines that go test, the race detector or the runtime
// print around tests: neither trace lines nor malformed ones.
var goToolPrefixes = []string{
	"PASS", "FAIL", "ok ", "ok\t", "?", "exit status", "coverage:", "testing:",
	"# ", "go: ", "=== ", "--- ", "SKIP",
}

// noiseStarts begin a multi-line report (panic, race) whose unindented lines
// look like nothing in particular; they are ignored until the next test or
// trace line.
var noiseStarts = []string{
	"panic:", "fatal error:", "goroutine ", "==================", "WARNING: DATA RACE",
	"SIGQUIT", "[signal ",
}

type parser struct {
	log     *Log
	runs    map[string]*Run
	current *Run
	running map[string]bool
	noise   bool
}

// Parse reads trace lines mixed with go test -v output (or go test -json
// output, or the tracer's JSON lines) and splits them into runs, one per test
// plus one unnamed run for events outside any test. Malformed lines are
// skipped and counted; the error is only ever a read error of r.
func Parse(r io.Reader) (*Log, error) {
	p := &parser{log: &Log{}, runs: map[string]*Run{}, running: map[string]bool{}}
	br := bufio.NewReaderSize(r, 64<<10)
	var err error
	for {
		var line []byte
		var overlong bool
		line, overlong, err = readLine(br)
		if len(line) == 0 && !overlong && err != nil {
			break
		}
		p.log.Lines++
		if overlong {
			p.malformed(string(line[:min(len(line), 40)]), "line longer than 1 MiB")
		} else {
			p.line(string(line), 0)
		}
		if err != nil {
			break
		}
	}
	for _, run := range p.log.Runs {
		run.finish()
	}
	if un := p.runs[""]; un != nil && len(un.Events) == 0 {
		p.log.Runs = removeRun(p.log.Runs, un)
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return p.log, err
}

// readLine returns the next line without its line ending. A line longer than
// MaxLineBytes is consumed to its end and reported as overlong.
func readLine(br *bufio.Reader) (line []byte, overlong bool, err error) {
	for {
		chunk, e := br.ReadSlice('\n')
		if !overlong && len(line)+len(chunk) <= MaxLineBytes {
			line = append(line, chunk...)
		} else {
			overlong = true
		}
		if e == bufio.ErrBufferFull {
			continue
		}
		err = e
		break
	}
	return bytes.TrimRight(line, "\r\n"), overlong, err
}

func removeRun(runs []*Run, r *Run) []*Run {
	out := runs[:0]
	for _, x := range runs {
		if x != r {
			out = append(out, x)
		}
	}
	return out
}

func (p *parser) run(name string) *Run {
	r := p.runs[name]
	if r == nil {
		r = &Run{Name: name}
		p.runs[name] = r
		p.log.Runs = append(p.log.Runs, r)
	}
	return r
}

func (p *parser) malformed(text, reason string) {
	p.log.Malformed++
	if len(p.log.Examples) < maxExamples {
		p.log.Examples = append(p.log.Examples, Malformed{Line: p.log.Lines, Text: cleanMessage(text), Reason: reason})
	}
}

func (p *parser) event(at time.Duration, node string, e core.Event) {
	if p.current == nil {
		p.current = p.run("")
	}
	p.current.add(at, node, e, p.log.Lines)
	p.noise = false
}

// freeText is the event of a trace line that carries text only: a text
// trace line, or an old JSON line. It is shown, not interpreted.
func freeText(msg string) core.Event {
	return core.Event{Kind: core.EventNone, Peer: core.None, Detail: msg}
}

// line handles one input line; depth guards against JSON output wrapping
// JSON output without end.
func (p *parser) line(s string, depth int) {
	trimmed := strings.TrimSpace(s)
	switch {
	case trimmed == "":
		return
	case s[0] == '{':
		p.jsonLine(s, depth)
		return
	case s[0] == ' ' || s[0] == '\t':
		p.indented(s)
		return
	}
	at, node, msg, why := parseTextLine(s)
	if why == "" {
		p.log.TextLines++
		p.event(at, node, freeText(msg))
		return
	}
	if p.testLine(s) {
		return
	}
	for _, pre := range noiseStarts {
		if strings.HasPrefix(s, pre) {
			p.noise = true
			return
		}
	}
	for _, pre := range goToolPrefixes {
		if strings.HasPrefix(s, pre) {
			return
		}
	}
	if !p.noise {
		p.malformed(s[:min(len(s), 60)], why)
	}
}

// indented lines are t.Log output or stack frames. A trace line logged with
// t.Log is still a trace line.
func (p *parser) indented(s string) {
	if p.testLine(s) {
		return
	}
	rest := strings.TrimLeft(s, " \t")
	if loc := reTLog.FindStringIndex(s); loc != nil {
		rest = s[loc[1]:]
	}
	if strings.HasPrefix(rest, "{") {
		if j := decodeJSONLine(rest); j != nil && j.Action == "" {
			if at, node, e, ok := traceFromJSON(j, rest); ok {
				p.event(at, node, e)
			}
		}
		return
	}
	if at, node, msg, why := parseTextLine(rest); why == "" {
		p.log.TextLines++
		p.event(at, node, freeText(msg))
	}
}

func (p *parser) jsonLine(s string, depth int) {
	j := decodeJSONLine(s)
	switch {
	case j == nil:
		p.malformed(s[:min(len(s), 60)], "invalid JSON")
	case j.Action != "":
		if j.Action == "output" && j.Output != nil && depth < 2 {
			for _, l := range strings.Split(*j.Output, "\n") {
				if l = strings.TrimRight(l, "\r"); l != "" {
					p.line(l, depth+1)
				}
			}
		}
	default:
		if at, node, e, ok := traceFromJSON(j, s); ok {
			p.event(at, node, e)
		} else {
			p.malformed(s[:min(len(s), 60)], "JSON line without a valid time, node and event")
		}
	}
}

// testLine follows go test -v's framing to know which test is running.
func (p *parser) testLine(s string) bool {
	if m := reTestStart.FindStringSubmatch(s); m != nil {
		p.noise = false
		switch m[1] {
		case "RUN":
			p.running[m[2]] = true
			p.current = p.run(m[2])
		case "CONT", "NAME":
			p.current = p.run(m[2])
		case "PAUSE":
			if p.current != nil && p.current.Name == m[2] {
				p.current = nil
			}
		}
		return true
	}
	if m := reTestEnd.FindStringSubmatch(s); m != nil {
		p.noise = false
		r := p.run(m[2])
		r.Result, r.Elapsed = m[1], m[3]
		delete(p.running, m[2])
		if p.current == r {
			p.current = p.runningParent(m[2])
		}
		return true
	}
	return false
}

// runningParent is the closest enclosing test still running: output after a
// subtest ends belongs to its parent.
func (p *parser) runningParent(name string) *Run {
	for {
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			return nil
		}
		name = name[:i]
		if p.running[name] {
			return p.runs[name]
		}
	}
}
