package diagram

import (
	"fmt"
	"strings"

	"raft-consensus/raft/core"
)

// Events other than messages are markers on their node's lane, most with a
// short label; the tooltip has the whole line.

// shape draws a marker centred on (0, cy); markers are moved along the time
// axis with a transform, so they hold no x of their own.
func shape(name string, cy float64) string {
	switch name {
	case "diamond":
		return fmt.Sprintf(`<path d="M0 %.1fl5 5l-5 5l-5 -5z"/>`, cy-5)
	case "square":
		return fmt.Sprintf(`<rect x="-4" y="%.1f" width="8" height="8" rx="1.5"/>`, cy-4)
	case "triangle":
		return fmt.Sprintf(`<path d="M0 %.1fl5 9h-10z"/>`, cy-5)
	case "down":
		return fmt.Sprintf(`<path d="M0 %.1fl5 -9h-10z"/>`, cy+5)
	case "up":
		return fmt.Sprintf(`<path d="M0 %.1fl6 10h-12z"/>`, cy-6)
	case "cross":
		return fmt.Sprintf(`<path class="x" d="M-5 %.1fl10 10m0 -10l-10 10"/>`, cy-5)
	case "xsmall":
		return fmt.Sprintf(`<path class="x" d="M-3 %.1fl6 6m0 -6l-6 6"/>`, cy-3)
	case "ring":
		return fmt.Sprintf(`<circle cy="%.1f" r="4.5"/>`, cy)
	case "ringslash":
		return fmt.Sprintf(`<circle cy="%.1f" r="4.5"/><path class="x" d="M-3.2 %.1fl6.4 -6.4"/>`, cy, cy+3.2)
	case "check":
		return fmt.Sprintf(`<path class="x" d="M-3.5 %.1fl2.5 3l4.5 -6"/>`, cy)
	case "tick":
		return fmt.Sprintf(`<path class="x" d="M0 %.1fv%d"/>`, cy-barH/2, barH)
	case "warn":
		return fmt.Sprintf(`<path d="M0 %.1fl7 12h-14z"/><path class="x" d="M0 %.1fv4m0 2v1.5"/>`, cy-7, cy-2.5)
	case "dot":
		return fmt.Sprintf(`<circle cy="%.1f" r="2.5"/>`, cy)
	}
	return fmt.Sprintf(`<circle cy="%.1f" r="3.5"/>`, cy)
}

// safeClass turns trace text (a fault name) into one CSS class token, so that
// a message cannot add classes or break out of the attribute.
func safeClass(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "other"
	}
	return b.String()
}

// markers draws every event that is not a message end and not cluster-wide.
func (d *diagram) markers() {
	d.p.printf("<g class=\"events\">\n")
	d.beginSlices()
	for i := range d.r.Events {
		e := &d.r.Events[i]
		if e.Kind == KindSend || e.Kind == KindRecv || e.Node == SimNode {
			continue
		}
		li, ok := d.tl.index[e.Node]
		if !ok {
			continue
		}
		y := laneY(li)
		shapeName, cls, label := markerFor(e)
		x := d.x(e.At)
		d.p.printf(`<g class="ev %s" data-node="%s" data-t="%d" transform="translate(%.1f,0)"><title>%s</title>%s</g>
`, cls, esc(e.Node), d.us(e.At), x, esc(eventTip(e)), shape(shapeName, y))
		if label != "" {
			d.label(li, e, x, y, label, "label")
		}
		d.sliceItem(e.At, e.At)
	}
	d.endSlices()
	d.p.printf("</g>\n")
}

func eventTip(e *Event) string {
	return fmt.Sprintf("%s [%s] %s", e.Clock(), e.Node, e.Msg)
}

// markerFor picks a marker shape, CSS classes and a short label.
func markerFor(e *Event) (shapeName, class, label string) {
	class = "kind-" + e.Kind.String()
	switch e.Kind {
	case KindRole:
		return "ring", class + " role-" + e.Role.String(), fmt.Sprintf("→ %s T%d", e.Role, e.Term)
	case KindTerm:
		return "tick", class, ""
	case KindLeader:
		return "dot", class, ""
	case KindElection:
		switch e.Type {
		case core.EventCampaign:
			what := "election"
			if e.PreVote {
				what = "pre-vote"
			}
			return "triangle", class, fmt.Sprintf("%s T%d", what, e.Term)
		case core.EventElectionWon:
			return "up", class + " won", fmt.Sprintf("won T%d", e.Term)
		case core.EventElectionLost:
			return "down", class + " lost", fmt.Sprintf("lost T%d", e.Term)
		case core.EventCheckQuorum:
			return "down", class + " lost", "lost quorum"
		case core.EventPreVoteWon:
			return "up", class + " won", "pre-vote won"
		}
		return "dot", class + " timeout", "timeout"
	case KindVote:
		if e.Granted {
			return "check", class + " granted", ""
		}
		return "xsmall", class + " refused", ""
	case KindCommit:
		return "diamond", class, fmt.Sprintf("commit %d", e.Hi)
	case KindLog:
		switch e.Type {
		case core.EventTruncate, core.EventReject:
			return "dot", class + " warn", e.Msg
		case core.EventConfig, core.EventConfChange:
			return "square", class + " config", e.Msg
		}
		return "dot", class, ""
	case KindSnapshot:
		return "square", class, e.Msg
	case KindTransfer:
		return "triangle", class, e.Msg
	case KindClient:
		return "square", class, strings.TrimPrefix(e.Msg, "client ")
	case KindFault:
		what := safeClass(e.Fault.What)
		class += " fault-" + what
		switch what {
		case "crash":
			return "cross", class, "crash"
		case "restart":
			return "up", class, "restart"
		case "disconnect":
			return "ringslash", class, "disconnect"
		case "reconnect":
			return "ring", class, "reconnect"
		}
		return "square", class, strings.TrimPrefix(e.Msg, "fault: ")
	case KindSafety:
		return "warn", class, e.Msg
	}
	return "dot", class, e.Msg
}
