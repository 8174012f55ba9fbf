package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runSim([]string{"-seeds", "4", "-first", "10"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "4 seeds (10 to 13, faults net,disk,clock)") || !strings.Contains(out.String(), "0 failed") {
		t.Errorf("output %q", out.String())
	}
	if !strings.Contains(errOut.String(), "4/4 seeds, 0 failed") {
		t.Errorf("no progress line: %q", errOut.String())
	}
}

func TestSimCommandOneSeedWithDiagramAndTrace(t *testing.T) {
	dir := t.TempDir()
	page, traceFile := filepath.Join(dir, "s.html"), filepath.Join(dir, "s.jsonl")
	var out, errOut bytes.Buffer
	if code := runSim([]string{"-seed", "3", "-faults", "net,clock", "-html", page, "-trace", traceFile}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	if !strings.HasPrefix(out.String(), "seed 3: ") || !strings.Contains(out.String(), "faults net,clock") {
		t.Errorf("output %q", out.String())
	}
	html, err := os.ReadFile(page)
	if err != nil || !bytes.Contains(html, []byte("<svg")) || !bytes.Contains(html, []byte("simulation seed 3")) {
		t.Errorf("diagram page: %v, %d bytes", err, len(html))
	}
	events, err := os.ReadFile(traceFile)
	if err != nil || !bytes.HasPrefix(events, []byte(`{"time":"00:00:00.`)) {
		t.Errorf("trace: %v, starts %.80q", err, events)
	}
	// The same seed replays the same run.
	var again bytes.Buffer
	runSim([]string{"-seed", "3", "-faults", "net,clock"}, &again, &errOut)
	if again.String() != strings.Split(out.String(), "\n")[0]+"\n" {
		t.Errorf("replay differs:\n%s\n%s", again.String(), out.String())
	}
}

// Seed 0 is a seed like any other (the range -first 0 runs it, and a
// failure there prints "replay: go run . sim -seed 0").
func TestSimCommandSeedZero(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runSim([]string{"-seed", "0", "-faults", "none"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "seed 0: ") {
		t.Fatalf("exit %d, output %q %q", code, out.String(), errOut.String())
	}
}

func TestSimCommandBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-seeds", "0"}, {"-seeds", "x"}, {"-faults", "net,cosmic"}, {"-faults", ","}, {"-html", "x.html"}, {"extra"},
		{"-seed", "3", "-seeds", "5"}, {"-seed", "3", "-first", "9"},
		{"-seed", "3", "-html", "/nonexistent/dir/x.html"}, {"-seed", "3", "-trace", "/nonexistent/dir/x.jsonl"},
	} {
		var out, errOut bytes.Buffer
		if code := runSim(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "sim") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := runSim([]string{"-h"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "Usage: raft-consensus sim") {
		t.Errorf("-h: exit %d, %q", code, errOut.String())
	}
}
