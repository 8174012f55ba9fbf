package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"raft-consensus/raft"
	"raft-consensus/raft/cluster"
)

// fuzzSeeds are lines worth starting from; testdata/fuzz holds more.
var fuzzSeeds = []string{
	"", " ", "# comment", "1 3", "set x 5", `set greeting "hello world" 2`, `set q 'a b'`,
	`set e ""`, `"" x`, `set x "unterminated`, `set x 'open`, `"\"`, `'`, `\`, "partition 0 1 | 2",
	"partition |", "partition 0||1", "network drop 10%", "network delay 1h", "network drop NaN",
	"network drop -0", "help 2", "help help", "11 1 1", "12 -1", "crash 99999999999999999999",
	"get x -1", "1 +3", "1 0x3", "\xff\xfe", "set \x00 \x00", "set x \u00a0y", "exit", "20", "check",
}

// FuzzParseCommand: the tokenizer never panics, an error is always an
// unterminated quote, and the words it returns, quoted again, parse back
// to the same words.
func FuzzParseCommand(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := ParseCommand(line)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "unterminated ") {
				t.Fatalf("ParseCommand(%q): unexpected error %v", line, err)
			}
			return
		}
		if len(words) == 0 {
			if rest := strings.TrimLeftFunc(line, unicode.IsSpace); rest != "" && rest[0] != '#' {
				t.Fatalf("ParseCommand(%q) found no words", line)
			}
			return
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(w) + `"`
		}
		again, err := ParseCommand(strings.Join(quoted, " "))
		if err != nil || !slices.Equal(again, words) {
			t.Fatalf("ParseCommand(%q) = %q, but the quoted words parse to %q, %v", line, words, again, err)
		}
	})
}

// FuzzREPL runs arbitrary lines against a REPL without a cluster (creating
// one fails, so the fuzzer stays cheap): no input panics, and every error
// is one line that starts with "error: ".
func FuzzREPL(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, c := range commands {
		for _, name := range c.names {
			f.Add(name + " 1 2")
		}
	}
	f.Fuzz(func(t *testing.T, line string) {
		var out bytes.Buffer
		r := NewREPL(&out, Options{Memory: true, Timeout: time.Second})
		r.newCluster = func(raft.SimConfig) (cluster.Cluster, error) {
			return nil, errors.New("no clusters while fuzzing")
		}
		r.Exec(line)
		got := out.String()
		switch {
		case strings.Contains(got, "error: internal"), strings.Contains(got, "panic"), strings.Contains(got, "goroutine "):
			t.Fatalf("%q: %s", line, got)
		case got != "" && !strings.HasSuffix(got, "\n"):
			t.Fatalf("%q: output does not end a line: %q", line, got)
		case strings.HasPrefix(got, "error: ") && strings.Count(got, "\n") != 1:
			t.Fatalf("%q: an error of more than one line: %q", line, got)
		case strings.Contains(got, "error: ") && !strings.HasPrefix(got, "error: "):
			t.Fatalf("%q: an error after other output: %q", line, got)
		}
	})
}
