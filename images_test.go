package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/trace"
	"raft-consensus/utils/diagram"
)

// The README's pictures come from real runs (utils/make-images.sh). These
// tests run the same sources and render them as the script does, minus the
// browser, so that a change that breaks a picture's source fails here
// rather than leaving a stale picture behind.

// TestImageSourceREPLSession: images/diagram-repl.png's session still runs
// without an error, and its trace renders with every lane and fault.
func TestImageSourceREPLSession(t *testing.T) {
	defer leaktest.CheckTimeout(t, 15*time.Second)()
	session, err := os.ReadFile("utils/testdata/session.txt")
	if err != nil {
		t.Fatal(err)
	}
	var traced, out bytes.Buffer
	r := NewREPL(&out, Options{Memory: true, Timeout: 5 * time.Second,
		Tracers: []func(func() time.Time) trace.Tracer{func(now func() time.Time) trace.Tracer { return trace.NewJSONTracer(&traced, now) }}})
	r.Serve(bytes.NewReader(session)) // its write in a minority fails: that is the story
	r.Close()
	for _, want := range []string{"ok: cluster of 5 nodes created", "ok: partitioned 0 1 | 2 3 4", "node 4", "ok: z = 4"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("the session behind images/diagram-repl.png no longer says %q:\n%s", want, out.String())
		}
	}
	log, err := diagram.Parse(&traced)
	if err != nil {
		t.Fatal(err)
	}
	run := log.Run("")
	if run == nil {
		t.Fatal("the session's trace holds no events")
	}
	var page bytes.Buffer
	if err := diagram.WriteHTML(&page, []*diagram.Run{run}, diagram.HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"crash", "disconnect", "partition", "heal", "reconnect", "restart"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("the rendered session shows no %q", want)
		}
	}
	if lanes := run.Nodes(); len(lanes) < 5 {
		t.Errorf("the rendered session has lanes %v, want the 5 nodes", lanes)
	}
}

// TestImageSourceTracedTest: images/diagram-test.png's and
// images/table-example.png's test still traces what they show.
func TestImageSourceTracedTest(t *testing.T) {
	cmd := exec.Command("go", "test", "-count=1", "-v", "-run", "^TestTryCommitToDCLeader$", "./raft/")
	cmd.Env = append(os.Environ(), "RAFT_DEBUG=json")
	logText, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the traced test fails: %v\n%s", err, lastLines(string(logText), 20))
	}
	if !bytes.Contains(logText, []byte(`"text":"fault: reconnect"`)) {
		t.Fatal("the traced test no longer reconnects the old leader (make-images.sh starts its table there)")
	}
	log, err := diagram.Parse(bytes.NewReader(logText))
	if err != nil {
		t.Fatal(err)
	}
	run := log.Run("TestTryCommitToDCLeader")
	if run == nil || len(run.Events) == 0 {
		t.Fatal("no events of TestTryCommitToDCLeader in its trace")
	}
	page := filepath.Join(t.TempDir(), "test.html")
	f, _ := os.Create(page)
	defer f.Close()
	if err := diagram.WriteHTML(f, []*diagram.Run{run}, diagram.HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
}
