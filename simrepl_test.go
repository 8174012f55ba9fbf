package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
)

// newSimREPL returns a REPL in virtual time writing to a buffer.
func newSimREPL(t *testing.T, seed int64) (*REPL, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	r := NewREPL(&out, Options{Sim: true, Seed: seed, Timeout: 3 * time.Second})
	t.Cleanup(func() { r.Close() })
	return r, &out
}

// simSession exercises every command that works in virtual time.
const simSession = `create 5
leader
set x 1
set y "two words"
step 12
timers
log
crash 0
get x
partition 0 1 | 2 3 4
set x 2
get x 1 stale
get x
heal
run 700ms
log 2
drop next 1 2
run 100ms
network delay 5ms
set z 3
network reset
add 5
transfer 5
remove 1
snapshot 2
restart 0
run 1s
status
log
check
`

// TestSimIsDeterministic: the same seed and commands print the same
// bytes; another seed prints something else.
func TestSimIsDeterministic(t *testing.T) {
	defer leaktest.Check(t)()
	run := func(seed int64) string {
		r, out := newSimREPL(t, seed)
		r.Serve(strings.NewReader(simSession))
		r.Close()
		return out.String()
	}
	a, b := run(42), run(42)
	if a != b {
		t.Fatalf("two runs of seed 42 differ:\n%s", firstDifferentLine(a, b))
	}
	for _, want := range []string{"leader: node", "ok: x = 1", "STALE READ at node 1 (", "): x = 1 — read without ReadIndex", "\nx = 2\n", "node 5 added (voter)",
		"ok: leader is now node 5", "node 1 removed", "ok: node 2 snapshot through", ": linearizable"} {
		if !strings.Contains(a, want) {
			t.Errorf("the session does not say %q:\n%s", want, a)
		}
	}
	// The tables fit an 80-column terminal.
	inTable := false
	for _, line := range strings.Split(a, "\n") {
		if strings.HasPrefix(line, "NODE ") {
			inTable = true
		}
		if inTable && utf8.RuneCountInString(line) > 80 {
			t.Errorf("a table line is %d columns wide: %q", utf8.RuneCountInString(line), line)
		}
		if strings.HasPrefix(line, "network:") || strings.HasPrefix(line, "time ") {
			inTable = false
		}
	}
	if strings.Contains(a, "map[") {
		t.Errorf("a Go map in the output (partitions print as typed):\n%s", a)
	}
	if strings.Contains(a, "error: internal") {
		t.Fatalf("an internal error:\n%s", a)
	}
	if c := run(43); c == a {
		t.Fatal("seeds 42 and 43 printed the same session")
	}
}

// TestSimStaleReadShowsWhyReadIndexMatters: a leader cut off from the
// majority still answers the old value from its state machine; the
// linearizable read of the new value goes through the majority's leader.
func TestSimStaleReadShowsWhyReadIndexMatters(t *testing.T) {
	defer leaktest.Check(t)()
	r, out := newSimREPL(t, 3)
	run1(r, out, "create 3")
	leader := leaderOf(t, run1(r, out, "leader"))
	run1(r, out, "set x old")
	others := []string{}
	for _, id := range []string{"0", "1", "2"} {
		if id != leader {
			others = append(others, id)
		}
	}
	if got := run1(r, out, "partition "+leader+" | "+strings.Join(others, " ")); !strings.HasPrefix(got, "ok: partitioned") {
		t.Fatalf("partition: %s", got)
	}
	if got := run1(r, out, "set x new"); !strings.HasPrefix(got, "ok: x = new") {
		t.Fatalf("set in the majority: %s", got)
	}
	if got := run1(r, out, "get x "+leader+" stale"); !strings.Contains(got, "STALE READ") || !strings.Contains(got, "x = old") {
		t.Fatalf("stale read at the old leader: %s", got)
	}
	if got := run1(r, out, "get x "+leader); !strings.HasPrefix(got, "error:") {
		t.Fatalf("a linearizable read at the cut-off leader answered: %s", got)
	}
	if got := run1(r, out, "get x"); got != "x = new\n" {
		t.Fatalf("linearizable read: %s", got)
	}
}

func leaderOf(t *testing.T, line string) string {
	t.Helper()
	m := regexp.MustCompile(`leader: node (\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no leader in %q", line)
	}
	return m[1]
}

// syncBuffer is a bytes.Buffer safe for the REPL's writers (the player
// prints from its goroutine) and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// take returns what was written and forgets it.
func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

// TestSimSaveReplays: a session with play and pause, saved, replays to the
// same state: play's time becomes "run" lines.
func TestSimSaveReplays(t *testing.T) {
	defer leaktest.Check(t)()
	file := filepath.Join(t.TempDir(), "session.txt")
	var sout syncBuffer
	r := NewREPL(&sout, Options{Sim: true, Seed: 9, Timeout: 3 * time.Second})
	defer r.Close()
	run1 := func(_ *REPL, _ *bytes.Buffer, line string) string {
		sout.take()
		r.Exec(line)
		return sout.take()
	}
	var out *bytes.Buffer
	for _, line := range []string{"create 3", "set a 1"} {
		run1(r, out, line)
	}
	if got := run1(r, out, "play 20"); !strings.HasPrefix(got, "ok: playing") {
		t.Fatalf("play: %s", got)
	}
	start := r.sessionNow()
	waitFor(t, 10*time.Second, func() bool { return r.sessionNow() > start+300*time.Millisecond })
	run1(r, out, "crash 1")
	waitFor(t, 10*time.Second, func() bool { return r.sessionNow() > start+900*time.Millisecond })
	run1(r, out, "set b 2")
	run1(r, out, "pause")
	run1(r, out, "run 250ms")
	want := run1(r, out, "status") + run1(r, out, "log")
	if got := run1(r, out, "save "+file); !strings.HasPrefix(got, "ok: saved") {
		t.Fatalf("save: %s", got)
	}
	saved, _ := os.ReadFile(file)
	if !regexp.MustCompile(`(?m)^seed 9\ncreate 3\nset a 1\nrun [0-9.]+m?s\ncrash 1\nrun `).Match(saved) {
		t.Fatalf("saved session:\n%s", saved)
	}
	r.Close()

	r2, out2 := newSimREPL(t, 1) // the file's seed line sets the seed
	r2.Serve(strings.NewReader(string(saved)))
	replay := out2.String()
	if !strings.HasSuffix(replay, want) {
		t.Fatalf("the replay ends with\n%s\nwant\n%s", lastLines(replay, 20), want)
	}
}

// TestSimCommandsOnTheWallClock: the virtual-time commands say what they
// need on the wall-clock REPL.
func TestSimCommandsOnTheWallClock(t *testing.T) {
	defer leaktest.Check(t)()
	r, out := newTestREPL(t, time.Second)
	defer r.Close()
	run1(r, out, "create 1")
	for _, line := range []string{"run 1s", "step", "play", "pause", "timers", "drop next 0 0", "save f", "seed 3"} {
		if got := run1(r, out, line); !strings.Contains(got, "works in virtual time only") {
			t.Errorf("%s: %q", line, got)
		}
	}
}

// TestSimBadInput: bad arguments of the virtual-time commands get one
// error line and change nothing.
func TestSimBadInput(t *testing.T) {
	defer leaktest.Check(t)()
	r, out := newSimREPL(t, 1)
	run1(r, out, "create 3")
	for line, want := range map[string]string{
		"run 0s":                    "run takes a duration",
		"run forever":               "run takes a duration",
		"run 11m":                   "run takes a duration",
		"step 0":                    "step takes a number",
		"step 1001":                 "step takes a number",
		"play 0":                    "play takes a speed",
		"play fast":                 "play takes a speed",
		"drop next 0 0":             "two different nodes",
		"drop next 0 9":             "node 9 does not exist",
		"drop some 0 1":             "usage: drop next",
		"seed x":                    "a seed is a whole number",
		"seed 4":                    "shut it down first",
		"log 1..x":                  "not a range",
		"log 5..3":                  "not a range",
		"log 9":                     "node 9 does not exist",
		"get x stale":               "a stale read names its node",
		"get x 1 fresh":             "a stale read names its node",
		"partition 0 1 | 1 2 | 2 0": "cuts no link",
	} {
		before := r.sessionNow()
		got := run1(r, out, line)
		if !strings.HasPrefix(got, "error: ") || strings.Count(got, "\n") != 1 || !strings.Contains(got, want) {
			t.Errorf("%s: %q, want one error line with %q", line, got, want)
		}
		if r.sessionNow() != before {
			t.Errorf("%s: time moved", line)
		}
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func firstDifferentLine(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return "line " + la[i] + "\nvs   " + lb[i]
		}
	}
	return "one is a prefix of the other"
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// TestDiagramKeepsTheSession: after a crash, an election and ten idle
// minutes of heartbeats, the diagram still shows the election.
func TestDiagramKeepsTheSession(t *testing.T) {
	defer leaktest.Check(t)()
	r, out := newSimREPL(t, 4)
	run1(r, out, "create 3")
	old := leaderOf(t, run1(r, out, "leader"))
	run1(r, out, "crash "+old)
	newLeader := leaderOf(t, run1(r, out, "leader"))
	for range 10 {
		run1(r, out, "run 1m")
	}
	recs, note := r.Trace.Records()
	crashAt, electedAt := -1, -1
	for i, rec := range recs {
		switch {
		case rec.Event.Kind == core.EventFault && rec.Node == old && strings.HasPrefix(rec.Event.Detail, "crash"):
			crashAt = i
		case rec.Event.Kind == core.EventLeader && rec.Node == newLeader && crashAt >= 0 && electedAt < 0:
			electedAt = i
		}
	}
	if crashAt < 0 || electedAt < 0 {
		t.Fatalf("after ten idle minutes the session lost the crash (%d) or the election (%d); %d records kept, %s", crashAt, electedAt, len(recs), note)
	}
	if !strings.Contains(note, "heartbeats: the latest") {
		t.Fatalf("no note on the heartbeats left out: %q", note)
	}
	file := filepath.Join(t.TempDir(), "d.html")
	if got := run1(r, out, "diagram html "+file); !strings.Contains(got, "heartbeats: the latest 2000 of") {
		t.Fatalf("diagram html: %s", got)
	}
	page, _ := os.ReadFile(file)
	if !bytes.Contains(page, []byte("crash")) {
		t.Fatal("the page does not show the crash")
	}
}

// TestWebCommand: web serves on loopback only, once; the page's lines are
// echoed with web> and answered; the page cannot end the session.
func TestWebCommand(t *testing.T) {
	defer leaktest.Check(t)()
	r, out := newSimREPL(t, 2)
	defer r.Close()
	if got := run1(r, out, "web 0.0.0.0:8080"); !strings.Contains(got, "loopback only") {
		t.Fatalf("web on 0.0.0.0: %q", got)
	}
	if got := run1(r, out, "web 127.0.0.1:0"); !strings.HasPrefix(got, "ok: the live page is at http://127.0.0.1:") {
		t.Fatalf("web: %q", got)
	}
	if got := run1(r, out, "web 127.0.0.1:0"); !strings.Contains(got, "already served") {
		t.Fatalf("web twice: %q", got)
	}
	b := webBackend{r}
	if st := b.State(-1); st.Cluster || !st.Sim {
		t.Fatalf("state before a cluster: %+v", st)
	}
	out.Reset()
	if got := b.Exec("create 3"); !strings.HasPrefix(got, "ok: cluster of 3 nodes created") {
		t.Fatalf("exec from the page: %q", got)
	}
	if !strings.HasPrefix(out.String(), "web> create 3\nok: cluster of 3 nodes created") {
		t.Fatalf("the REPL shows %q", out.String())
	}
	b.Exec("set a 1")
	st := b.State(-1)
	if !st.Cluster || len(st.Nodes) != 3 || st.Nodes[0].Timer == nil || len(st.Events) == 0 {
		t.Fatalf("state: %+v", st)
	}
	for _, n := range st.Nodes {
		if n.Alive && (len(n.Log) == 0 || n.Log[len(n.Log)-1].Label != "a=1") && n.LastIndex == 3 {
			t.Fatalf("node %d's log on the page: %+v", n.ID, n.Log)
		}
	}
	if got := b.Exec("exit"); !strings.Contains(got, "for the REPL's own prompt") {
		t.Fatalf("exit from the page: %q", got)
	}
	for _, line := range []string{"save /tmp/x", "history /tmp/x", "check /tmp/x.html", "diagram html /tmp/x.html"} {
		if got := b.Exec(line); !strings.Contains(got, "writes a file") {
			t.Errorf("%s from the page: %q", line, got)
		}
	}
	out.Reset()
	b.Exec("get \x1b[2Jx")
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("the page's escape sequence reached the terminal: %q", out.String())
	}
	if r.Cluster() == nil {
		t.Fatal("the page's exit ended the session")
	}
}

// TestSimSaveReplaysPlayExactly: commands typed while the cluster plays,
// refused ones among them, are saved so that the replay ends in the same
// state, every time.
func TestSimSaveReplaysPlayExactly(t *testing.T) {
	defer leaktest.Check(t)()
	for attempt := range 3 {
		file := filepath.Join(t.TempDir(), "played.txt")
		var sout syncBuffer
		r := NewREPL(&sout, Options{Sim: true, Seed: int64(30 + attempt), Timeout: 3 * time.Second})
		do := func(line string) string { sout.take(); r.Exec(line); return sout.take() }
		do("create 3")
		do("play 100")
		for _, line := range []string{"crash 0", "set a 1", "run 5s", "step", "crash 7", "restart 0", "set b 2", "get a"} {
			do(line)
		}
		waitFor(t, 20*time.Second, func() bool { return r.sessionNow() > 3*time.Second })
		do("pause")
		want := do("status") + do("log")
		saved := do("save " + file)
		r.Close()
		if !strings.Contains(saved, "replay with: go run . -sim -script") {
			t.Fatalf("save: %q", saved)
		}
		text, _ := os.ReadFile(file)
		if strings.Contains(string(text), "run 5s") || strings.Contains(string(text), "\nstep\n") || strings.Contains(string(text), "crash 7") {
			t.Fatalf("refused commands were saved:\n%s", text)
		}
		var rout syncBuffer
		r2 := NewREPL(&rout, Options{Sim: true, Seed: 1, Timeout: 3 * time.Second})
		exited, failed := r2.serveLines(newPlainReader(strings.NewReader(string(text)), nil, ""), false, true)
		r2.Close()
		if exited || failed {
			t.Fatalf("the replay stopped:\n%s\n%s", text, lastLines(rout.String(), 10))
		}
		if got := rout.String(); !strings.HasSuffix(got, want) {
			t.Fatalf("attempt %d: the replay ends with\n%s\nwant\n%s\nsaved:\n%s", attempt, lastLines(got, 14), want, text)
		}
	}
}

// TestSavedRunsAreReplayable: a long stretch of play becomes runs no
// longer than a run may be.
func TestSavedRunsAreReplayable(t *testing.T) {
	got := runLines(maxRun*2 + 3*time.Second)
	want := []string{"run " + maxRun.String(), "run " + maxRun.String(), "run 3s"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("runLines = %q, want %q", got, want)
	}
}

// TestLeavingNotJoining: a removal that could not commit (no majority)
// shows the node as leaving, and the error says it may still commit.
func TestLeavingNotJoining(t *testing.T) {
	defer leaktest.Check(t)()
	r, out := newSimREPL(t, 8)
	run1(r, out, "create 3")
	leader := leaderOf(t, run1(r, out, "leader"))
	var others []string
	for _, id := range []string{"0", "1", "2"} {
		if id != leader {
			others = append(others, id)
		}
	}
	run1(r, out, "crash "+others[0])
	run1(r, out, "crash "+others[1])
	got := run1(r, out, "remove "+others[0])
	if !strings.Contains(got, "the removal may still commit once a majority is up") {
		t.Fatalf("remove without a majority: %q", got)
	}
	status := run1(r, out, "status")
	if !regexp.MustCompile(`(?m)^ +` + others[0] + `  .*leaving +crashed$`).MatchString(status) {
		t.Fatalf("status does not show node %s as leaving:\n%s", others[0], status)
	}
	run1(r, out, "restart "+others[1])
	run1(r, out, "run 1s")
	if ids := r.Cluster().IDs(); slices.Contains(ids, mustAtoi(t, others[0])) {
		t.Fatalf("the removal committed once a majority was up, but node %s is still listed: %v", others[0], ids)
	}
}

// TestLogViewEdgesAndSmallMessages: the log view's edges and the small
// inconsistencies a new user met.
func TestLogViewEdgesAndSmallMessages(t *testing.T) {
	defer leaktest.Check(t)()
	r, out := newSimREPL(t, 2)
	run1(r, out, "create 3")
	run1(r, out, "set a 1")
	l := leaderOf(t, run1(r, out, "leader"))
	other := "0"
	if l == "0" {
		other = "1"
	}
	// The leader has applied the write: the log view and the snapshots
	// below are the leader's (a follower may not know the commit yet).
	if got := run1(r, out, "log "+l); !strings.Contains(got, "node "+l+" (leader, term ") || !strings.Contains(got, "commit 3, applied 3, last 3") {
		t.Errorf("log %s:\n got %q\nwant the leader's log, commit 3, applied 3, last 3", l, got)
	}
	for _, step := range []struct{ line, want string }{
		{"log 9..12", `error: the logs end at index 3 — e.g. "log 1..3"`},
		{"log " + l + " 9", "error: node " + l + " holds indexes 1..3, none of the range asked for"},
		{"cut " + l + " " + other, "ok: cut " + l + " → " + other},
		{"cut " + l + " " + other, "error: the link " + l + " → " + other + " is already cut"},
		{"snapshot " + l, "ok: node " + l + " snapshot through index 3"},
		{"snapshot " + l, "error: node " + l + " has applied nothing since its last snapshot"},
		{"snapshot", "note: node " + l + " has applied nothing since its last snapshot — no new snapshot"},
		{"set " + strings.Repeat("k", 100) + " 1", "ok: kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk… (100 bytes in all) = 1"},
		{"crash 0", "node 0 crashed"},
		{"crash 1", "node 1 crashed"},
		{"crash 2", "node 2 crashed"},
		{"log", "error: every node is crashed: their logs are on their disks"},
	} {
		if got := run1(r, out, step.line); !strings.Contains(got, step.want) {
			t.Errorf("%.30s:\n got %q\nwant %q", step.line, got, step.want)
		}
	}
}
