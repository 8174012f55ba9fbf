package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds the program into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "raft-consensus")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBinary runs bin with stdin and a deadline, and returns its outputs
// and exit code.
func runBinary(t *testing.T, bin, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code <= 0 {
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	noPanic(t, out.String(), errOut.String())
	return out.String(), errOut.String(), code
}

func noPanic(t *testing.T, outputs ...string) {
	t.Helper()
	for _, s := range outputs {
		if strings.Contains(s, "panic") || strings.Contains(s, "goroutine ") {
			t.Fatalf("output shows a panic:\n%s", s)
		}
	}
}

// TestEndToEnd builds the binary and drives it as a user would: a script
// on a pipe, -script, -h, bench, trace flags, Ctrl-C.
func TestEndToEnd(t *testing.T) {
	bin := buildBinary(t)

	t.Run("pipe", func(t *testing.T) {
		trace := filepath.Join(t.TempDir(), "trace.txt")
		script := strings.Join([]string{
			"# a script on stdin",
			"set x 5",
			"1 3",
			"",
			"set x 5",
			`set greeting "hello world"`,
			"get x",
			"3 greeting",
			"get nothing",
			"crash 0",
			"get x",
			"restart 0",
			"leader",
			"frobnicate",
			"crash 9",
			"8",
			"1 1",
			"get x", // the last line has no newline
		}, "\n")
		stdout, stderr, code := runBinary(t, bin, script, "-memory", "-keep-going", "-timeout", "2s", "-trace", trace, "-debug")
		if code != 0 {
			t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		menu := indexOfPrefix(lines, "  1  create <nodes>")
		if menu < 0 || strings.Count(stdout, "  1  create <nodes>") != 1 {
			t.Fatalf("the menu is not printed once:\n%s", stdout)
		}
		want := []string{
			`^error: no cluster yet — create one with "create <nodes>", e.g. "create 3" \(or "1 3"\)$`,
			`^ok: cluster of 3 nodes created \(nodes 0–2, storage in memory\)$`,
			`^ok: x = 5 \(leader [0-2]\)$`,
			`^ok: greeting = "hello world" \(leader [0-2]\)$`,
			`^x = 5$`,
			`^greeting = "hello world"$`,
			`^nothing: not found$`,
			`^node 0 crashed$`,
			`^x = 5$`,
			`^node 0 restarted$`,
			`^leader: node [0-2] \(term \d+\)$`,
			`^error: unknown command frobnicate — type "help" for the menu$`,
			`^error: node 9 does not exist \(nodes 0–2\)$`,
			`^cluster shut down$`,
			`^ok: cluster of 1 node created \(nodes 0, storage in memory\)$`,
			`^x: not found$`,
			`^cluster shut down$`, // EOF shuts the cluster down
		}
		shown := 0
		for _, c := range commands {
			if c.run != nil {
				shown++
			}
		}
		got := lines[menu+shown:]
		if len(got) != len(want) {
			t.Fatalf("got %d lines after the menu, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
		}
		for i := range want {
			if !regexp.MustCompile(want[i]).MatchString(got[i]) {
				t.Errorf("line %d: got %q, want %q", i, got[i], want[i])
			}
		}
		if strings.Contains(stdout, prompt) {
			t.Errorf("a prompt was written although stdin is not a terminal")
		}
		traceLine := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{6} \[(\d+|sim)\] \S`)
		fromFile, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		tl := strings.Split(strings.TrimSpace(stderr), "\n")
		if len(tl) < 10 || !strings.Contains(stderr, "[0] fault: crash") {
			t.Errorf("stderr (-debug): too few trace lines or no crash event:\n%.500s", stderr)
		}
		for _, l := range tl {
			if !traceLine.MatchString(l) {
				t.Errorf("stderr (-debug): %q is not a trace line", l)
				break
			}
		}
		// The -trace file holds the same events as JSON lines, for tools.
		jl := strings.Split(strings.TrimSpace(string(fromFile)), "\n")
		crashes := 0
		for _, l := range jl {
			var e struct {
				Time, Node, Kind, Detail, Text string
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil || e.Time == "" || e.Node == "" || e.Kind == "" || e.Text == "" {
				t.Errorf("-trace file: %q is not a JSON trace line (%v)", l, err)
				break
			}
			if e.Node == "0" && e.Kind == "fault" && e.Detail == "crash" {
				crashes++
			}
		}
		if len(jl) != len(tl) || crashes != 1 {
			t.Errorf("-trace file: %d events (stderr: %d), %d crash events of node 0", len(jl), len(tl), crashes)
		}
	})

	t.Run("script then exit when stdin is not a terminal", func(t *testing.T) {
		script := filepath.Join(t.TempDir(), "cmds.txt")
		os.WriteFile(script, []byte("set a 1\r\nget a\n"), 0o644)
		stdout, _, code := runBinary(t, bin, "get a\n", "-memory", "-nodes", "2", "-script", script)
		if code != 0 {
			t.Fatalf("exit code %d:\n%s", code, stdout)
		}
		tail := stdout[strings.Index(stdout, "ok: cluster of 2 nodes created"):]
		want := "ok: cluster of 2 nodes created (nodes 0, 1, storage in memory)\n" +
			prompt + "set a 1\n"
		if !strings.HasPrefix(tail, want) || !strings.HasSuffix(tail, prompt+"get a\na = 1\ncluster shut down\n") {
			t.Errorf("got:\n%s", tail)
		}
	})

	t.Run("a failing line stops a pipe or a script", func(t *testing.T) {
		stdout, _, code := runBinary(t, bin, "1 1\nset x 1\nfrobnicate\nget x\n", "-memory")
		if code != 1 || !strings.Contains(stdout, "error: stopping at line 3, which failed (-keep-going runs every line)") || strings.Contains(stdout, "\nx = 1\n") {
			t.Errorf("pipe: exit code %d:\n%s", code, stdout)
		}
		script := filepath.Join(t.TempDir(), "cmds.txt")
		os.WriteFile(script, []byte("1 1\ncrash 5\nset x 1\n"), 0o644)
		stdout, _, code = runBinary(t, bin, "", "-memory", "-script", script)
		if code != 1 || !strings.Contains(stdout, "stopping at line 2") || strings.Contains(stdout, "ok: x = 1") {
			t.Errorf("script: exit code %d:\n%s", code, stdout)
		}
		stdout, _, code = runBinary(t, bin, "", "-memory", "-keep-going", "-script", script)
		if code != 0 || !strings.Contains(stdout, "ok: x = 1") {
			t.Errorf("script with -keep-going: exit code %d:\n%s", code, stdout)
		}
	})

	t.Run("a data dir that is a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, []byte("x"), 0o644)
		_, stderr, code := runBinary(t, bin, "", "-data-dir", file)
		if code != 2 || !strings.Contains(stderr, "is a file, not a directory") {
			t.Errorf("exit code %d, stderr %q", code, stderr)
		}
	})

	t.Run("flags", func(t *testing.T) {
		_, stderr, code := runBinary(t, bin, "", "-h")
		if code != 0 {
			t.Errorf("-h: exit code %d", code)
		}
		for _, flag := range []string{"-nodes N", "-data-dir DIR", "-memory", "-sim", "-seed S", "-timeout D", "-debug", "-trace FILE", "-trace-format F", "-script FILE", "-web ADDR", "-keep-going", "-h"} {
			if !strings.Contains(stderr, "  "+flag+" ") {
				t.Errorf("-h does not explain %s:\n%s", flag, stderr)
			}
		}
		for _, args := range [][]string{{"-nodes", "17"}, {"-nodes", "0"}, {"-timeout", "0"}, {"-memory", "-data-dir", "x"}, {"extra"}, {"-bogus"}, {"-script", "/nonexistent"}, {"-web", "0.0.0.0:8080"}, {"-seed", "3"}, {"-sim", "-data-dir", "x"}, {"-trace-format", "xml"}} {
			if _, stderr, code := runBinary(t, bin, "", args...); code != 2 || !strings.Contains(stderr, "error") && !strings.Contains(stderr, "flag provided but not defined") {
				t.Errorf("%q: exit code %d, stderr %q", args, code, stderr)
			}
		}
		if _, stderr, code := runBinary(t, bin, "", "bench", "-bogus"); code != 2 || !strings.Contains(stderr, "bogus") {
			t.Errorf("bench -bogus: exit code %d, stderr %q", code, stderr)
		}
		stdout, stderr, code := runBinary(t, bin, "", "bench", "-duration", "300ms", "-warmup", "100ms", "-clients", "4", "-failovers", "1")
		if code != 0 || strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, `"impl":"raft-consensus"`) || !strings.Contains(stdout, `"ops_per_sec":`) {
			t.Errorf("bench: exit code %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})

	t.Run("virtual time prints the same bytes twice", func(t *testing.T) {
		script := filepath.Join(t.TempDir(), "s.txt")
		// No play: it is paced by the wall clock (save turns it into run).
		os.WriteFile(script, []byte("create 3\nset x 1\nstep 20\ncrash 0\nget x\nlog\nrun 200ms\nstatus\ntimers\ndiagram 30 all\n"), 0o644)
		a, _, codeA := runBinary(t, bin, "", "-sim", "-seed", "11", "-script", script)
		b, _, codeB := runBinary(t, bin, "", "-sim", "-seed", "11", "-script", script)
		if codeA != 0 || codeB != 0 {
			t.Fatalf("exit codes %d, %d:\n%s", codeA, codeB, a)
		}
		if a != b || !strings.Contains(a, "x = 1") {
			t.Fatalf("two runs of the same seed and script differ:\n%s\n----\n%s", a, b)
		}
	})

	t.Run("the tour from a pipe", func(t *testing.T) {
		stdout, _, code := runBinary(t, bin, strings.Repeat("tour\n", 9), "-sim", "-seed", "3")
		if code != 0 || strings.Count(stdout, "── Tour, step") != 9 || !strings.Contains(stdout, "the tour is over") {
			t.Fatalf("exit code %d:\n%s", code, stdout)
		}
	})

	t.Run("sighup cleans up the temporary storage", func(t *testing.T) {
		tmp := t.TempDir()
		cmd := exec.Command(bin, "-nodes", "3")
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		stdin, _ := cmd.StdinPipe()
		stdoutPipe, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		sc := bufio.NewScanner(stdoutPipe)
		for sc.Scan() && !strings.HasPrefix(sc.Text(), "ok: cluster of 3 nodes created") {
		}
		if dirs, _ := filepath.Glob(filepath.Join(tmp, "raft-repl-*")); len(dirs) != 1 {
			t.Fatalf("temporary storage %v, want one directory", dirs)
		}
		cmd.Process.Signal(syscall.SIGHUP)
		for sc.Scan() {
		}
		cmd.Wait()
		if dirs, _ := filepath.Glob(filepath.Join(tmp, "raft-repl-*")); len(dirs) != 0 {
			t.Fatalf("after SIGHUP the temporary storage is still there: %v", dirs)
		}
	})

	t.Run("ctrl-c", func(t *testing.T) {
		cmd := exec.Command(bin, "-memory", "-nodes", "3", "-timeout", "60s", "-keep-going", "-debug")
		// -debug's trace lines on stderr say when the client's request is out.
		requested := make(chan struct{})
		stderrPipe, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			sc := bufio.NewScanner(stderrPipe)
			once := false
			for sc.Scan() {
				if !once && strings.Contains(sc.Text(), "request set y=2") {
					once = true
					close(requested)
				}
			}
		}()
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdoutPipe, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		defer timer.Stop()
		lines := make(chan string, 100)
		var all strings.Builder
		go func() {
			sc := bufio.NewScanner(stdoutPipe)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		waitFor := func(prefix string) {
			t.Helper()
			for l := range lines {
				all.WriteString(l + "\n")
				if strings.HasPrefix(l, prefix) {
					return
				}
			}
			t.Fatalf("no line starting with %q:\n%s", prefix, all.String())
		}
		waitFor("ok: cluster of 3 nodes created")
		io.WriteString(stdin, "set x 1\n")
		waitFor("ok: x = 1")
		// Ctrl-C during a command cuts that command short; the session goes on.
		io.WriteString(stdin, "crash 0\ncrash 1\nset y 2\n")
		waitFor("node 1 crashed")
		// The set waits for a quorum that never comes (60 s).
		<-requested
		start := time.Now()
		cmd.Process.Signal(syscall.SIGINT)
		waitFor("error: interrupted: the outcome of the set is unknown")
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the interrupted set took %v", d)
		}
		io.WriteString(stdin, "restart 0\nget x\n")
		waitFor("x = 1")
		cmd.Process.Signal(syscall.SIGINT)
		waitFor("interrupted: shutting down")
		for l := range lines {
			all.WriteString(l + "\n")
		}
		err = cmd.Wait()
		stdin.Close()
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("exit code %d after Ctrl-C (%v):\n%s", code, err, all.String())
		}
		noPanic(t, all.String())
	})
}

func indexOfPrefix(lines []string, prefix string) int {
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	return -1
}
