package diagram

import (
	"strings"
	"testing"
)

func TestANSIToHTML(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain <b> & text", "plain &lt;b&gt; &amp; text"},
		{"\x1b[32mgreen\x1b[0m after", `<span class="" style="color:#98c379">green</span> after`},
		{"\x1b[91;1mbold red\x1b[0m", `<span class="b" style="color:#ff7b86">bold red</span>`},
		{"\x1b[41;97mwhite on red\x1b[0m", `<span class="" style="color:#ffffff;background:#e06c75">white on red</span>`},
		{"\x1b[2Kcleared", "cleared"},      // not SGR: dropped
		{"\x1b[31", ""},                    // truncated sequence
		{"a\x1bb", "ab"},                   // lone ESC
		{"\x1b[mreset only", "reset only"}, // empty parameter means 0
		{"\x1b[1;;33mx\x1b[m", `<span class="" style="color:#e5c07b">x</span>`}, // the empty parameter resets bold
	}
	for _, c := range cases {
		if got := ansiToHTML(c.in); got != c.want {
			t.Errorf("ansiToHTML(%q)\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestWriteTerminalHTML(t *testing.T) {
	log := parseFile(t, "small.jsonl")
	table := Table(log.Runs[0], TableOptions{Width: 100, Color: true})
	var b strings.Builder
	if err := WriteTerminalHTML(&b, table, "Test<x>", "go run ./utils -test X"); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<pre>", "Test&lt;x&gt;", "go run ./utils -test X", "node 0", `style="color:`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "\x1b") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Errorf("page has raw escapes or external references")
	}
}
