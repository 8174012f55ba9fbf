package trace

import "raft-consensus/raft/core"

// GroupTracer is a Tracer that also takes events of one of many Raft
// groups (multi-raft), to show or filter them by group.
type GroupTracer interface {
	Tracer
	TraceGroup(node, group string, e core.Event)
}

// ForGroup returns a Tracer that tags every event it is given with group
// (as "g5") on its way to t, or nil if t is nil. A t that is no
// GroupTracer gets the events untagged.
func ForGroup(t Tracer, group string) Tracer {
	if t == nil {
		return nil
	}
	return groupTagger{t, group}
}

type groupTagger struct {
	t     Tracer
	group string
}

func (g groupTagger) Trace(node string, e core.Event) {
	if gt, ok := g.t.(GroupTracer); ok {
		gt.TraceGroup(node, g.group, e)
		return
	}
	g.t.Trace(node, e)
}

// TraceGroup implements GroupTracer.
func (m MultiTracer) TraceGroup(node, group string, e core.Event) {
	for _, t := range m {
		ForGroup(t, group).Trace(node, e)
	}
}
