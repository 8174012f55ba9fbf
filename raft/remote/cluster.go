package remote

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"sync"
	"time"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/transport"
)

// Processes is what a launcher does to the node processes it started:
// Cluster calls it for the commands that need control of a process. With
// none (the REPL connected to a cluster it did not start), those commands
// say they need the launcher.
type Processes interface {
	// Start starts a new node that joins the cluster, and returns where it
	// listens; book is the address book it starts with.
	Start(id int, book map[int]string) (addr string, err error)
	Kill(id int) error    // SIGKILL
	Restart(id int) error // start again on its data dir
	Pause(id int) error   // SIGSTOP
	Resume(id int) error  // SIGCONT
	Stop(id int) error    // SIGTERM, then wait
	// Remove stops a node a membership change took out, for good: it is
	// not started again (restart, a later launcher on the same dir).
	Remove(id int) error
	// Pid is the node's process id (0 if it runs not).
	Pid(id int) int
	Paused(id int) bool
	// Close stops every process.
	Close() error
}

// ErrNeedsLauncher is the error of a command that needs control of the
// node processes.
var ErrNeedsLauncher = errors.New("this needs control of the node processes, and this REPL is only connected to the cluster: " +
	"start it with \"go run . cluster up\" for that, or act on the processes yourself (kill -9, kill -STOP, docker kill, docker pause)")

// Cluster is a cluster.Cluster whose servers run in other processes,
// reached over the network through their KV and admin services.
type Cluster struct {
	dialer *Dialer
	procs  Processes // nil: connected only
	start  time.Time

	mu   sync.Mutex
	book map[int]string // where each member listens
	// spare are the addresses given (ClusterConfig.Addrs) where no node
	// answered yet: where a node still to be added may listen, as this
	// client reaches it (the address the node gives its peers may be a
	// name only their network resolves, as a container's). prepareNew
	// looks there for the node it adds.
	spare []string
	// advertised is the address a node found at a spare address gives its
	// peers, kept for an add tried again (its spare address is book's).
	advertised map[int]string
	members    []int // the servers, as the latest leader's configuration says
	// was: servers once in a committed configuration (to tell leaving
	// from joining).
	was map[int]bool
	// joining: nodes started or announced for a change that no leader's
	// configuration holds yet; they stay listed (and polled) meanwhile.
	joining map[int]bool
	faults  *transport.NetworkFaults // the fault model every node is given
	client  *kv.Client
	clients int // made so far, to number them
	history *kv.History
	closed  bool

	interrupts cluster.Interrupts // what Interrupt cancels

	// groups is the number of groups each node hosts (0: one); see
	// GroupedCluster.
	groups int

	timeout time.Duration
}

var _ cluster.Cluster = (*Cluster)(nil)

// ClusterConfig configures a Cluster.
type ClusterConfig struct {
	// Addrs are where some of the nodes listen: the others are found in
	// their address books.
	Addrs   []string
	Cluster string // the cluster id
	TLSDir  string
	// Processes, if set, controls the node processes (a launcher's).
	Processes Processes
	// Timeout bounds a client operation, retries included (default 3 s).
	Timeout time.Duration
	// ConnectTimeout is how long Connect waits for a first node to answer
	// (default 5 s): nodes started a moment before may not listen yet.
	ConnectTimeout time.Duration
}

// infoTimeout bounds a look at one node: one that does not answer within
// it is shown as not answering.
const infoTimeout = 500 * time.Millisecond

// Connect reaches the nodes at cfg.Addrs and learns the cluster from them.
func Connect(cfg ClusterConfig) (*Cluster, error) {
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("no node addresses to connect to")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	d, err := NewDialer(cfg.Cluster, cfg.TLSDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{dialer: d, procs: cfg.Processes, start: time.Now(), book: map[int]string{}, was: map[int]bool{},
		faults: transport.NewNetworkFaults(1), history: &kv.History{}, timeout: cfg.Timeout}
	var errs []error
	learned := map[int]string{} // from the address books: the addresses given come first
	var newest *core.Summary    // the answer with the latest configuration
	// Nodes started a moment ago may not listen yet: until one answers,
	// try again for a while, unless a node refused us (that will not change).
	deadline := time.Now().Add(cfg.ConnectTimeout)
	for attempt := 0; len(c.book) == 0; attempt++ {
		if attempt > 0 {
			if time.Now().After(deadline) || slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, transport.ErrRefused) }) {
				break
			}
			time.Sleep(100 * time.Millisecond)
			errs = nil
		}
		for _, addr := range cfg.Addrs {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var info NodeInfo
			err := d.Call(ctx, addr, AdminService+".Info", &struct{}{}, &info)
			cancel()
			if err != nil {
				errs = append(errs, err) // it names the address
				continue
			}
			if len(c.book) > 0 && info.Groups != c.groups {
				d.Close()
				return nil, fmt.Errorf("node %d at %s hosts %s and an earlier node %s: not one cluster", info.ID, addr, groupsWord(info.Groups), groupsWord(c.groups))
			}
			c.groups = info.Groups
			maps.Copy(learned, info.Peers)
			c.book[info.ID] = addr
			c.learn(info.Summary)
			if newest == nil || info.Summary.ConfigIndex > newest.ConfigIndex {
				newest = &info.Summary
			}
			if len(c.book) == 1 {
				// Faults an earlier REPL set are still in force: they are
				// the model's to begin with, so that heal undoes them.
				c.adoptFaults(info.Faults)
			}
		}
	}
	for _, addr := range cfg.Addrs {
		if !slices.Contains(slices.Collect(maps.Values(c.book)), addr) {
			c.spare = append(c.spare, addr)
		}
	}
	for id, addr := range learned {
		if _, ok := c.book[id]; !ok {
			c.book[id] = addr
		}
	}
	if len(c.book) == 0 {
		d.Close()
		return nil, fmt.Errorf("no node answered: %w", errors.Join(errs...))
	}
	if c.members == nil && c.groups <= 1 && newest != nil && len(newest.Config.Members()) > 0 {
		// No leader yet (nodes just started): the latest configuration
		// any of them holds is a better guess than the address books,
		// which keep the nodes a change removed. A leader corrects it.
		c.members = slices.Sorted(slices.Values(newest.Config.Members()))
	}
	if c.members == nil {
		c.members = slices.Sorted(maps.Keys(c.book))
	}
	c.client = c.NewClient()
	return c, nil
}

// NewClient returns another client of the cluster, with a fresh client id,
// whose operations go into the same history.
func (c *Cluster) NewClient() *kv.Client { return c.newClient(c) }

// newClient returns a client of the servers of servers (the cluster, or
// one of its groups), with a fresh client id and a number of its own.
func (c *Cluster) newClient(servers kv.Cluster) *kv.Client {
	c.mu.Lock()
	c.clients++
	num := c.clients
	c.mu.Unlock()
	return kv.NewClient(servers, kv.ClientConfig{ID: uint64(rand.Int63()) | 1, Num: num, Timeout: c.timeout,
		AttemptTimeout: 600 * time.Millisecond, History: c.history, Since: func() time.Duration { return time.Since(c.start) }})
}

// learn takes the membership from a summary, if it is a leader's.
func (c *Cluster) learn(sum core.Summary) {
	if sum.Role != core.Leader || c.groups > 1 {
		// Nodes of many groups: group 0's configuration is not the
		// cluster's nodes (GroupedCluster.syncServers learns them).
		return
	}
	members := sum.Config.Members() // the outgoing voters of a joint configuration too
	for id := range c.joining {
		if sum.Config.IsMember(id) {
			delete(c.joining, id)
		} else {
			members = append(members, id)
		}
	}
	c.members = slices.Sorted(slices.Values(members))
	if sum.Commit >= sum.ConfigIndex {
		for _, id := range c.members {
			c.was[id] = true
		}
	}
}

// IDs implements cluster.Cluster.
func (c *Cluster) IDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.members)
}

func (c *Cluster) addr(id int) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return "", cluster.ErrClusterDown
	}
	if !slices.Contains(c.members, id) {
		return "", cluster.NoSuchNode(id, c.members)
	}
	addr, ok := c.book[id]
	if !ok {
		return "", fmt.Errorf("%w: node %d has no known address", cluster.ErrNoSuchNode, id)
	}
	return addr, nil
}

// Endpoint implements kv.Cluster, for the client.
func (c *Cluster) Endpoint(id int) (kv.Endpoint, error) {
	addr, err := c.reachable(id)
	if err != nil {
		return nil, err
	}
	return &Endpoint{id: id, addr: addr, dialer: c.dialer}, nil
}

// admin calls a node's admin service.
func (c *Cluster) admin(ctx context.Context, id int, method string, args, reply any) error {
	addr, err := c.addr(id)
	if err != nil {
		return err
	}
	if err := c.dialer.Call(ctx, addr, AdminService+"."+method, args, reply); err != nil {
		return fmt.Errorf("node %d: %w", id, err)
	}
	return nil
}

// infos asks every member for its Info, in parallel; nil for those that
// did not answer in time.
func (c *Cluster) infos() map[int]*NodeInfo {
	out := map[int]*NodeInfo{}
	var mu sync.Mutex
	c.eachMember(infoTimeout, func(ctx context.Context, id int) {
		var info NodeInfo
		if c.admin(ctx, id, "Info", &struct{}{}, &info) == nil {
			mu.Lock()
			out[id] = &info
			mu.Unlock()
		}
	})
	return out
}

// eachMember runs ask for every member at once, each with timeout, and
// waits for them all. A process the launcher paused is not asked: it
// cannot answer, and waiting out its timeout would slow every command
// that looks at the cluster (a set looks for the leader that served it).
func (c *Cluster) eachMember(timeout time.Duration, ask func(ctx context.Context, id int)) {
	var wg sync.WaitGroup
	for _, id := range c.IDs() {
		if c.paused(id) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			ask(ctx, id)
		}()
	}
	wg.Wait()
}

// Status implements cluster.Cluster: a node that does not answer is
// shown as down.
func (c *Cluster) Status() []cluster.NodeStatus {
	infos := c.infos()
	c.mu.Lock()
	var best, newest *NodeInfo // the leader of the highest term; the latest configuration
	for _, info := range infos {
		if info.Summary.Role == core.Leader && (best == nil || info.Summary.Term > best.Summary.Term) {
			best = info
		}
		if newest == nil || info.Summary.ConfigIndex > newest.Summary.ConfigIndex {
			newest = info
		}
	}
	for _, info := range infos {
		for id, addr := range info.Peers {
			if _, ok := c.book[id]; !ok {
				c.book[id] = addr
			}
		}
	}
	if best != nil {
		c.learn(best.Summary)
	}
	// The configuration the member column shows: the leader's, or with no
	// leader (an election) the latest one a node that answered holds, as
	// the in-process clusters show.
	shown := best
	if shown == nil {
		shown = newest
	}
	ids := slices.Clone(c.members)
	c.mu.Unlock()
	var out []cluster.NodeStatus
	for _, id := range ids {
		info := infos[id]
		var sum core.Summary
		var applied uint64
		if info != nil {
			sum, applied = info.Summary, info.Applied
		}
		st := cluster.StatusOf(id, info != nil, !c.faults.IsDisconnected(id), sum, applied)
		switch {
		case c.procs != nil:
			st.Pid = c.procs.Pid(id)
			if st.Pid != 0 && c.procs.Paused(id) {
				st.Down = "paused"
			} else if st.Pid != 0 && info == nil {
				st.Down = "not answering"
			}
		case info == nil:
			st.Down = "not answering"
		}
		if shown != nil {
			c.mu.Lock()
			st.Member = cluster.Member(shown.Summary.Config, true, id, c.was[id])
			c.mu.Unlock()
		} else {
			st.Member = cluster.Member(core.Configuration{}, false, id, false)
		}
		out = append(out, st)
	}
	return out
}

// Pids returns the process id of each node the launcher runs.
func (c *Cluster) Pids() map[int]int {
	if c.procs == nil {
		return nil
	}
	out := map[int]int{}
	for _, id := range c.IDs() {
		out[id] = c.procs.Pid(id)
	}
	return out
}

// Logs implements cluster.Cluster.
func (c *Cluster) Logs(limit int) []cluster.NodeLog {
	var out []cluster.NodeLog
	for _, id := range c.IDs() {
		l := cluster.NodeLog{ID: id}
		if c.paused(id) {
			out = append(out, l)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
		if c.admin(ctx, id, "Log", &limit, &l) != nil {
			l = cluster.NodeLog{ID: id}
		}
		cancel()
		out = append(out, l)
	}
	return out
}

// Leader implements cluster.Cluster.
func (c *Cluster) Leader() (int, uint64) { return cluster.LeaderOf(c.Status()) }

// CheckUniqueLeader implements cluster.Cluster.
func (c *Cluster) CheckUniqueLeader(timeout time.Duration) (int, uint64, error) {
	return cluster.WaitUniqueLeader(c.callContext(), timeout, pollInterval, c.Status)
}

// Do implements cluster.Cluster.
func (c *Cluster) Do(op kv.Op, key, value string, node int) (kv.Result, error) {
	ctx := c.callContext()
	var res kv.Result
	var err error
	if node == core.None {
		res, err = c.client.Do(ctx, op, key, value)
	} else {
		res, err = c.client.On(ctx, node, op, key, value)
	}
	return res, cluster.Interrupted(ctx, op, err)
}

// ReadStale implements cluster.Cluster.
func (c *Cluster) ReadStale(key string, node int) (cluster.StaleRead, error) {
	ctx, cancel := context.WithTimeout(c.callContext(), infoTimeout)
	defer cancel()
	var r cluster.StaleRead
	err := c.admin(ctx, node, "ReadStale", &key, &r)
	return r, err
}

// History implements cluster.Cluster: this client's operations.
func (c *Cluster) History() []kv.Operation { return c.history.Operations() }

// CrashPeer implements cluster.Cluster: SIGKILL.
func (c *Cluster) CrashPeer(id int) error {
	if err := c.needProcs(id); err != nil {
		return err
	}
	if addr, err := c.addr(id); err == nil {
		defer c.dialer.Forget(addr)
	}
	return c.procs.Kill(id)
}

// RestartPeer implements cluster.Cluster: the process starts again on its
// data dir, and is given the network faults in force.
func (c *Cluster) RestartPeer(id int) error {
	if err := c.needProcs(id); err != nil {
		return err
	}
	if err := c.procs.Restart(id); err != nil {
		return err
	}
	return c.pushFaultsTo(id)
}

// Pause stops a node's process (SIGSTOP) without killing it.
func (c *Cluster) Pause(id int) error {
	if err := c.needProcs(id); err != nil {
		return err
	}
	return c.procs.Pause(id)
}

// Resume continues a paused node (SIGCONT), and gives it the network
// faults set while it was paused.
func (c *Cluster) Resume(id int) error {
	if err := c.needProcs(id); err != nil {
		return err
	}
	if err := c.procs.Resume(id); err != nil {
		return err
	}
	if err := c.pushFaultsTo(id); err != nil {
		return fmt.Errorf("node %d resumed, but it could not be told the network faults set while it was paused: %w", id, err)
	}
	return nil
}

func (c *Cluster) needProcs(id int) error {
	if _, err := c.addr(id); err != nil {
		return err
	}
	if c.procs == nil {
		return ErrNeedsLauncher
	}
	return nil
}

// The network faults: the model here is the truth, and every node is
// given all of it (its transport applies it to what it sends).

// DisconnectPeer implements cluster.Cluster.
func (c *Cluster) DisconnectPeer(id int) error {
	if _, err := c.addr(id); err != nil {
		return err
	}
	if err := c.faults.DisconnectChecked(id); err != nil {
		return err
	}
	return c.pushFaults()
}

// ReconnectPeer implements cluster.Cluster.
func (c *Cluster) ReconnectPeer(id int) error {
	if _, err := c.addr(id); err != nil {
		return err
	}
	if err := c.faults.ReconnectChecked(id); err != nil {
		return err
	}
	return c.pushFaults()
}

// Partition implements cluster.Cluster.
func (c *Cluster) Partition(groups ...[]int) error {
	if _, err := cluster.CheckPartition(groups, c.IDs()); err != nil {
		return err
	}
	c.faults.Partition(groups...)
	return c.pushFaults()
}

// Heal implements cluster.Cluster.
func (c *Cluster) Heal() {
	c.faults.Heal()
	c.pushFaults()
}

// CutLink implements cluster.Cluster.
func (c *Cluster) CutLink(from, to int) error {
	for _, id := range []int{from, to} {
		if _, err := c.addr(id); err != nil {
			return err
		}
	}
	if err := c.faults.CutChecked(from, to); err != nil {
		return err
	}
	return c.pushFaults()
}

// RestoreLink implements cluster.Cluster.
func (c *Cluster) RestoreLink(from, to int) error {
	if err := c.faults.UncutChecked(from, to); err != nil {
		return err
	}
	return c.pushFaults()
}

// CutLinks implements cluster.Cluster.
func (c *Cluster) CutLinks() [][2]int { return c.faults.CutLinks() }

// SetDropRate implements cluster.Cluster.
func (c *Cluster) SetDropRate(p float64) error {
	if err := c.faults.SetDropRate(p); err != nil {
		return err
	}
	return c.pushFaults()
}

// SetMaxDelay implements cluster.Cluster.
func (c *Cluster) SetMaxDelay(d time.Duration) error {
	if err := c.faults.SetMaxDelay(d); err != nil {
		return err
	}
	return c.pushFaults()
}

// NetworkSettings implements cluster.Cluster.
func (c *Cluster) NetworkSettings() (float64, time.Duration) { return c.faults.Settings() }

// adoptFaults makes f the fault model.
func (c *Cluster) adoptFaults(f Faults) {
	for _, id := range f.Disconnected {
		c.faults.Disconnect(id)
	}
	for _, l := range f.Cut {
		c.faults.Cut(l[0], l[1])
	}
	if len(f.Groups) > 0 {
		c.faults.Partition(f.Groups...)
	}
	c.faults.SetDropRate(f.DropRate)
	c.faults.SetMaxDelay(f.MaxDelay)
}

// faultState is the model, as a node is given it.
func (c *Cluster) faultState() Faults {
	drop, delay := c.faults.Settings()
	f := Faults{Cut: c.faults.CutLinks(), Groups: c.faults.Groups(), DropRate: drop, MaxDelay: delay}
	c.mu.Lock()
	ids := slices.Sorted(maps.Keys(c.book))
	c.mu.Unlock()
	for _, id := range ids {
		if c.faults.IsDisconnected(id) {
			f.Disconnected = append(f.Disconnected, id)
		}
	}
	return f
}

// pushFaults gives every member the fault model. A node that does not
// answer is told when it restarts; one that answers with an error makes
// the call fail.
func (c *Cluster) pushFaults() error {
	var errs []error
	for _, id := range c.IDs() {
		if c.paused(id) {
			continue // told when it resumes
		}
		if err := c.pushFaultsTo(id); err != nil && !c.down(id) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// down says whether node id's process is known not to run (crashed or
// paused, with a launcher).
func (c *Cluster) down(id int) bool {
	return c.procs != nil && (c.procs.Pid(id) == 0 || c.procs.Paused(id))
}

// reachable is node id's address for a client's request, or why the
// request cannot be answered there now: a process the launcher paused
// would make the client wait out an attempt's timeout before it moves on
// to the next server (the leader that replaced it, say).
func (c *Cluster) reachable(id int) (string, error) {
	if c.paused(id) {
		return "", fmt.Errorf("node %d's process is paused (\"resume %d\" continues it)", id, id)
	}
	return c.addr(id)
}

// paused says whether node id's process is stopped by the launcher
// (SIGSTOP): it cannot answer until it resumes.
func (c *Cluster) paused(id int) bool { return c.procs != nil && c.procs.Paused(id) }

func (c *Cluster) pushFaultsTo(id int) error {
	f := c.faultState()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.admin(ctx, id, "SetFaults", &f, &struct{}{})
}

// Snapshot implements cluster.Cluster.
func (c *Cluster) Snapshot(id int) (uint64, error) {
	ctx, cancel := context.WithTimeout(c.callContext(), adminTimeout)
	defer cancel()
	var index uint64
	addr, err := c.addr(id)
	if err != nil {
		return 0, err
	}
	// Not admin's error: the caller names the node, and so does the
	// node's own refusal ("node 2 has applied nothing since …").
	err = c.dialer.Call(ctx, addr, AdminService+".Snapshot", &struct{}{}, &index)
	return index, err
}

// Interrupt implements cluster.Cluster.
func (c *Cluster) Interrupt() { c.interrupts.Interrupt() }

func (c *Cluster) callContext() context.Context { return c.interrupts.Context() }

// Shutdown implements cluster.Cluster: the processes the launcher started
// stop; a cluster only connected to is left running.
func (c *Cluster) Shutdown() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	c.dialer.Close()
	if c.procs != nil {
		c.procs.Close()
	}
}

// Launched says whether the cluster's processes are this one's children.
func (c *Cluster) Launched() bool { return c.procs != nil }

const pollInterval = 20 * time.Millisecond

func (c *Cluster) poll(timeout time.Duration, cond func() (bool, error)) error {
	return cluster.Poll(c.callContext(), timeout, pollInterval, cond)
}

func timeUntilMs(t time.Time) int64 { return time.Until(t).Milliseconds() }
