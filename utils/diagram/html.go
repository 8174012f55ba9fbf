package diagram

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"html"
	"io"
	"strings"
)

// The page is self-contained: CSS and JS are inlined, the diagram is inline
// SVG drawn here (so it is there without JS, and tests can read it), and a
// Content-Security-Policy forbids every fetch. The script only adds zoom,
// label placement, toggles and the tooltip.

//go:embed assets/diagram.css
var pageCSS string

//go:embed assets/diagram.js
var pageJS string

// HTMLOptions shape the page.
type HTMLOptions struct {
	Title          string // page title; the first run's title if empty
	HideHeartbeats bool   // start with heartbeats hidden (they can be shown again)
	Width          int    // chart width in px before the script fits it to the window; 0 means 1400
	Note           string // shown under the title, e.g. how many lines were skipped
}

// WriteHTML writes one page with a swim-lane diagram per run.
func WriteHTML(w io.Writer, runs []*Run, opt HTMLOptions) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	title := opt.Title
	if title == "" {
		title = "Raft timing diagram"
		if len(runs) == 1 {
			title = runs[0].Title()
		}
	}
	p := &page{w: bw}
	p.printf(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s</title>
<style>
%s</style>
</head>
<body>
<header class="page-head">
<h1>%s</h1>
`, esc(title), pageCSS, esc(title))
	if opt.Note != "" {
		p.printf("<p class=\"note\">%s</p>\n", esc(opt.Note))
	}
	p.legend()
	p.printf("</header>\n")
	if len(runs) == 0 {
		p.printf("<p class=\"empty\">No trace events.</p>\n")
	}
	for i, r := range runs {
		p.section(i, r, opt)
	}
	p.printf("<div id=\"tip\" hidden></div>\n<script>\n%s</script>\n</body>\n</html>\n", pageJS)
	return bw.Flush()
}

type page struct {
	w    *bufio.Writer
	sink *bytes.Buffer // when set, output goes to the slice being built
}

func (p *page) printf(format string, args ...any) {
	if p.sink != nil {
		fmt.Fprintf(p.sink, format, args...)
		return
	}
	fmt.Fprintf(p.w, format, args...)
}

func esc(s string) string { return html.EscapeString(s) }

func (p *page) legend() {
	p.printf(`<div class="legend">
<span class="lg-group"><b class="lg-title">roles</b>
<span class="lg"><svg width="22" height="12"><rect class="span role-follower" width="22" height="12"/></svg>follower</span>
<span class="lg"><svg width="22" height="12"><rect class="span role-pre-candidate" width="22" height="12"/></svg>pre-candidate</span>
<span class="lg"><svg width="22" height="12"><rect class="span role-candidate" width="22" height="12"/></svg>candidate</span>
<span class="lg"><svg width="22" height="12"><rect class="span role-leader" width="22" height="12"/></svg>leader</span>
<span class="lg"><svg width="22" height="12"><rect class="span role-unknown" width="22" height="12"/></svg>unknown</span>
<span class="lg"><svg width="22" height="12"><rect class="win win-down" width="22" height="12"/></svg>crashed</span>
<span class="lg"><svg width="22" height="12"><rect class="win win-disconnected" width="22" height="12"/></svg>disconnected</span>
</span>
<span class="lg-group"><b class="lg-title">messages</b>
`)
	for _, k := range []struct{ class, name string }{
		{"rpc-AppendEntries", "AppendEntries"},
		{"rpc-AppendEntries heartbeat", "heartbeat"},
		{"rpc-AppendReply", "AppendReply"},
		{"rpc-AppendReply reject", "rejected"},
		{"rpc-RequestVote", "RequestVote"},
		{"rpc-PreVote", "PreVote"},
		{"rpc-VoteReply", "vote granted"},
		{"rpc-VoteReply refused", "vote refused"},
		{"rpc-InstallSnapshot", "snapshot"},
		{"rpc-TimeoutNow", "TimeoutNow"},
		{"rpc-other", "other RPC"},
		{"rpc-AppendEntries lost", "lost"},
	} {
		end := 30
		if strings.Contains(k.class, "lost") {
			end = 18
		}
		p.printf(`<span class="lg"><svg width="34" height="12"><g class="legend-arrow %s"><line class="shaft" x1="2" y1="6" x2="%d" y2="6"/></g></svg>%s</span>
`, k.class, end, esc(k.name))
	}
	p.printf(`</span>
<span class="lg-group"><b class="lg-title">events</b>
<span class="lg"><svg width="14" height="14"><g class="ev kind-commit" transform="translate(7,7)">%s</g></svg>commit</span>
<span class="lg"><svg width="14" height="14"><g class="ev kind-client" transform="translate(7,7)">%s</g></svg>client</span>
<span class="lg"><svg width="14" height="14"><g class="ev kind-election" transform="translate(7,7)">%s</g></svg>election</span>
<span class="lg"><svg width="14" height="14"><g class="ev fault-crash" transform="translate(7,7)">%s</g></svg>crash</span>
<span class="lg"><svg width="14" height="14"><g class="ev fault-restart" transform="translate(7,7)">%s</g></svg>restart</span>
<span class="lg"><svg width="22" height="12"><rect class="partition group-0" width="11" height="12"/><rect class="partition group-1" x="11" width="11" height="12"/></svg>partition sides</span>
<span class="lg"><svg width="14" height="14"><g class="ev kind-safety" transform="translate(7,7)">%s</g></svg>SAFETY</span>
</span>
</div>
`, shape("diamond", 0), shape("square", 0), shape("triangle", 0), shape("cross", 0), shape("up", 0), shape("warn", 0))
}

func checked(b bool) string {
	if b {
		return " checked"
	}
	return ""
}
