package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
)

// The guided tour: election, replication, a leader crash, a partition with
// a leader in the minority, a membership change and a snapshot, one step
// at a time on a cluster of its own. Each step runs REPL commands, shown
// as "tour> …" with their output, then says what happened and where the
// paper says why. Between steps the user may type anything; "tour" goes
// on where it stopped.

// tourState is where a tour stands, between steps.
type tourState struct {
	next    int // the step to run next
	cluster cluster.Cluster
	// Ids the steps remember: the first leader, the leader cut off.
	first, cutOff, buddy int
}

type tourStep struct {
	title string
	run   func(t *tour) (explain string, err error)
}

// tour runs one step with the REPL.
type tour struct {
	r *REPL
	s *tourState
}

// do runs a command line as the user would type it, and shows it; it
// reports whether the command succeeded.
func (t *tour) do(line string) bool {
	fmt.Fprintf(t.r.out, "tour> %s\n", line)
	before := t.r.errLines.Load()
	t.r.exec(line)
	return t.r.errLines.Load() == before
}

// must runs commands that the step needs to succeed, and stops at the
// first that fails: the explanation would not be true.
func (t *tour) must(lines ...string) error {
	for _, line := range lines {
		if !t.do(line) {
			return fmt.Errorf("%q failed (is the cluster as the tour left it?)", line)
		}
	}
	return nil
}

func (t *tour) cluster() cluster.Cluster { return t.s.cluster }

// leader waits for a leader (showing the "leader" command) and returns it.
func (t *tour) leader() (int, error) {
	t.do("leader")
	l, _ := t.cluster().Leader()
	if l == core.None {
		return 0, errors.New("no leader came up: see \"status\"")
	}
	return l, nil
}

// others are the members but the given ones, in order.
func (t *tour) others(not ...int) []int {
	var out []int
	for _, id := range t.cluster().IDs() {
		if !slices.Contains(not, id) {
			out = append(out, id)
		}
	}
	return out
}

// settle lets the cluster catch up: a second of virtual time; on the wall
// clock, until the running servers' logs agree (at most a few seconds).
func (t *tour) settle() {
	if t.r.opts.Sim {
		t.do("run 1s")
		return
	}
	t.do("leader")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		logs := t.cluster().Logs(cluster.MaxLogEntries)
		var last, commit uint64
		agree := true
		for _, l := range logs {
			last = max(last, l.LastIndex)
		}
		for _, l := range logs {
			if l.Alive && commit != 0 && l.Commit != commit {
				agree = false
			}
			if l.Alive && commit == 0 {
				commit = l.Commit
			}
		}
		if agree && firstDifference(logs, last) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var tourSteps = []tourStep{
	{"Five servers, no leader yet", func(t *tour) (string, error) {
		if err := t.must("create 5"); err != nil {
			return "", err
		}
		if t.r.Cluster() == nil {
			return "", errors.New("the cluster was not created")
		}
		t.s.cluster = t.r.Cluster()
		t.r.tourCluster = t.s.cluster
		if t.r.opts.Sim {
			t.do("timers")
		}
		return `Every server starts as a follower, in term 1, and waits to hear from a
leader. Each one drew a random election timeout, here between 150 and 300 ms:
the first whose timer runs out will stand for election. Random timeouts make
it unlikely that two servers stand at once and split the vote (§5.2).`, nil
	}},
	{"An election", func(t *tour) (string, error) {
		l, err := t.leader()
		if err != nil {
			return "", err
		}
		t.s.first = l
		_, term := t.cluster().Leader()
		return fmt.Sprintf(`Node %d's timer ran out first. It asked the others whether they would vote
for it (a pre-vote, thesis §9.6, so that a server cut off from the others
cannot disrupt them when it comes back), then became a candidate in term %d,
voted for itself and sent RequestVote to every server (§5.2). A server grants
one vote per term, and only to a candidate whose log is at least as up to date
as its own (§5.4.1). With the votes of a majority, 3 of 5, node %d leads term
%d, and its heartbeats keep the others from standing.`, l, term, l, term), nil
	}},
	{"Replication and commit", func(t *tour) (string, error) {
		if err := t.must("set x 1", "log"); err != nil {
			return "", err
		}
		return `The client sent "set x 1" to the leader. The leader appended it to its log
and sent it to the followers in AppendEntries (§5.3). Once a majority had
stored it, the leader committed it (C in the log view) and applied it to its
state machine (A); the followers learn of the commit in the next
AppendEntries. The no-op (·) before it is the first entry of every new
leader: it lets the leader commit an entry of its own term at once (§5.4.2,
§8).`, nil
	}},
	{"The leader crashes", func(t *tour) (string, error) {
		old := t.s.first
		if err := t.must(fmt.Sprintf("crash %d", old)); err != nil {
			return "", err
		}
		l, err := t.leader()
		if err != nil {
			return "", err
		}
		if err := t.must("get x"); err != nil {
			return "", err
		}
		return fmt.Sprintf(`The followers stopped hearing from node %d. After an election timeout one of
them stood in a higher term and won: node %d leads now (§5.2). x is still 1:
an entry committed in one term is in the log of every later leader (Leader
Completeness, §5.4), because only a server whose log holds every committed
entry can win a vote (§5.4.1). The read went through ReadIndex: the new
leader checked with a majority that it still leads before it answered
(thesis §6.4).`, old, l), nil
	}},
	{"A partition with the leader in the minority", func(t *tour) (string, error) {
		if err := t.must(fmt.Sprintf("restart %d", t.s.first)); err != nil {
			return "", err
		}
		l, err := t.leader()
		if err != nil {
			return "", err
		}
		rest := t.others(l)
		buddy := rest[0]
		majority := rest[1:]
		t.s.cutOff, t.s.buddy = l, buddy
		if err := t.must(fmt.Sprintf("partition %d %d | %s", l, buddy, joinInts(majority, " "))); err != nil {
			return "", err
		}
		if t.do(fmt.Sprintf("set z 9 %d", l)) {
			return "", fmt.Errorf("node %d committed a write without a majority", l)
		}
		if err := t.must("set y 2", fmt.Sprintf("get y %d stale", l), "log"); err != nil {
			return "", err
		}
		return fmt.Sprintf(`Node %d still believed it led, but with only node %d beside it, it cannot
reach a majority: it appended "set z 9" to its log, and can never commit it;
the client got no answer, so the write's outcome was unknown to it. A leader
that has not heard from a majority for an election timeout steps down
(CheckQuorum, thesis §6.2). The other three elected a leader in a higher term,
which committed y = 2. Read at node %d without ReadIndex, y has no value yet:
a stale read — which is why reads go through ReadIndex (thesis §6.4). In the
log view the two sides' logs part after the last entry they share.`, l, buddy, l), nil
	}},
	{"The partition heals", func(t *tour) (string, error) {
		if err := t.must("heal"); err != nil {
			return "", err
		}
		t.settle()
		if err := t.must("get y", "log"); err != nil {
			return "", err
		}
		return fmt.Sprintf(`Nodes %d and %d heard from a leader of a higher term and followed it. The leader's AppendEntries found where their logs parted, and they
deleted their entries from there on, "set z 9" among them, and took the
leader's (§5.3: a follower removes entries that conflict with the leader's).
Nothing acknowledged was lost: z = 9 never committed, and its client never
heard that it had.`, t.s.cutOff, t.s.buddy), nil
	}},
	{"Changing the membership", func(t *tour) (string, error) {
		if err := t.must("add 5"); err != nil {
			return "", err
		}
		l, _ := t.cluster().Leader()
		gone := t.others(l, 5)[0]
		if err := t.must(fmt.Sprintf("remove %d", gone), "status"); err != nil {
			return "", err
		}
		return fmt.Sprintf(`"add 5" started an empty server, and the leader added it as a learner: it
receives the log but does not count toward a majority until it has caught up;
then the leader promoted it to voter (thesis §4.2.1). "remove %d" went the
other way: the leader proposed a configuration without it, and once that
was committed the server stopped. The leader changes one server at a time, so that every majority
of the old configuration overlaps every majority of the new one, and two
leaders can never be elected at once (thesis §4.1). A server uses a new
configuration as soon as it is in its log, committed or not.`, gone), nil
	}},
	{"A snapshot, and a server that joins after it", func(t *tour) (string, error) {
		if err := t.must("set a 1", "set b 2", "set c 3", "snapshot", "add 6", "log"); err != nil {
			return "", err
		}
		installed := t.r.traced(core.EventSnapshotInstalled, "6")
		how := `The leader's log no longer holds the entries it needs, so the leader
sent it the snapshot instead, in InstallSnapshot chunks (§7); node 6 restored
its state machine from it, and holds only the entries after it.`
		if !installed {
			how = `It caught up from the leader's log: the entries it needed were still
there.`
		}
		return `Every running server wrote its state machine to a snapshot and dropped the
log entries it covers (§7): the cells marked ~, and S where the snapshot
ends. Then "add 6" started an empty server. ` + how, nil
	}},
	{"The end", func(t *tour) (string, error) {
		if err := t.must("check"); err != nil {
			return "", err
		}
		return `You have seen an election (§5.2), replication and commit (§5.3), safety
across a crash (§5.4), a leader cut off in the minority (thesis §6.2, §6.4),
a log repaired after a partition (§5.3), membership changes (thesis §4) and a
snapshot (§7); check has just verified that every read and write of the tour
was linearizable. Try next: "diagram html tour.html" (the whole tour as a
timing diagram), "web" (the live page), and in virtual time "play 0.1" (the
cluster at a tenth of real speed) or "step" (one event at a time).`, nil
	}},
}

func cmdTour(r *REPL, _ cluster.Cluster, args []string) error {
	sub := ""
	if len(args) == 1 {
		sub = strings.ToLower(args[0])
	}
	switch sub {
	case "stop":
		if r.tour == nil {
			return errors.New("no tour is running — \"tour\" starts one")
		}
		r.printf("ok: the tour stops before step %d of %d; \"tour\" goes on from there, \"tour restart\" starts it again", r.tour.next+1, len(tourSteps))
		return nil
	case "restart":
		if c := r.Cluster(); c != nil && c == r.tourCluster {
			r.shutdownCluster() // the tour's own, from this tour or the last
		}
		r.tour = nil
	case "", "next":
	default:
		return usageOf(36)
	}
	if r.tour == nil {
		if r.Cluster() != nil {
			return errors.New("the tour starts a cluster of its own — shut this one down first (\"shutdown\")")
		}
		r.tour = &tourState{}
		r.printf("A tour of Raft in %d steps. After each step, \"tour\" goes on; type any command meanwhile; \"tour stop\" leaves (\"tour\" comes back).", len(tourSteps))
	} else if r.tour.cluster != nil && r.Cluster() != r.tour.cluster {
		return errors.New("the tour's cluster is gone — \"tour restart\" starts the tour again")
	}
	s := r.tour
	if s.next >= len(tourSteps) {
		r.tour = nil
		r.printf("The tour is over. \"tour restart\" takes it again.")
		return nil
	}
	step := tourSteps[s.next]
	r.printf("")
	r.printf("── Tour, step %d of %d: %s ──", s.next+1, len(tourSteps), step.title)
	explain, err := step.run(&tour{r: r, s: s})
	if err != nil {
		return fmt.Errorf("the tour's step %d went wrong: %v (\"tour restart\" starts again)", s.next+1, err)
	}
	s.next++
	fmt.Fprintln(r.out)
	for _, line := range wrap(explain, 76) {
		r.printf("  %s", line)
	}
	if s.next < len(tourSteps) {
		r.printf("(\"tour\" for step %d: %s)", s.next+1, strings.ToLower(tourSteps[s.next].title[:1])+tourSteps[s.next].title[1:])
	} else {
		r.tour = nil
		r.printf("(the tour is over; the cluster stays yours)")
	}
	return nil
}

// traced reports whether node traced an event of kind this session.
func (r *REPL) traced(kind core.EventKind, node string) bool {
	recs, _ := r.Trace.Latest(100000)
	for _, rec := range recs {
		if rec.Event.Kind == kind && rec.Node == node {
			return true
		}
	}
	return false
}

// wrap reflows text into lines of at most width characters.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len([]rune(line))+1+len([]rune(w)) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
