//go:build browser

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/fortytw2/leaktest"

	"raft-consensus/utils/browsertest"
)

// The live page in a real browser: headless Chromium driven by chromedp.
// CI installs chromium and runs go test -tags browser; a missing browser
// is a failure. CHROMIUM overrides the binary; RAFT_PAGE_SCREENSHOT, if
// set, is where the page's screenshot goes (utils/make-images.sh).

// TestLivePageInChromium: the page loads and shows the cluster; crashing
// the leader by a click leads to another leader shown on the page; a write
// from the page reaches every node's log; each action is echoed in the REPL.
func TestLivePageInChromium(t *testing.T) {
	defer leaktest.CheckTimeout(t, 30*time.Second)()
	var out syncBuffer
	r := NewREPL(&out, Options{Sim: true, Seed: 5, Timeout: 3 * time.Second})
	defer r.Close()
	r.Exec("create 3")
	r.Exec("web 127.0.0.1:0")
	if r.web == nil {
		t.Fatalf("the page is not served:\n%s", out.String())
	}

	ctx, cancel := newBrowser(t, 90*time.Second)
	defer cancel()

	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v\nREPL:\n%s", what, err, out.String())
		}
	}
	eval := func(what, expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v\nREPL:\n%s", what, err, out.String())
		}
		return v
	}
	// waitJS polls a JavaScript condition on the page.
	waitJS := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("%s: %v\nREPL:\n%s", what, err, out.String())
		}
	}
	click := func(what, css string) { t.Helper(); do(what, chromedp.Click(chromedp.CSS(css), chromedp.NodeVisible)) }

	do("loading the page", chromedp.Navigate(r.web.URL()), chromedp.WaitVisible(chromedp.CSS(`#csvg g.node`)))
	if n := eval("counting the nodes", `String(document.querySelectorAll("#csvg g.node").length)`); n != "3" {
		t.Fatalf("the page shows %s nodes, want 3", n)
	}

	// Time stands still in virtual time: play it from the page.
	click("play", `#play`)
	waitJS("a leader on the page", `!!document.querySelector('#csvg g.node[data-role="leader"]')`)
	leader := eval("reading the leader", `document.querySelector('#csvg g.node[data-role="leader"]').dataset.id`)

	// Crash it by a click on the node, then on the menu's button.
	crash := fmt.Sprintf("crash %s", leader)
	click("opening the leader's menu", fmt.Sprintf(`#csvg g.node[data-id="%s"] circle.body`, leader))
	click("clicking crash", fmt.Sprintf(`#menu button[data-cmd="%s"]`, crash))
	waitJS("the crash on the page", fmt.Sprintf(`document.querySelector('#csvg g.node[data-id="%s"]').dataset.role === "crashed"`, leader))
	waitJS("another leader on the page", fmt.Sprintf(`(() => { const l = document.querySelector('#csvg g.node[data-role="leader"]'); return !!l && l.dataset.id !== "%s"; })()`, leader))

	// Bring it back, and write from the page: the write reaches every log.
	click("opening the crashed node's menu", fmt.Sprintf(`#csvg g.node[data-id="%s"] circle.body`, leader))
	click("clicking restart", fmt.Sprintf(`#menu button[data-cmd="restart %s"]`, leader))
	do("typing a write", chromedp.SetValue(chromedp.CSS(`#key`), "web"), chromedp.SetValue(chromedp.CSS(`#value`), "42"))
	click("set", `#set`)
	waitJS("the write in every node's log", `(() => { const rows = [...document.querySelectorAll('#logs .logrow')];
		return rows.length === 3 && rows.every(r => r.querySelector('.entry[data-label="web=42"]:not(.uncommitted)')); })()`)
	// Partition from the page: move node 0 to group B, then partition.
	click("moving node 0 to group B", `#groups .chip[data-id="0"]`)
	waitJS("node 0 in group B", `!!document.querySelector('#groups .group[data-group="1"] .chip[data-id="0"]')`)
	click("partition", `#partition`)
	waitJS("the partition shown", `document.getElementById("partdesc").textContent.includes("1 2 | 0")`)
	click("heal", `#heal`)
	waitJS("the heal shown", `document.getElementById("partdesc").textContent === ""`)
	click("pause", `#pause`)
	waitJS("the page paused", `document.getElementById("clock").textContent.includes("paused")`)

	if file := os.Getenv("RAFT_PAGE_SCREENSHOT"); file != "" {
		do("letting the page draw", chromedp.Sleep(500*time.Millisecond))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: a PNG
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repl := out.String()
	for _, want := range []string{"web> play 1", "web> " + crash, "web> restart " + leader, "web> set web 42", "ok: web = 42",
		"web> partition 1 2 | 0", "ok: partitioned 1 2 | 0", "web> heal", "web> pause"} {
		if !strings.Contains(repl, want) {
			t.Errorf("the REPL does not echo %q:\n%s", want, repl)
		}
	}
	cancel()
}

// TestLivePageShowsManyGroups: with a cluster of many groups the page
// offers a group to show, and shows that group's nodes and logs.
func TestLivePageShowsManyGroups(t *testing.T) {
	defer leaktest.CheckTimeout(t, 30*time.Second)()
	var out syncBuffer
	r := NewREPL(&out, Options{Memory: true, Timeout: 3 * time.Second})
	defer r.Close()
	r.Exec("create 3 4")
	r.Exec("set a 1")
	r.Exec("web 127.0.0.1:0")
	if r.web == nil {
		t.Fatalf("the page is not served:\n%s", out.String())
	}
	ctx, cancel := newBrowser(t, 60*time.Second)
	defer cancel()
	waitJS := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("%s: %v\nREPL:\n%s", what, err, out.String())
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(r.web.URL()), chromedp.WaitVisible(chromedp.CSS(`#groupbox`))); err != nil {
		t.Fatalf("the group box: %v", err)
	}
	waitJS("group 0 shown, of 4", `document.body.dataset.group === "0" && document.getElementById("groupcount").textContent.startsWith("4")`)
	waitJS("the nodes drawn", `document.querySelectorAll("#csvg g.node").length === 3`)
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`#group`), "2"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("group").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatalf("choosing group 2: %v", err)
	}
	waitJS("group 2 shown", `document.body.dataset.group === "2"`)
	waitJS("its logs drawn", `document.querySelectorAll('#logs .logrow').length === 3`)
	if file := os.Getenv("RAFT_PAGE_GROUPS_SCREENSHOT"); file != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
}

// newBrowser starts headless Chromium for one test; cancel stops it (before
// leaktest's check, when deferred after it).
func newBrowser(t *testing.T, timeout time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browsertest.Chromium(t)), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1400, 1150), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	return ctx, func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	}
}
