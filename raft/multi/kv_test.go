package multi

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/lincheck"
	"raft-consensus/raft/node"
)

// The sharded KV on many groups: a key belongs to the group its FNV-1a
// hash picks, modulo the number of groups. Each group's replicas run the
// shipped kv.Host and kv.Store, so a client has exactly-once writes per
// group (its session in that group's store) and linearizable reads per
// key (ReadIndex in the key's group). Clients decide as kv.Client does,
// through one kv.ClientState per group. The simulation checks the whole
// history with porcupine, key by key.

// groupOf is the group holding key, among groups groups.
func groupOf(key string, groups int) GroupID { return GroupOfKey(key, groups) }

// groupNode is one replica as kv.Host sees its node.
type groupNode struct {
	h *Host
	g GroupID
}

func (n groupNode) Summary() core.Summary {
	sum, _, _ := n.h.Summary(n.g)
	return sum
}

type kvWorld struct {
	*simWorld
	stores  map[NodeID]map[GroupID]*kv.Host
	clients []*kvClient
	history []kv.Operation
	keys    int
	ops     int // per client
	healed  bool
}

type kvClient struct {
	w      *kvWorld
	id     uint64
	states map[GroupID]*kv.ClientState
	op     *kv.Command
	group  GroupID
	call   uint64 // tick of the call
	token  uint64 // the attempt in progress; stale answers and timeouts carry another
	target NodeID
	tries  int
	done   int
}

const (
	attemptTicks = 60  // an attempt's timeout: three election timeouts
	opTicks      = 300 // during the faults, an operation gives up after this
	tickTime     = 10 * time.Millisecond
)

var errAttemptTimeout = errors.New("no answer within the attempt timeout")

func newKVWorld(t testing.TB, p simParams, clients, keys, ops int) *kvWorld {
	kw := &kvWorld{keys: keys, ops: ops, stores: map[NodeID]map[GroupID]*kv.Host{}}
	p.apply = kw.apply
	p.started = kw.started
	p.created = kw.created
	kw.simWorld = newSimWorld(t, p)
	for i := range clients {
		c := &kvClient{w: kw, id: uint64(i + 1), states: map[GroupID]*kv.ClientState{}}
		kw.clients = append(kw.clients, c)
		kw.after(uint64(kw.rng.Intn(10)), c.next)
	}
	return kw
}

// started gives a (re)started host fresh state machines: they replay the
// log as it commits again.
func (kw *kvWorld) started(n NodeID, h *Host) {
	kw.stores[n] = map[GroupID]*kv.Host{}
	for _, g := range h.Groups() {
		kw.stores[n][g] = kv.NewHost(groupNode{h, g}, kv.NewStore(), kv.HostConfig{
			OnViolation: func(v core.InvariantViolation) { kw.failf("node %d group %v: %v", n, g, v) }})
	}
}

// created gives a replica that a membership change added a fresh store:
// it replays the log as the leader sends it.
func (kw *kvWorld) created(n NodeID, g GroupID, h *Host) {
	kw.stores[n][g] = kv.NewHost(groupNode{h, g}, kv.NewStore(), kv.HostConfig{
		OnViolation: func(v core.InvariantViolation) { kw.failf("node %d group %v: %v", n, g, v) }})
}

func (kw *kvWorld) apply(n NodeID, g GroupID, batch []node.CommitEntry) {
	if st := kw.stores[n][g]; st != nil {
		if job := st.Apply(batch); job != nil {
			kw.failf("a snapshot job, with no threshold set")
		}
	}
}

func (c *kvClient) next() {
	w := c.w
	if c.done >= w.ops {
		return
	}
	key := fmt.Sprintf("k%d", w.rng.Intn(w.keys))
	g := groupOf(key, w.p.groups)
	st := c.states[g]
	if st == nil {
		s := kv.NewClientState(c.id)
		st = &s
		c.states[g] = st
	}
	var cmd kv.Command
	switch r := w.rng.Intn(10); {
	case r < 5:
		cmd = st.Command(kv.OpSet, key, fmt.Sprintf("c%d-%d", c.id, c.done))
	case r < 8:
		cmd = st.Command(kv.OpGet, key, "")
	default:
		cmd = st.Command(kv.OpDelete, key, "")
	}
	c.op, c.group, c.call, c.tries = &cmd, g, w.tick, 0
	c.send()
}

func (c *kvClient) members() []int {
	ids := make([]int, len(c.w.members[c.group]))
	for i, n := range c.w.members[c.group] {
		ids[i] = int(n)
	}
	return ids
}

// send makes one attempt at the member the client state picks, as
// kv.Server serves it: a read through ReadIndex, a write through the log.
func (c *kvClient) send() {
	w := c.w
	c.token++
	token := c.token
	w.after(attemptTicks, func() {
		if c.token == token && c.op != nil {
			c.failed(errAttemptTimeout)
		}
	})
	c.target = NodeID(c.states[c.group].Target(c.members()))
	h := w.hosts[c.target]
	if h == nil {
		return // down: the attempt times out
	}
	st := w.stores[c.target][c.group]
	cmd := *c.op
	answer := func(res any, err error) {
		w.after(1, func() { c.answered(token, res, err) })
	}
	if st == nil {
		// The replica is gone (a membership change removed it): the
		// host answers as it does for a group it does not host.
		answer(nil, fmt.Errorf("%w: %v", ErrUnknownGroup, c.group))
		return
	}
	if cmd.Op == kv.OpGet {
		r := kv.NewRead(cmd.Key, answer)
		h.ReadIndex(c.group, func(index uint64, err error) { st.ReadIndexed(r, index, err) })
		return
	}
	wr := kv.NewWrite(kv.EncodeCommand(cmd), answer)
	st.Proposed(wr, h.Propose(c.group, wr.Command()))
}

func (c *kvClient) answered(token uint64, res any, err error) {
	w := c.w
	if c.token != token || c.op == nil {
		return // a stale answer
	}
	if err != nil {
		c.failed(err)
		return
	}
	r, _ := res.(kv.Result)
	c.states[c.group].Succeeded(int(c.target))
	w.history = append(w.history, kv.Operation{ClientID: c.id, Input: *c.op, Call: time.Duration(c.call) * tickTime,
		Return: time.Duration(w.tick) * tickTime, Output: r})
	c.finish(true)
}

func (c *kvClient) finish(done bool) {
	w := c.w
	c.op = nil
	c.token++
	if done {
		c.done++
	}
	w.after(uint64(w.rng.Intn(8)), c.next)
}

func (c *kvClient) failed(err error) {
	w := c.w
	c.token++
	if !w.healed && w.tick-c.call >= opTicks {
		// The client gives up, as kv.Client does: a write's outcome is unknown.
		w.history = append(w.history, kv.Operation{ClientID: c.id, Input: *c.op, Call: time.Duration(c.call) * tickTime, Unknown: true})
		c.finish(false)
		return
	}
	pause := uint64(1)
	if c.states[c.group].Failed(int(c.target), err, c.members(), c.tries) == kv.PauseThenRetry {
		pause = 5
	}
	c.tries++
	token := c.token
	w.after(pause, func() {
		if c.token == token && c.op != nil {
			c.send()
		}
	})
}

// runKV is one seed of the sharded KV: faults and load, healing, every
// client finishing its operations, then porcupine key by key.
func (kw *kvWorld) runKV() error {
	for range 600 {
		if kw.rng.Intn(40) == 0 {
			kw.fault()
		}
		if kw.p.membership && kw.rng.Intn(50) == 0 {
			kw.changeMembers()
		}
		kw.step()
	}
	kw.healAll()
	kw.healed = true
	for i := 0; ; i++ {
		busy := false
		for _, c := range kw.clients {
			busy = busy || c.op != nil || c.done < kw.ops
		}
		if !busy {
			break
		}
		if i > 5000 {
			return fmt.Errorf("seed %d: clients still busy 5000 ticks after healing (liveness)", kw.p.seed)
		}
		kw.step()
	}
	if kw.err != nil {
		return kw.err
	}
	if r := lincheck.CheckLinearizable(kw.history, 30*time.Second); !r.Linearizable() {
		return fmt.Errorf("seed %d: %d operations over %d groups: not linearizable (%v)", kw.p.seed, len(kw.history), kw.p.groups, r.Result)
	}
	return nil
}

func TestShardedKVIsLinearizable(t *testing.T) {
	const seeds = 100
	changes := 0
	defer func() { t.Logf("%d seeds, %d membership changes taken by a leader", seeds, changes) }()
	for seed := int64(1); seed <= seeds; seed++ {
		// Five-host seeds change groups' members under the load too.
		kw := newKVWorld(t, simParams{seed: seed, nodes: 3 + 2*int(seed%2), groups: 8, disk: seed%4 >= 2, membership: seed%2 == 1}, 4, 12, 40)
		if err := kw.runKV(); err != nil {
			t.Fatal(err)
		}
		changes += kw.changes
		writes := 0
		for _, op := range kw.history {
			if op.Input.Op != kv.OpGet {
				writes++
			}
		}
		if seed == 1 {
			used := map[GroupID]bool{}
			for _, op := range kw.history {
				used[groupOf(op.Input.Key, kw.p.groups)] = true
			}
			t.Logf("seed 1: %d operations (%d writes) over %d of %d groups", len(kw.history), writes, len(used), kw.p.groups)
		}
	}
}

// TestShardedKVCatchesStaleReads: a host that answers reads without
// confirming leadership serves stale values, and porcupine says so.
func TestShardedKVCatchesStaleReads(t *testing.T) {
	for seed := int64(1); seed <= 30; seed++ {
		kw := newKVWorld(t, simParams{seed: seed, nodes: 3 + 2*int(seed%2), groups: 8, broken: brokenRules{readAtOnce: true}}, 4, 12, 40)
		if err := kw.runKV(); err != nil {
			t.Logf("seed %d caught it: %v", seed, err)
			return
		}
	}
	t.Fatal("30 seeds ran reads without ReadIndex and none failed")
}
