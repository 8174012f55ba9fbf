package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"

	"raft-consensus/raft"
	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/shard"
)

// command is one entry of the menu. Adding a command is adding one entry
// to commands.
type command struct {
	num     int
	names   []string // the word first, then aliases
	args    string   // argument synopsis for the usage line
	minArgs int
	maxArgs int // -1: no limit
	// needsCluster: the handler gets the running cluster; without one the
	// dispatcher answers with an error.
	needsCluster bool
	run          func(r *REPL, sim cluster.Cluster, args []string) error // nil: reserved, not implemented yet
	help         string                                                  // one line for the menu
	more         string                                                  // extra lines for "help <command>"
}

func (c *command) usage() string {
	if c.args == "" {
		return c.names[0]
	}
	return c.names[0] + " " + c.args
}

// commands is the menu. The numbers 1–12 keep the meaning they had in the
// original prototype; new commands take the next numbers.
var commands []*command

func init() {
	// Assigned in init because the help handler reads the table itself.
	commands = []*command{
		{num: 1, names: []string{"create"}, args: "<nodes> [groups]", minArgs: 1, maxArgs: 2, run: cmdCreate,
			help: fmt.Sprintf("create a cluster of 1–%d nodes (ids 0, 1, …)", raft.MaxNodes),
			more: `One cluster at a time: shut it down (8) before creating another.
create 3 16: 3 nodes hosting 16 Raft groups (multi-raft), each group on every
node. Keys map to groups by hash; set, get and delete go to the key's group.
Each node sends each other node one batch per round for all its groups
(heartbeats coalesced), idle groups go quiet, and each node keeps one shared
log for all of them. crash, partition and the network act on nodes, so on
every group they host; "groups" lists the groups; transfer, add, remove and
change can name one group (g5). Many groups run on the wall clock only for
now: in virtual time (-sim) a cluster is one group.`},
		{num: 2, names: []string{"set", "put"}, args: "<key> <value> [node]", minArgs: 2, maxArgs: 3, needsCluster: true, run: cmdSet,
			help: "set a key, via the leader or at one node",
			more: `Quote a value with spaces: set greeting "hello world". Without a node the
client finds the leader and retries until the client timeout; with one, only
that node is asked, and a follower answers "not the leader (leader is N)".`},
		{num: 3, names: []string{"get", "read"}, args: "<key> [node] [stale]", minArgs: 1, maxArgs: 3, needsCluster: true, run: cmdGet,
			help: "read a key, via the leader or at one node",
			more: `Reads are linearizable (ReadIndex): only a leader that still leads answers.
get <key> <node> stale reads that node's state machine as it stands, without
ReadIndex: a lagging follower or a cut-off old leader answers an old value.`},
		{num: 4, names: []string{"disconnect"}, args: "<node>", minArgs: 1, maxArgs: 1, needsCluster: true, run: cmdDisconnect,
			help: "cut a node off from the others",
			more: "The node keeps running (a leader keeps believing it leads for a while)."},
		{num: 5, names: []string{"reconnect"}, args: "<node>", minArgs: 1, maxArgs: 1, needsCluster: true, run: cmdReconnect,
			help: "restore a disconnected node's links"},
		{num: 6, names: []string{"crash"}, args: "<node>", minArgs: 1, maxArgs: 1, needsCluster: true, run: cmdCrash,
			help: "crash a node (its storage survives)",
			more: "Volatile state (role, commit index, state machine) is lost; term, vote,\nlog and snapshot stay in the node's storage."},
		{num: 7, names: []string{"restart"}, args: "<node>", minArgs: 1, maxArgs: 1, needsCluster: true, run: cmdRestart,
			help: "restart a crashed node from its storage"},
		{num: 8, names: []string{"shutdown"}, maxArgs: 0, needsCluster: true, run: cmdShutdown,
			help: "shut the cluster down"},
		{num: 9, names: []string{"leader", "check-leader"}, maxArgs: 0, needsCluster: true, run: cmdLeader,
			help: "wait for one leader and show it",
			more: `Waits up to the client timeout until exactly one running, connected node leads.
With many groups (create 3 16): until every group has a leader, then says how
many groups each node leads.`},
		{num: 10, names: []string{"exit", "quit", "stop"}, maxArgs: 0, run: cmdExit,
			help: "shut down and leave (also Ctrl-D)"},
		{num: 11, names: []string{"add", "add-servers"}, args: "<id>... [group]", minArgs: 1, maxArgs: -1, needsCluster: true, run: cmdAdd,
			help: "add servers (learner, then voter)",
			more: `One at a time, each new server joins as a learner, catches up, and is promoted
to voter; the command returns once the promotion is committed. With many
groups: add 3 starts node 3 and adds it to every group; add 3 g5 adds the
running node 3 to group 5 only.`},
		{num: 12, names: []string{"remove", "remove-servers"}, args: "<id>... [group]", minArgs: 1, maxArgs: -1, needsCluster: true, run: cmdRemove,
			help: "remove servers, one at a time",
			more: `A removed leader leads until its removal commits, then steps down. With many
groups: remove 0 takes node 0 out of every group and stops it; remove 0 g5
takes it out of group 5 only (its replica there is destroyed).`},
		{num: 13, names: []string{"status"}, maxArgs: 0, needsCluster: true, run: cmdStatus,
			help: "table of every node's state",
			more: `log: the indexes the log holds, after its snapshot (snap N: the snapshot
covers 1..N); member: voter, learner, joining (not in the configuration
yet), leaving (its removal not committed yet, or a voter of the old
configuration only during a joint change) or unknown (no node up to
say); state: up, crashed and/or disconnected. Below the table: the network
settings and the partition in force. With many groups (create 3 16) each row
counts the node's groups instead: groups (its replicas), led, active (those
that tick) and quiet (no ticks, no heartbeats); "groups" shows each group.`},
		{num: 14, names: []string{"partition"}, args: "<ids> | <ids>...", minArgs: 1, maxArgs: -1, needsCluster: true, run: cmdPartition,
			help: "split the nodes into isolated groups",
			more: `Every node must be in a group, e.g. partition 0 1 | 2 3 4. Nodes talk when a
group holds both, so a node in two groups is a bridge between them:
partition 0 1 2 | 2 3 4 (2 talks to everyone, 0 and 1 not to 3 and 4). A ring:
partition 0 1 | 1 2 | 2 3 | 3 4 | 4 0.`},
		{num: 15, names: []string{"heal"}, maxArgs: 0, needsCluster: true, run: cmdHeal,
			help: "undo the partition and every cut link",
			more: "Disconnected nodes stay disconnected: reconnect them with 5."},
		{num: 16, names: []string{"delete", "del"}, args: "<key> [node]", minArgs: 1, maxArgs: 2, needsCluster: true, run: cmdDelete,
			help: "delete a key, via the leader or at one node"},
		{num: 17, names: []string{"transfer"}, args: "<node> [group]", minArgs: 1, maxArgs: 2, needsCluster: true, run: cmdTransfer,
			help: "make a node the leader",
			more: "The leader brings the node up to date and tells it to start an election\n(TimeoutNow); if it has not taken over within an election timeout, the old\nleader resumes. With many groups: transfer 1 makes node 1 the leader of every\ngroup it is a voter of; transfer 1 5 (or g5) of group 5 only."},
		{num: 18, names: []string{"network", "net"}, args: "[drop P|delay D|reset]", maxArgs: 2, needsCluster: true, run: cmdNetwork,
			help: "show or set message loss and delay",
			more: `drop P: each message is lost with probability P (0.1 or 10%);
delay D: each message waits a random time below D (20ms, at most 10s);
reset: both off; network alone shows the settings.`},
		{num: 19, names: []string{"help", "menu", "?"}, args: "[command]", maxArgs: 1, run: cmdHelp,
			help: "this menu, or the usage of one command"},
		{num: 20, names: []string{"diagram"}, args: "[N] [all] [group] | html <file>", maxArgs: 4, run: cmdDiagram,
			help: "timing diagram of the latest events",
			more: `diagram [N]: a table of the last N trace events (40), one column per node,
heartbeats hidden ("all" shows them). diagram html FILE: a swim-lane page of
every event of the session (heartbeats: the latest 2000), to open in a browser.
With many groups: every group's events, or diagram g5 for group 5's (and the
faults, which act on every group).`},
		{num: 21, names: []string{"check"}, args: "[file.html]", maxArgs: 1, needsCluster: true, run: cmdCheck,
			help: "linearizability check of the client history",
			more: `Checks every set/get/delete of this cluster with porcupine (a write whose
outcome is unknown may have taken effect at any time after it was sent).
A cluster that held data before the session (recovered from its data
directory, or nodes in processes) is checked from whatever each key is
first seen to hold. With a file, writes porcupine's visualization there.`},
		{num: 22, names: []string{"snapshot"}, args: "[node]", maxArgs: 1, needsCluster: true, run: cmdSnapshot,
			help: "snapshot a node's state machine, compacting its log",
			more: "Without a node, every running node snapshots. The status table shows each\nnode's snapshot index. With many groups a node snapshots every group it hosts\n(those with entries applied since their last snapshot)."},
		{num: 23, names: []string{"cut"}, args: "<from> <to>", minArgs: 2, maxArgs: 2, needsCluster: true, run: cmdCut,
			help: "cut a link one way only",
			more: `Messages from <from> to <to> are lost, and so are <from>'s replies to <to>;
the other way still works (an asymmetric failure). Undo with uncut, or heal.`},
		{num: 24, names: []string{"uncut"}, args: "<from> <to>", minArgs: 2, maxArgs: 2, needsCluster: true, run: cmdUncut,
			help: "restore a link cut one way"},
		{num: 25, names: []string{"log"}, args: "[node] [from[..to]] [group]", maxArgs: 3, needsCluster: true, run: cmdLog,
			help: "every node's log side by side, or one node's",
			more: `One column per index: the entry's term (a no-op is marked ·, a configuration
change cfg, a set k=v, a delete -k; ~ an entry in the snapshot); S marks the
snapshot's end, C the commit index, A the applied index. Aligned by index, so the entries where logs differ show.
Without a range, the window shows the first index where the logs differ, or
else the latest entries; 10..20 picks one. With a node, one line per entry.
With many groups: group 0's logs, or log g5 for group 5's.`},
		{num: 26, names: []string{"run"}, args: "<duration>", minArgs: 1, maxArgs: 1, needsCluster: true, run: cmdRun,
			help: "let virtual time pass (-sim), e.g. run 500ms",
			more: `Time stands still between commands in virtual time; commands that wait (set,
get, leader, add) let it pass until they are done.`},
		{num: 27, names: []string{"step"}, args: "[N]", maxArgs: 1, needsCluster: true, run: cmdStep,
			help: "run to the next N events and show each (-sim)",
			more: `An event is what a node traced: a message sent or received, a timeout, a
vote, a commit. Ticks that change nothing are not events. What one node does
at one instant is shown together, so there may be a few more than N.`},
		{num: 28, names: []string{"play"}, args: "[speed]", maxArgs: 1, needsCluster: true, run: cmdPlay,
			help: "let virtual time flow, 1 = real time (-sim)",
			more: `play 0.1 runs ten times slower than real time. Elections, leaders and faults
are printed as they happen; every command works meanwhile; pause stops.`},
		{num: 29, names: []string{"pause"}, args: "[node]", maxArgs: 1, needsCluster: true, run: cmdPause,
			help: "stop the virtual clock (-sim), or a node's process (cluster up)",
			more: `In virtual time, pause stops the clock that play started. With a node, under
the launcher (cluster up), it stops that node's process (SIGSTOP) without
killing it: it keeps its state and its connections, and answers nothing
until "resume <node>" (SIGCONT). A leader paused past the election timeout
wakes up deposed.`},
		{num: 30, names: []string{"timers"}, maxArgs: 0, needsCluster: true, run: cmdTimers,
			help: "each node's election and heartbeat timer (-sim)"},
		{num: 31, names: []string{"drop"}, args: "next <from> <to>", minArgs: 3, maxArgs: 3, needsCluster: true, run: cmdDrop,
			help: "lose the next message on a link (-sim)"},
		{num: 32, names: []string{"save"}, args: "<file>", minArgs: 1, maxArgs: 1, run: cmdSave,
			help: "save the session to replay it exactly (-sim)",
			more: `The file holds the seed and the commands, with the time that passed between
them; go run . -sim -script FILE replays it, byte for byte.`},
		{num: 33, names: []string{"seed"}, args: "[S]", maxArgs: 1, run: cmdSeed,
			help: "show or set the seed of the next cluster (-sim)"},
		{num: 34, names: []string{"history"}, args: "<file>", minArgs: 1, maxArgs: 1, needsCluster: true, run: cmdHistory,
			help: "write the client history as JSON lines",
			more: `One operation a line: op, key, value, client, call and return times, and the
outcome (ok, or unknown for a write that got no answer).`},
		{num: 35, names: []string{"web"}, args: "[addr]", maxArgs: 1, run: cmdWeb,
			help: "serve the live page (default 127.0.0.1:8080)",
			more: `A page for the browser: the nodes with role, term and election timer, the
messages in flight (in virtual time), every log, the timeline; click a node
to crash, restart, disconnect it; drag nodes into groups to partition; send
writes; in virtual time, play, pause and step. Loopback only. Every action
runs here as a command, echoed as a web> line.`},
		{num: 36, names: []string{"tour"}, args: "[next|stop|restart]", maxArgs: 1, run: cmdTour,
			help: "a guided tour of Raft, step by step",
			more: `Election, replication, a leader crash, a partition with the leader in the
minority, membership changes and a snapshot, on a cluster of its own (in
virtual time with -sim), each step explained with the paper's section. Type
any command between steps; "tour" goes on; "tour stop" leaves, "tour" comes
back where it stopped.`},
		{num: 37, names: []string{"resume"}, args: "<node>", minArgs: 1, maxArgs: 1, needsCluster: true, run: cmdResume,
			help: "continue a paused node's process (cluster up)"},
		{num: 38, names: []string{"change"}, args: "[group] +<id>... -<id>...", minArgs: 1, maxArgs: -1, needsCluster: true, run: cmdChange,
			help: "add and remove servers in one step (joint consensus)",
			more: `+3 starts server 3 empty and adds it as a voter; -0 removes server 0. The
new servers first catch up as learners that the leader does not promote
("staged" in status); then they all change in one step: when more
than one voter changes, through the joint configuration C_old,new of the
Raft paper (§6), where every election and commit needs a majority of the
old voters and one of the new; the leader then leaves it by itself.
"change +3 -0" replaces server 0 by 3.
The command returns once the final configuration is committed; the
removed servers stop then. One voter in or out needs no joint step.
With many groups: change +3 -0 does it in every group (3 is started, 0
stopped); change 5 +3 -0 (or g5) in group 5 only, with servers that run.`},
		{num: 39, names: []string{"groups"}, args: "[from[..to]]", maxArgs: 1, needsCluster: true, run: cmdGroups,
			help: "every group of a multi-raft cluster (create 3 16)",
			more: `One line per group: its leader, term, commit index, members (voters, learners,
"joint 0–2 → 1–3" during a joint change) and its running replicas, quiet
(no ticks, no heartbeats) or active. A leader with nothing to replicate and
every follower caught up quiesces its group; a proposal, a message or a node
falling silent wakes it. groups 100..163 shows a range (64 at first).`},
	}
}

// lookupCommand finds a command by number or word (any case).
func lookupCommand(name string) *command {
	name = strings.ToLower(name)
	for _, c := range commands {
		if strconv.Itoa(c.num) == name || slices.Contains(c.names, name) {
			return c
		}
	}
	return nil
}

// usageError is an error the dispatcher prints as is (it starts with "usage:").
type usageError string

func (e usageError) Error() string { return string(e) }

func usageOf(num int) error {
	for _, c := range commands {
		if c.num == num {
			return usageError("usage: " + c.usage())
		}
	}
	return usageError("usage")
}

var errExit = errors.New("exit")

func cmdCreate(r *REPL, _ cluster.Cluster, args []string) error {
	n, err := parseNodeID(args[0])
	if err != nil || n < 1 || n > raft.MaxNodes {
		return fmt.Errorf("the number of nodes must be 1 to %d, not %s — e.g. \"1 3\"", raft.MaxNodes, echo(args[0]))
	}
	groups := 1
	if len(args) == 2 {
		groups, err = strconv.Atoi(args[1])
		if err != nil || groups < 1 || groups > shard.MaxGroups {
			return fmt.Errorf("the number of groups must be 1 to %d, not %s — e.g. \"1 3 16\"", shard.MaxGroups, echo(args[1]))
		}
	}
	if sim := r.Cluster(); sim != nil {
		return fmt.Errorf("a cluster of %s is already running — shut it down first with \"shutdown\"", plural(len(sim.IDs()), "node"))
	}
	if groups > 1 {
		return r.createGrouped(n, groups)
	}
	if r.opts.Sim {
		return r.createVirtual(n)
	}
	cfg, where, err := r.clusterConfig(n)
	if err != nil {
		return err
	}
	sim, err := r.newCluster(cfg)
	if err != nil {
		hint := ""
		if cfg.DataDir != "" {
			hint = " (-memory keeps the storage in memory instead)"
		}
		return fmt.Errorf("creating the cluster: %v%s", err, hint)
	}
	if !r.setCluster(sim) {
		shutdown(sim)
		return errors.New("the REPL is shutting down")
	}
	verb, ids := "created", sim.IDs()
	if rc, ok := sim.(interface{ Recovered() string }); ok && rc.Recovered() != "" {
		// The data directory's cluster, whatever n said.
		verb, where = "recovered", where+"; "+rc.Recovered()
	}
	r.printf("ok: cluster of %s %s (nodes %s, %s)", plural(len(ids), "node"), verb, idRange(ids), where)
	return nil
}

// node parses a node id argument and checks that the node exists.
func node(sim cluster.Cluster, arg string) (int, error) {
	ids := sim.IDs()
	id, err := parseNodeID(arg)
	if err != nil && arg != "" && strings.Trim(arg, "0123456789") == "" {
		return 0, fmt.Errorf("node %s does not exist (nodes %s)", arg, idRange(ids)) // a number, too big
	}
	if err != nil {
		return 0, fmt.Errorf("%s is not a node id — nodes are numbered (nodes %s)", echo(arg), idRange(ids))
	}
	if !slices.Contains(ids, id) {
		return 0, fmt.Errorf("node %d does not exist (nodes %s)", id, idRange(ids))
	}
	return id, nil
}

// target parses the optional node argument of set, get and delete.
func target(sim cluster.Cluster, args []string, at int) (int, error) {
	if len(args) <= at {
		return core.None, nil
	}
	return node(sim, args[at])
}

func checkKey(num int, key string) error {
	if key == "" {
		return usageError(usageOf(num).Error() + " (the key is empty)")
	}
	return nil
}

// servedBy says who answered: the node asked, or the leader found.
func servedBy(sim cluster.Cluster, at int, key string) string {
	group := ""
	leader := at // only the leader answers
	if gc, ok := sim.(cluster.Grouped); ok {
		g := gc.GroupOf(key)
		group = fmt.Sprintf("group %d, ", g)
		if leader == core.None {
			leader, _ = gc.GroupLeader(g)
		}
	} else if leader == core.None {
		leader, _ = sim.Leader()
	}
	if leader != core.None {
		return fmt.Sprintf(" (%sleader %d)", group, leader)
	}
	if group != "" {
		return " (" + strings.TrimSuffix(group, ", ") + ")"
	}
	return ""
}

func cmdSet(r *REPL, sim cluster.Cluster, args []string) error {
	key, value := args[0], args[1]
	if err := checkKey(2, key); err != nil {
		return err
	}
	at, err := target(sim, args, 2)
	if err != nil {
		return err
	}
	if _, err := sim.Do(kv.OpSet, key, value, at); err != nil {
		return clientError(err, at, groupOfKey(sim, key))
	}
	r.printf("ok: %s = %s%s", echo(key), echo(value), servedBy(sim, at, key))
	return nil
}

func cmdGet(r *REPL, sim cluster.Cluster, args []string) error {
	key := args[0]
	if err := checkKey(3, key); err != nil {
		return err
	}
	if len(args) == 3 || (len(args) == 2 && strings.EqualFold(args[1], "stale")) {
		if !strings.EqualFold(args[len(args)-1], "stale") || len(args) == 2 {
			return usageError("usage: get <key> [node] [stale] — a stale read names its node: get x 2 stale")
		}
		return staleGet(r, sim, key, args[1])
	}
	at, err := target(sim, args, 1)
	if err != nil {
		return err
	}
	res, err := sim.Do(kv.OpGet, key, "", at)
	if err != nil {
		return clientError(err, at, groupOfKey(sim, key))
	}
	where := ""
	if g := groupOfKey(sim, key); g != "" {
		where = " (" + g + ")"
	}
	if !res.Found {
		r.printf("%s: not found%s", echo(key), where)
		return nil
	}
	r.printf("%s = %s%s", echo(key), quoteIfNeeded(res.Value), where)
	return nil
}

// staleGet reads a node's state machine as it stands, without ReadIndex,
// and says so: the answer may be old (thesis §6.4).
func staleGet(r *REPL, c cluster.Cluster, key, nodeArg string) error {
	id, err := node(c, nodeArg)
	if err != nil {
		return err
	}
	res, err := c.ReadStale(key, id)
	if err != nil {
		return clientError(err, id, groupOfKey(c, key))
	}
	value := "not found"
	if res.Found {
		value = "= " + quoteIfNeeded(res.Value)
	}
	// With many groups the term and index are those of the key's group.
	group := ""
	if g := groupOfKey(c, key); g != "" {
		group = g + ": "
	}
	r.printf("STALE READ at node %d (%s%s, term %d, applied through index %d): %s %s — read without ReadIndex: it may be out of date; \"get %s\" is linearizable",
		id, group, res.Role, res.Term, res.Applied, echo(key), value, echo(key))
	return nil
}

func cmdDelete(r *REPL, sim cluster.Cluster, args []string) error {
	key := args[0]
	if err := checkKey(16, key); err != nil {
		return err
	}
	at, err := target(sim, args, 1)
	if err != nil {
		return err
	}
	res, err := sim.Do(kv.OpDelete, key, "", at)
	if err != nil {
		return clientError(err, at, groupOfKey(sim, key))
	}
	if !res.Found {
		r.printf("ok: %s was not set, nothing deleted%s", echo(key), servedBy(sim, at, key))
		return nil
	}
	r.printf("ok: %s deleted%s", echo(key), servedBy(sim, at, key))
	return nil
}

// clientError adds what to do next to a failed client operation. group
// names the key's group in a cluster of many ("" in one of one group).
func clientError(err error, at int, group string) error {
	var nl *kv.NotLeaderError
	var unknown *kv.OutcomeUnknownError
	who := fmt.Sprintf("node %d", at)
	if group != "" {
		who += " (" + group + ")"
	}
	switch {
	case errors.As(err, &nl) && nl.Leader != core.None:
		return fmt.Errorf("%s: %v — send it to node %d, or leave the node out to reach the leader", who, err, nl.Leader)
	case errors.As(err, &nl):
		return fmt.Errorf("%s: %v — leave the node out to find the leader", who, err)
	case errors.As(err, &unknown):
		return fmt.Errorf("%v — see \"status\": a majority must be running and connected", err)
	case at != core.None && errors.Is(err, raft.ErrNodeCrashed):
		return fmt.Errorf("node %d is crashed — restart it with \"restart %d\" or leave the node out", at, at)
	}
	return err
}

func cmdDisconnect(r *REPL, sim cluster.Cluster, args []string) error {
	id, err := node(sim, args[0])
	if err != nil {
		return err
	}
	if err := sim.DisconnectPeer(id); err != nil {
		return err
	}
	r.printf("node %d disconnected", id)
	return nil
}

func cmdReconnect(r *REPL, sim cluster.Cluster, args []string) error {
	id, err := node(sim, args[0])
	if err != nil {
		return err
	}
	if err := sim.ReconnectPeer(id); err != nil {
		return err
	}
	r.printf("node %d reconnected", id)
	return nil
}

func cmdCrash(r *REPL, sim cluster.Cluster, args []string) error {
	id, err := node(sim, args[0])
	if err != nil {
		return err
	}
	if err := sim.CrashPeer(id); err != nil {
		return err
	}
	r.printf("node %d crashed", id)
	return nil
}

func cmdRestart(r *REPL, sim cluster.Cluster, args []string) error {
	id, err := node(sim, args[0])
	if err != nil {
		return err
	}
	if err := sim.RestartPeer(id); err != nil {
		return err
	}
	r.printf("node %d restarted", id)
	return nil
}

func cmdShutdown(r *REPL, _ cluster.Cluster, _ []string) error {
	c := r.takeCluster()
	if err := shutdown(c); err != nil {
		return err
	}
	r.printf("%s", shutDownWords(c))
	if _, processes := c.(interface{ Launched() bool }); processes {
		// The REPL stays, and its next cluster is one of its own: say so,
		// rather than let "create" quietly leave the processes' mode.
		r.printf("the REPL stays: \"create <nodes>\" now makes a cluster inside it (in-process), not node processes")
	}
	return nil
}

// shutDownWords says what a shutdown did: a cluster this REPL is only
// connected to (-connect) runs on; node processes it launched (cluster up)
// stop, and their data stays for another cluster up on the same dir.
func shutDownWords(c cluster.Cluster) string {
	l, ok := c.(interface{ Launched() bool })
	switch {
	case ok && !l.Launched():
		return "disconnected from the cluster (its nodes run on: -connect reaches them again)"
	case ok:
		return "cluster shut down: its node processes stopped; their data stays in the dir (cluster up on it starts them again)"
	}
	return "cluster shut down"
}

// shutdownGrace bounds a cluster shutdown: a node that does not stop must
// not keep the user from leaving or from creating another cluster.
const shutdownGrace = 10 * time.Second

// shutdown shuts sim (if any) down, waiting at most shutdownGrace.
func shutdown(sim cluster.Cluster) error {
	if sim == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		sim.Shutdown()
		close(done)
	}()
	timer := time.NewTimer(shutdownGrace)
	defer timer.Stop()
	select {
	case <-done:
		return nil
	case <-timer.C:
		return fmt.Errorf("the cluster did not shut down within %v: a node is stuck; it is abandoned", shutdownGrace)
	}
}

func cmdLeader(r *REPL, sim cluster.Cluster, _ []string) error {
	if gc, ok := sim.(cluster.Grouped); ok {
		return groupedLeader(r, gc)
	}
	leader, term, err := sim.CheckUniqueLeader(r.opts.Timeout)
	if err != nil {
		return fmt.Errorf("%v — a majority must be running and connected; see \"status\"", err)
	}
	r.printf("leader: node %d (term %d)", leader, term)
	return nil
}

func cmdExit(r *REPL, _ cluster.Cluster, _ []string) error {
	r.shutdownCluster()
	return errExit
}

// shutdownCluster shuts the cluster down, if one runs, and says so.
func (r *REPL) shutdownCluster() {
	sim := r.takeCluster()
	if err := shutdown(sim); err != nil {
		r.errorf("%v", err)
	} else if sim != nil {
		r.printf("%s", shutDownWords(sim))
	}
}

// nodeList parses the ids of add and remove (the command, for examples),
// all before doing anything.
func nodeList(cmd string, args []string) ([]int, error) {
	var ids []int
	for _, a := range args {
		id, err := parseNodeID(a)
		if err != nil || id >= 1000 {
			return nil, fmt.Errorf("%s is not a node id — ids are numbers from 0 to 999, e.g. \"%s 3 4\"", echo(a), cmd)
		}
		if slices.Contains(ids, id) {
			return nil, fmt.Errorf("node %d is listed twice", id)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func cmdAdd(r *REPL, sim cluster.Cluster, args []string) error {
	args, g, inGroup, err := takeGroupArg(sim, args)
	if err != nil {
		return err
	}
	ids, err := nodeList("add", args)
	if err != nil {
		return err
	}
	if err := groupedIDs(sim, "add", ids, inGroup); err != nil {
		return err
	}
	if inGroup {
		return addToGroup(r, sim.(cluster.Grouped), ids, g)
	}
	for _, id := range ids {
		if f, ok := sim.(floorGiver); ok {
			given, err := f.GiveVoteFloor(id)
			if err != nil {
				return fmt.Errorf("giving node %d its vote floor: %s", id, describe(err))
			}
			if given {
				r.printf("node %d is a member already, and voted for no one (it had no vote floor): given the leader's, it votes again", id)
				continue
			}
		}
		if err := sim.AddServer(id); err != nil {
			return fmt.Errorf("adding node %d: %s", id, describe(err))
		}
		if gc, ok := sim.(cluster.Grouped); ok {
			r.printf("node %d added to every group (voter in %s)", id, plural(gc.GroupCount(), "group"))
			continue
		}
		r.printf("node %d added (voter)", id)
	}
	return nil
}

// floorGiver is a cluster of node processes, where a member may vote for
// no one for want of a vote floor (remote.Cluster.GiveVoteFloor).
type floorGiver interface {
	GiveVoteFloor(id int) (given bool, err error)
}

func cmdRemove(r *REPL, sim cluster.Cluster, args []string) error {
	args, g, inGroup, err := takeGroupArg(sim, args)
	if err != nil {
		return err
	}
	ids, err := nodeList("remove", args)
	if err != nil {
		return err
	}
	if err := groupedIDs(sim, "remove", ids, inGroup); err != nil {
		return err
	}
	if inGroup {
		return removeFromGroup(r, sim.(cluster.Grouped), ids, g)
	}
	for _, id := range ids {
		if _, err := node(sim, strconv.Itoa(id)); err != nil {
			return err
		}
		if err := sim.RemoveServer(id); err != nil {
			return fmt.Errorf("removing node %d: %s", id, describe(err))
		}
		if _, ok := sim.(cluster.Grouped); ok {
			r.printf("node %d removed from every group and stopped", id)
			continue
		}
		r.printf("node %d removed", id)
	}
	return nil
}

func cmdChange(r *REPL, sim cluster.Cluster, args []string) error {
	if gc, ok := sim.(cluster.Grouped); ok && len(args) > 0 && args[0] != "" && args[0][0] != '+' && args[0][0] != '-' {
		return changeGroup(r, gc, args)
	}
	if len(args) > 0 && isGroupArg(args[0]) {
		return oneGroupError(sim, args[0])
	}
	adds, removes, err := parseMemberChanges(args)
	if err != nil {
		return err
	}
	voters := 0 // the voters that change: more than one makes the step joint
	for _, st := range sim.Status() {
		if st.Member == "voter" && slices.Contains(removes, st.ID) {
			voters++
		}
	}
	voters += len(adds)
	if err := sim.ChangeMembers(adds, removes); err != nil {
		return fmt.Errorf("changing the members: %s", describe(err))
	}
	how := "in one step (one voter changed: no joint configuration needed)"
	if voters > 1 {
		how = "through a joint configuration (C_old,new, then C_new)"
	}
	r.printf("members changed %s: %s", how, changeParts(adds, removes))
	return nil
}

// changeParts says what a change of members did: "added 3 (a voter, after
// catching up as a learner), removed 0".
func changeParts(adds, removes []int) string {
	var parts []string
	if len(adds) > 0 {
		what := "voters, after catching up as learners"
		if len(adds) == 1 {
			what = "a voter, after catching up as a learner"
		}
		parts = append(parts, fmt.Sprintf("added %s (%s)", idList(adds), what))
	}
	if len(removes) > 0 {
		parts = append(parts, fmt.Sprintf("removed %s", idList(removes)))
	}
	return strings.Join(parts, ", ")
}

func idList(ids []int) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	return strings.Join(parts, " ")
}

func cmdStatus(r *REPL, sim cluster.Cluster, _ []string) error {
	if gc, ok := sim.(cluster.Grouped); ok {
		groupedStatus(r, gc)
		r.networkLine(sim)
		return nil
	}
	t := table.NewWriter()
	t.SetStyle(compactStyle())
	var columns []table.ColumnConfig
	for _, n := range []int{1, 3, 4, 5, 6} { // the numbers, "-" or not
		columns = append(columns, table.ColumnConfig{Number: n, Align: text.AlignRight})
	}
	t.SetColumnConfigs(columns)
	status := sim.Status()
	// Nodes that are processes of their own (the launcher's) show their pid.
	pids := slices.ContainsFunc(status, func(st cluster.NodeStatus) bool { return st.Pid != 0 })
	header := table.Row{"node", "role", "term", "leader", "commit", "applied", "log", "member", "state"}
	if pids {
		header = append(header, "pid")
	}
	t.AppendHeader(header)
	row := func(st cluster.NodeStatus, cells ...any) table.Row {
		if pids {
			pid := "-"
			if st.Pid != 0 {
				pid = strconv.Itoa(st.Pid)
			}
			cells = append(cells, pid)
		}
		return cells
	}
	var mute []int // nodes that vote for no one
	for _, st := range status {
		if !st.Alive {
			state := "crashed"
			if st.Down != "" {
				state = st.Down
			}
			if !st.Connected {
				state += ", disconnected"
			}
			t.AppendRow(row(st, st.ID, "-", "-", "-", "-", "-", "-", st.Member, state))
			continue
		}
		state := "up"
		if !st.Connected {
			state = "disconnected"
		}
		leader := "-"
		if st.Leader != core.None {
			leader = strconv.Itoa(st.Leader)
		}
		log := "empty"
		if st.LastIndex > st.SnapshotIndex {
			log = fmt.Sprintf("%d..%d", st.SnapshotIndex+1, st.LastIndex)
		}
		if st.SnapshotIndex > 0 {
			log = fmt.Sprintf("snap %d, %s", st.SnapshotIndex, log)
		}
		if st.NoVotes {
			state += ", no votes"
			mute = append(mute, st.ID)
		}
		t.AppendRow(row(st, st.ID, st.Role.String(), st.Term, leader, st.Commit, st.Applied, log, st.Member, state))
	}
	fmt.Fprintln(r.out, render(t))
	for _, id := range mute {
		r.printf("node %d votes for no one: it joined (-join) and has no vote floor (never given, or its vote_floor.json lost); \"add %d\" gives it one", id, id)
	}
	r.networkLine(sim)
	return nil
}

// networkLine prints the network settings, the partition and the cut
// links below the status table.
func (r *REPL) networkLine(sim cluster.Cluster) {
	drop, delay := sim.NetworkSettings()
	line := "network: " + networkDesc(drop, delay)
	if p := r.partitionDesc(); p != "" {
		line += "; partition " + p
	}
	if cuts := sim.CutLinks(); len(cuts) > 0 {
		line += "; cut " + linksDesc(cuts)
	}
	r.printf("%s", line)
}

// compactStyle is a table without borders, to fit 80 columns.
func compactStyle() table.Style {
	st := table.StyleLight
	st.Options = table.Options{SeparateHeader: true}
	st.Box.PaddingLeft, st.Box.PaddingRight = "", "  "
	return st
}

// render renders a table without the trailing blanks of its last column.
func render(t table.Writer) string {
	lines := strings.Split(t.Render(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

func linksDesc(links [][2]int) string {
	parts := make([]string, len(links))
	for i, l := range links {
		parts[i] = fmt.Sprintf("%d→%d", l[0], l[1])
	}
	return strings.Join(parts, ", ")
}

// cmdCut cuts one direction of a link; cmdUncut restores it.
func cmdCut(r *REPL, sim cluster.Cluster, args []string) error {
	from, to, err := linkArgs(sim, args, "cut")
	if err != nil {
		return err
	}
	if err := sim.CutLink(from, to); err != nil {
		return err
	}
	r.printf("ok: cut %d → %d (%d no longer hears %d; %d still hears %d)", from, to, to, from, from, to)
	return nil
}

func cmdUncut(r *REPL, sim cluster.Cluster, args []string) error {
	from, to, err := linkArgs(sim, args, "uncut")
	if err != nil {
		return err
	}
	if !slices.Contains(sim.CutLinks(), [2]int{from, to}) {
		// As reconnect of a node that is not disconnected: every cluster
		// answers the same (virtual time's said so already).
		return fmt.Errorf("the link %d → %d is not cut (\"status\" lists the links cut)", from, to)
	}
	if err := sim.RestoreLink(from, to); err != nil {
		return err
	}
	r.printf("ok: restored %d → %d", from, to)
	return nil
}

// linkArgs parses the two ends of a link; example is the command, as the
// error's example shows it ("cut 0 1").
func linkArgs(sim cluster.Cluster, args []string, example string) (int, int, error) {
	from, err := node(sim, args[0])
	if err != nil {
		return 0, 0, err
	}
	to, err := node(sim, args[1])
	if err != nil {
		return 0, 0, err
	}
	if from == to {
		return 0, 0, fmt.Errorf("a link joins two different nodes — e.g. \"%s 0 1\"", example)
	}
	return from, to, nil
}

func networkDesc(drop float64, delay time.Duration) string {
	return fmt.Sprintf("drop rate %s, delay up to %v", formatRate(drop), delay)
}

func formatRate(p float64) string {
	return strconv.FormatFloat(p, 'f', -1, 64)
}

// partitionExample is an example partition of this cluster's nodes: its
// first half against the rest ("partition 0 1 | 2 3 4" for nodes 0–4).
func partitionExample(sim cluster.Cluster) string {
	ids := sim.IDs()
	if len(ids) < 2 {
		return "partition 0 1 | 2 3 4"
	}
	half := len(ids) / 2
	return "partition " + joinInts(ids[:half], " ") + " | " + joinInts(ids[half:], " ")
}

func cmdPartition(r *REPL, sim cluster.Cluster, args []string) error {
	var groups [][]int
	var desc []string
	example := partitionExample(sim)
	for _, part := range strings.Split(strings.Join(args, " "), "|") {
		fields := strings.Fields(part)
		if len(fields) == 0 {
			return fmt.Errorf("a group is empty — e.g. \"%s\"", example)
		}
		var g []int
		for _, f := range fields {
			id, err := node(sim, f)
			if err != nil {
				return err
			}
			g = append(g, id)
		}
		groups = append(groups, g)
		desc = append(desc, joinInts(g, " "))
	}
	if len(groups) < 2 {
		return fmt.Errorf("a partition needs at least two groups separated by | — e.g. \"%s\"", example)
	}
	if err := sim.Partition(groups...); err != nil {
		return fmt.Errorf("%v — e.g. \"%s\" with every node in a group", err, example)
	}
	d := strings.Join(desc, " | ")
	r.setPartition(d)
	r.printf("ok: partitioned %s", d)
	return nil
}

func cmdHeal(r *REPL, sim cluster.Cluster, _ []string) error {
	msg := "ok: partition healed"
	if r.partitionDesc() == "" && len(sim.CutLinks()) == 0 {
		msg = "ok: nothing to heal: no partition and no link cut one way"
	} else {
		sim.Heal()
		r.setPartition("")
	}
	var cut []int
	for _, st := range sim.Status() {
		if !st.Connected {
			cut = append(cut, st.ID)
		}
	}
	switch len(cut) {
	case 0:
		r.printf("%s", msg)
	case 1:
		r.printf("%s; node %d is still disconnected (reconnect it with \"reconnect %d\")", msg, cut[0], cut[0])
	default:
		r.printf("%s; nodes %s are still disconnected (reconnect them with \"reconnect <node>\")", msg, joinInts(cut, ", "))
	}
	return nil
}

// crashedTarget is the error of a transfer to a crashed node.
func crashedTarget(id int) error {
	return fmt.Errorf("node %d is crashed and cannot take over — restart it first (\"restart %d\")", id, id)
}

func cmdTransfer(r *REPL, sim cluster.Cluster, args []string) error {
	id, err := node(sim, args[0])
	if err != nil {
		return err
	}
	if st := statusOf(sim.Status(), id); st.Alive && !st.Connected {
		// Its TimeoutNow could not reach it: the transfer would only wait.
		return fmt.Errorf("node %d is disconnected and cannot take over — reconnect it first (\"reconnect %d\")", id, id)
	}
	if gc, ok := sim.(cluster.Grouped); ok {
		return transferGrouped(r, gc, id, args[1:])
	}
	if len(args) > 1 {
		return oneGroupError(sim, args[1])
	}
	if err := sim.TransferLeadership(id); err != nil {
		if errors.Is(err, raft.ErrNodeCrashed) {
			return crashedTarget(id)
		}
		return err
	}
	_, term := sim.Leader()
	r.printf("ok: leader is now node %d (term %d)", id, term)
	return nil
}

// maxNetworkDelay bounds "network delay": beyond it the cluster only stalls.
const maxNetworkDelay = 10 * time.Second

func cmdNetwork(r *REPL, sim cluster.Cluster, args []string) error {
	switch {
	case len(args) == 0:
		drop, delay := sim.NetworkSettings()
		r.printf("network: %s", networkDesc(drop, delay))
		return nil
	case len(args) == 1 && strings.EqualFold(args[0], "reset"):
		if err := sim.SetDropRate(0); err != nil {
			return err
		}
		if err := sim.SetMaxDelay(0); err != nil {
			return err
		}
		r.printf("ok: network: %s", networkDesc(0, 0))
		return nil
	case len(args) != 2:
		return usageOf(18)
	}
	switch strings.ToLower(args[0]) {
	case "drop":
		p, err := parseRate(args[1])
		if err != nil {
			return err
		}
		if err := sim.SetDropRate(p); err != nil {
			return err
		}
		r.printf("ok: each message is lost with probability %s", formatRate(p))
	case "delay":
		d, err := time.ParseDuration(args[1])
		if err != nil || d < 0 || d > maxNetworkDelay {
			return fmt.Errorf("delay must be a duration from 0 to %v, like 20ms, not %s", maxNetworkDelay, echo(args[1]))
		}
		if err := sim.SetMaxDelay(d); err != nil {
			return err
		}
		r.printf("ok: each message is delayed by up to %v", d)
	default:
		return usageOf(18)
	}
	return nil
}

// parseRate reads a probability: 0.1 or 10%.
func parseRate(s string) (float64, error) {
	num, percent := strings.CutSuffix(s, "%")
	p, err := strconv.ParseFloat(num, 64)
	if percent {
		p /= 100
	}
	if err != nil || math.IsNaN(p) || p < 0 || p > 1 {
		return 0, fmt.Errorf("drop rate must be from 0 to 1 (or 0%% to 100%%), like 0.1, not %s", echo(s))
	}
	return p, nil
}

func cmdHelp(r *REPL, _ cluster.Cluster, args []string) error {
	if len(args) == 0 {
		r.printMenu()
		return nil
	}
	c := lookupCommand(args[0])
	if c == nil {
		return fmt.Errorf("unknown command %s — type \"help\" for the menu", echo(args[0]))
	}
	r.printf("%d, %s", c.num, c.usage())
	if c.run == nil {
		r.printf("  %s (not implemented yet)", c.help)
		return nil
	}
	r.printf("  %s", c.help)
	for line := range strings.SplitSeq(c.more, "\n") {
		if line != "" {
			r.printf("  %s", line)
		}
	}
	if len(c.names) > 1 {
		r.printf("  also: %s", strings.Join(c.names[1:], ", "))
	}
	return nil
}

// printMenu prints every implemented command with its number and word.
func (r *REPL) printMenu() {
	r.printf("Commands (a number or a word: \"1 3\" is \"create 3\"; \"help <command>\" for more):")
	width := 0
	for _, c := range commands {
		if c.run != nil {
			width = max(width, len(c.usage()))
		}
	}
	for _, c := range commands {
		if c.run != nil {
			r.printf("%3d  %-*s  %s", c.num, width, c.usage(), c.help)
		}
	}
}

// describe turns a simulator error into a sentence: the sentinel prefix
// is dropped where the rest already says it ("no such node: node 7 does
// not exist" becomes "node 7 does not exist").
func describe(err error) string {
	msg := err.Error()
	for _, sentinel := range []error{raft.ErrNoSuchNode, raft.ErrNodeCrashed, raft.ErrNodeAlive} {
		if !errors.Is(err, sentinel) {
			continue
		}
		rest, ok := strings.CutPrefix(msg, sentinel.Error()+": ")
		if ok && strings.HasPrefix(rest, "node ") && (strings.Contains(rest, " is ") || strings.Contains(rest, " does ")) {
			return rest
		}
	}
	return msg
}

// idRange shows node ids as "0–4", or "0, 2, 3" when not contiguous.
func idRange(ids []int) string { return cluster.IDRange(ids) }

func joinInts(ids []int, sep string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	return strings.Join(parts, sep)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
