package diagram

import (
	"reflect"
	"testing"

	"raft-consensus/raft/core"
)

type spanSummary struct {
	role string
	term uint64
	from string
}

func spansOf(tl *timeline, node string) []spanSummary {
	var out []spanSummary
	for _, s := range tl.lanes[tl.index[node]].spans {
		out = append(out, spanSummary{s.role.String(), s.term, FormatClock(s.from)[9:]})
	}
	return out
}

func TestTimelineRolesAndTerms(t *testing.T) {
	timeout := ev(core.EventElectionTimeout)
	timeout.Term, timeout.Count = 1, 10
	log := mustParse(t, lines(
		at("22:00:00.000000", "0", timeout),
		at("22:00:00.000010", "0", termEv(1, 2)),
		at("22:00:00.000020", "0", roleEv(core.Follower, core.Candidate, 2)),
		at("22:00:00.000030", "0", roleEv(core.Candidate, core.Leader, 2)),
		at("22:00:00.000040", "1", send(appendReplyRPC(1, 0, 2, 3))),
		at("22:00:00.000050", "0", faultEv("crash")),
		at("22:00:00.000060", "0", faultEv("restart")),
		at("22:00:00.000070", "1", infoEv("something")),
	))
	tl := buildTimeline(log.Runs[0])
	want := []spanSummary{
		{"follower", 1, "000000"},
		{"follower", 2, "000010"},
		{"candidate", 2, "000020"},
		{"leader", 2, "000030"},
		{"unknown", 2, "000050"},
		{"follower", 2, "000060"},
	}
	if got := spansOf(tl, "0"); !reflect.DeepEqual(got, want) {
		t.Errorf("node 0 spans\n got %v\nwant %v", got, want)
	}
	// Node 1 never says its role, but answering AppendEntries makes it a
	// follower, and its reply carries its term.
	if got := spansOf(tl, "1"); !reflect.DeepEqual(got, []spanSummary{{"follower", 2, "000000"}}) {
		t.Errorf("node 1 spans = %v", got)
	}
	w := tl.lanes[tl.index["0"]].windows
	if len(w) != 1 || w[0].what != "down" || FormatClock(w[0].from)[9:] != "000050" || FormatClock(w[0].to)[9:] != "000060" {
		t.Errorf("node 0 windows = %+v", w)
	}
}

func TestTimelineWindowsOpenAtEnd(t *testing.T) {
	log := mustParse(t, lines(
		at("22:00:00.000000", "2", faultEv("disconnect")),
		at("22:00:00.000010", "3", faultEv("added")),
		at("22:00:00.000020", "1", faultEv("removed")),
	)+"22:00:00.000030 [1] still talking\n")
	tl := buildTimeline(log.Runs[0])
	check := func(node, what, from, to string) {
		t.Helper()
		for _, w := range tl.lanes[tl.index[node]].windows {
			if w.what == what && FormatClock(w.from)[9:] == from && FormatClock(w.to)[9:] == to {
				return
			}
		}
		t.Errorf("node %s: no %s window %s–%s in %+v", node, what, from, to, tl.lanes[tl.index[node]].windows)
	}
	check("2", "disconnected", "000000", "000030")
	check("3", "absent", "000000", "000010")
	check("1", "absent", "000020", "000030")
}

func TestTimelinePartitions(t *testing.T) {
	log := mustParse(t, "22:00:00.000000 [0] hello\n"+lines(
		at("22:00:00.000010", "sim", faultEv("partition 0 1 | 2", []int{0, 1}, []int{2})),
		at("22:00:00.000020", "sim", faultEv("partition 0 | 1 2", []int{0}, []int{1, 2})),
		at("22:00:00.000030", "sim", faultEv("heal")),
		at("22:00:00.000040", "sim", faultEv("partition 0 2 | 1", []int{0, 2}, []int{1})),
	)+"22:00:00.000050 [2] bye\n")
	tl := buildTimeline(log.Runs[0])
	var got []string
	for _, p := range tl.partitions {
		got = append(got, FormatClock(p.from)[9:]+"-"+FormatClock(p.to)[9:])
	}
	want := []string{"000010-000020", "000020-000030", "000040-000050"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("partitions = %v, want %v", got, want)
	}
	if len(tl.lanes) != 3 {
		t.Errorf("lanes = %d: sim has no lane of its own", len(tl.lanes))
	}
}

func TestInitialStateFromPreVoteIgnoresHopedForTerm(t *testing.T) {
	log := mustParse(t, lines(
		at("22:00:00.000000", "0", send(voteRPC(0, 1, 5, true))),
		at("22:00:00.000010", "0", send(appendRPC(0, 1, 4, 3, 4, 0, 3))),
	))
	tl := buildTimeline(log.Runs[0])
	if got := spansOf(tl, "0"); !reflect.DeepEqual(got, []spanSummary{{"pre-candidate", 4, "000000"}}) {
		t.Errorf("spans = %v", got)
	}
}
