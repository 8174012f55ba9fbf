package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/lincheck"
	"raft-consensus/raft/remote"
	"raft-consensus/raft/trace"
	"raft-consensus/utils/diagram"
)

// The commands that look at what the cluster did: timing diagram,
// linearizability check, snapshots.

// idleSplit: "diagram html" starts a new part after this long with
// nothing but heartbeats.
const idleSplit = time.Second

// defaultDiagramEvents is how many events "diagram" shows in the terminal.
const defaultDiagramEvents = 40

// cmdDiagram renders the latest trace events: "diagram [N] [all]" prints a
// table of the last N events (heartbeats hidden unless "all"); "diagram
// html FILE [N]" writes the swim-lane page.
func cmdDiagram(r *REPL, _ cluster.Cluster, args []string) error {
	n, htmlFile, heartbeats, group := defaultDiagramEvents, "", false, ""
	counted := false // a number of events was given
	for i := 0; i < len(args); i++ {
		switch a := strings.ToLower(args[i]); {
		case a == "html":
			if i+1 >= len(args) {
				return usageOf(20)
			}
			htmlFile = args[i+1]
			n = 0 // the page shows every event kept, zoomable
			i++
		case a == "all":
			heartbeats = true
		case isGroupArg(a):
			c := r.Cluster()
			if c == nil {
				return errNoCluster
			}
			gc, ok := c.(cluster.Grouped)
			if !ok {
				return oneGroupError(c, args[i])
			}
			if group != "" {
				return fmt.Errorf("name one group at most — the diagram shows one group, or every group (no group named)")
			}
			g, err := parseGroup(gc, a, false)
			if err != nil {
				return err
			}
			group = fmt.Sprintf("g%d", g)
		default:
			v, err := strconv.Atoi(a)
			if err != nil || v <= 0 || v > maxDiagramRows {
				return fmt.Errorf("%s is not a number of events (1–%d) — usage: %s", echo(args[i]), maxDiagramRows, commandByNum(20).usage())
			}
			if counted {
				return fmt.Errorf("name one number of events — usage: %s", commandByNum(20).usage())
			}
			n, counted = v, true
		}
	}
	events, note := r.Trace.Records()
	if group != "" {
		// The group's events, and the faults (which act on every group).
		events = slices.DeleteFunc(events, func(rec trace.Record) bool { return rec.Group != "" && rec.Group != group })
	}
	if len(events) == 0 {
		if c := r.Cluster(); c != nil && inProcesses(c) {
			return errors.New("no trace events: the diagram shows what an in-process cluster traced (go run ., then 1 3); nodes in processes of their own (cluster up, -connect) trace into their own logs")
		}
		return fmt.Errorf("no trace events yet — create a cluster first (1 <nodes>)")
	}
	run, _ := diagram.FromRecords("REPL session", events)
	run = lastShown(run, n, heartbeats)
	events = events[len(events)-len(run.Events):]
	if htmlFile != "" {
		f, err := os.Create(htmlFile)
		if err != nil {
			return fmt.Errorf("cannot write the diagram: %v", err)
		}
		// Each burst of activity gets a section of its own, drawn to the
		// page's width, then the whole session: at one scale, the idle
		// minutes of a typed session would squeeze a busy second into a
		// few pixels.
		runs := run.Episodes(idleSplit)
		if len(runs) > 1 {
			whole := *run
			whole.Name = "REPL session, whole"
			runs = append(runs, &whole)
		}
		werr := diagram.WriteHTML(f, runs, diagram.HTMLOptions{HideHeartbeats: !heartbeats})
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("writing %s: %v", htmlFile, werr)
		}
		msg := fmt.Sprintf("ok: wrote the timing diagram of the session's %d events to %s (open it in a browser)", len(events), htmlFile)
		if len(runs) > 1 {
			msg += fmt.Sprintf("; %d parts, one for each stretch of activity, then the whole session", len(runs)-1)
		}
		if note != "" {
			msg += "; " + note
		}
		r.printf("%s", msg)
		return nil
	}
	if err := diagram.WriteTable(r.out, run, diagram.TableOptions{Width: terminalWidth(), NoHeartbeats: !heartbeats}); err != nil {
		return err
	}
	if note != "" && heartbeats {
		r.printf("(%s)", note)
	}
	return nil
}

// cmdCheck checks the client history of the running cluster with
// porcupine: "check [FILE]" also writes porcupine's visualization.
func cmdCheck(r *REPL, sim cluster.Cluster, args []string) error {
	history := sim.History()
	if len(history) == 0 {
		return fmt.Errorf("no client operations yet — run some set/get/delete first")
	}
	check, since := lincheck.CheckLinearizable, ""
	if heldData(sim) {
		// Its keys may hold values from before this session: a first read
		// of one is not wrong for seeing a value no set here wrote.
		check, since = lincheck.CheckLinearizableFromUnknown, " (from whatever the keys held before this session: the cluster had data this REPL did not write)"
	}
	res := check(history, 30*time.Second)
	verdict := "linearizable"
	switch {
	case res.Result == "Illegal":
		verdict = "NOT linearizable"
	case !res.Linearizable():
		verdict = "unknown (the check timed out)"
	}
	verdict += since
	msg := fmt.Sprintf("history of %s: %s", plural(res.Ops, "operation"), verdict)
	if len(args) == 1 {
		f, err := os.Create(args[0])
		if err != nil {
			return fmt.Errorf("cannot write the visualization: %v", err)
		}
		werr := res.WriteHTML(f)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("writing %s: %v", args[0], werr)
		}
		msg += " (visualization in " + args[0] + ")"
	}
	r.printf("%s", msg)
	return nil
}

// cmdSnapshot makes one node, or every running node, snapshot its state
// machine and compact its log.
func cmdSnapshot(r *REPL, sim cluster.Cluster, args []string) error {
	var ids []int
	if len(args) == 1 {
		if _, grouped := sim.(cluster.Grouped); grouped && isGroupArg(args[0]) {
			return fmt.Errorf("snapshots are taken per node, of every group it hosts: name a node (\"snapshot 2\"), or none for every node")
		}
		id, err := node(sim, args[0])
		if err != nil {
			return err
		}
		ids = []int{id}
	} else {
		for _, st := range sim.Status() {
			if st.Alive {
				ids = append(ids, st.ID)
			}
		}
	}
	for _, id := range ids {
		index, err := sim.Snapshot(id)
		if err != nil {
			if errors.Is(err, cluster.ErrNodeCrashed) {
				return fmt.Errorf("node %d is crashed: it has no state machine to snapshot — restart it first (\"restart %d\")", id, id)
			}
			if len(args) == 1 {
				if msg := describe(err); strings.HasPrefix(msg, fmt.Sprintf("node %d ", id)) {
					return errors.New(msg)
				}
				return fmt.Errorf("node %d: %s", id, describe(err))
			}
			msg := describe(err)
			if !strings.HasPrefix(msg, fmt.Sprintf("node %d ", id)) {
				msg = fmt.Sprintf("node %d: %s", id, msg)
			}
			r.printf("note: %s — no new snapshot", msg)
			continue
		}
		if _, ok := sim.(cluster.Grouped); ok {
			r.printf("ok: node %d snapshotted %s (those with entries applied since their last snapshot)", id, plural(int(index), "group"))
			continue
		}
		r.printf("ok: node %d snapshot through index %d", id, index)
	}
	return nil
}

// lastShown keeps the last n events that will be shown (heartbeats count
// only when shown), so that "diagram 40" shows 40 rows.
func lastShown(run *diagram.Run, n int, heartbeats bool) *diagram.Run {
	if n <= 0 {
		return run
	}
	shown, i := 0, len(run.Events)
	for i > 0 && shown < n {
		i--
		if heartbeats || !run.Events[i].Heartbeat {
			shown++
		}
	}
	return run.Last(len(run.Events) - i)
}

func commandByNum(num int) *command {
	for _, c := range commands {
		if c.num == num {
			return c
		}
	}
	return nil
}

// terminalWidth is the width of the terminal on stdout, or $COLUMNS, or 120.
func terminalWidth() int {
	if w, _, err := term.GetSize(int(os.Stdout.Fd())); err == nil && w > 40 {
		return w
	}
	if w, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && w > 40 {
		return w
	}
	return 120
}

// cmdHistory writes the client history as JSON lines.
func cmdHistory(r *REPL, c cluster.Cluster, args []string) error {
	ops := c.History()
	if len(ops) == 0 {
		return fmt.Errorf("no client operations yet — run some set/get/delete first")
	}
	f, err := os.Create(args[0])
	if err != nil {
		return fmt.Errorf("cannot write the history: %v", err)
	}
	werr := kv.WriteHistoryJSON(f, ops)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("writing %s: %v", args[0], werr)
	}
	r.printf("ok: wrote %s to %s (JSON lines)", plural(len(ops), "operation"), args[0])
	return nil
}

// heldData reports whether the cluster may hold data written before this
// session: one recovered from a data directory, or nodes in processes of
// their own (started before, or by another REPL on the same dir).
func heldData(c cluster.Cluster) bool {
	if rc, ok := c.(interface{ Recovered() string }); ok && rc.Recovered() != "" {
		return true
	}
	return inProcesses(c)
}

// inProcesses reports whether the REPL drives nodes in processes of their
// own (cluster up, -connect), which trace into their own logs.
func inProcesses(c cluster.Cluster) bool {
	switch c.(type) {
	case *remote.Cluster, *remote.GroupedCluster:
		return true
	}
	return false
}
