package main

// The commands of a cluster of many Raft groups ("create 3 16", package
// shard): the groups table, per-node counts in status, and the group
// arguments of transfer, add, remove and change. A group is named g5 (or,
// where no node id could stand there, 5).

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/shard"
	"raft-consensus/raft/sim"
)

// maxGroupRows bounds the groups table; a range shows the others.
const maxGroupRows = 64

// createGrouped creates a cluster of nodes servers hosting groups groups.
func (r *REPL) createGrouped(nodes, groups int) error {
	if r.opts.Sim {
		return errors.New("many groups run on the wall clock only for now: start without -sim for \"create 3 16\"")
	}
	if r.opts.DataDir != "" {
		return errors.New("a cluster of many groups keeps its shared logs in a temporary directory (or in memory with -memory): -data-dir holds one group's cluster only for now")
	}
	cfg, where, err := r.clusterConfig(nodes)
	if err != nil {
		return err
	}
	if cfg.DataDir != "" {
		where = "one shared log per node in " + cfg.DataDir + ", removed at exit"
	}
	c, err := shard.New(shard.Config{Nodes: nodes, Groups: groups, DataDir: cfg.DataDir, ClientTimeout: r.opts.Timeout, Seed: r.seed.Load(), Tracer: r.tracer})
	if err != nil {
		return fmt.Errorf("creating the cluster: %v", err)
	}
	if !r.setCluster(c) {
		shutdown(c)
		return errors.New("the REPL is shutting down")
	}
	r.printf("ok: cluster of %s hosting %s created (nodes %s, groups 0–%d, every group on every node; %s)",
		plural(nodes, "node"), plural(groups, "group"), idRange(c.IDs()), groups-1, where)
	r.printf("keys map to groups by hash; \"groups\" lists the groups, \"status\" counts each node's groups")
	return nil
}

// parseGroup parses a group argument: g5, or 5 when bare is allowed.
func parseGroup(c cluster.Grouped, arg string, bare bool) (uint64, error) {
	s := arg
	if len(s) > 1 && (s[0] == 'g' || s[0] == 'G') {
		s = s[1:]
	} else if !bare {
		return 0, fmt.Errorf("%s is not a group — name a group g0 to g%d", echo(arg), c.GroupCount()-1)
	}
	g, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is not a group — groups are g0 to g%d", echo(arg), c.GroupCount()-1)
	}
	if !c.HasGroup(g) {
		return 0, fmt.Errorf("there is no group %d — groups are g0 to g%d", g, c.GroupCount()-1)
	}
	return g, nil
}

// isGroupArg reports whether arg is meant as a group: g5 (or gx, which
// is then a bad group, not a bad node id).
func isGroupArg(arg string) bool {
	return len(arg) >= 2 && (arg[0] == 'g' || arg[0] == 'G')
}

// takeGroupArg removes a gN argument from args: the group, and whether
// one was named. A group named on a single-group cluster is an error.
func takeGroupArg(sim cluster.Cluster, args []string) ([]string, uint64, bool, error) {
	i := slices.IndexFunc(args, isGroupArg)
	if i < 0 {
		return args, 0, false, nil
	}
	gc, ok := sim.(cluster.Grouped)
	if !ok {
		return nil, 0, false, oneGroupError(sim, args[i])
	}
	g, err := parseGroup(gc, args[i], false)
	if err != nil {
		return nil, 0, false, err
	}
	if slices.ContainsFunc(args[i+1:], isGroupArg) {
		return nil, 0, false, errors.New("name one group at most")
	}
	return slices.Delete(slices.Clone(args), i, i+1), g, true, nil
}

// oneGroupError is the error of a group argument on a cluster of one group.
func oneGroupError(c cluster.Cluster, arg string) error {
	return fmt.Errorf("this cluster is one Raft group: %s names a group of a cluster of many (%s)", echo(arg), manyGroupsHint(c))
}

// inVirtualTime reports whether c is a cluster in virtual time (-sim).
func inVirtualTime(c cluster.Cluster) bool {
	_, ok := c.(*sim.Cluster)
	return ok
}

// manyGroupsHint says how to make a cluster of many groups: not in virtual
// time, for now.
func manyGroupsHint(c cluster.Cluster) string {
	if inVirtualTime(c) {
		return "clusters of many groups run on the wall clock only for now: without -sim, \"create 3 16\" makes 3 nodes hosting 16 groups"
	}
	return "\"create 3 16\" makes 3 nodes hosting 16 groups"
}

// groupOfKey says which group serves key, for the answers of set, get
// and delete ("" on a cluster of one group).
func groupOfKey(sim cluster.Cluster, key string) string {
	if gc, ok := sim.(cluster.Grouped); ok {
		return fmt.Sprintf("group %d", gc.GroupOf(key))
	}
	return ""
}

func cmdGroups(r *REPL, sim cluster.Cluster, args []string) error {
	gc, ok := sim.(cluster.Grouped)
	if !ok {
		return fmt.Errorf("this cluster is one Raft group (%s); status shows this one", manyGroupsHint(sim))
	}
	all := gc.Groups()
	lo, hi := 0, len(all)-1
	if len(args) == 1 {
		var err error
		if lo, hi, err = groupRange(gc, args[0]); err != nil {
			return err
		}
	} else if hi >= maxGroupRows {
		hi = maxGroupRows - 1
	}
	t := table.NewWriter()
	t.SetStyle(compactStyle())
	var columns []table.ColumnConfig
	for n := 1; n <= 4; n++ {
		columns = append(columns, table.ColumnConfig{Number: n, Align: text.AlignRight, AlignHeader: text.AlignRight})
	}
	t.SetColumnConfigs(columns)
	t.AppendHeader(table.Row{"group", "leader", "term", "commit", "members", "replicas"})
	quiet, led := 0, 0
	for _, gs := range all {
		if gs.Replicas > 0 && gs.Quiet == gs.Replicas {
			quiet++
		}
		if gs.Leader != core.None {
			led++
		}
	}
	for _, gs := range all[lo : hi+1] {
		leader := "-"
		if gs.Leader != core.None {
			leader = strconv.Itoa(gs.Leader)
		}
		t.AppendRow(table.Row{gs.ID, leader, gs.Term, gs.Commit, membersDesc(gs.Config), replicasDesc(gs)})
	}
	fmt.Fprintln(r.out, render(t))
	if lo > 0 || hi < len(all)-1 {
		next := hi + 1
		if next >= len(all) {
			next = 0
		}
		shown := fmt.Sprintf("groups %d–%d", lo, hi)
		if lo == hi {
			shown = fmt.Sprintf("group %d", lo)
		}
		r.printf("%s of %d shown — \"groups %d..%d\" shows others", shown, len(all), next, min(len(all)-1, next+maxGroupRows-1))
	}
	r.printf("%s: %d with a leader, %d quiet (no ticks, no heartbeats until a proposal, a message or a lost node wakes them)",
		plural(len(all), "group"), led, quiet)
	return nil
}

// groupRange parses "5" or "5..20" (both ends included) for the groups
// table.
func groupRange(gc cluster.Grouped, arg string) (int, int, error) {
	from, to, found := strings.Cut(arg, "..")
	n := gc.GroupCount()
	// Examples that exist in this cluster.
	mid := n / 2
	examples := fmt.Sprintf("e.g. \"groups %d\", \"groups 0..%d\" or \"groups %d..\"", mid, max(0, mid-1), mid)
	parse := func(s string) (int, error) {
		s = strings.TrimPrefix(strings.TrimPrefix(s, "g"), "G")
		v, err := strconv.Atoi(s)
		switch {
		case err != nil && strings.Trim(s, "0123456789") == "" && s != "":
			return 0, fmt.Errorf("there is no group %s — groups are 0 to %d", s, n-1) // too large for an int
		case err != nil:
			return 0, fmt.Errorf("%s is not a group or a range of groups — %s", echo(arg), examples)
		case v < 0 || v >= n:
			return 0, fmt.Errorf("there is no group %d — groups are 0 to %d", v, n-1)
		}
		return v, nil
	}
	if strings.Count(arg, "..") > 1 || from == "" {
		return 0, 0, fmt.Errorf("%s is not a group or a range of groups — %s", echo(arg), examples)
	}
	lo, err := parse(from)
	if err != nil {
		return 0, 0, err
	}
	hi := lo
	switch {
	case found && to == "":
		hi = n - 1 // "groups 100..": to the end
	case found:
		if hi, err = parse(to); err != nil {
			return 0, 0, err
		}
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("%s: the range ends before it starts", echo(arg))
	}
	return lo, min(hi, lo+maxGroupRows*16-1), nil
}

// membersDesc shows a configuration: "0–2", "0–2 + learner 3", or
// "joint 0–2 → 1–3" during a joint change.
func membersDesc(cfg core.Configuration) string {
	if len(cfg.Voters) == 0 && len(cfg.Learners) == 0 {
		return "unknown"
	}
	s := idRange(cfg.Voters)
	if cfg.IsJoint() {
		s = "joint " + idRange(cfg.Outgoing) + " → " + s
	}
	if len(cfg.Learners) > 0 {
		s += " + learner " + idRange(cfg.Learners)
	}
	return s
}

func replicasDesc(gs cluster.GroupStatus) string {
	switch {
	case gs.Replicas == 0:
		return "none running"
	case gs.Quiet == gs.Replicas:
		return fmt.Sprintf("%d, quiet", gs.Replicas)
	case gs.Quiet == 0:
		return fmt.Sprintf("%d, active", gs.Replicas)
	}
	return fmt.Sprintf("%d, %d quiet", gs.Replicas, gs.Quiet)
}

// groupedStatus is status for a cluster of many groups: each node's
// counts of groups.
func groupedStatus(r *REPL, gc cluster.Grouped) {
	status := map[int]cluster.NodeStatus{}
	pids := false
	for _, st := range gc.Status() {
		status[st.ID] = st
		pids = pids || st.Pid != 0
	}
	t := table.NewWriter()
	t.SetStyle(compactStyle())
	header, counts := table.Row{"node", "state"}, 3
	if pids { // node processes of a launcher
		header, counts = append(header, "pid"), 4
	}
	header = append(header, "groups", "led", "active", "quiet")
	var columns []table.ColumnConfig
	for _, n := range []int{1, counts, counts + 1, counts + 2, counts + 3} {
		columns = append(columns, table.ColumnConfig{Number: n, Align: text.AlignRight, AlignHeader: text.AlignRight})
	}
	t.SetColumnConfigs(columns)
	t.AppendHeader(header)
	for _, ng := range gc.NodeGroups() {
		st := status[ng.ID]
		state := "up"
		switch {
		case !ng.Alive && st.Down != "":
			state = st.Down // a process paused, or not answering
		case !ng.Alive:
			state = "crashed"
		}
		if !st.Connected {
			if ng.Alive {
				state = "disconnected"
			} else {
				state += ", disconnected"
			}
		}
		row := table.Row{ng.ID, state}
		if pids {
			pid := "-"
			if st.Pid != 0 {
				pid = strconv.Itoa(st.Pid)
			}
			row = append(row, pid)
		}
		if !ng.Alive {
			t.AppendRow(append(row, "-", "-", "-", "-"))
			continue
		}
		t.AppendRow(append(row, ng.Replicas, ng.Led, ng.Active, ng.Quiet))
	}
	fmt.Fprintln(r.out, render(t))
	r.printf("groups: the node's replicas; led: those it leads; active: those that tick;")
	r.printf("quiet: those that do not (no ticks, no heartbeats) — \"groups\" shows each group")
	if v, ok := gc.(interface{ Violations() []string }); ok {
		for _, line := range v.Violations() {
			r.errorf("SAFETY: %s", line)
		}
	}
}

// groupedLeader waits until every group has a leader and says who leads
// how many.
func groupedLeader(r *REPL, gc cluster.Grouped) error {
	led, err := gc.WaitLeaders(r.opts.Timeout)
	if err != nil {
		return fmt.Errorf("%v — a majority of each group must be running and connected; see \"groups\"", err)
	}
	var parts []string
	for _, id := range gc.IDs() {
		if led[id] > 0 {
			parts = append(parts, fmt.Sprintf("node %d leads %d", id, led[id]))
		}
	}
	r.printf("every group has a leader: %s", strings.Join(parts, ", "))
	return nil
}

// groupedIDs checks the ids of add and remove: at least one, and with many
// groups and no group named, one only, since "remove 0 5" could be read as
// "node 0 from group 5" (which is "remove 0 g5").
func groupedIDs(sim cluster.Cluster, cmd string, ids []int, inGroup bool) error {
	if len(ids) == 0 {
		return usageError(fmt.Sprintf("usage: %s <id>... [group] — name a node, e.g. \"%s 3 g5\"", cmd, cmd))
	}
	if _, ok := sim.(cluster.Grouped); ok && !inGroup && len(ids) > 1 {
		return fmt.Errorf("with many groups, %s takes one node at a time in every group (\"%s %d\"), or nodes of one group named as g5 (\"%s %d g5\")", cmd, cmd, ids[0], cmd, ids[0])
	}
	return nil
}

func addToGroup(r *REPL, gc cluster.Grouped, ids []int, g uint64) error {
	for _, id := range ids {
		if _, err := node(gc, strconv.Itoa(id)); err != nil {
			return fmt.Errorf("%v — add %d g%d adds a running node to one group; \"add %d\" starts a new node in every group", err, id, g, id)
		}
		if err := gc.AddToGroup(id, g); err != nil {
			return fmt.Errorf("adding node %d to group %d: %s", id, g, describeIn(g, err))
		}
		r.printf("node %d added to group %d (voter)", id, g)
	}
	return nil
}

func removeFromGroup(r *REPL, gc cluster.Grouped, ids []int, g uint64) error {
	for _, id := range ids {
		if _, err := node(gc, strconv.Itoa(id)); err != nil {
			return err
		}
		if err := gc.RemoveFromGroup(id, g); err != nil {
			return fmt.Errorf("removing node %d from group %d: %s", id, g, describeIn(g, err))
		}
		r.printf("node %d removed from group %d (its replica there is gone)", id, g)
	}
	return nil
}

// changeGroup is "change <group> +3 -0".
func changeGroup(r *REPL, gc cluster.Grouped, args []string) error {
	g, err := parseGroup(gc, args[0], true)
	if err != nil {
		return err
	}
	if len(args) == 1 {
		return usageError(fmt.Sprintf("usage: change [group] +<id>... -<id>... — name the servers to add or remove in group %d, e.g. \"change %d +3 -0\"", g, g))
	}
	adds, removes, err := parseMemberChanges(args[1:])
	if err != nil {
		return err
	}
	if err := gc.ChangeGroup(g, adds, removes); err != nil {
		return fmt.Errorf("changing the members of group %d: %s", g, describeIn(g, err))
	}
	how := "in one step"
	if len(adds)+len(removes) > 1 {
		how = "through a joint configuration (C_old,new, then C_new)" // more than one voter changed
	}
	r.printf("group %d's members changed %s: %s", g, how, changeParts(adds, removes))
	return nil
}

// transferGrouped is transfer on a cluster of many groups: of one group,
// or of every group the node is a voter of.
func transferGrouped(r *REPL, gc cluster.Grouped, id int, rest []string) error {
	if len(rest) == 1 {
		g, err := parseGroup(gc, rest[0], true)
		if err != nil {
			return err
		}
		if l, term := gc.GroupLeader(g); l == id {
			r.printf("ok: node %d already leads group %d (term %d): nothing to transfer", id, g, term)
			return nil
		}
		if err := gc.TransferGroup(id, g); err != nil {
			if errors.Is(err, cluster.ErrNodeCrashed) {
				return crashedTarget(id)
			}
			return fmt.Errorf("transferring group %d to node %d: %s", g, id, describeIn(g, err))
		}
		_, term := gc.GroupLeader(g)
		r.printf("ok: node %d now leads group %d (term %d)", id, g, term)
		return nil
	}
	if err := gc.TransferLeadership(id); err != nil {
		if errors.Is(err, cluster.ErrNodeCrashed) {
			return crashedTarget(id)
		}
		return fmt.Errorf("transferring to node %d: %s", id, describe(err))
	}
	led := 0
	for _, gs := range gc.Groups() {
		if gs.Leader == id {
			led++
		}
	}
	r.printf("ok: node %d now leads %s (every group it is a voter of)", id, plural(led, "group"))
	return nil
}

// describeIn is describe for an error of group g, told already which
// group it is about ("group 3: " is not said twice).
func describeIn(g uint64, err error) string {
	return strings.TrimPrefix(describe(err), fmt.Sprintf("group %d: ", g))
}
