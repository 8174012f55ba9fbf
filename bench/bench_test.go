package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"raft-consensus/raft/kv"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-h"}, 0, "usage: bench"},
		{[]string{"-bogus"}, 2, "flag provided but not defined"},
		{[]string{"-store", "bolt"}, 2, "-store must be mem or disk"},
		{[]string{"-clients", "0"}, 2, "-clients must be >= 1"},
		{[]string{"-size", "3"}, 2, "-size must be >="},
		{[]string{"-transport", "inmem"}, 2, "-transport must be tcp"},
		{[]string{"-transport", "local"}, 2, "-transport must be tcp (or, with -groups, local)"},
		{[]string{"-nodes", "99"}, 2, "-nodes must be between"},
		{[]string{"-duration", "0s"}, 2, "-duration must be > 0"},
		{[]string{"extra"}, 2, "unexpected argument"},
		{[]string{"-groups", "-1"}, 2, "-groups must be between 0 and"},
		{[]string{"-groups", "4", "-active", "5"}, 2, "-active must be between 1 and -groups"},
		{[]string{"-groups", "4", "-processes"}, 2, "-groups does not go with -processes"},
		{[]string{"-processes", "-pipeline", "1"}, 2, "-processes does not go with -pipeline"},
		{[]string{"-groups", "4", "-nodes", "1"}, 2, "-groups needs -nodes >= 2"},
	} {
		var out, errb bytes.Buffer
		if code := Run(tc.args, &out, &errb); code != tc.code {
			t.Errorf("%v: exit code %d, want %d (stderr %q)", tc.args, code, tc.code, errb.String())
		}
		if out.Len() != 0 {
			t.Errorf("%v: wrote %q on stdout", tc.args, out.String())
		}
		if !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: stderr %q does not mention %q", tc.args, errb.String(), tc.want)
		}
	}
}

func TestCommandSize(t *testing.T) {
	for _, size := range []int{minSize, 64, 100, 1000} {
		for _, seq := range []uint64{1, 127, 128, 1 << 20} {
			cmd := makeCmd(1<<62, 15, seq, size)
			got := len(kv.EncodeCommand(cmd))
			if got < size-1 || got > size+1 {
				t.Errorf("size %d seq %d: encoded %d bytes", size, seq, got)
			}
		}
	}
}

func TestRunShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster")
	}
	for _, store := range []string{"mem", "disk"} {
		var out, errb bytes.Buffer
		code := Run([]string{"-store", store, "-clients", "4", "-duration", "300ms", "-warmup", "100ms", "-failovers", "1"}, &out, &errb)
		if code != 0 {
			t.Fatalf("%s: exit code %d: %s", store, code, errb.String())
		}
		var res Result
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("%s: %v in %q", store, err, out.String())
		}
		if res.Impl != "raft-consensus" || res.Store != store || res.Ops == 0 || res.FailoverMs == nil || len(res.FailoverAllMs) != 1 ||
			res.MaxGapMs < 0 || res.MaxGapMs > 300 || !strings.Contains(out.String(), `"leader_changes":`) {
			t.Errorf("%s: unexpected result %+v", store, res)
		}
		if strings.Count(out.String(), "\n") != 1 {
			t.Errorf("%s: want exactly one line, got %q", store, out.String())
		}
	}
}

// TestRunGroupsShort runs many groups per node briefly: the load commits,
// every replica is quiet in the idle phase, and the node leading the most
// groups is crashed twice and restarted on its storage.
func TestRunGroupsShort(t *testing.T) {
	for _, run := range [][2]string{{"mem", "local"}, {"disk", "local"}, {"mem", "tcp"}} {
		store, transport := run[0], run[1]
		var out, errb bytes.Buffer
		if code := Run([]string{"-groups", "20", "-active", "2", "-clients", "4", "-duration", "300ms", "-warmup", "100ms", "-failovers", "2", "-store", store, "-transport", transport}, &out, &errb); code != 0 {
			t.Fatalf("%s %s: exit code %d: %s", store, transport, code, errb.String())
		}
		var res GroupsResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("%v in %q", err, out.String())
		}
		if res.Impl != "raft-consensus-multi" || res.Groups != 20 || res.Active != 2 || res.Ops == 0 || res.QuietAtIdle != 60 || res.Transport != transport ||
			res.IdleHeartbeatsPerSecPair != 0 || res.RPCsPerSecPerPair == 0 || res.FailoverMs == nil || len(res.FailoverAllMs) != 2 {
			t.Errorf("%s: unexpected result %s", store, out.String())
		}
	}
}

// TestCompareSaysWhatIsMissing: without the baseline, compare.sh says what
// it needs instead of failing with a raw shell error.
func TestCompareSaysWhatIsMissing(t *testing.T) {
	cmd := exec.Command("bash", "compare.sh", filepath.Join(t.TempDir(), "out.jsonl"), "1", "-clients 1")
	nothing := filepath.Join(t.TempDir(), "nothing-here")
	cmd.Env = append(os.Environ(), "HASHICORP_BENCH="+nothing, "DRAGONBOAT_BENCH="+nothing)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit %v:\n%s", err, out)
	}
	for _, want := range []string{"the hashicorp baseline is not in", "the dragonboat baseline is not in", "no baseline to compare with"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("compare.sh does not say %q", want)
		}
	}
	if strings.Contains(string(out), "No such file") {
		t.Fatalf("compare.sh says:\n%s", out)
	}
}
