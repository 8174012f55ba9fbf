package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/sim"
	"raft-consensus/raft/trace"
	"raft-consensus/utils/web"
)

// The live page: "web [addr]" serves it (utils/web); the page's actions
// come back here as command lines, run as if typed and echoed.

const defaultWebAddr = "127.0.0.1:8080"

// notFromThePage are the commands the page may not run: they would end or
// replace the page's own session.
var notFromThePage = map[string]bool{"exit": true, "web": true}

func cmdWeb(r *REPL, _ cluster.Cluster, args []string) error {
	addr := defaultWebAddr
	if len(args) == 1 {
		addr = args[0]
	}
	url, err := r.startWeb(addr)
	if err != nil {
		return err
	}
	r.printf("ok: the live page is at %s (loopback only; what it does is echoed here as web> lines)", url)
	return nil
}

// startWeb starts the page's server, once.
func (r *REPL) startWeb(addr string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return "", errors.New("the REPL is shutting down")
	}
	if r.web != nil {
		return "", fmt.Errorf("the page is already served at %s", r.web.URL())
	}
	srv, err := web.Serve(addr, webBackend{r})
	if err != nil {
		return "", fmt.Errorf("cannot serve the page: %v — give another address, e.g. \"web 127.0.0.1:8081\"", err)
	}
	r.web = srv
	return srv.URL(), nil
}

// webBackend is the REPL as the page sees it.
type webBackend struct{ r *REPL }

// Exec runs a line from the page: echoed in the REPL as "web> line",
// with what it printed returned to the page.
func (b webBackend) Exec(line string) string {
	r := b.r
	words, err := ParseCommand(line)
	if err == nil && len(words) > 0 {
		if c := lookupCommand(words[0]); c != nil {
			name := c.names[0]
			switch {
			case notFromThePage[name]:
				return fmt.Sprintf("error: %q is for the REPL's own prompt, not the page\n", name)
			case writesFiles(name, words[1:]):
				return fmt.Sprintf("error: %q writes a file: type it at the REPL's own prompt, not on the page\n", name)
			}
		}
	}
	r.execMu.Lock()
	defer r.execMu.Unlock()
	fmt.Fprintf(r.out, "web> %s\n", oneLine(strings.Map(printable, line)))
	lw := r.out.(*lockedWriter)
	lw.capture(true)
	r.exec(line)
	return lw.capture(false)
}

// writesFiles: the command writes a file (the page must not: it is a
// browser's to drive, not a shell's).
func writesFiles(name string, args []string) bool {
	switch name {
	case "save", "history":
		return true
	case "check":
		return len(args) > 0
	case "diagram":
		for _, a := range args {
			if strings.EqualFold(a, "html") {
				return true
			}
		}
	}
	return false
}

// maxPageEntries is how many of each log's latest entries the page gets.
const maxPageEntries = 40

// maxPageEvents is how many of the latest events the timeline gets.
const maxPageEvents = 400

// State is the cluster as the page shows it.
func (b webBackend) State(group int) web.State {
	r := b.r
	st := web.State{Sim: r.opts.Sim, Seed: r.seed.Load(), Time: r.sessionNow().Seconds(), Flights: []web.Flight{}, Events: []web.Event{}, Nodes: []web.Node{}}
	if !r.opts.Sim {
		st.Time = time.Since(r.started).Seconds()
	}
	c := r.Cluster()
	gc, grouped := c.(cluster.Grouped)
	eventsOf := ""
	if grouped {
		st.Groups = gc.GroupCount()
		st.Group = max(0, min(group, st.Groups-1))
		eventsOf = fmt.Sprintf("g%d", st.Group)
	}
	st.Events, st.Note = r.pageEvents(eventsOf)
	if c == nil {
		return st
	}
	st.Cluster, st.Partition, st.Cuts = true, r.partitionDesc(), c.CutLinks()
	base := time.Duration(r.vbase.Load())
	v, _ := c.(*sim.Cluster)
	timers := map[int]sim.Timer{}
	if v != nil {
		st.Playing, st.Speed = v.Playing()
		for _, t := range v.Timers() {
			timers[t.ID] = t
		}
		for _, f := range v.Flights() {
			st.Flights = append(st.Flights, web.Flight{ID: f.ID, From: f.From, To: f.To, Type: f.Type, Entries: f.Entries,
				Sent: (base + f.Sent).Seconds(), Arrive: (base + f.Arrive).Seconds(), Lost: f.Lost})
		}
	}
	logs := map[int]cluster.NodeLog{}
	nodeLogs, status := c.Logs(maxPageEntries), c.Status()
	if grouped {
		nodeLogs, _ = gc.GroupLogs(uint64(st.Group), maxPageEntries)
		status, _ = gc.GroupNodes(uint64(st.Group))
	}
	for _, l := range nodeLogs {
		logs[l.ID] = l
	}
	for _, s := range status {
		n := web.Node{ID: s.ID, Alive: s.Alive, Connected: s.Connected, Role: s.Role.String(), Term: s.Term, Leader: s.Leader,
			Commit: s.Commit, Applied: s.Applied, SnapshotIndex: s.SnapshotIndex, LastIndex: s.LastIndex, Member: s.Member, Log: []web.LogEntry{}}
		if t, ok := timers[s.ID]; ok && t.Alive {
			n.Timer = &web.Timer{Elapsed: t.ElectionElapsed, Timeout: t.ElectionTimeout, TickMS: float64(t.Tick) / float64(time.Millisecond)}
		}
		l := logs[s.ID]
		for _, e := range l.Entries {
			n.Log = append(n.Log, web.LogEntry{Index: e.Index, Term: e.Term, Type: entryKind(e), Label: entryLabel(e, 6)})
		}
		st.Nodes = append(st.Nodes, n)
	}
	return st
}

func entryKind(e core.Entry) string {
	switch e.Type {
	case core.EntryNoop:
		return "no-op"
	case core.EntryConfig:
		return "config"
	}
	return "command"
}

// pageEvents are the latest events of the session but heartbeats: with
// group set ("g5"), that group's and the faults (which act on every
// group).
func (r *REPL) pageEvents(group string) ([]web.Event, string) {
	recs, note := r.Trace.Latest(maxPageEvents)
	if group != "" {
		recs = slices.DeleteFunc(recs, func(rec trace.Record) bool { return rec.Group != "" && rec.Group != group })
	}
	out := make([]web.Event, 0, len(recs))
	epoch := time.Unix(0, 0)
	for _, rec := range recs {
		at := rec.Time.Sub(epoch)
		if !r.opts.Sim {
			at = rec.Time.Sub(r.started)
		}
		out = append(out, web.Event{Time: at.Seconds(), Node: rec.Node, Kind: rec.Event.Kind.String(), Text: rec.Event.Text()})
	}
	return out, note
}

// capture starts (on) or ends (off) copying what is written; ending
// returns the copy.
func (l *lockedWriter) capture(on bool) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on {
		l.copy = &strings.Builder{}
		return ""
	}
	s := ""
	if l.copy != nil {
		s = l.copy.String()
	}
	l.copy = nil
	return s
}

// printable keeps what the page sent from moving the terminal's cursor.
func printable(r rune) rune {
	if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
		return '?'
	}
	return r
}
