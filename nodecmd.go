package main

// The subcommands that run a cluster as processes: node (one server),
// health (a probe for compose and Kubernetes), certs (the cluster's TLS
// certificates) and cluster up (a launcher of node processes, with the
// REPL over them). The REPL's -connect (cli.go) drives a cluster of nodes
// started any other way.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"raft-consensus/raft/remote"
	"raft-consensus/raft/transport"
)

const nodeUsage = `Usage: raft-consensus node -id N -peers ID=HOST:PORT,… -data-dir DIR [flags]

Runs one server of a cluster in this process: it listens for its peers and
for clients (go run . -connect HOST:PORT) on one port, keeps its log in
DIR, logs to stderr, and stops cleanly on SIGTERM, SIGINT or SIGHUP.

Flags:
  -id N               this node's id (0–999)
  -id-from-hostname   take the id from the host name's last number
                      (raft-2 → 2: a StatefulSet's or a compose service's)
  -peers LIST         where every founding member listens, this one
                      included: 0=127.0.0.1:7000,1=127.0.0.1:7001,…
  -listen ADDR        where to listen (default: this node's address in -peers)
  -data-dir DIR       the node's durable storage (required); it remembers its
                      cluster id and node id, and refuses another's
  -cluster-id ID      the cluster's id, said in every connection (default
                      "raft-consensus"): a node of another cluster is refused
  -join               join a running cluster instead of founding one (then
                      "add N" in the REPL); -peers names the running nodes
                      and this one
  -founders IDS       the ids of -peers that found the cluster (default: all);
                      a node not among them joins: one -peers can then list
                      nodes to be added later (a StatefulSet scaled up)
  -tls-dir DIR        mutual TLS with the certificates in DIR (go run . certs)
  -allow-remote       allow listening beyond 127.0.0.1 (needs -tls-dir)
  -election-timeout D the minimum election timeout (default 150ms; the
                      maximum is twice it)
  -heartbeat D        the heartbeat interval (default 50ms)
  -snapshot-every N   snapshot after every N applied entries (default 10000)
  -groups G           host G Raft groups (default 1): a sharded KV, keys
                      mapped to groups by hash, every group on every
                      founding node, one shared log in DIR; every node of
                      the cluster needs the same G, and a data dir keeps it
                      (no -join or membership changes with G > 1 yet)
  -cpuprofile FILE    write a CPU profile of the node's whole run to FILE
                      ({id} in FILE stands for the node id)
  -h                  show this help
`

// runNode is "go run . node": exit status 2 for a misconfiguration, 1 for
// a node that stopped on a failure, 0 for a clean stop.
func runNode(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, nodeUsage) }
	id := fs.Int("id", -1, "")
	idFromHost := fs.Bool("id-from-hostname", false, "")
	peers := fs.String("peers", "", "")
	listen := fs.String("listen", "", "")
	dataDir := fs.String("data-dir", "", "")
	clusterID := fs.String("cluster-id", defaultClusterID, "")
	join := fs.Bool("join", false, "")
	founders := fs.String("founders", "", "")
	tlsDir := fs.String("tls-dir", "", "")
	allowRemote := fs.Bool("allow-remote", false, "")
	election := fs.Duration("election-timeout", 150*time.Millisecond, "")
	heartbeat := fs.Duration("heartbeat", 50*time.Millisecond, "")
	snapEvery := fs.Uint64("snapshot-every", 10000, "")
	cpuProfile := fs.String("cpuprofile", "", "")
	groups := fs.Int("groups", 1, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "error: "+format+" — see node -h\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if *idFromHost {
		host, err := os.Hostname()
		if err != nil {
			return fail("-id-from-hostname: %v", err)
		}
		n, err := idFromHostname(host)
		if err != nil {
			return fail("-id-from-hostname: %v", err)
		}
		*id = n
	}
	switch {
	case *id < 0:
		return fail("-id is required (or -id-from-hostname)")
	case *election <= 0 || *heartbeat <= 0 || *heartbeat >= *election:
		return fail("the heartbeat (%v) must be positive and shorter than the election timeout (%v)", *heartbeat, *election)
	}
	book, err := remote.ParsePeers(*peers)
	if err != nil {
		return fail("-peers: %v", err)
	}
	var founderIDs []int
	if *founders != "" {
		if founderIDs, err = parseIDs(*founders); err != nil {
			return fail("-founders: %v", err)
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(strings.ReplaceAll(*cpuProfile, "{id}", strconv.Itoa(*id)))
		if err != nil {
			return fail("-cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fail("-cpuprofile: %v", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	logger := log.New(stderr, fmt.Sprintf("node %d: ", *id), log.LstdFlags|log.Lmicroseconds)
	n, err := remote.StartNode(remote.NodeConfig{
		ID: *id, Cluster: *clusterID, Listen: *listen, Peers: book, DataDir: *dataDir, Join: *join, Founders: founderIDs,
		TLSDir: *tlsDir, AllowRemote: *allowRemote,
		ElectionTimeoutMin: *election, ElectionTimeoutMax: 2 * *election, HeartbeatInterval: *heartbeat,
		SnapshotThreshold: *snapEvery, Groups: *groups, Logf: logger.Printf,
	})
	if err != nil {
		return fail("%v", err)
	}
	logger.Printf("listening on %s (cluster %q, peers %s, data dir %s, pid %d)", n.Addr(), *clusterID, remote.FormatPeers(n.Book()), *dataDir, os.Getpid())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	select {
	case sig := <-sigs:
		logger.Printf("%v: stopping", sig)
		n.Stop()
		logger.Printf("stopped")
		return 0
	case <-n.Done():
		err := n.Failed()
		n.Stop()
		logger.Printf("the node stopped: %v", err)
		return 1
	}
}

// defaultClusterID is the cluster id when none is given.
const defaultClusterID = "raft-consensus"

var trailingNumber = regexp.MustCompile(`(\d+)$`)

// idFromHostname takes a node id from a host name's last number: raft-2,
// raft-consensus-node-2 and node2 are node 2 (a StatefulSet names its pods
// <name>-<ordinal>; compose services are named so here).
func idFromHostname(host string) (int, error) {
	host, _, _ = strings.Cut(host, ".")
	m := trailingNumber.FindString(host)
	if m == "" {
		return 0, fmt.Errorf("host name %q does not end in a number", host)
	}
	n, err := strconv.Atoi(m)
	if err != nil || n > remote.MaxNodeID {
		return 0, fmt.Errorf("host name %q: the id must be 0–%d", host, remote.MaxNodeID)
	}
	return n, nil
}

const healthUsage = `Usage: raft-consensus health -addr HOST:PORT [-ready] [-cluster-id ID] [-tls-dir DIR]

Asks a node whether it runs (exit status 0), for the health checks of
docker compose and the probes of Kubernetes. With -ready, the node must
also know a leader. A node that does not answer within -timeout (default
2s) is unhealthy: exit status 1.
`

// runHealth is "go run . health".
func runHealth(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, healthUsage) }
	addr := fs.String("addr", "", "")
	ready := fs.Bool("ready", false, "")
	clusterID := fs.String("cluster-id", defaultClusterID, "")
	tlsDir := fs.String("tls-dir", "", "")
	timeout := fs.Duration("timeout", 2*time.Second, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *addr == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "error: -addr HOST:PORT is required — see health -h")
		return 2
	}
	d, err := remote.NewDialer(*clusterID, *tlsDir)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var info remote.NodeInfo
	if err := d.Call(ctx, *addr, remote.AdminService+".Info", &struct{}{}, &info); err != nil {
		fmt.Fprintf(stdout, "unhealthy: %v\n", err)
		return 1
	}
	s := info.Summary
	if *ready && s.Leader < 0 {
		fmt.Fprintf(stdout, "not ready: node %d knows no leader (term %d)\n", info.ID, s.Term)
		return 1
	}
	fmt.Fprintf(stdout, "ok: node %d, %v, term %d, leader %d, commit %d\n", info.ID, s.Role, s.Term, s.Leader, s.Commit)
	return 0
}

const certsUsage = `Usage: raft-consensus certs -dir DIR -nodes N|ID,ID,…

Writes the certificates of a cluster's mutual TLS into DIR: a CA (ca.crt,
ca.key), one certificate per node (node-<id>.crt and .key, for ids 0..N-1
or the ids listed) and one for clients (client.crt, .key). Certificates
already in DIR are kept, so that a node added later gets one from the same
CA. Give DIR to every node and client with -tls-dir.
`

// runCerts is "go run . certs".
func runCerts(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, certsUsage) }
	dir := fs.String("dir", "", "")
	nodes := fs.String("nodes", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ids, err := parseIDList(*nodes)
	if *dir == "" || err != nil || fs.NArg() > 0 {
		if err == nil {
			err = errors.New("-dir is required")
		}
		fmt.Fprintf(stderr, "error: %v — see certs -h\n", err)
		return 2
	}
	names := []string{transport.ClientCertName}
	for _, id := range ids {
		names = append(names, transport.CertName(id))
	}
	written, err := transport.WriteCerts(*dir, names)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	if len(written) == 0 {
		fmt.Fprintf(stdout, "ok: %s has every certificate already\n", *dir)
		return 0
	}
	fmt.Fprintf(stdout, "ok: wrote %s in %s\n", strings.Join(written, " "), *dir)
	return 0
}

// parseIDList parses "3" (ids 0, 1, 2) or "0,2,5".
func parseIDList(s string) ([]int, error) {
	if s == "" {
		return nil, errors.New("-nodes is required: a count (3) or ids (0,1,2)")
	}
	if n, err := strconv.Atoi(s); err == nil && !strings.Contains(s, ",") {
		if n < 1 || n > remote.MaxNodeID+1 {
			return nil, fmt.Errorf("-nodes %d: a count from 1 to %d", n, remote.MaxNodeID+1)
		}
		ids := make([]int, n)
		for i := range ids {
			ids[i] = i
		}
		return ids, nil
	}
	ids, err := parseIDs(s)
	if err != nil {
		return nil, fmt.Errorf("-nodes: %v", err)
	}
	return ids, nil
}

// parseIDs parses a list of node ids: "0,2,5".
func parseIDs(s string) ([]int, error) {
	var ids []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 0 || n > remote.MaxNodeID {
			return nil, fmt.Errorf("%q is not a node id (0–%d)", part, remote.MaxNodeID)
		}
		if slices.Contains(ids, n) {
			return nil, fmt.Errorf("node id %d is listed twice", n)
		}
		ids = append(ids, n)
	}
	return ids, nil
}
