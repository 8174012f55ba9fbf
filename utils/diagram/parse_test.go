package diagram

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"raft-consensus/raft/core"
)

func mustParse(t *testing.T, input string) *Log {
	t.Helper()
	log, err := Parse(strings.NewReader(input))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return log
}

func clock(s string) time.Duration {
	d, ok := parseClock(s)
	if !ok {
		panic("bad clock in test: " + s)
	}
	return d
}

func TestParseJSONEventLine(t *testing.T) {
	log := mustParse(t, lines(at("22:41:07.123456", "2", recv(appendRPC(0, 2, 3, 5, 2, 3, 5)))))
	if len(log.Runs) != 1 || log.Runs[0].Name != "" {
		t.Fatalf("runs = %+v, want one unnamed run", log.Runs)
	}
	e := log.Runs[0].Events[0]
	if e.At != clock("22:41:07.123456") || e.Node != "2" || e.Line != 1 || e.Msg != "recv AppendEntries 0→2 term=3 prev=5/2 entries=3 commit=5" {
		t.Errorf("event = %+v", e)
	}
	if e.Kind != KindRecv || e.RPC.Name != "AppendEntries" || e.RPC.From != "0" || e.RPC.To != "2" || e.RPC.Entries != 3 {
		t.Errorf("rpc = %+v", e.RPC)
	}
	if log.Malformed != 0 || log.Lines != 1 || log.TextLines != 0 {
		t.Errorf("lines=%d malformed=%d text=%d", log.Lines, log.Malformed, log.TextLines)
	}
}

// TestParseTextLineIsFreeText: a text trace line is shown as it is, never
// read for meaning (its structured twin is the JSON line).
func TestParseTextLineIsFreeText(t *testing.T) {
	log := mustParse(t, "22:41:07.123456 [2] recv AppendEntries 0→2 term=3 prev=5/2 entries=3 commit=5\n")
	e := log.Runs[0].Events[0]
	if e.Kind != KindOther || e.Type != core.EventNone || e.RPC != nil || e.Msg != "recv AppendEntries 0→2 term=3 prev=5/2 entries=3 commit=5" {
		t.Errorf("event = %+v", e)
	}
	if log.TextLines != 1 || log.Malformed != 0 {
		t.Errorf("text=%d malformed=%d", log.TextLines, log.Malformed)
	}
}

func TestParseSplitsRunsByTest(t *testing.T) {
	input := `22:00:00.000001 [sim] fault: drop rate 0.10
=== RUN   TestA
22:00:00.000002 [0] in A
=== RUN   TestA/sub
22:00:00.000003 [1] in A/sub
--- PASS: TestA/sub (0.00s)
22:00:00.000004 [0] back in A
=== RUN   TestB
=== PAUSE TestB
=== RUN   TestC
22:00:00.000005 [2] in C
=== CONT  TestB
22:00:00.000006 [0] in B
=== NAME  TestC
22:00:00.000007 [2] C again
--- FAIL: TestC (0.01s)
--- PASS: TestB (0.02s)
--- PASS: TestA (0.03s)
PASS
ok  	raft-consensus/raft	0.123s
22:00:00.000008 [0] after all tests
`
	log := mustParse(t, input)
	want := map[string][]string{
		"":          {"fault: drop rate 0.10", "after all tests"},
		"TestA":     {"in A", "back in A"},
		"TestA/sub": {"in A/sub"},
		"TestB":     {"in B"},
		"TestC":     {"in C", "C again"},
	}
	if len(log.Runs) != len(want) {
		t.Fatalf("got %d runs, want %d", len(log.Runs), len(want))
	}
	for name, msgs := range want {
		r := log.Run(name)
		if r == nil {
			t.Fatalf("no run %q", name)
		}
		var got []string
		for _, e := range r.Events {
			got = append(got, e.Msg)
		}
		if strings.Join(got, "|") != strings.Join(msgs, "|") {
			t.Errorf("run %q: got %q, want %q", name, got, msgs)
		}
	}
	if r := log.Run("TestC"); r.Result != "FAIL" || r.Elapsed != "(0.01s)" {
		t.Errorf("TestC result = %q %q", r.Result, r.Elapsed)
	}
	if log.Malformed != 0 {
		t.Errorf("malformed = %d, want 0 (go test output is not malformed): %+v", log.Malformed, log.Examples)
	}
	if log.Runs[0].Name != "" || log.Runs[1].Name != "TestA" {
		t.Errorf("runs not in order of appearance: %q, %q", log.Runs[0].Name, log.Runs[1].Name)
	}
}

func TestParseJSONLines(t *testing.T) {
	input := lines(at("22:41:07.123456", "2", termEv(3, 4))) + `{"time":"22:41:07.123460","node":"2","msg":"an older line, text only"}
{"time":"22:41:07.1","node":"2","kind":"term","term":4}
{"time":"22:41:07.123457","node":"two","kind":"term","term":4}
{"time":"22:41:07.123458","node":"1"}
{"time":"22:41:07.123459","node":"1","kind":"no-such-kind"}
{"time":"22:41:07.123459","node":"1","kind":"term","term":"x"}
{"time":"22:41:07.123459","node":"1","msg":"x"
`
	log := mustParse(t, input)
	if n := len(log.Runs[0].Events); n != 2 {
		t.Fatalf("events = %d, want 2", n)
	}
	if e := log.Runs[0].Events[0]; e.Kind != KindTerm || e.PrevTerm != 3 || e.Term != 4 {
		t.Errorf("event = %+v", e)
	}
	if e := log.Runs[0].Events[1]; e.Kind != KindOther || e.Msg != "an older line, text only" {
		t.Errorf("event = %+v", e)
	}
	if log.Malformed != 6 {
		t.Errorf("malformed = %d, want 6", log.Malformed)
	}
}

func TestParseGoTestJSON(t *testing.T) {
	input := `{"Time":"2025-01-01T00:00:00Z","Action":"start","Package":"p"}
{"Time":"2025-01-01T00:00:00Z","Action":"run","Package":"p","Test":"TestX"}
{"Time":"2025-01-01T00:00:00Z","Action":"output","Package":"p","Test":"TestX","Output":"=== RUN   TestX\n"}
{"Time":"2025-01-01T00:00:00Z","Action":"output","Package":"p","Test":"TestX","Output":"22:41:07.000001 [0] hello\n"}
{"Time":"2025-01-01T00:00:00Z","Action":"output","Package":"p","Test":"TestX","Output":"--- PASS: TestX (0.00s)\n"}
{"Time":"2025-01-01T00:00:00Z","Action":"pass","Package":"p","Test":"TestX","Elapsed":0}
`
	log := mustParse(t, input)
	r := log.Run("TestX")
	if r == nil || len(r.Events) != 1 || r.Events[0].Msg != "hello" || r.Result != "PASS" {
		t.Fatalf("run = %+v", r)
	}
}

func TestParseTLogWrappedTrace(t *testing.T) {
	leader := ev(core.EventLeader)
	leader.Peer, leader.Term = 1, 2
	input := "=== RUN   TestX\n    cluster_test.go:40: " + lines(at("22:41:07.000001", "1", leader)) + "    cluster_test.go:41: just a log line\n"
	log := mustParse(t, input)
	r := log.Run("TestX")
	if len(r.Events) != 1 || r.Events[0].Kind != KindLeader {
		t.Fatalf("events = %+v", r.Events)
	}
	if log.Malformed != 0 {
		t.Errorf("malformed = %d: t.Log output is not malformed", log.Malformed)
	}
}

func TestParseMalformed(t *testing.T) {
	overlong := "22:41:07.000009 [1] " + strings.Repeat("x", MaxLineBytes+10)
	cases := []struct {
		name, line, reason string
	}{
		{"garbage", "this is not a trace line", "not a trace line"},
		{"truncated timestamp", "22:41:0", "not a trace line"},
		{"truncated micros", "22:41:07.12 [1] hello", "bad timestamp"},
		{"hour out of range", "25:41:07.123456 [1] hello", "bad timestamp"},
		{"letters in clock", "22:4x:07.123456 [1] hello", "bad timestamp"},
		{"bad node id", "22:41:07.123456 [x] hello", "bad node id"},
		{"negative node id", "22:41:07.123456 [-1] hello", "bad node id"},
		{"leading zero node", "22:41:07.123456 [01] hello", "bad node id"},
		{"empty node", "22:41:07.123456 [] hello", "bad node id"},
		{"huge node", "22:41:07.123456 [12345678901234567890] hello", "bad node id"},
		{"no closing bracket", "22:41:07.123456 [1 hello", "no ] after the node id"},
		{"no message", "22:41:07.123456 [1]", "empty message"},
		{"blank message", "22:41:07.123456 [1]    ", "empty message"},
		{"binary junk", "\x00\x01\xff\xfe\x1b[31m\x7f", "not a trace line"},
		{"bad json", "{not json", "invalid JSON"},
		{"overlong", overlong, "line longer than 1 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			input := "22:41:07.000001 [0] before\n" + c.line + "\n22:41:07.000002 [0] after\n"
			log := mustParse(t, input)
			if log.Malformed != 1 {
				t.Fatalf("malformed = %d, want 1 (examples %+v)", log.Malformed, log.Examples)
			}
			if ex := log.Examples[0]; ex.Line != 2 || ex.Reason != c.reason {
				t.Errorf("example = line %d %q, want line 2 %q", ex.Line, ex.Reason, c.reason)
			}
			if n := len(log.Runs[0].Events); n != 2 {
				t.Errorf("events = %d, want the 2 good lines around the bad one", n)
			}
			if log.Lines != 3 {
				t.Errorf("lines = %d, want 3", log.Lines)
			}
		})
	}
}

func TestParseEmptyAndBlankLines(t *testing.T) {
	log := mustParse(t, "\n\n   \n\t\n\r\n")
	if log.Malformed != 0 || len(log.Runs) != 0 {
		t.Errorf("malformed=%d runs=%d, want nothing", log.Malformed, len(log.Runs))
	}
	log = mustParse(t, "")
	if log.Lines != 0 || len(log.Runs) != 0 {
		t.Errorf("empty input: %+v", log)
	}
}

func TestParseNoiseIsNotMalformed(t *testing.T) {
	input := `=== RUN   TestX
panic: runtime error: index out of range [recovered]
goroutine 7 [running]:
raft-consensus/raft.(*Core).step(0xc000120000)
	/work/raft/core.go:120 +0x1d
created by testing.(*T).Run in goroutine 1
==================
WARNING: DATA RACE
Write at 0x00c000124000 by goroutine 8:
==================
exit status 2
FAIL	raft-consensus/raft	0.5s
? 	raft-consensus/utils	[no test files]
`
	log := mustParse(t, input)
	if log.Malformed != 0 {
		t.Errorf("malformed = %d, want 0: %+v", log.Malformed, log.Examples)
	}
}

func TestParseCRLFAndControlCharacters(t *testing.T) {
	log := mustParse(t, "22:41:07.000001 [0] hello\x1b[31m red\tx\r\n22:41:07.000002 [1] bad \xff byte\r\n")
	evs := log.Runs[0].Events
	if len(evs) != 2 {
		t.Fatalf("events = %d", len(evs))
	}
	if evs[0].Msg != `hello\x1b[31m red x` {
		t.Errorf("msg = %q: escape sequences must be shown, not obeyed", evs[0].Msg)
	}
	if evs[1].Msg != `bad \xff byte` {
		t.Errorf("msg = %q", evs[1].Msg)
	}
}

func TestParseMidnight(t *testing.T) {
	log := mustParse(t, "23:59:59.999000 [0] before midnight\n00:00:00.001000 [0] after midnight\n")
	evs := log.Runs[0].Events
	if evs[0].Msg != "before midnight" || evs[1].At-evs[0].At != 2*time.Millisecond {
		t.Errorf("events = %v at %v, %v", evs[0].Msg, evs[0].At, evs[1].At)
	}
	if evs[1].Clock() != "00:00:00.001000" {
		t.Errorf("clock = %s", evs[1].Clock())
	}
}

func TestParseSortsJitteredLines(t *testing.T) {
	tn := timeoutNowRPC(0, 1, 1)
	log := mustParse(t, lines(at("22:41:07.000200", "1", recv(tn)), at("22:41:07.000100", "0", send(tn))))
	evs := log.Runs[0].Events
	if evs[0].Kind != KindSend || evs[0].Match != 1 || evs[1].Match != 0 {
		t.Errorf("events not sorted and paired: %+v", evs)
	}
}

func TestParseReadError(t *testing.T) {
	r := iotest.TimeoutReader(bytes.NewReader([]byte("22:41:07.000001 [0] hi\n" + strings.Repeat("x", 70000))))
	log, err := Parse(r)
	if !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("err = %v, want the reader's error", err)
	}
	if log == nil || len(log.Runs) != 1 {
		t.Errorf("log = %+v: what was read before the error must be kept", log)
	}
}

func TestParseManyLongLines(t *testing.T) {
	// Lines longer than the reader's buffer but under the limit are kept.
	msg := strings.Repeat("y", 200_000)
	log := mustParse(t, "22:41:07.000001 [0] "+msg+"\n22:41:07.000002 [0] short\n")
	if evs := log.Runs[0].Events; len(evs) != 2 || len(evs[0].Msg) != len(msg) {
		t.Errorf("long line not kept whole")
	}
}
