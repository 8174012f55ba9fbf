package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/sim"
	"raft-consensus/raft/trace"
)

// The commands of virtual time (go run . -sim): run, step, play, pause,
// timers, drop next, save, seed. Each asks the sim.Cluster; the REPL only
// parses and prints.

// errNotVirtual is what a virtual-time command says on the wall clock.
func errNotVirtual(name string) error {
	return fmt.Errorf("%q works in virtual time only — start the REPL with \"go run . -sim\"", name)
}

// virtual returns the running cluster in virtual time, or why not.
func virtual(c cluster.Cluster, name string) (*sim.Cluster, error) {
	v, ok := c.(*sim.Cluster)
	if !ok {
		return nil, errNotVirtual(name)
	}
	return v, nil
}

// maxRun bounds one "run": beyond it the user waits long for nothing.
const maxRun = 10 * time.Minute

func cmdRun(r *REPL, c cluster.Cluster, args []string) error {
	v, err := virtual(c, "run")
	if err != nil {
		return err
	}
	d, err := time.ParseDuration(args[0])
	if err != nil || d <= 0 || d > maxRun {
		return fmt.Errorf("run takes a duration above 0 and at most %v, like 500ms or 2s, not %s", maxRun, echo(args[0]))
	}
	if playing, _ := v.Playing(); playing {
		return errors.New("the cluster is playing — pause it first (\"pause\")")
	}
	if err := v.Run(d); err != nil {
		return err
	}
	r.printf("ok: %v passed; the time is %s", d, formatAt(r.sessionNow()))
	return nil
}

// maxStep bounds the events of one "step".
const maxStep = 1000

func cmdStep(r *REPL, c cluster.Cluster, args []string) error {
	v, err := virtual(c, "step")
	if err != nil {
		return err
	}
	n := 1
	if len(args) == 1 {
		if n, err = strconv.Atoi(args[0]); err != nil || n < 1 || n > maxStep {
			return fmt.Errorf("step takes a number of events from 1 to %d, not %s", maxStep, echo(args[0]))
		}
	}
	if playing, _ := v.Playing(); playing {
		return errors.New("the cluster is playing — pause it first (\"pause\")")
	}
	events, err := v.Step(n)
	base := time.Duration(r.vbase.Load())
	for _, e := range events {
		r.printf("%s", eventLine(base, e))
	}
	if err != nil {
		return err
	}
	if len(events) == 0 {
		r.printf("nothing happened for %v (every node crashed or cut off?); the time is %s", 10*time.Second, formatAt(r.sessionNow()))
	}
	return nil
}

// eventLine shows one event: its session time, its node, what happened.
func eventLine(base time.Duration, e trace.Record) string {
	at := base + e.Time.Sub(time.Unix(0, 0))
	node := e.Node
	if node != trace.SimNode {
		node = "node " + node
	}
	return fmt.Sprintf("%s  %-7s %s", formatAt(at), node, e.Event.Text())
}

// formatAt shows a session time to the microsecond: 1.234567s.
func formatAt(d time.Duration) string {
	return fmt.Sprintf("%.6fs", d.Seconds())
}

// shownWhilePlaying are the events "play" prints as they happen: the
// turns of the story, not every message.
var shownWhilePlaying = map[core.EventKind]bool{
	core.EventLeader: true, core.EventRole: true, core.EventElectionTimeout: true, core.EventFault: true,
	core.EventConfig: true, core.EventSnapshot: true, core.EventSnapshotInstalled: true,
	core.EventTransfer: true, core.EventCheckQuorum: true, core.EventSafety: true, core.EventStorageFailed: true,
}

func cmdPlay(r *REPL, c cluster.Cluster, args []string) error {
	v, err := virtual(c, "play")
	if err != nil {
		return err
	}
	speed := 1.0
	if len(args) == 1 {
		s := strings.TrimSuffix(strings.ToLower(args[0]), "x")
		if speed, err = strconv.ParseFloat(s, 64); err != nil || !(speed > 0 && speed <= 100) {
			return fmt.Errorf("play takes a speed above 0 and at most 100 (1 is real time, 0.1 ten times slower), not %s", echo(args[0]))
		}
	}
	base := time.Duration(r.vbase.Load())
	err = v.Play(speed, func(events []trace.Record) {
		for _, e := range events {
			if shownWhilePlaying[e.Event.Kind] {
				r.printf("%s", eventLine(base, e))
			}
		}
	})
	if err != nil {
		return err
	}
	r.printf("ok: playing at %s× real time from %s — \"pause\" stops the clock; commands work meanwhile", formatRate(speed), formatAt(r.sessionNow()))
	return nil
}

func cmdPause(r *REPL, c cluster.Cluster, args []string) error {
	if len(args) == 1 {
		return pauseNode(r, c, args[0], true)
	}
	if _, ok := c.(cluster.Pauser); ok {
		return usageError("usage: pause <node> — it stops that node's process (SIGSTOP); pause alone stops the clock of virtual time (-sim)")
	}
	v, err := virtual(c, "pause")
	if err != nil {
		return err
	}
	if playing, _ := v.Playing(); !playing {
		r.printf("ok: not playing; the time is %s", formatAt(r.sessionNow()))
		return nil
	}
	v.Pause()
	r.printf("ok: paused at %s", formatAt(r.sessionNow()))
	return nil
}

func cmdTimers(r *REPL, c cluster.Cluster, _ []string) error {
	v, err := virtual(c, "timers")
	if err != nil {
		return err
	}
	t := table.NewWriter()
	t.SetStyle(compactStyle())
	t.SetColumnConfigs([]table.ColumnConfig{{Number: 1, Align: text.AlignRight}})
	t.AppendHeader(table.Row{"node", "role", "election timer", "heartbeat"})
	for _, tm := range v.Timers() {
		if !tm.Alive {
			t.AppendRow(table.Row{tm.ID, "-", "crashed", "-"})
			continue
		}
		left := time.Duration(tm.ElectionTimeout-tm.ElectionElapsed) * tm.Tick
		election := fmt.Sprintf("%d of %d ticks: fires in %v", tm.ElectionElapsed, tm.ElectionTimeout, left.Round(time.Millisecond))
		heartbeat := "-"
		if tm.Role == core.Leader {
			election = fmt.Sprintf("%d of %d ticks: checks its quorum in %v", tm.ElectionElapsed, tm.ElectionTimeout, left.Round(time.Millisecond))
			hb := time.Duration(tm.HeartbeatTicks-tm.HeartbeatElapsed) * tm.Tick
			heartbeat = fmt.Sprintf("next in %v", hb.Round(time.Millisecond))
		}
		t.AppendRow(table.Row{tm.ID, tm.Role.String(), election, heartbeat})
	}
	fmt.Fprintln(r.out, render(t))
	r.printf("time %s; a tick is %v", formatAt(r.sessionNow()), 10*time.Millisecond)
	return nil
}

func cmdDrop(r *REPL, c cluster.Cluster, args []string) error {
	v, err := virtual(c, "drop")
	if err != nil {
		return err
	}
	if !strings.EqualFold(args[0], "next") {
		return usageOf(31)
	}
	from, to, err := linkArgs(c, args[1:], "drop next")
	if err != nil {
		return err
	}
	if err := v.DropNext(from, to); err != nil {
		return err
	}
	r.printf("ok: the next message from %d to %d will be lost", from, to)
	return nil
}

func cmdSave(r *REPL, _ cluster.Cluster, args []string) error {
	if !r.opts.Sim {
		return errNotVirtual("save")
	}
	n, replay, err := r.session.write(args[0], r.opts.Seed, r.sessionNow())
	if err != nil {
		return fmt.Errorf("cannot save the session: %v", err)
	}
	r.printf("ok: saved the seed and %s to %s — replay with: %s", plural(n, "command"), args[0], replay)
	return nil
}

func cmdSeed(r *REPL, _ cluster.Cluster, args []string) error {
	if !r.opts.Sim {
		return errNotVirtual("seed")
	}
	if len(args) == 0 {
		r.printf("seed %d (the next cluster's)", r.seed.Load())
		return nil
	}
	s, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return fmt.Errorf("a seed is a whole number, not %s", echo(args[0]))
	}
	if c := r.Cluster(); c != nil {
		return errors.New("a cluster is running on the current seed — shut it down first with \"shutdown\", then set the seed")
	}
	r.seed.Store(s)
	r.printf("ok: the next cluster runs from seed %d", s)
	return nil
}

// sessionNow is the session's virtual time.
func (r *REPL) sessionNow() time.Duration { return r.virtualNow().Sub(time.Unix(0, 0)) }

// createVirtual creates a cluster in virtual time from the REPL's seed.
func (r *REPL) createVirtual(n int) error {
	v, err := sim.NewCluster(sim.ClusterConfig{Nodes: n, Seed: r.seed.Load(), Memory: r.opts.Memory, ClientTimeout: r.opts.Timeout, Tracer: r.tracer})
	if err != nil {
		return fmt.Errorf("creating the cluster: %v", err)
	}
	if !r.setCluster(v) {
		v.Shutdown()
		return errors.New("the REPL is shutting down")
	}
	where := "storage on simulated disks"
	if r.opts.Memory {
		where = "storage in memory"
	}
	r.printf("ok: cluster of %s created (nodes %s, virtual time from seed %d, %s)", plural(n, "node"), idRange(v.IDs()), r.seed.Load(), where)
	r.printf("time stands still at %s until a command lets it pass: run, step, play, or one that waits (set, get, leader)", formatAt(r.sessionNow()))
	return nil
}

// pauseNode stops (or continues) a node's process, under the launcher.
func pauseNode(r *REPL, c cluster.Cluster, arg string, stop bool) error {
	p, ok := c.(cluster.Pauser)
	if !ok {
		return errors.New("pause and resume stop and continue a node's process: they need the launcher (go run . cluster up)")
	}
	id, err := node(c, arg)
	if err != nil {
		return err
	}
	if stop {
		if err := p.Pause(id); err != nil {
			return err
		}
		r.printf("node %d paused (SIGSTOP): \"resume %d\" continues it", id, id)
		return nil
	}
	if err := p.Resume(id); err != nil {
		return err
	}
	r.printf("node %d resumed (SIGCONT)", id)
	return nil
}

func cmdResume(r *REPL, c cluster.Cluster, args []string) error {
	return pauseNode(r, c, args[0], false)
}
