package diagram

import (
	"fmt"
	"strings"
)

// Messages are arrows from the sender's lane at the send time to the
// receiver's lane at the receive time.

func (d *diagram) arrows() {
	d.p.printf("<g class=\"arrows\">\n")
	d.beginSlices()
	for i := range d.r.Events {
		e := &d.r.Events[i]
		switch {
		case e.Kind == KindSend:
			other := d.matchOf(e)
			d.arrow(e, other)
			if other != nil {
				d.sliceItem(e.At, max(e.At, other.At))
			} else {
				d.sliceItem(e.At, e.At)
			}
		case e.Kind == KindRecv && e.Match < 0:
			d.arrow(e, nil)
			d.sliceItem(e.At, e.At)
		}
	}
	d.endSlices()
	d.p.printf("</g>\n")
}

func (d *diagram) matchOf(e *Event) *Event {
	if e.Match < 0 {
		return nil
	}
	return &d.r.Events[e.Match]
}

// arrowClasses are the colours arrows come in, one arrowhead marker each.
var arrowClasses = []string{
	"rpc-AppendEntries", "heartbeat", "rpc-AppendReply", "reject", "rpc-RequestVote", "rpc-PreVote",
	"rpc-VoteReply", "refused", "rpc-InstallSnapshot", "rpc-InstallSnapshotReply",
	"rpc-TimeoutNow", "rpc-TimeoutNowReply", "rpc-other",
}

var knownRPCs = map[string]bool{
	"AppendEntries": true, "AppendReply": true, "RequestVote": true, "PreVote": true,
	"VoteReply": true, "InstallSnapshot": true, "InstallSnapshotReply": true,
	"TimeoutNow": true, "TimeoutNowReply": true,
}

var replies = map[string]bool{
	"AppendReply": true, "VoteReply": true, "InstallSnapshotReply": true, "TimeoutNowReply": true,
}

// arrow draws one message: send → recv, a stub ending in × for a send never
// received, or a stub coming from the sender's lane for a recv whose send is
// not in the trace.
func (d *diagram) arrow(e, other *Event) {
	rpc := e.RPC
	from, okFrom := d.tl.index[rpc.From]
	to, okTo := d.tl.index[rpc.To]
	if e.Kind == KindSend {
		from, okFrom = d.tl.index[e.Node]
		if other != nil {
			to, okTo = d.tl.index[other.Node]
		}
	} else {
		to, okTo = d.tl.index[e.Node]
	}
	if !okFrom || !okTo {
		return
	}
	classes := []string{"arrow", "rpc-" + rpc.Name}
	color := "rpc-" + rpc.Name
	if !knownRPCs[rpc.Name] {
		classes = append(classes, "rpc-other")
		color = "rpc-other"
	}
	if replies[rpc.Name] {
		classes = append(classes, "reply")
	}
	if e.Heartbeat {
		classes, color = append(classes, "heartbeat"), "heartbeat"
	}
	if rpc.Reject {
		classes, color = append(classes, "reject"), "reject"
	}
	if rpc.Name == "VoteReply" && !rpc.Granted {
		classes, color = append(classes, "refused"), "refused"
	}
	y0, y1 := laneY(from), laneY(to)
	var t0, t1 int64
	var x0, x1 float64
	var tip string
	head := "ah-" + color
	switch {
	case e.Kind == KindSend && other != nil:
		t0, t1 = d.us(e.At), d.us(other.At)
		x0, x1 = d.x(e.At), d.x(other.At)
		tip = fmt.Sprintf("%s\nsent %s by %s, received %s by %s (%v)", rpc.Text,
			e.Clock(), e.Node, other.Clock(), other.Node, other.At-e.At)
	case e.Kind == KindSend:
		classes = append(classes, "lost")
		head = "ah-lost"
		if e.Heartbeat {
			head = "ah-lost-hb" // a lost heartbeat matters less than lost data
		}
		t0 = d.us(e.At)
		t1 = t0
		x0 = d.x(e.At)
		x1 = x0 + lostLen
		y1 = y0 + stubRise(y0, y1)
		tip = fmt.Sprintf("%s\nsent %s by %s, never received", rpc.Text, e.Clock(), e.Node)
	default:
		classes = append(classes, "orphan")
		t0 = d.us(e.At)
		t1 = t0
		x1 = d.x(e.At)
		x0 = x1 - lostLen
		y0 = y1 + stubRise(y1, y0)
		tip = fmt.Sprintf("%s\nreceived %s by %s; its send is not in the trace", rpc.Text, e.Clock(), e.Node)
	}
	d.p.printf(`<g class="%s" data-from="%s" data-to="%s" data-t0="%d" data-t1="%d"><title>%s</title><line class="hit" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><line class="shaft" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" marker-end="url(#%s)"/></g>
`, strings.Join(classes, " "), esc(rpc.From), esc(rpc.To), t0, t1, esc(tip),
		x0, y0, x1, y1, x0, y0, x1, y1, head)
}

// stubRise is how far a stub leans towards the other lane.
func stubRise(y, other float64) float64 {
	switch {
	case other > y:
		return min(other-y, laneStep) * 0.4
	case other < y:
		return -min(y-other, laneStep) * 0.4
	}
	return 0
}
