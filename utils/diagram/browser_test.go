//go:build browser

package diagram

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"raft-consensus/utils/browsertest"
)

// The browser tests load pages in headless Chromium and read the DOM after
// the page's script has run. CI installs chromium and runs
//
//	go test -tags browser ./utils/...
//
// so a missing browser is a failure, not a skip. CHROMIUM overrides the
// binary.

func chromium(t *testing.T) string { return browsertest.Chromium(t) }

// dumpDOM loads page (a file path, plus an optional #fragment) and returns
// the DOM as the page's script left it.
func dumpDOM(t *testing.T, page, fragment string) string {
	t.Helper()
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium(t),
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-quic", "--no-first-run",
		"--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--window-size=1400,900",
		"--virtual-time-budget=5000",
		"--dump-dom", "file://"+page+fragment)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	if stdout.Len() == 0 {
		t.Fatalf("chromium dumped no DOM\n%s", stderr.String())
	}
	return stdout.String()
}

func writePage(t *testing.T, runs []*Run) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "diagram.html")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(f, runs, HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBrowserRendersLanesAndArrows(t *testing.T) {
	log := parseFile(t, "small.jsonl")
	dom := dumpDOM(t, writePage(t, log.Runs), "")
	doc := parseDoc(t, dom)

	root := findAll(doc, func(n *html.Node) bool { return n.Data == "html" })[0]
	if attr(root, "data-js") != "ready" {
		t.Fatalf("the page's script did not run to the end (no data-js=ready)")
	}
	var lanes []string
	for _, l := range findAll(doc, byClass("g", "lane")) {
		lanes = append(lanes, attr(l, "data-node"))
	}
	if got := strings.Join(lanes, " "); got != "0 1 2" {
		t.Errorf("lanes = %q, want 0 1 2", got)
	}
	arrows := findAll(doc, byClass("g", "arrow"))
	count := map[string]int{}
	for _, a := range arrows {
		for _, c := range strings.Fields(attr(a, "class")) {
			count[c]++
		}
	}
	for _, c := range []string{"rpc-RequestVote", "rpc-VoteReply", "rpc-AppendEntries", "rpc-AppendReply", "lost", "heartbeat"} {
		if count[c] == 0 {
			t.Errorf("no arrow of class %s after the script ran (classes: %v)", c, count)
		}
	}
	// The script fits the run to the window and draws the ticks itself.
	chart := findAll(doc, byClass("svg", "chart"))[0]
	if w := attr(chart, "width"); w == "" || w == "1400" {
		t.Errorf("chart width %q: the script did not fit it to the window", w)
	}
	ticks := findAll(doc, byClass("g", "ticks"))[0]
	if n := len(findAll(ticks, func(n *html.Node) bool { return n.Data == "text" })); n < 3 {
		t.Errorf("%d tick labels", n)
	}
	if !strings.Contains(dom, " across") {
		t.Errorf("zoom readout not filled in")
	}
}

func TestBrowserViewFragmentZooms(t *testing.T) {
	log := parseFile(t, "cluster5.jsonl")
	page := writePage(t, log.Runs)
	full := parseDoc(t, dumpDOM(t, page, ""))
	zoomed := parseDoc(t, dumpDOM(t, page, "#view=700-760"))
	width := func(doc *html.Node) string { return attr(findAll(doc, byClass("svg", "chart"))[0], "width") }
	if width(full) == width(zoomed) {
		t.Errorf("#view=700-760 did not zoom: width %s both times", width(full))
	}
	// Zoomed in, slices far from the view are hidden, not moved.
	hidden := 0
	for _, s := range findAll(zoomed, byClass("g", "slice")) {
		if strings.Contains(attr(s, "style"), "display: none") {
			hidden++
		}
	}
	if hidden == 0 {
		t.Errorf("no slice hidden when zoomed into 60 ms of 1.1 s")
	}
	if n := len(findAll(zoomed, byClass("g", "lane"))); n != 5 {
		t.Errorf("lanes = %d, want 5", n)
	}
}
