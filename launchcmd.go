package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/remote"
	"raft-consensus/raft/shard"
)

const clusterUsage = `Usage: raft-consensus cluster up [-n N] [-dir DIR] [flags]

Starts N node processes on 127.0.0.1 (each one "raft-consensus node", with
its data dir DIR/node-<id> and its log DIR/node-<id>.log) and opens the
REPL over them. There, crash is SIGKILL, restart starts the process again on
its data dir, pause and resume are SIGSTOP and SIGCONT; disconnect,
partition, heal and network act inside each node's transport. Leaving the
REPL stops every process. A DIR that holds a cluster is recovered, on the
same ports; one launcher at a time may use a DIR.

Flags:
  -n N                the number of nodes of a new cluster (default 3)
  -dir DIR            where the nodes keep their data (default: a temporary
                      directory, removed at exit)
  -cluster-id ID      the cluster's id (default raft-consensus)
  -election-timeout D the nodes' minimum election timeout (default 150ms)
  -heartbeat D        the nodes' heartbeat interval (default 50ms)
  -groups G           each node hosts G Raft groups (default 1; see node -h)
  -timeout D          bound each client operation to D (default 3s)
  -script FILE        run the commands in FILE first (as the REPL's -script)
  -keep-going         in a script or a pipe, run on after a failing line
  -h                  show this help
`

// runClusterCmd is "go run . cluster up".
func runClusterCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "up" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprint(stderr, clusterUsage)
			return 0
		}
		fmt.Fprint(stderr, "error: the cluster command is \"cluster up\"\n\n"+clusterUsage)
		return 2
	}
	fs := flag.NewFlagSet("cluster up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, clusterUsage) }
	n := fs.Int("n", 3, "")
	dir := fs.String("dir", "", "")
	clusterID := fs.String("cluster-id", defaultClusterID, "")
	election := fs.Duration("election-timeout", 150*time.Millisecond, "")
	heartbeat := fs.Duration("heartbeat", 50*time.Millisecond, "")
	groups := fs.Int("groups", 1, "")
	var c config
	fs.DurationVar(&c.timeout, "timeout", 3*time.Second, "")
	fs.StringVar(&c.script, "script", "", "")
	fs.BoolVar(&c.keep, "keep-going", false, "")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "error: "+format+" — see cluster -h\n", a...)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return fail("unexpected argument %q", fs.Arg(0))
	case *n < 1 || *n > cluster.MaxNodes:
		return fail("-n must be 1 to %d", cluster.MaxNodes)
	case c.timeout <= 0:
		return fail("-timeout must be positive")
	case *groups < 1 || *groups > shard.MaxGroups:
		return fail("-groups must be 1 to %d", shard.MaxGroups)
	case *election <= 0 || *heartbeat <= 0 || *heartbeat >= *election:
		return fail("the heartbeat (%v) must be positive and shorter than the election timeout (%v)", *heartbeat, *election)
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "raft-cluster-")
		if err != nil {
			return fail("%v", err)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	} else if fi, err := os.Stat(*dir); err == nil && !fi.IsDir() {
		return fail("-dir %s is a file, not a directory", *dir)
	}
	c.format = "json"
	c.initial = func() (cluster.Cluster, string, error) {
		l, err := remote.Launch(remote.LauncherConfig{Dir: *dir, Nodes: *n, Cluster: *clusterID,
			NodeArgs: []string{"-election-timeout", election.String(), "-heartbeat", heartbeat.String(), "-groups", strconv.Itoa(*groups)}})
		if err != nil {
			return nil, "", err
		}
		rc, err := remote.ConnectAny(remote.ClusterConfig{Addrs: l.Addrs(), Cluster: *clusterID, Processes: l, Timeout: c.timeout})
		if err != nil {
			l.Close()
			return nil, "", err
		}
		held := ""
		if l.Recovered() {
			held = ", the cluster the dir held (its members, not -n's)"
		}
		return rc, fmt.Sprintf("started %d node processes (nodes %s%s) in %s%s; their logs are %s/node-<id>.log",
			len(rc.IDs()), idRange(rc.IDs()), hostingGroups(rc), *dir, held, *dir), nil
	}
	return runREPL(c, stdin, stdout, stderr)
}
