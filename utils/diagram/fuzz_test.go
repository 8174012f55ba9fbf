package diagram

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary input through the parser and every renderer:
// none of them may panic, whatever the input. The fuzzer spends most of its
// time minimizing new inputs; a short -fuzzminimizetime keeps a brief run
// fuzzing:
//
//	go test ./utils/diagram -run '^$' -fuzz FuzzParse -fuzztime 30s -fuzzminimizetime 2s
func FuzzParse(f *testing.F) {
	for _, name := range []string{"small.jsonl", "cluster5.jsonl"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		// Chunks rather than whole files: the fuzzer minimizes every new
		// interesting input, and a 30 KB one takes it minutes.
		lines := strings.SplitAfter(string(b), "\n")
		for i := 0; i+4 < len(lines); i += 97 {
			f.Add([]byte(strings.Join(lines[i:i+4], "")))
		}
	}
	for _, s := range []string{
		"",
		"\n",
		"22:41:07.123456 [0] send AppendEntries 0→1 term=1 prev=0/0 entries=0 commit=0\n",
		"22:41:07.123456 [sim] fault: partition 0 1 | 2\n22:41:07.123457 [sim] fault: heal\n",
		"23:59:59.999999 [0] a\n00:00:00.000000 [0] b\n",
		`{"time":"22:41:07.123456","node":"2","msg":"term 3 → 4"}`,
		`{"Action":"output","Output":"22:41:07.123456 [1] x\n"}`,
		"=== RUN   T\n--- PASS: T (0s)\n=== CONT  T\n=== PAUSE T\n",
		"22:41:07.123456 [1] recv X 0→1\n22:41:07.123455 [0] send X 0→1\n",
		"22:41:07.123456 [0] fault: crash\n22:41:07.123456 [0] fault: restart\n",
		"\x00\xff\xfe\x1b[31m\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		log, err := Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Parse of an in-memory reader failed: %v", err)
		}
		if len(log.Examples) > maxExamples || (log.Malformed > 0) != (len(log.Examples) > 0) {
			t.Fatalf("%d malformed lines but %d examples", log.Malformed, len(log.Examples))
		}
		for _, r := range log.Runs {
			for i, e := range r.Events {
				if e.Match >= len(r.Events) || (e.Match >= 0 && r.Events[e.Match].Match != i) {
					t.Fatalf("event %d pairs with %d, which pairs back with something else", i, e.Match)
				}
				if i > 0 && e.At < r.Events[i-1].At {
					t.Fatalf("events out of order")
				}
			}
			Table(r, TableOptions{Width: 80, NoHeartbeats: true, Color: true})
			Table(r.Last(3), TableOptions{Relative: true})
		}
		if err := WriteHTML(io.Discard, log.Runs, HTMLOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}
