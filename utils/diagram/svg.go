package diagram

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The diagram of one run: lanes with their role spans, the time axis,
// cluster-wide events, then (in arrows.go and markers.go) messages and
// events on top.

// Geometry, in px. The script takes times and lane centres from data
// attributes; what it assumes besides is the label rows, 13 px above and
// 21 px below a lane's centre line (barH/2+5, barH/2+13).
const (
	chartPad  = 24 // left and right of the time range
	axisH     = 26
	simRowH   = 24
	laneStep  = 66
	barH      = 16
	headW     = 92
	labelMax  = 48  // characters of a label before it is cut (the tooltip has it all)
	charW     = 6.1 // average label character width at 11px, for overlap checks
	labelGap  = 8
	lostLen   = 26 // length of the stub of a lost message
	minSpanPx = 0.5

	defaultWidth = 1400
	maxWidth     = 100000 // bounds the ticks and sizes drawn before the script runs
)

// Beyond this many heartbeats a page starts with them hidden: they bury
// everything else in the overview (the checkbox shows them again).
const autoHideHeartbeats = 2000

// diagram holds what drawing one run needs.
type diagram struct {
	p      *page
	r      *Run
	tl     *timeline
	scale  float64 // px per µs
	width  float64
	height float64
	labels []placed // per lane, the right end of the last label in each row
	slice  *slice
}

type placed struct{ end [2]float64 }

func (d *diagram) us(t time.Duration) int64 { return int64((t - d.tl.start) / time.Microsecond) }

func (d *diagram) x(t time.Duration) float64 {
	return chartPad + float64(d.us(t))*d.scale
}

func laneY(i int) float64 { return axisH + simRowH + float64(i)*laneStep + laneStep/2 }

// section draws one run: its heading, controls and diagram.
func (p *page) section(idx int, r *Run, opt HTMLOptions) {
	tl := buildTimeline(r)
	d := &diagram{p: p, r: r, tl: tl, labels: make([]placed, len(tl.lanes)+1)}
	durUs := max(d.us(tl.end), 1)
	width := opt.Width
	if width <= 0 {
		width = defaultWidth
	}
	width = min(max(width, 4*chartPad), maxWidth)
	d.scale = float64(width-2*chartPad) / float64(durUs)
	d.width = float64(width)
	d.height = axisH + simRowH + float64(len(tl.lanes))*laneStep + 8

	stats, heartbeats := d.stats()
	hideHB := opt.HideHeartbeats || heartbeats > autoHideHeartbeats
	cls := ""
	if hideHB {
		cls = " hide-hb"
		if !opt.HideHeartbeats {
			stats += fmt.Sprintf("; heartbeats hidden at first (more than %d)", autoHideHeartbeats)
		}
	}
	badge := ""
	if r.Result != "" {
		badge = fmt.Sprintf(` <span class="badge %s">%s</span>`, strings.ToLower(r.Result), esc(r.Result))
	}
	name := r.Name
	if name == "" {
		name = "trace"
	}
	p.printf(`<section class="run" id="run-%d" data-run="%s">
<h2>%s%s</h2>
<p class="stats">%s</p>
<div class="controls">
<button type="button" data-zoom="out" title="zoom out (-)">−</button><button type="button" data-zoom="in" title="zoom in (+)">+</button><button type="button" data-zoom="fit" title="fit the whole run (0)">fit</button>
<span class="zoom-readout"></span>
<label><input type="checkbox" data-toggle="hide-hb"%s> heartbeats</label>
<label><input type="checkbox" data-toggle="hide-replies" checked> replies</label>
<label><input type="checkbox" data-toggle="hide-labels" checked> labels</label>
<span class="hint">ctrl+wheel or +/− to zoom, drag to scroll, hover for details</span>
</div>
`, idx, esc(r.Name), esc(name), badge, esc(stats), checked(!hideHB))
	p.printf(`<div class="diagram%s" data-start-us="%d" data-duration-us="%d" data-scale="%g" data-pad="%d" data-lost-len="%d" data-char-w="%g" data-label-gap="%d">
`, cls, int64(tl.start/time.Microsecond), durUs, d.scale, chartPad, lostLen, charW, labelGap)
	d.laneHeads()
	p.printf(`<div class="scroll"><svg class="chart" width="%.0f" height="%.0f">
`, d.width, d.height)
	d.defs()
	d.axis()
	d.lanes()
	d.simEvents()
	d.arrows()
	d.markers()
	p.printf("</svg></div>\n</div>\n")
	d.safetyList()
	p.printf("</section>\n")
}

// stats describes the run in one line, and counts its heartbeats.
func (d *diagram) stats() (string, int) {
	var arrows, lost, hb, safety int
	for i := range d.r.Events {
		e := &d.r.Events[i]
		switch e.Kind {
		case KindSend:
			arrows++
			if e.Match < 0 {
				lost++
			}
			if e.Heartbeat {
				hb++
			}
		case KindSafety:
			safety++
		}
	}
	s := fmt.Sprintf("%d events, %d nodes, %s from %s; %d messages (%d heartbeats, %d lost)",
		len(d.r.Events), len(d.tl.lanes), fmtOffset(d.us(d.tl.end)), FormatClock(d.tl.start), arrows, hb, lost)
	if safety > 0 {
		s += fmt.Sprintf("; %d SAFETY violations", safety)
	}
	return s, hb
}

// laneHeads is the fixed column of node names left of the scrolling chart.
func (d *diagram) laneHeads() {
	d.p.printf(`<svg class="heads" width="%d" height="%.0f">
<text class="axis-name" x="8" y="%d">time</text>
<text class="axis-name" x="8" y="%d">cluster</text>
`, headW, d.height, axisH-9, axisH+simRowH-8)
	for i, l := range d.tl.lanes {
		y := laneY(i)
		d.p.printf(`<g class="lane-head" data-node="%s"><rect x="0" y="%.0f" width="%d" height="%d"/><text x="10" y="%.0f">node %s</text></g>
`, esc(l.node), y-laneStep/2+2, headW, laneStep-4, y+4, esc(l.node))
	}
	d.p.printf("</svg>\n")
}

func (d *diagram) defs() {
	d.p.printf("<defs>\n")
	// One arrowhead per colour: markers do not take the colour of the line
	// that uses them in every browser.
	for _, c := range arrowClasses {
		d.p.printf(`<marker id="ah-%s" class="ah %s" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z"/></marker>
`, c, c)
	}
	d.p.printf(`<marker id="ah-lost" class="ah lost" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="9" markerHeight="9"><path d="M1 1L9 9M9 1L1 9"/></marker>
<marker id="ah-lost-hb" class="ah lost-hb" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="7" markerHeight="7"><path d="M1 1L9 9M9 1L1 9"/></marker>
<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" class="hatch-bg"/><line x1="0" y1="0" x2="0" y2="6" class="hatch-line"/></pattern>
<pattern id="stripes" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)"><line x1="0" y1="0" x2="0" y2="8" class="stripe-line"/></pattern>
</defs>
`)
}

// axis draws the initial ticks; the script redraws them for what is visible.
func (d *diagram) axis() {
	d.p.printf(`<g class="axis"><line class="axis-line" x1="0" y1="%d" x2="%.0f" y2="%d"/><g class="ticks">`, axisH, d.width, axisH)
	durUs := d.us(d.tl.end)
	step := niceStep(90 / d.scale)
	for t := int64(0); t <= durUs; t += step {
		x := chartPad + float64(t)*d.scale
		d.p.printf(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.0f"/><text x="%.1f" y="%d">%s</text>`,
			x, axisH-5, x, d.height, x+3, axisH-9, fmtOffset(t))
	}
	d.p.printf("</g></g>\n")
}

// niceStep rounds a tick interval in µs up to 1, 2 or 5 times a power of ten.
func niceStep(minUs float64) int64 {
	for step := int64(1); step < 1<<60; step *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if float64(step*m) >= minUs {
				return step * m
			}
		}
	}
	return 1 << 60
}

// fmtOffset formats a time since the start of the run for the axis.
func fmtOffset(us int64) string {
	switch {
	case us == 0:
		return "0"
	case us%1000000 == 0:
		return fmt.Sprintf("%ds", us/1000000)
	case us >= 1000000:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", float64(us)/1e6), "0"), ".") + "s"
	case us%1000 == 0:
		return fmt.Sprintf("%dms", us/1000)
	case us >= 1000:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", float64(us)/1e3), "0"), ".") + "ms"
	}
	return fmt.Sprintf("%dµs", us)
}

func (d *diagram) lanes() {
	for i, l := range d.tl.lanes {
		y := laneY(i)
		d.p.printf(`<g class="lane" data-node="%s" data-y="%.0f">
<rect class="lane-bg" x="0" y="%.0f" width="%.0f" height="%d"/>
`, esc(l.node), y, y-laneStep/2+2, d.width, laneStep-4)
		d.partitionBands(l, y)
		for _, s := range l.spans {
			x0, x1 := d.x(s.from), d.x(s.to)
			term := ""
			if s.hasTerm {
				term = fmt.Sprintf("term %d", s.term)
			}
			tip := fmt.Sprintf("node %s: %s %s\n%s – %s", l.node, s.role, term, FormatClock(s.from), FormatClock(s.to))
			d.p.printf(`<rect class="span role-%s" data-t0="%d" data-t1="%d" x="%.1f" y="%.1f" width="%.1f" height="%d"><title>%s</title></rect>
`, s.role, d.us(s.from), d.us(s.to), x0, y-barH/2, max(x1-x0, minSpanPx), barH, esc(tip))
			if s.hasTerm {
				full := fmt.Sprintf("T%d %s", s.term, s.role)
				short := fmt.Sprintf("T%d", s.term)
				text, hidden := full, ""
				switch w := x1 - x0; {
				case w >= float64(len(full))*charW+8:
				case w >= float64(len(short))*charW+6:
					text = short
				default:
					hidden = ` visibility="hidden"`
				}
				d.p.printf(`<text class="term-label" data-t0="%d" data-t1="%d" data-full="%s" data-short="%s" x="%.1f" y="%.1f"%s>%s</text>
`, d.us(s.from), d.us(s.to), esc(full), esc(short), x0+4, y+4, hidden, esc(text))
			}
		}
		for _, win := range l.windows {
			x0, x1 := d.x(win.from), d.x(win.to)
			tip := fmt.Sprintf("node %s %s\n%s – %s", l.node, win.what, FormatClock(win.from), FormatClock(win.to))
			d.p.printf(`<rect class="win win-%s" data-t0="%d" data-t1="%d" x="%.1f" y="%.1f" width="%.1f" height="%d"><title>%s</title></rect>
`, win.what, d.us(win.from), d.us(win.to), x0, y-barH/2-4, max(x1-x0, minSpanPx), barH+8, esc(tip))
		}
		d.p.printf("</g>\n")
	}
}

// partitionBands tint a lane by the side of each partition it was on, behind
// everything else on the lane.
func (d *diagram) partitionBands(l *lane, y float64) {
	for _, pt := range d.tl.partitions {
		for g, group := range pt.groups {
			if !slices.Contains(group, l.node) {
				continue
			}
			x0, x1 := d.x(pt.from), d.x(pt.to)
			tip := fmt.Sprintf("side %c of %s\n%s – %s", 'A'+g%26, pt.label, FormatClock(pt.from), FormatClock(pt.to))
			d.p.printf(`<rect class="partition group-%d" data-node="%s" data-t0="%d" data-t1="%d" x="%.1f" y="%.1f" width="%.1f" height="%d"><title>%s</title></rect>
`, g%4, esc(l.node), d.us(pt.from), d.us(pt.to), x0, y-laneStep/2+2, max(x1-x0, minSpanPx), laneStep-4, esc(tip))
		}
	}
}

// simEvents are cluster-wide: a line across every lane and a label in the
// row above them.
func (d *diagram) simEvents() {
	top, bottom := float64(axisH+2), d.height-4
	d.p.printf("<g class=\"sim\">\n")
	for i := range d.r.Events {
		e := &d.r.Events[i]
		if e.Node != SimNode && e.Kind != KindSafety {
			continue
		}
		cls := "sim-event"
		if e.Kind == KindFault {
			cls += " fault-" + safeClass(e.Fault.What)
		}
		if e.Kind == KindSafety {
			cls += " kind-safety"
		}
		x := d.x(e.At)
		d.p.printf(`<line class="%s" data-node="%s" data-t="%d" x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f"><title>%s</title></line>
`, cls, esc(e.Node), d.us(e.At), x, top, x, bottom, esc(eventTip(e)))
		if e.Node == SimNode {
			d.label(len(d.tl.lanes), e, x, axisH+simRowH/2+4, strings.TrimPrefix(e.Msg, "fault: "), "sim-label")
		}
	}
	d.p.printf("</g>\n")
}

// label writes a text next to a marker in the first of two rows (above and
// below the lane bar) where it does not overlap the previous one, or hidden
// if neither has room. Near the right edge it goes left of the marker. The
// script redoes this after every zoom, with the same rules.
func (d *diagram) label(li int, e *Event, x, cy float64, text, cls string) {
	if r := []rune(text); len(r) > labelMax {
		text = string(r[:labelMax-1]) + "…"
	}
	w := float64(len([]rune(text))) * charW
	start, tx, anchor := x+5, x+5, ""
	if x+5+w > d.width-2 {
		start, tx, anchor = x-5-w, x-5, ` text-anchor="end"`
	}
	row, vis := 0, ""
	pl := &d.labels[li]
	switch {
	case start >= pl.end[0]:
	case cls == "label" && start >= pl.end[1]:
		row = 1
	default:
		row, vis = -1, ` visibility="hidden"`
	}
	if row >= 0 {
		pl.end[row] = start + w + labelGap
	}
	y := cy - barH/2 - 5
	if cls != "label" {
		y = cy
	} else if row == 1 {
		y = cy + barH/2 + 13
	}
	d.p.printf(`<text class="%s kind-%s" data-node="%s" data-t="%d" data-cy="%.0f" x="%.1f" y="%.1f"%s%s>%s</text>
`, cls, e.Kind, esc(e.Node), d.us(e.At), cy, tx, y, anchor, vis, esc(text))
}

func (d *diagram) safetyList() {
	first := true
	for i := range d.r.Events {
		e := &d.r.Events[i]
		if e.Kind != KindSafety {
			continue
		}
		if first {
			d.p.printf("<div class=\"safety\"><h3>SAFETY violations</h3><ul>\n")
			first = false
		}
		d.p.printf("<li><code>%s [%s] %s</code></li>\n", e.Clock(), esc(e.Node), esc(e.Msg))
	}
	if !first {
		d.p.printf("</ul></div>\n")
	}
}
