package diagram

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/trace"

	"golang.org/x/net/html"
)

func renderHTML(t testing.TB, runs []*Run, opt HTMLOptions) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHTML(&b, runs, opt); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func parseDoc(t testing.TB, page string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(attr(n, "class")) {
		if c == class {
			return true
		}
	}
	return false
}

// findAll returns the elements under n for which match is true.
func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func byClass(tag, class string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == tag && hasClass(n, class) }
}

func TestHTMLStructure(t *testing.T) {
	log := parseFile(t, "cluster5.jsonl")
	r := log.Run("TestPartitionedLeaderRecovers")
	page := renderHTML(t, []*Run{r}, HTMLOptions{})
	doc := parseDoc(t, page)

	lanes := findAll(doc, byClass("g", "lane"))
	var nodes []string
	for _, l := range lanes {
		nodes = append(nodes, attr(l, "data-node"))
		if len(findAll(l, byClass("rect", "span"))) == 0 {
			t.Errorf("lane %s has no role spans", attr(l, "data-node"))
		}
	}
	if got := strings.Join(nodes, " "); got != "0 1 2 3 4" {
		t.Errorf("lanes = %q, want 0 1 2 3 4", got)
	}

	var sends, lost, heartbeats int
	for _, e := range r.Events {
		if e.Kind == KindSend {
			sends++
			if e.Match < 0 {
				lost++
			}
			if e.Heartbeat {
				heartbeats++
			}
		}
	}
	arrows := findAll(doc, byClass("g", "arrow"))
	if len(arrows) != sends {
		t.Errorf("arrows = %d, want one per send (%d)", len(arrows), sends)
	}
	chart := findAll(doc, byClass("svg", "chart"))[0]
	count := func(class string) int {
		return len(findAll(chart, func(n *html.Node) bool { return n.Data == "g" && hasClass(n, "arrow") && hasClass(n, class) }))
	}
	if got := count("lost"); got != lost || lost == 0 {
		t.Errorf("lost arrows = %d, want %d (> 0)", got, lost)
	}
	if got := count("heartbeat"); got != heartbeats || heartbeats == 0 {
		t.Errorf("heartbeat arrows = %d, want %d (> 0)", got, heartbeats)
	}
	for _, rpc := range []string{"AppendEntries", "AppendReply", "PreVote", "RequestVote", "VoteReply"} {
		if count("rpc-"+rpc) == 0 {
			t.Errorf("no arrow of class rpc-%s", rpc)
		}
	}
	for _, a := range arrows {
		if attr(a, "data-from") == "" || attr(a, "data-to") == "" || attr(a, "data-t0") == "" {
			t.Errorf("arrow without data attributes: %v", a.Attr)
			break
		}
		if len(findAll(a, func(n *html.Node) bool { return n.Data == "title" })) != 1 {
			t.Errorf("arrow without a <title> for hover details")
			break
		}
	}

	for _, what := range []string{"fault-crash", "fault-restart", "kind-commit", "kind-client", "fault-disconnect"} {
		if len(findAll(chart, byClass("g", what))) == 0 {
			t.Errorf("no %s marker", what)
		}
	}
	if len(findAll(chart, byClass("rect", "win-down"))) != 1 || len(findAll(chart, byClass("rect", "win-disconnected"))) != 1 {
		t.Errorf("want one crashed and one disconnected window")
	}
	if got := len(findAll(chart, byClass("rect", "partition"))); got != 5 {
		t.Errorf("partition bands = %d, want one per node of the one partition", got)
	}
	if len(findAll(chart, byClass("line", "fault-partition"))) != 1 || len(findAll(chart, byClass("line", "fault-heal"))) != 1 {
		t.Errorf("partition and heal should be lines across all lanes")
	}
	if len(findAll(doc, byClass("div", "legend"))) != 1 {
		t.Errorf("no legend")
	}
	for _, ctl := range []string{`data-zoom="in"`, `data-zoom="out"`, `data-zoom="fit"`, `data-toggle="hide-hb"`} {
		if !strings.Contains(page, ctl) {
			t.Errorf("no control %s", ctl)
		}
	}
}

func TestHTMLSelfContained(t *testing.T) {
	log := parseFile(t, "cluster5.jsonl")
	page := renderHTML(t, log.Runs, HTMLOptions{})
	for _, s := range []string{"http://", "https://", "//cdn", "@import", "url(http", "url(//"} {
		if strings.Contains(page, s) {
			i := strings.Index(page, s)
			t.Errorf("page contains %q: …%s…", s, page[max(0, i-60):min(len(page), i+60)])
		}
	}
	doc := parseDoc(t, page)
	for _, n := range findAll(doc, func(n *html.Node) bool { return true }) {
		for _, a := range n.Attr {
			switch a.Key {
			case "src", "href", "xlink:href", "srcset", "action", "poster", "data":
				t.Errorf("<%s %s=%q>: the page must not load anything", n.Data, a.Key, a.Val)
			}
		}
		if n.Data == "link" || n.Data == "iframe" || n.Data == "img" || n.Data == "object" {
			t.Errorf("<%s> element in a page that must be self-contained", n.Data)
		}
	}
	if !strings.Contains(page, `http-equiv="Content-Security-Policy" content="default-src 'none'`) {
		t.Errorf("no Content-Security-Policy forbidding fetches")
	}
	if n := len(findAll(doc, func(n *html.Node) bool { return n.Data == "script" })); n != 1 {
		t.Errorf("scripts = %d, want the one inline script", n)
	}
}

func TestHTMLEscapesMessages(t *testing.T) {
	log := mustParse(t, `22:00:00.000001 [0] <script>alert(1)</script> & "quotes"
22:00:00.000002 [1] send Evil</g><script>x</script> 1→0
=== RUN   Test<b>Name</b>
22:00:00.000003 [0] x
`)
	page := renderHTML(t, log.Runs, HTMLOptions{Title: "<title>"})
	doc := parseDoc(t, page)
	if n := len(findAll(doc, func(n *html.Node) bool { return n.Data == "script" })); n != 1 {
		t.Errorf("scripts = %d: a message was not escaped", n)
	}
	if n := len(findAll(doc, func(n *html.Node) bool { return n.Data == "b" && !hasClass(n, "lg-title") })); n != 0 {
		t.Errorf("a test name was not escaped")
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34;") {
		t.Errorf("escaped message not found")
	}
}

func TestHTMLDeterministicAndOptions(t *testing.T) {
	log := parseFile(t, "cluster5.jsonl")
	a := renderHTML(t, log.Runs, HTMLOptions{})
	b := renderHTML(t, log.Runs, HTMLOptions{})
	if a != b {
		t.Errorf("two renders of the same log differ")
	}
	hidden := renderHTML(t, log.Runs, HTMLOptions{HideHeartbeats: true, Note: "3 lines skipped"})
	doc := parseDoc(t, hidden)
	d := findAll(doc, byClass("div", "diagram"))
	if len(d) != 1 || !hasClass(d[0], "hide-hb") {
		t.Errorf("HideHeartbeats did not start with heartbeats hidden")
	}
	if !strings.Contains(hidden, "3 lines skipped") {
		t.Errorf("note missing")
	}
}

func TestHTMLManyRunsAndEmpty(t *testing.T) {
	log := mustParse(t, "=== RUN   TestA\n22:00:00.000001 [0] a\n=== RUN   TestB\n22:00:00.000002 [1] b\n")
	doc := parseDoc(t, renderHTML(t, log.Runs, HTMLOptions{}))
	sections := findAll(doc, byClass("section", "run"))
	if len(sections) != 2 || attr(sections[0], "data-run") != "TestA" || attr(sections[1], "data-run") != "TestB" {
		t.Errorf("sections = %d", len(sections))
	}
	page := renderHTML(t, nil, HTMLOptions{})
	if !strings.Contains(page, "No trace events") {
		t.Errorf("empty page does not say so")
	}
	single := renderHTML(t, []*Run{{Name: "TestOne", Events: []Event{{Node: "0", Msg: "x", Match: -1}}}}, HTMLOptions{})
	if !strings.Contains(single, "<g class=\"lane\" data-node=\"0\"") {
		t.Errorf("a single event at time zero still gets its lane")
	}
}

// bigRun synthesizes a 5-node, 30-second run of about 20k events: a
// heartbeat round every 25 ms with replies, a client write every 100 ms.
func bigRun() *Run {
	base := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	var recs []trace.Record
	add := func(t time.Duration, node string, e core.Event) {
		recs = append(recs, trace.Record{Time: base.Add(t), Node: node, Event: e})
	}
	add(0, "0", roleEv(core.Candidate, core.Leader, 1))
	index := uint64(1)
	for t := time.Duration(0); t < 30*time.Second; t += 25 * time.Millisecond {
		entries := 0
		if t%(100*time.Millisecond) == 0 {
			entries = 1
			index++
			add(t, "0", core.Event{Kind: core.EventClient, Peer: core.None, Detail: fmt.Sprintf("set k%d=v → proposed at index %d", index, index)})
		}
		for f := 1; f < 5; f++ {
			ae := appendRPC(0, f, 1, index-uint64(entries), 1, entries, index-1)
			reply := appendReplyRPC(f, 0, 1, index)
			d := time.Duration(f) * 300 * time.Microsecond
			add(t+d, "0", send(ae))
			add(t+d+2*time.Millisecond, fmt.Sprint(f), recv(ae))
			add(t+d+2100*time.Microsecond, fmt.Sprint(f), send(reply))
			add(t+d+4*time.Millisecond, "0", recv(reply))
		}
		if entries > 0 {
			c := ev(core.EventCommit)
			c.Index, c.Index2 = index-1, index
			add(t+5*time.Millisecond, "0", c)
		}
	}
	r, _ := FromRecords("TestBig", recs)
	return r
}

func TestHTMLBigRun(t *testing.T) {
	if testing.Short() {
		t.Skip("big run")
	}
	r := bigRun()
	if len(r.Events) < 19000 {
		t.Fatalf("big run has only %d events", len(r.Events))
	}
	start := time.Now()
	page := renderHTML(t, []*Run{r}, HTMLOptions{HideHeartbeats: true})
	elapsed := time.Since(start)
	t.Logf("%d events → %d KiB of HTML in %v", len(r.Events), len(page)/1024, elapsed)
	if len(page) > 40<<20 {
		t.Errorf("page is %d MiB", len(page)>>20)
	}
	// The initial axis draws about one tick per 90 px, not one per event.
	if n := strings.Count(page, "<line x1="); n > 100 {
		t.Errorf("%d axis ticks", n)
	}
}

func BenchmarkWriteHTML(b *testing.B) {
	r := bigRun()
	for b.Loop() {
		var buf bytes.Buffer
		if err := WriteHTML(&buf, []*Run{r}, HTMLOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
