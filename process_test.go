package main

// Fault tests across real processes: the launcher starts node processes
// (this test binary, re-executed as "node"), clients write and read over
// the network while the nodes are killed with SIGKILL, stopped with
// SIGSTOP past the election timeout, and partitioned inside their
// transports; the history must be linearizable (porcupine) and every
// acknowledged write must be there afterwards.

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/kv"
	"raft-consensus/raft/lincheck"
	"raft-consensus/raft/remote"
)

// nodeEnv makes this test binary run as a node: the launcher starts it
// with "node …".
const nodeEnv = "RAFT_CONSENSUS_TEST_NODE"

func TestMain(m *testing.M) {
	if os.Getenv(nodeEnv) == "1" && len(os.Args) > 1 && os.Args[1] == "node" {
		os.Exit(runNode(os.Args[2:], os.Stderr))
	}
	os.Exit(m.Run())
}

// launched is a cluster of node processes, with its launcher.
type launched struct {
	*remote.Cluster
	launcher *remote.Launcher
	dir      string
}

func launch(t *testing.T, n int) *launched {
	t.Helper()
	dir := t.TempDir()
	l, err := remote.Launch(remote.LauncherConfig{Dir: dir, Nodes: n, Cluster: "test", Binary: os.Args[0],
		Env: []string{nodeEnv + "=1"}, StartTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := remote.Connect(remote.ClusterConfig{Addrs: l.Addrs(), Cluster: "test", Processes: l, Timeout: 5 * time.Second})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	return &launched{Cluster: c, launcher: l, dir: dir}
}

// waitLeader waits for one leader, failing the test if none comes.
func (c *launched) waitLeader(t *testing.T) int {
	t.Helper()
	leader, _, err := c.CheckUniqueLeader(20 * time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, c.logs())
	}
	return leader
}

// logs is the tail of every node's log, for a failure's message.
func (c *launched) logs() string {
	out := ""
	for _, id := range c.IDs() {
		b, _ := os.ReadFile(fmt.Sprintf("%s/node-%d.log", c.dir, id))
		lines := b
		if len(lines) > 2000 {
			lines = lines[len(lines)-2000:]
		}
		out += fmt.Sprintf("--- node %d:\n%s\n", id, lines)
	}
	return out
}

// workload runs clients until stop is closed: each writes keys of its own
// (acked records the writes acknowledged) and reads and overwrites a few
// shared keys (for the linearizability check).
type workload struct {
	mu    sync.Mutex
	acked map[string]string
	done  int
	wg    sync.WaitGroup
	stop  chan struct{}
	once  sync.Once
}

// clusterUnderTest is what the workload needs of a cluster.
type clusterUnderTest interface {
	newClient() workloadClient
	logs() string
}

// workloadClient is one client of the workload: a kv.Client, or for
// nodes of many groups a remote.ShardClient.
type workloadClient interface {
	Set(ctx context.Context, key, value string) error
	Get(ctx context.Context, key string) (string, bool, error)
}

func (c *launched) newClient() workloadClient { return c.NewClient() }

func startWorkload(c clusterUnderTest, clients int) *workload {
	w := &workload{acked: map[string]string{}, stop: make(chan struct{})}
	for n := range clients {
		client := c.newClient()
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			r := rand.New(rand.NewSource(int64(n)))
			for i := 0; ; i++ {
				select {
				case <-w.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				var err error
				switch op := r.Intn(4); op {
				case 0:
					key, value := fmt.Sprintf("own-%d-%d", n, i), fmt.Sprintf("v%d", i)
					if err = client.Set(ctx, key, value); err == nil {
						w.mu.Lock()
						w.acked[key] = value
						w.mu.Unlock()
					}
				case 1:
					_, _, err = client.Get(ctx, fmt.Sprintf("shared-%d", r.Intn(3)))
				default:
					err = client.Set(ctx, fmt.Sprintf("shared-%d", r.Intn(3)), fmt.Sprintf("c%d-%d", n, i))
				}
				cancel()
				if err == nil {
					w.mu.Lock()
					w.done++
					w.mu.Unlock()
				}
			}
		}()
	}
	return w
}

// finish stops the clients and waits for them (once; again is a no-op).
func (w *workload) finish() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// completed is the number of operations answered so far.
func (w *workload) completed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done
}

// waitProgress waits until n more operations have been answered.
func (w *workload) waitProgress(t *testing.T, c clusterUnderTest, n int, what string) {
	t.Helper()
	start := w.completed()
	deadline := time.Now().Add(30 * time.Second)
	for w.completed() < start+n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d operations in 30 s, want %d\n%s", what, w.completed()-start, n, c.logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkAcked reads every acknowledged write back through the leader.
func checkAcked(t *testing.T, c clusterUnderTest, w *workload) {
	t.Helper()
	client := c.newClient()
	w.mu.Lock()
	acked := make(map[string]string, len(w.acked))
	for k, v := range w.acked {
		acked[k] = v
	}
	w.mu.Unlock()
	for key, want := range acked {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, found, err := client.Get(ctx, key)
		cancel()
		if err != nil || !found || got != want {
			t.Fatalf("acknowledged write %s=%s: read %q, found %v, error %v", key, want, got, found, err)
		}
	}
	t.Logf("all %d acknowledged writes of own keys are there", len(acked))
}

func checkHistory(t *testing.T, history []kv.Operation) {
	t.Helper()
	var shared []kv.Operation
	for _, op := range history {
		if len(op.Input.Key) > 6 && op.Input.Key[:6] == "shared" {
			shared = append(shared, op)
		}
	}
	res := lincheck.CheckLinearizable(shared, time.Minute)
	if !res.Linearizable() {
		t.Fatalf("the history of %d operations on shared keys is not linearizable: %v", res.Ops, res.Result)
	}
	t.Logf("%d operations on shared keys: linearizable", len(shared))
}

// TestProcessesUnderFaults: a 3-process cluster under load while the
// leader is killed, every node is killed at once, the leader is stopped
// past the election timeout, and the leader is partitioned into a
// minority; each fault is followed by progress.
func TestProcessesUnderFaults(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	c, w := launchUnderLoad(t)
	defer c.Shutdown()
	defer w.finish()
	w.waitProgress(t, c, 50, "before the faults")

	leader := c.waitLeader(t)
	must(t, c.CrashPeer(leader))
	w.waitProgress(t, c, 20, fmt.Sprintf("after SIGKILL of the leader %d", leader))
	must(t, c.RestartPeer(leader))

	for _, id := range c.IDs() {
		must(t, c.CrashPeer(id))
	}
	for _, id := range c.IDs() {
		must(t, c.RestartPeer(id))
	}
	w.waitProgress(t, c, 20, "after SIGKILL of every node")

	leader = c.waitLeader(t)
	must(t, c.Pause(leader))
	w.waitProgress(t, c, 20, fmt.Sprintf("with the leader %d stopped (SIGSTOP)", leader))
	if next := c.waitLeader(t); next == leader {
		t.Fatalf("node %d, stopped, still leads", leader)
	}
	withoutWaitingForPaused(t, "Status, Leader and a read at the paused node", func() {
		c.Status()
		c.Leader()
		if _, err := c.Do(kv.OpGet, "k", "", leader); err == nil || !strings.Contains(err.Error(), "paused") {
			t.Errorf("a read at the paused node %d: %v, want an error that says it is paused", leader, err)
		}
	})
	must(t, c.Resume(leader))

	leader = c.waitLeader(t)
	others := slices.DeleteFunc(c.IDs(), func(id int) bool { return id == leader })
	must(t, c.Partition([]int{leader}, others))
	w.waitProgress(t, c, 20, fmt.Sprintf("with the leader %d partitioned away", leader))
	c.Heal()
	w.waitProgress(t, c, 20, "after the heal")
	w.finish()

	c.waitLeader(t)
	checkAcked(t, c, w)
	checkHistory(t, c.History())
}

// TestKillEveryNodeRounds: 20 rounds of SIGKILL of every node mid-load,
// with the nodes' durable storage: nothing acknowledged is lost.
func TestKillEveryNodeRounds(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	c, w := launchUnderLoad(t)
	defer c.Shutdown()
	defer w.finish()
	const rounds = 20
	for round := range rounds {
		w.waitProgress(t, c, 10, fmt.Sprintf("round %d", round))
		for _, id := range c.IDs() {
			must(t, c.CrashPeer(id))
		}
		for _, id := range c.IDs() {
			if err := c.RestartPeer(id); err != nil {
				t.Fatalf("round %d: %v\n%s", round, err, c.logs())
			}
		}
	}
	w.waitProgress(t, c, 10, "after the last round")
	w.finish()
	c.waitLeader(t)
	checkAcked(t, c, w)
	checkHistory(t, c.History())
}

// launchUnderLoad launches 3 node processes and starts 4 clients on them
// once a leader is elected.
func launchUnderLoad(t *testing.T) (*launched, *workload) {
	t.Helper()
	c := launch(t, 3)
	c.waitLeader(t)
	return c, startWorkload(c, 4)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestClusterUpREPL: "cluster up" starts node processes and runs the REPL
// over them: a write and a read, SIGKILL and restart, SIGSTOP and SIGCONT,
// the pid column; shutdown stops every process and says that the next
// cluster is an in-process one.
func TestClusterUpREPL(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	t.Setenv(nodeEnv, "1") // the launcher runs this binary as "node"
	dir := t.TempDir()
	script := "set x 5\nget x\ncrash 0\nstatus\nrestart 0\npause 1\nstatus\nlog\nresume 1\nget x\nchange +3 +4 -0 -1\nget x\nshutdown\ncreate 1\nstatus\n"
	var out, errOut strings.Builder
	code := runClusterCmd([]string{"up", "-n", "3", "-dir", dir}, strings.NewReader(script), &out, &errOut)
	if code != 0 {
		t.Fatalf("status %d\n%s\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"started 3 node processes", "ok: x = 5", "node 0 crashed", "PID", "paused", "node 1 resumed", "x = 5",
		"members changed through a joint configuration (C_old,new, then C_new): added 3 4 (voters, after catching up as learners), removed 0 1",
		"cluster shut down: its node processes stopped", `"create <nodes>" now makes a cluster inside it (in-process)`,
		"cluster of 1 node created", `node 1 paused ("resume 1" continues it, and shows its log)`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, out.String())
		}
	}
	// With the leader just crashed, no node leads: the member column
	// shows the latest configuration a node holds, not "unknown".
	if strings.Contains(out.String(), " unknown ") {
		t.Errorf("a member shown as unknown while nodes answer:\n%s", out.String())
	}
	// Again on the same dir: the nodes the change removed are neither
	// started nor named (the address books still hold them).
	out.Reset()
	if code := runClusterCmd([]string{"up", "-n", "3", "-dir", dir}, strings.NewReader("status\n"), &out, &errOut); code != 0 {
		t.Fatalf("again on the dir: status %d\n%s\n%s", code, out.String(), errOut.String())
	}
	if want := "started 3 node processes (nodes 2–4) in " + dir + ", the cluster the dir held"; !strings.Contains(out.String(), want) {
		t.Errorf("again on the dir, the output lacks %q:\n%s", want, out.String())
	}
	// Every process stopped: the launcher's lock is free.
	l, err := remote.Launch(remote.LauncherConfig{Dir: dir, Cluster: defaultClusterID, Binary: os.Args[0], Env: []string{nodeEnv + "=1"}})
	if err != nil {
		t.Fatalf("a second launcher after the first left: %v", err)
	}
	defer l.Close()
	if l2, err := remote.Launch(remote.LauncherConfig{Dir: dir, Cluster: defaultClusterID, Binary: os.Args[0]}); err == nil {
		l2.Close()
		t.Fatal("two launchers ran on one dir")
	} else if !strings.Contains(err.Error(), "another launcher") {
		t.Fatalf("a second launcher: %v", err)
	}
}

// TestNodeStopsCleanlyOnSIGTERM: a node stopped with SIGTERM says so and
// exits; started again on its data dir, it has what it acknowledged.
func TestNodeStopsCleanlyOnSIGTERM(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	c := launch(t, 1)
	defer c.Shutdown()
	c.waitLeader(t)
	client := c.NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, client.Set(ctx, "x", "kept"))
	must(t, c.launcher.Stop(0))
	log, err := os.ReadFile(c.dir + "/node-0.log")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "terminated: stopping") || !strings.Contains(string(log), " stopped\n") {
		t.Fatalf("the node's log does not show a clean stop:\n%s", log)
	}
	must(t, c.RestartPeer(0))
	c.waitLeader(t)
	if v, found, err := client.Get(ctx, "x"); err != nil || !found || v != "kept" {
		t.Fatalf("after the restart x = %q, %v, %v", v, found, err)
	}
}

// withoutWaitingForPaused checks that look does not wait for a paused
// process, which cannot answer: a look at a node that does not answer
// waits half a second for it (two for a node of many groups), and the
// REPL looks after every set and get to name the leader that served it.
func withoutWaitingForPaused(t *testing.T, what string, look func()) {
	t.Helper()
	const wait = 500 * time.Millisecond // remote's infoTimeout
	start := time.Now()
	look()
	if took := time.Since(start); took >= wait {
		t.Errorf("%s took %v with a node paused: it waited for the paused node", what, took)
	}
}
