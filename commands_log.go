package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
)

// The log view: every node's log aligned by index (RaftScope's picture in
// a terminal), or one node's entries one a line.

const (
	logCellWidth   = 8  // one entry: term and a short label
	logLabelWidth  = 16 // at least: "node 2 follower "
	logNodeEntries = 20 // entries one node shows by default
)

// logRange is a window of indexes [lo, hi]; zero values: choose.
type logRange struct{ lo, hi uint64 }

// parseLogRange reads "10", "10..20" or "..20".
func parseLogRange(s string) (logRange, error) {
	bad := fmt.Errorf("%s is not a range of indexes — e.g. 10..20, or 10 for 10 onwards", echo(s))
	num := func(t string) (uint64, error) {
		if t == "" {
			return 0, nil
		}
		v, err := strconv.ParseUint(t, 10, 64)
		if err != nil || v == 0 || v > 1<<53 {
			return 0, bad
		}
		return v, nil
	}
	a, b, isRange := strings.Cut(s, "..")
	lo, err := num(a)
	if err != nil {
		return logRange{}, err
	}
	if !isRange {
		if lo == 0 {
			return logRange{}, bad
		}
		return logRange{lo: lo}, nil
	}
	hi, err := num(b)
	if err != nil || (lo == 0 && hi == 0) || (hi != 0 && hi < lo) {
		return logRange{}, bad
	}
	return logRange{lo: lo, hi: hi}, nil
}

// cmdLog: "log" (every node), "log 10..20" or "log 10.." (every node, a
// window), "log 2" (node 2), "log 2 10..20" (node 2, a window).
func cmdLog(r *REPL, c cluster.Cluster, args []string) error {
	args, group, inGroup, err := takeGroupArg(c, args)
	if err != nil {
		return err
	}
	if len(args) > 2 {
		return usageOf(25)
	}
	nodeArg, rangeArg := "", ""
	switch {
	case len(args) == 2:
		nodeArg, rangeArg = args[0], args[1]
	case len(args) == 1 && strings.Contains(args[0], ".."):
		rangeArg = args[0]
	case len(args) == 1:
		nodeArg = args[0]
	}
	var rng logRange
	if rangeArg != "" {
		if rng, err = parseLogRange(rangeArg); err != nil {
			return err
		}
	}
	id := core.None
	if nodeArg != "" {
		if id, err = node(c, nodeArg); err != nil {
			return err
		}
	}
	logs, status := c.Logs(cluster.MaxLogEntries), c.Status()
	gc, grouped := c.(cluster.Grouped)
	if grouped {
		// Group 0's unless one is named.
		if logs, err = gc.GroupLogs(group, cluster.MaxLogEntries); err != nil {
			return err
		}
		if status, err = gc.GroupNodes(group); err != nil {
			return err
		}
	}
	i := slices.IndexFunc(logs, func(l cluster.NodeLog) bool { return l.ID == id })
	if id != core.None && i < 0 {
		if grouped {
			return fmt.Errorf("node %d holds no replica of group %d (it is not one of its members) — \"groups\" lists each group's members", id, group)
		}
		return fmt.Errorf("node %d has no log to show", id)
	}
	// The header comes once the command is known to succeed: an error is
	// one line of its own.
	if grouped {
		if inGroup {
			r.printf("group %d's log", group)
		} else {
			last := gc.GroupCount() - 1
			r.printf("group 0's log (\"log g%d\" shows group %d's)", last, last)
		}
	}
	if id == core.None {
		return r.printLogs(logs, status, rng)
	}
	return r.printNodeLog(logs[i], statusOf(status, id), rng)
}

// entryLabel renders an entry in a few characters for the aligned view.
func entryLabel(e core.Entry, width int) string {
	switch e.Type {
	case core.EntryNoop:
		return "·"
	case core.EntryConfig:
		return "cfg"
	}
	cmd, err := kv.DecodeCommand(e.Data)
	if err != nil {
		return "cmd"
	}
	var s string
	switch cmd.Op {
	case kv.OpSet:
		s = cmd.Key + "=" + cmd.Value
	case kv.OpDelete:
		s = "-" + cmd.Key
	default:
		s = "cmd"
	}
	return truncateRunes(s, width)
}

// entryText renders an entry in full for the one-node view.
func entryText(e core.Entry) string {
	switch e.Type {
	case core.EntryNoop:
		return "no-op (a new leader's first entry, §5.4.2)"
	case core.EntryConfig:
		cfg, err := core.DecodeConfiguration(e.Data)
		if err != nil {
			return "configuration (unreadable)"
		}
		return "configuration " + cfg.String()
	}
	cmd, err := kv.DecodeCommand(e.Data)
	if err != nil {
		return fmt.Sprintf("command of %d bytes", len(e.Data))
	}
	switch cmd.Op {
	case kv.OpSet:
		return fmt.Sprintf("set %s = %s (client %s seq %d)", quoteIfNeeded(truncateRunes(cmd.Key, 40)), quoteIfNeeded(truncateRunes(cmd.Value, 40)), shortClient(cmd.ClientID), cmd.Seq)
	case kv.OpDelete:
		return fmt.Sprintf("delete %s (client %s seq %d)", quoteIfNeeded(truncateRunes(cmd.Key, 40)), shortClient(cmd.ClientID), cmd.Seq)
	}
	return fmt.Sprintf("%v %s", cmd.Op, quoteIfNeeded(truncateRunes(cmd.Key, 40)))
}

// shortClient shows a client id by its last digits: ids are long and random.
func shortClient(id uint64) string {
	s := strconv.FormatUint(id, 16)
	if len(s) > 4 {
		s = "…" + s[len(s)-4:]
	}
	return s
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	rs := []rune(s)
	return string(rs[:n-1]) + "…"
}

// termColor colours a term at a terminal: each term its own colour, so a
// divergent suffix stands out.
func (r *REPL) termColor(term uint64, s string) string {
	if !r.opts.Color {
		return s
	}
	colors := []string{"31", "32", "33", "34", "35", "36"}
	return "\x1b[" + colors[term%uint64(len(colors))] + "m" + s + "\x1b[0m"
}

// statusOf finds a node's status (a crashed one's if none is listed).
func statusOf(status []cluster.NodeStatus, id int) cluster.NodeStatus {
	for _, st := range status {
		if st.ID == id {
			return st
		}
	}
	return cluster.NodeStatus{ID: id, Leader: core.None}
}

// roleOf names a node's role for the log view: a node that is down is
// named as status names it ("paused", "not answering"), or crashed.
func roleOf(st cluster.NodeStatus) string {
	switch {
	case !st.Alive && st.Down != "":
		return st.Down
	case !st.Alive:
		return "crashed"
	}
	return st.Role.String()
}

// printLogs shows every node's log aligned by index.
func (r *REPL) printLogs(logs []cluster.NodeLog, status []cluster.NodeStatus, rng logRange) error {
	var last uint64
	for _, l := range logs {
		last = max(last, l.LastIndex)
	}
	alive := slices.ContainsFunc(logs, func(l cluster.NodeLog) bool { return l.Alive })
	switch {
	case !alive:
		return errors.New("every node is crashed: their logs are on their disks — restart one (\"restart 0\") to see its log")
	case last == 0:
		r.printf("every log is empty (no leader has been elected yet?)")
		return nil
	case rng.lo > last:
		return fmt.Errorf("the logs end at index %d — e.g. \"log 1..%d\"", last, last)
	}
	// The labels' column fits the longest ("node 12 pre-candidate ").
	labelWidth := logLabelWidth
	for _, l := range logs {
		labelWidth = max(labelWidth, len(fmt.Sprintf("node %d %s ", l.ID, roleOf(statusOf(status, l.ID)))))
	}
	cells := max(4, (terminalWidth()-labelWidth)/logCellWidth)
	lo, hi, why := logWindow(logs, rng, last, uint64(cells))
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s", labelWidth, "index")
	for i := lo; i <= hi; i++ {
		fmt.Fprintf(&b, "%-*d", logCellWidth, i)
	}
	r.printf("%s", strings.TrimRight(b.String(), " "))
	for _, l := range logs {
		st := statusOf(status, l.ID)
		b.Reset()
		fmt.Fprintf(&b, "%-*s", labelWidth, fmt.Sprintf("node %d %s", l.ID, roleOf(st)))
		var marks strings.Builder
		fmt.Fprintf(&marks, "%-*s", labelWidth, "")
		for i := lo; i <= hi; i++ {
			cell := ""
			switch {
			case !l.Alive:
				cell = ""
			case i <= l.SnapshotIndex:
				cell = "~"
			case i <= l.LastIndex:
				e := entryAt(l, i)
				if e == nil {
					cell = "?" // older than the entries carried
					break
				}
				cell = r.termColor(e.Term, strconv.FormatUint(e.Term, 10)) + " " + entryLabel(*e, logCellWidth-4)
			}
			b.WriteString(padVisible(cell, logCellWidth))
			m := ""
			if l.Alive {
				if i == l.SnapshotIndex {
					m += "S"
				}
				if i == l.Commit {
					m += "C"
				}
				if i == l.Applied {
					m += "A"
				}
			}
			fmt.Fprintf(&marks, "%-*s", logCellWidth, m)
		}
		line := strings.TrimRight(b.String(), " ")
		switch {
		case !l.Alive && st.Down == "paused":
			line += fmt.Sprintf(" (\"resume %d\" continues it, and shows its log)", l.ID)
		case !l.Alive:
			line += " (not answering: crashed, paused or cut off; a crashed node's log is on its disk, restart it to see it)"
		}
		r.printf("%s", line)
		if mk := strings.TrimRight(marks.String(), " "); mk != "" {
			r.printf("%s", mk)
		}
	}
	r.printf("indexes %d..%d of 1..%d%s; marks: S snapshot's end, C commit, A applied", lo, hi, last, why)
	r.printf("cells: the entry's term, then · no-op, cfg configuration, k=v set, -k delete; ~ in the snapshot")
	return nil
}

// logWindow picks the indexes to show: the range asked for, or the first
// index where the running nodes' logs differ, or else the latest ones.
func logWindow(logs []cluster.NodeLog, rng logRange, last, cells uint64) (lo, hi uint64, why string) {
	switch {
	case rng.lo != 0 && rng.hi != 0:
		return rng.lo, min(rng.hi, rng.lo+cells-1), ""
	case rng.lo != 0:
		return rng.lo, max(rng.lo, min(last, rng.lo+cells-1)), ""
	case rng.hi != 0:
		return max(1, rng.hi+1-min(rng.hi, cells)), rng.hi, ""
	}
	if d := firstDifference(logs, last); d != 0 {
		lo = max(1, d-min(d-1, 2))
		return lo, min(last, lo+cells-1), fmt.Sprintf(" (the logs first differ at index %d)", d)
	}
	lo = max(1, last+1-min(last, cells))
	return lo, last, ""
}

// firstDifference is the first index where two running nodes that both
// hold it disagree on its term, or where one has an entry another lacks
// below its last index; 0 if none.
func firstDifference(logs []cluster.NodeLog, last uint64) uint64 {
	for i := uint64(1); i <= last; i++ {
		var terms []uint64
		for _, l := range logs {
			if !l.Alive || i <= l.SnapshotIndex {
				continue
			}
			if e := entryAt(l, i); e != nil {
				terms = append(terms, e.Term)
			} else if i > l.LastIndex && slices.ContainsFunc(logs, func(o cluster.NodeLog) bool { return o.Alive && o.Commit >= i }) {
				continue // lagging behind a commit is not divergence
			}
		}
		for _, t := range terms[min(1, len(terms)):] {
			if t != terms[0] {
				return i
			}
		}
	}
	return 0
}

// entryAt is the entry at index i among those a NodeLog carries.
func entryAt(l cluster.NodeLog, i uint64) *core.Entry {
	if len(l.Entries) == 0 {
		return nil
	}
	first := l.Entries[0].Index
	if i < first || i > l.Entries[len(l.Entries)-1].Index {
		return nil
	}
	return &l.Entries[i-first]
}

// padVisible pads s to n visible characters (colour codes take none).
func padVisible(s string, n int) string {
	visible := utf8.RuneCountInString(stripANSI(s))
	if visible >= n {
		return s + " "
	}
	return s + strings.Repeat(" ", n-visible)
}

func stripANSI(s string) string {
	if !strings.Contains(s, "\x1b[") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			for i < len(s) && s[i] != 'm' {
				i++
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// printNodeLog shows one node's entries, one a line.
func (r *REPL) printNodeLog(l cluster.NodeLog, st cluster.NodeStatus, rng logRange) error {
	if !l.Alive && st.Down == "paused" {
		return fmt.Errorf("node %d's process is paused: \"resume %d\" continues it, and shows its log", l.ID, l.ID)
	}
	if !l.Alive {
		return fmt.Errorf("node %d does not answer (crashed, paused or cut off): a crashed node's log is on its disk — restart it (\"restart %d\") to see it, resume a paused one", l.ID, l.ID)
	}
	lo, hi := l.SnapshotIndex+1, l.LastIndex
	switch {
	case rng.lo != 0 && rng.hi != 0:
		lo, hi = max(lo, rng.lo), min(hi, rng.hi)
	case rng.lo != 0:
		lo = max(lo, rng.lo)
		hi = min(hi, lo+logNodeEntries-1)
	case rng.hi != 0:
		hi = min(hi, rng.hi)
		lo = max(lo, hi+1-min(hi, logNodeEntries))
	default:
		lo = max(lo, hi+1-min(hi, logNodeEntries))
	}
	snap := "no snapshot"
	if l.SnapshotIndex > 0 {
		snap = fmt.Sprintf("snapshot through %d (term %d)", l.SnapshotIndex, l.SnapshotTerm)
	}
	if l.LastIndex == l.SnapshotIndex {
		r.printf("node %d (%s, term %d): %s; commit %d, applied %d", l.ID, roleOf(st), st.Term, snap, l.Commit, l.Applied)
		r.printf("  the log holds no entries after the snapshot")
		return nil
	}
	if lo > hi {
		return fmt.Errorf("node %d holds indexes %d..%d, none of the range asked for", l.ID, l.SnapshotIndex+1, l.LastIndex)
	}
	r.printf("node %d (%s, term %d): %s; commit %d, applied %d, last %d", l.ID, roleOf(st), st.Term, snap, l.Commit, l.Applied, l.LastIndex)
	width := len(strconv.FormatUint(hi, 10))
	for i := lo; i <= hi; i++ {
		e := entryAt(l, i)
		if e == nil {
			continue
		}
		var marks []string
		if i == l.Commit {
			marks = append(marks, "commit")
		}
		if i == l.Applied {
			marks = append(marks, "applied")
		}
		if i > l.Commit {
			marks = append(marks, "not committed here")
		}
		note := ""
		if len(marks) > 0 {
			note = "  ← " + strings.Join(marks, ", ")
		}
		r.printf("  %*d  term %s  %s%s", width, i, r.termColor(e.Term, strconv.FormatUint(e.Term, 10)), entryText(*e), note)
	}
	if lo > l.SnapshotIndex+1 || hi < l.LastIndex {
		r.printf("  (entries %d..%d of %d..%d; log %d FROM..TO shows others)", lo, hi, l.SnapshotIndex+1, l.LastIndex, l.ID)
	}
	return nil
}
