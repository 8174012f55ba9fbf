// Package remote runs a cluster's servers as processes of their own, on
// one host or many: Node is one server in a process (go run . node), with
// its data dir, its address book and an admin service; Cluster drives such
// servers over the network for the REPL (go run . -connect), and, through
// a Launcher, as local processes it can kill, pause and restart.
package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/multinode"
	"raft-consensus/raft/node"
	"raft-consensus/raft/shard"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/transport"
)

// NodeConfig configures a Node.
type NodeConfig struct {
	ID      int
	Cluster string // the cluster id (in every hello, and in the data dir)
	// Listen is the address to listen on (Peers[ID] if empty).
	Listen string
	// Peers is the address book: where every member listens, this node
	// included. It founds the cluster (the voters of the first
	// configuration) unless Join is set.
	Peers   map[int]string
	DataDir string
	// Join: the node joins a running cluster (add it from the REPL); it
	// does not found one.
	Join bool
	// Founders, if set, are the ids of Peers that found the cluster (the
	// voters of its first configuration); a node not among them joins. So
	// one address book can list nodes to be added later: a StatefulSet
	// scaled up gives each new pod the same flags.
	Founders []int
	// TLSDir holds the cluster's certificates (go run . certs): every
	// connection is then mutual TLS. AllowRemote allows listening beyond
	// loopback, which needs TLSDir.
	TLSDir      string
	AllowRemote bool

	ElectionTimeoutMin, ElectionTimeoutMax time.Duration
	HeartbeatInterval, TickInterval        time.Duration
	SnapshotThreshold                      uint64
	// Groups, if more than 1, makes the node host that many Raft groups
	// (a sharded KV: shard.Server) instead of one; the data dir remembers
	// the number, which cannot change (keys map to groups by it).
	Groups int
	// Logf receives the node's log lines (refused connections, faults
	// applied, membership learned).
	Logf func(format string, args ...any)
}

// Node is one server running in this process, reachable by its peers and
// by clients at its address.
type Node struct {
	cfg     NodeConfig
	server  *kv.Server
	storage *storage.DiskStorage
	tcp     *transport.TCPTransport
	// With many groups: the sharded server (set once started, under mu)
	// and its transport, instead of server, storage and tcp.
	sharded *shard.Server
	mtcp    *multinode.TCP
	// replicas are the groups it holds, as saved in the data dir
	// (replicas.json); rmu orders their changes.
	rmu      sync.Mutex
	replicas replicaRecord
	faults   *transport.NetworkFaults
	release  func()
	started  time.Time
	stop     chan struct{} // closed by Stop
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu   sync.Mutex
	book map[int]string // the address book, as saved in the data dir
	// faultState is the fault state last set through the admin service.
	faultState Faults
}

// StartNode checks cfg and the data dir, recovers the node's storage and
// starts serving.
func StartNode(cfg NodeConfig) (*Node, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %v", err)
	}
	release, err := lockDir(cfg.DataDir, lockFile)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	n := &Node{cfg: cfg, release: release, started: time.Now(), stop: make(chan struct{}),
		faults: transport.NewNetworkFaults(time.Now().UnixNano())}
	// fresh: nothing of a node's is in the dir yet (a log without its
	// identity is not fresh: checkIdentity refuses it, and it is kept).
	fresh := !exists(filepath.Join(cfg.DataDir, identityFile)) && !holdsLog(cfg.DataDir)
	if err := n.start(); err != nil {
		n.stopOnce.Do(n.close)
		if fresh {
			// A first start that failed leaves the data dir as it found it,
			// so that a corrected command line may use it.
			for _, name := range []string{identityFile, peersFile, raftDir, groupsDir, replicasFile, voteFloorFile} {
				os.RemoveAll(filepath.Join(cfg.DataDir, name))
			}
		}
		return nil, err
	}
	if cfg.Join {
		n.wg.Add(1)
		go n.announce()
	}
	return n, nil
}

// checkConfig checks what a misconfiguration would get wrong.
func checkConfig(cfg *NodeConfig) error {
	switch {
	case cfg.DataDir == "":
		return errors.New("a data dir is required (-data-dir): a node keeps its log on disk")
	case cfg.ID < 0 || cfg.ID > MaxNodeID:
		return fmt.Errorf("node id %d is out of range (0–%d)", cfg.ID, MaxNodeID)
	case len(cfg.Cluster) > transport.MaxClusterID:
		return fmt.Errorf("the cluster id is longer than %d bytes", transport.MaxClusterID)
	case cfg.Groups < 0 || cfg.Groups > shard.MaxGroups:
		return fmt.Errorf("%d groups: the number of groups must be 1 to %d", cfg.Groups, shard.MaxGroups)
	case cfg.Peers[cfg.ID] == "" && cfg.Listen == "":
		return fmt.Errorf("node %d is not in the peers (%s): add %d=host:port", cfg.ID, FormatPeers(cfg.Peers), cfg.ID)
	}
	for _, f := range cfg.Founders {
		if _, ok := cfg.Peers[f]; !ok {
			return fmt.Errorf("founder %d is not in the peers (%s)", f, FormatPeers(cfg.Peers))
		}
	}
	if len(cfg.Founders) > 0 && !slices.Contains(cfg.Founders, cfg.ID) {
		cfg.Join = true
	}
	if cfg.Groups == 1 {
		cfg.Groups = 0 // one group: the single-group server
	}
	if _, ok := cfg.Peers[cfg.ID]; !ok && !cfg.Join {
		return fmt.Errorf("node %d is not in the peers (%s), which found the cluster: add %d=host:port, or use -join", cfg.ID, FormatPeers(cfg.Peers), cfg.ID)
	}
	if cfg.Listen == "" {
		cfg.Listen = cfg.Peers[cfg.ID]
	}
	if fi, err := os.Stat(cfg.DataDir); err == nil && !fi.IsDir() {
		return fmt.Errorf("data dir %s is a file, not a directory", cfg.DataDir)
	}
	if err := transport.CheckListenAddr(cfg.Listen, cfg.AllowRemote, cfg.TLSDir != ""); err != nil {
		return fmt.Errorf("%w (-allow-remote with -tls-dir listens beyond 127.0.0.1)", err)
	}
	return nil
}

func (n *Node) start() error {
	cfg := n.cfg
	id, err := checkIdentity(cfg.DataDir, identity{Cluster: cfg.Cluster, Node: cfg.ID, Joined: cfg.Join, Groups: cfg.Groups})
	if err != nil {
		return err
	}
	saved, err := readPeers(cfg.DataDir)
	if err != nil {
		return err
	}
	// What the flags say wins; what the node learned later (peers added
	// through the admin service) stays.
	n.book = saved
	if n.book == nil {
		n.book = map[int]string{}
	}
	maps.Copy(n.book, cfg.Peers)
	if err := writeJSON(filepath.Join(cfg.DataDir, peersFile), n.book); err != nil {
		return err
	}
	var tlsCfg *tls.Config
	if cfg.TLSDir != "" {
		if tlsCfg, err = transport.LoadTLS(cfg.TLSDir, transport.CertName(cfg.ID)); err != nil {
			return err
		}
	}
	var members []int
	switch {
	case id.Joined:
	case len(cfg.Founders) > 0:
		members = slices.Sorted(slices.Values(cfg.Founders))
	default:
		members = slices.Sorted(maps.Keys(cfg.Peers))
	}
	if cfg.Groups > 1 {
		return n.startGroups(tlsCfg, id, members)
	}
	n.storage, err = storage.OpenDiskStorage(filepath.Join(cfg.DataDir, raftDir), storage.DiskOptions{})
	if err != nil {
		return err
	}
	floor, err := n.joinFloor(id.Joined, n.storage)
	if err != nil {
		n.storage.Close()
		return err
	}
	n.tcp = transport.NewTCPTransportWith(transport.TCPConfig{ID: cfg.ID, Cluster: cfg.Cluster, TLS: tlsCfg, Logf: cfg.Logf})
	for pid, addr := range n.book {
		if pid != cfg.ID {
			n.tcp.SetAddr(pid, addr)
		}
	}
	n.server, err = kv.StartServer(kv.ServerConfig{
		Node: node.Config{
			ID: cfg.ID, Members: members, VoteFloor: floor, Storage: n.storage,
			ElectionTimeoutMin: cfg.ElectionTimeoutMin, ElectionTimeoutMax: cfg.ElectionTimeoutMax,
			HeartbeatInterval: cfg.HeartbeatInterval, TickInterval: cfg.TickInterval,
			AsyncLeaderWrites: true,
			Seed:              time.Now().UnixNano() + int64(cfg.ID),
			// A broken invariant of the protocol stops the node (with its
			// reason in the log), never a panic of the process.
			OnViolation: func(v core.InvariantViolation) {
				cfg.Logf("SAFETY VIOLATION in the protocol, the node stops taking part: %v", v)
			},
		},
		Addr:      cfg.Listen,
		Transport: transport.WithFaults(n.tcp, n.faults),
		Listen: transport.ListenConfig{
			Cluster: cfg.Cluster, Known: n.known, TLS: tlsCfg, AllowRemote: cfg.AllowRemote, Logf: cfg.Logf,
		},
		Services: func(srv *kv.Server) map[string]any {
			return map[string]any{AdminService: &Admin{node: n, server: srv}}
		},
		SnapshotThreshold: cfg.SnapshotThreshold,
		OnViolation: func(v core.InvariantViolation) {
			cfg.Logf("SAFETY VIOLATION, stopping: %v", v)
		},
	})
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	return nil
}

// announce tells the peers where this node listens, until each has
// heard it: a node joining a running cluster is in nobody's address book
// yet, and its messages would be refused. (With a launcher, the REPL tells
// them too.)
func (n *Node) announce() {
	defer n.wg.Done()
	d, err := NewDialer(n.cfg.Cluster, n.cfg.TLSDir)
	if err != nil {
		n.cfg.Logf("cannot announce this node to its peers: %v", err)
		return
	}
	defer d.Close()
	pending := maps.Clone(n.cfg.Peers)
	delete(pending, n.cfg.ID)
	self := Peer{ID: n.cfg.ID, Addr: n.cfg.Listen}
	if addr, ok := n.cfg.Peers[n.cfg.ID]; ok {
		self.Addr = addr // as the peers reach it (the listen address may be 0.0.0.0)
	}
	for len(pending) > 0 {
		for id, addr := range pending {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := d.Call(ctx, addr, AdminService+".SetPeer", &self, &struct{}{})
			cancel()
			if err == nil {
				n.cfg.Logf("told node %d at %s where this node listens", id, addr)
				delete(pending, id)
			}
		}
		select {
		case <-n.stop:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// known says whether a node id is in the address book: only those may
// send Raft requests.
func (n *Node) known(id int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.book[id]
	return ok
}

// setPeer adds a node to the address book (or moves it), in the data dir
// first.
func (n *Node) setPeer(id int, addr string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mtcp == nil && n.tcp == nil {
		// The admin service serves before start has set the transport.
		return fmt.Errorf("node %d is still starting", n.cfg.ID)
	}
	book := maps.Clone(n.book)
	book[id] = addr
	if err := writeJSON(filepath.Join(n.cfg.DataDir, peersFile), book); err != nil {
		return err
	}
	n.book = book
	switch {
	case id == n.cfg.ID:
	case n.mtcp != nil:
		n.mtcp.SetPeer(multi.NodeID(id), addr)
	default:
		n.tcp.SetAddr(id, addr)
	}
	return nil
}

// Book returns the address book.
func (n *Node) Book() map[int]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.book)
}

// Addr is where the node listens.
func (n *Node) Addr() string {
	if n.mtcp != nil {
		return n.mtcp.Addr()
	}
	return n.server.Addr()
}

// Server is the node's KV server (nil for a node of many groups).
func (n *Node) Server() *kv.Server { return n.server }

// Done is closed when the node has stopped (a storage failure, a safety
// violation).
func (n *Node) Done() <-chan struct{} {
	if n.mtcp != nil {
		return n.sharded.Node().Done()
	}
	return n.server.Node().Done()
}

// Failed is why the node stopped by itself (a storage failure, a safety
// violation), once Done is closed.
func (n *Node) Failed() error {
	if n.mtcp != nil {
		return n.sharded.Node().Failed()
	}
	return n.server.Node().Failed()
}

// Stop stops the node: what it acknowledged is on disk already (every
// write is fsync'd before it is acknowledged); the storage is closed.
// Stopping it again does nothing.
func (n *Node) Stop() { n.stopOnce.Do(n.close) }

func (n *Node) close() {
	close(n.stop)
	n.wg.Wait()
	if n.mtcp != nil {
		// The groups first: the calls waiting on them end at once (a
		// stopped node answers ErrStopped), so that closing the listener,
		// which waits for the calls it serves, does not wait for their
		// timeouts. Their log is synced at every round: nothing
		// acknowledged is lost.
		if n.sharded != nil {
			n.sharded.Stop()
		}
		n.mtcp.Close()
	}
	if n.server != nil {
		n.server.Stop() // closes the transport too
	} else if n.tcp != nil {
		n.tcp.Close()
	}
	if n.storage != nil {
		n.storage.Close()
	}
	if n.release != nil {
		n.release()
	}
}
