package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const small = "diagram/testdata/small.jsonl"

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLITablePerTest(t *testing.T) {
	in, err := os.ReadFile(small)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, string(in), "-width", "100")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "TestSmallElection — PASS") || !strings.Contains(out, "node 2") {
		t.Errorf("table missing title or columns:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colors when stdout is not a terminal")
	}
	if !strings.Contains(errOut, "skipped 3 malformed lines") || !strings.Contains(errOut, "line 33: bad timestamp") {
		t.Errorf("stderr does not report the skipped lines: %s", errOut)
	}
}

func TestCLIFileArgumentAndFlags(t *testing.T) {
	code, out, errOut := runCLI(t, "", "-test", "TestSmallElection", "-no-heartbeats", "-relative", "-color", "always", small)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "entries=0") || !strings.Contains(out, "+0.000000s") || !strings.Contains(out, "\x1b[") {
		t.Errorf("flags not applied:\n%s", out)
	}
}

func TestCLIUnknownTest(t *testing.T) {
	code, _, errOut := runCLI(t, "", "-test", "TestNope", small)
	if code != 1 || !strings.Contains(errOut, `no test "TestNope"`) || !strings.Contains(errOut, "TestSmallElection") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestCLINoEvents(t *testing.T) {
	code, _, errOut := runCLI(t, "=== RUN   TestX\n--- PASS: TestX (0.00s)\nPASS\n")
	if code != 1 || !strings.Contains(errOut, "no trace events") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestCLIUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-color", "sometimes"},
		{"a.log", "b.log"},
		{"-from", "25:00:00", small},
		{"-to", "12:00", small},
		{"-bogus"},
	} {
		if code, _, _ := runCLI(t, "", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errOut := runCLI(t, "", "/no/such/file"); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
}

func TestCLIList(t *testing.T) {
	code, out, _ := runCLI(t, "", "-list", small)
	if code != 0 || !strings.Contains(out, "TestSmallElection — PASS (0.09s): 30 events, nodes 0 1 2 sim") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestCLIWritesPages(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "d.html")
	term := filepath.Join(dir, "t.html")
	code, out, errOut := runCLI(t, "", "-no-table", "-html", page, "-table-html", term, small)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if out != "" {
		t.Errorf("-no-table still printed:\n%s", out)
	}
	b, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(b), `<g class="lane" data-node="2"`) || !strings.Contains(string(b), "3 malformed input lines were skipped") {
		t.Errorf("diagram page: %v", err)
	}
	b, err = os.ReadFile(term)
	if err != nil || !strings.Contains(string(b), "<pre>") || !strings.Contains(string(b), "$</span> go run ./utils -html ") {
		t.Errorf("terminal page: %v\n%.300s", err, b)
	}
	if code, _, _ := runCLI(t, "", "-html", filepath.Join(dir, "missing", "x.html"), small); code != 1 {
		t.Errorf("unwritable -html: exit %d, want 1", code)
	}
}

func TestCLIWindow(t *testing.T) {
	code, out, errOut := runCLI(t, "", "-from", "22:41:07.05", "-to", "22:41:07.0606", small)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "RequestVote") || !strings.Contains(out, "partition") {
		t.Errorf("window not applied:\n%s", out)
	}
	code, out, _ = runCLI(t, "", "-last", "2", small)
	if code != 0 || strings.Count(out, "22:41:07.") != 2 {
		t.Errorf("-last 2:\n%s", out)
	}
}

func TestParseClockFlag(t *testing.T) {
	cases := map[string]time.Duration{
		"":                0,
		"00:00:01":        time.Second,
		"14:03:21.7":      14*time.Hour + 3*time.Minute + 21*time.Second + 700*time.Millisecond,
		"14:03:21.000001": 14*time.Hour + 3*time.Minute + 21*time.Second + time.Microsecond,
	}
	for in, want := range cases {
		if got, err := parseClockFlag(in); err != nil || got != want {
			t.Errorf("parseClockFlag(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"1:2", "24:00:00", "12:60:00", "12:00:00.1234567", "12:00:00.-1", "a:b:c"} {
		if _, err := parseClockFlag(bad); err == nil {
			t.Errorf("parseClockFlag(%q) accepted", bad)
		}
	}
}
