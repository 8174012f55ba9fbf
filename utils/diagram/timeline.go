package diagram

import (
	"sort"
	"time"

	"raft-consensus/raft/core"
)

// The timeline is what a swim-lane diagram needs beyond the events: for each
// node, which role and term it was in when, and when it was down, cut off or
// not a member; for the cluster, which partitions were in force.

type span struct {
	from, to time.Duration
	role     Role
	term     uint64
	hasTerm  bool
}

type window struct {
	from, to time.Duration
	what     string // down, disconnected, absent
}

type lane struct {
	node    string
	spans   []span
	windows []window
}

type partition struct {
	from, to time.Duration
	groups   [][]string
	label    string
}

type timeline struct {
	start, end time.Duration
	lanes      []*lane
	index      map[string]int // node → lane
	partitions []partition
}

func buildTimeline(r *Run) *timeline {
	tl := &timeline{index: map[string]int{}}
	if len(r.Events) > 0 {
		tl.start, tl.end = r.Events[0].At, r.Events[len(r.Events)-1].At
	}
	for _, n := range r.Nodes() {
		if n == SimNode {
			continue
		}
		tl.index[n] = len(tl.lanes)
		tl.lanes = append(tl.lanes, &lane{node: n})
	}
	byNode := map[string][]*Event{}
	for i := range r.Events {
		e := &r.Events[i]
		byNode[e.Node] = append(byNode[e.Node], e)
	}
	for _, l := range tl.lanes {
		l.build(byNode[l.node], tl.start, tl.end)
	}
	tl.buildPartitions(byNode[SimNode])
	return tl
}

// initialState guesses what a node was doing before its first event, from
// the first thing its events reveal. A test trace starts with every node a
// follower in term 0, but a REPL window starts anywhere.
func initialState(events []*Event) (role Role, term uint64, hasTerm bool) {
	for _, e := range events {
		if e.Kind == KindFault && e.Fault.What == "restart" {
			break
		}
		if !hasTerm {
			switch {
			case e.Kind == KindTerm:
				term, hasTerm = e.PrevTerm, true
			case e.HasTerm && (e.Kind == KindRole || e.Kind == KindLeader || e.Kind == KindSend && ownTerm(e.RPC)):
				term, hasTerm = e.Term, true
			}
		}
		if role == RoleUnknown {
			role = roleEvidence(e)
		}
		if role != RoleUnknown && hasTerm {
			break
		}
		if e.Kind == KindFault && e.Fault.What == "crash" {
			break
		}
	}
	return role, term, hasTerm
}

// ownTerm says whether a message carries its sender's current term. A
// pre-vote request, and the answer to one, carry the term the candidate
// hopes for instead.
func ownTerm(r *RPC) bool {
	return r.HasTerm && r.Name != "PreVote" && !(r.Name == "VoteReply" && r.PreVote)
}

func roleEvidence(e *Event) Role {
	switch e.Kind {
	case KindRole:
		return e.PrevRole
	case KindSend:
		switch e.RPC.Name {
		case "AppendEntries", "InstallSnapshot", "TimeoutNow":
			return RoleLeader
		case "RequestVote":
			return RoleCandidate
		case "PreVote":
			return RolePreCandidate
		case "AppendReply", "InstallSnapshotReply":
			return RoleFollower
		}
	case KindLog:
		if e.Type == core.EventAppended {
			return RoleFollower
		}
	}
	return RoleUnknown
}

func (l *lane) build(events []*Event, start, end time.Duration) {
	cur := span{from: start}
	cur.role, cur.term, cur.hasTerm = initialState(events)
	open := map[string]time.Duration{}
	change := func(at time.Duration, next span) {
		if next.role == cur.role && next.term == cur.term && next.hasTerm == cur.hasTerm {
			return
		}
		cur.to = at
		if cur.to > cur.from {
			l.spans = append(l.spans, cur)
		}
		next.from = at
		cur = next
	}
	openWin := func(what string, at time.Duration) {
		if _, ok := open[what]; !ok {
			open[what] = at
		}
	}
	closeWin := func(what string, at time.Duration) {
		if from, ok := open[what]; ok {
			l.windows = append(l.windows, window{from, at, what})
			delete(open, what)
		}
	}
	seenAny := false
	for _, e := range events {
		next := cur
		switch e.Kind {
		case KindRole:
			next.role, next.term, next.hasTerm = e.Role, e.Term, true
		case KindTerm, KindLeader:
			next.term, next.hasTerm = e.Term, true
		case KindFault:
			switch e.Fault.What {
			case "crash":
				openWin("down", e.At)
				next.role = RoleUnknown
			case "restart":
				closeWin("down", e.At)
				next.role = RoleFollower
			case "disconnect":
				openWin("disconnected", e.At)
			case "reconnect":
				closeWin("disconnected", e.At)
			case "added":
				if !seenAny {
					l.windows = append(l.windows, window{start, e.At, "absent"})
				}
			case "removed":
				openWin("absent", e.At)
			}
		}
		seenAny = true
		change(e.At, next)
	}
	cur.to = end
	if cur.to > cur.from || len(l.spans) == 0 {
		l.spans = append(l.spans, cur)
	}
	for what, from := range open {
		l.windows = append(l.windows, window{from, end, what})
	}
	// Map order must not leak into the page: the same log gives the same HTML.
	sort.Slice(l.windows, func(i, j int) bool {
		a, b := l.windows[i], l.windows[j]
		return a.from < b.from || a.from == b.from && a.what < b.what
	})
}

func (tl *timeline) buildPartitions(sim []*Event) {
	var cur *partition
	closeAt := func(at time.Duration) {
		if cur != nil {
			cur.to = at
			tl.partitions = append(tl.partitions, *cur)
			cur = nil
		}
	}
	for _, e := range sim {
		if e.Kind != KindFault {
			continue
		}
		switch e.Fault.What {
		case "partition":
			closeAt(e.At)
			cur = &partition{from: e.At, groups: e.Fault.Groups, label: e.Msg}
		case "heal":
			closeAt(e.At)
		}
	}
	closeAt(tl.end)
}
