package multi

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"raft-consensus/raft/core"
	"raft-consensus/raft/node"
	"raft-consensus/raft/sim/simdisk"
	"raft-consensus/raft/storage"
)

// The deterministic simulation of many groups on a few hosts: seeded
// network (drops, delays of whole ticks, partitions) and crashes of whole
// hosts (their MemoryStorages survive, as disks would), proposals to every
// group, then everything heals. It checks every group's safety all along
// (one leader per term, one command per index everywhere), and at the end
// liveness: every replica has applied everything, most groups are quiet,
// and, with the node leading most groups dead for good, every group elects
// a leader among the living and commits again.

type simParams struct {
	seed   int64
	nodes  int
	groups int
	broken brokenRules
	// apply, if set, also gets every replica's committed entries; started,
	// every host (re)started, its groups created.
	apply   func(NodeID, GroupID, []node.CommitEntry)
	started func(NodeID, *Host)
	// disk puts every host's groups in one storage.SharedLog on a
	// simulated disk: a crash loses what was not synced (and may tear the
	// write in flight), and a fault crashes a host inside its next Sync.
	disk bool
}

type simWorld struct {
	t        testing.TB
	p        simParams
	rng      *rand.Rand
	tick     uint64
	hosts    map[NodeID]*Host // nil: down
	storages map[NodeID]map[GroupID]*storage.MemoryStorage
	members  map[GroupID][]NodeID
	side     map[NodeID]int // partition side; all 0: none
	drop     float64
	inflight []flight
	// applied[node][group] is what the replica applied since it started.
	applied map[NodeID]map[GroupID][]string
	// chosen[group][index] is the first command applied anywhere at index.
	chosen  map[GroupID]map[uint64]string
	leaders map[GroupID]map[uint64]NodeID
	acked   map[GroupID][]string // commands applied at the leader that proposed them
	pending map[string]NodeID    // proposed command → proposing node
	next    int
	err     error
	msgs    uint64
	timers  []timer
	disks   map[NodeID]*simdisk.Disk
	logs    map[NodeID]*storage.SharedLog
	syncs   uint64 // of the logs, before their hosts crashed
}

type timer struct {
	at uint64
	fn func()
}

// after runs fn d ticks from now, at the start of that tick.
func (w *simWorld) after(d uint64, fn func()) { w.timers = append(w.timers, timer{w.tick + d, fn}) }

func (w *simWorld) runTimers() {
	for {
		i := slices.IndexFunc(w.timers, func(t timer) bool { return t.at <= w.tick })
		if i < 0 {
			return
		}
		fn := w.timers[i].fn
		w.timers = slices.Delete(w.timers, i, i+1)
		fn()
	}
}

type flight struct {
	at uint64
	b  *Batch
}

func simCoreConfig() core.CoreConfig {
	return core.CoreConfig{ElectionTicksMin: 10, ElectionTicksMax: 20, HeartbeatTicks: 2, PreVote: true, CheckQuorum: true,
		MaxInflight: 4, MaxEntriesPerAppend: 16, MaxBytesPerAppend: 1 << 20, SnapshotChunkBytes: 1 << 16}
}

func newSimWorld(t testing.TB, p simParams) *simWorld {
	w := &simWorld{t: t, p: p, rng: rand.New(rand.NewSource(p.seed)), hosts: map[NodeID]*Host{},
		storages: map[NodeID]map[GroupID]*storage.MemoryStorage{}, members: map[GroupID][]NodeID{}, side: map[NodeID]int{},
		applied: map[NodeID]map[GroupID][]string{}, chosen: map[GroupID]map[uint64]string{},
		leaders: map[GroupID]map[uint64]NodeID{}, acked: map[GroupID][]string{}, pending: map[string]NodeID{},
		disks: map[NodeID]*simdisk.Disk{}, logs: map[NodeID]*storage.SharedLog{}}
	for g := range GroupID(p.groups) {
		perm := w.rng.Perm(p.nodes)[:3]
		slices.Sort(perm)
		for _, n := range perm {
			w.members[g] = append(w.members[g], NodeID(n))
		}
		w.chosen[g] = map[uint64]string{}
		w.leaders[g] = map[uint64]NodeID{}
	}
	for n := range NodeID(p.nodes) {
		w.storages[n] = map[GroupID]*storage.MemoryStorage{}
		w.start(n)
	}
	return w
}

func (w *simWorld) failf(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf("seed %d at tick %d: %s", w.p.seed, w.tick, fmt.Sprintf(format, args...))
	}
}

// start starts host n on its storages, with every group it is a member of.
func (w *simWorld) start(n NodeID) {
	cc := simCoreConfig()
	cc.Seed = w.p.seed*31 + int64(n) + int64(w.tick)*7
	cc.OnViolation = func(v core.InvariantViolation) { w.failf("node %d: %v", n, v) }
	w.applied[n] = map[GroupID][]string{}
	var sync func() error
	groupStorage := func(g GroupID) storage.Storage {
		if w.storages[n][g] == nil {
			w.storages[n][g] = storage.NewMemoryStorage()
		}
		return w.storages[n][g]
	}
	if w.p.disk {
		d := w.disks[n]
		if d == nil {
			d = simdisk.New(rand.New(rand.NewSource(w.p.seed*97 + int64(n))))
			w.disks[n] = d
		}
		d.Recover()
		l, err := storage.OpenSharedLog(d, "/wal", storage.SharedOptions{SegmentBytes: 2 << 10, MaxSegments: 3})
		if err != nil {
			w.failf("node %d: the shared log does not open after a crash: %v", n, err)
			return
		}
		w.logs[n] = l
		sync = l.Sync
		groupStorage = func(g GroupID) storage.Storage { return l.Group(uint64(g)) }
	}
	h := NewHost(Config{ID: n, Core: cc, broken: w.p.broken, Sync: sync,
		Storage: groupStorage,
		Apply:   func(g GroupID, batch []node.CommitEntry) { w.apply(n, g, batch) },
		Events:  func(e Event) { w.event(e) },
	})
	w.hosts[n] = h
	for g := range GroupID(w.p.groups) {
		if slices.Contains(w.members[g], n) {
			if err := h.CreateGroup(g, w.members[g]); err != nil {
				w.failf("node %d: %v", n, err)
			}
		}
	}
	if w.p.started != nil {
		w.p.started(n, h)
	}
}

func (w *simWorld) apply(n NodeID, g GroupID, batch []node.CommitEntry) {
	for _, e := range batch {
		if e.Snapshot != nil {
			e.Snapshot.Data.Close()
			w.failf("node %d group %v: a snapshot, which the simulation never takes", n, g)
			continue
		}
		cmd := fmt.Sprintf("%d/%d:%s", e.Term, e.Type, e.Command)
		if prev, ok := w.chosen[g][e.Index]; ok && prev != cmd {
			w.failf("group %v index %d: node %d applied %q, another node %q (state machine safety)", g, e.Index, n, cmd, prev)
		}
		w.chosen[g][e.Index] = cmd
		if got := uint64(len(w.applied[n][g])) + 1; got != e.Index {
			w.failf("group %v: node %d applied index %d after %d entries", g, n, e.Index, got-1)
		}
		w.applied[n][g] = append(w.applied[n][g], cmd)
		if e.Type == core.EntryNormal && w.pending[string(e.Command)] == n {
			delete(w.pending, string(e.Command))
			w.acked[g] = append(w.acked[g], string(e.Command))
		}
	}
	if w.p.apply != nil {
		w.p.apply(n, g, batch)
	}
}

func (w *simWorld) event(e Event) {
	if e.Kind == EventLeader && e.Leader == e.Node {
		if prev, ok := w.leaders[e.Group][e.Term]; ok && prev != e.Node {
			w.failf("group %v term %d: leaders %d and %d (election safety)", e.Group, e.Term, prev, e.Node)
		}
		w.leaders[e.Group][e.Term] = e.Node
	}
}

func (w *simWorld) crash(n NodeID) {
	if h := w.hosts[n]; h != nil {
		for _, g := range h.Groups() {
			h.DestroyGroup(g) // the process dies: volatile state goes, storage stays
		}
		// Nothing more of it is sent or synced: the process is gone.
		w.hosts[n] = nil
	}
	if d := w.disks[n]; d != nil {
		if l := w.logs[n]; l != nil {
			w.syncs += l.Stats().Syncs
		}
		d.Crash() // what was not synced may be lost, the write in flight torn
		w.logs[n] = nil
	}
}

func (w *simWorld) linked(a, b NodeID) bool { return w.side[a] == w.side[b] }

// step runs one tick: every host ticks, steps what arrives now and sends.
func (w *simWorld) step() {
	w.tick++
	w.runTimers()
	var arriving []*Batch
	keep := w.inflight[:0]
	for _, f := range w.inflight {
		if f.at <= w.tick {
			arriving = append(arriving, f.b)
		} else {
			keep = append(keep, f)
		}
	}
	w.inflight = keep
	for _, b := range arriving {
		if h := w.hosts[b.To]; h != nil && w.linked(b.From, b.To) {
			h.Step(b)
		}
	}
	for n := range NodeID(w.p.nodes) {
		h := w.hosts[n]
		if h == nil {
			continue
		}
		h.Tick()
		out := h.Flush()
		if h.Failed() != nil {
			w.crash(n) // its disk crashed inside the Sync: so did the host
			continue
		}
		for _, b := range out {
			w.msgs++
			if w.rng.Float64() < w.drop {
				continue
			}
			w.inflight = append(w.inflight, flight{at: w.tick + 1 + uint64(w.rng.Intn(3)), b: b})
		}
	}
}

// leader is group g's up leader with the highest term, or -1.
func (w *simWorld) leader(g GroupID) NodeID {
	best, term := NodeID(-1), uint64(0)
	for _, n := range w.members[g] {
		if h := w.hosts[n]; h != nil {
			if sum, _, err := h.Summary(g); err == nil && sum.Role == core.Leader && sum.Term >= term {
				best, term = n, sum.Term
			}
		}
	}
	return best
}

func (w *simWorld) propose() {
	g := GroupID(w.rng.Intn(w.p.groups))
	l := w.leader(g)
	if l < 0 {
		return
	}
	cmd := fmt.Sprintf("c%d", w.next)
	w.next++
	if res := w.hosts[l].Propose(g, []byte(cmd)); res.Err == nil {
		w.pending[cmd] = l
	}
}

func (w *simWorld) fault() {
	if w.p.disk && w.rng.Intn(4) == 0 {
		// The next few disk operations of a host include a crash: its
		// Sync fails half-done, the host with it.
		if d := w.disks[NodeID(w.rng.Intn(w.p.nodes))]; d != nil && !d.Crashed() {
			d.CrashAfter(1 + w.rng.Intn(12)) // a rotation's deletions are its 7th operation or later
		}
		return
	}
	switch w.rng.Intn(5) {
	case 0:
		n := NodeID(w.rng.Intn(w.p.nodes))
		if w.hosts[n] != nil {
			w.crash(n)
		} else {
			w.start(n)
		}
	case 1:
		for n := range NodeID(w.p.nodes) {
			w.side[n] = w.rng.Intn(2)
		}
	case 2:
		clear(w.side)
	case 3:
		w.drop = w.rng.Float64() * 0.3
	case 4:
		w.drop = 0
	}
}

func (w *simWorld) healAll() {
	clear(w.side)
	w.drop = 0
	for _, d := range w.disks {
		d.Disarm()
	}
	for n := range NodeID(w.p.nodes) {
		if w.hosts[n] == nil {
			w.start(n)
		}
	}
}

// run is one seed: faults and load, healing, then the checks.
func (w *simWorld) run() error {
	for range 600 {
		if w.rng.Intn(3) == 0 {
			w.propose()
		}
		if w.rng.Intn(40) == 0 {
			w.fault()
		}
		w.step()
	}
	w.healAll()
	for range 200 {
		if w.rng.Intn(4) == 0 {
			w.propose()
		}
		w.step()
	}
	for range 300 { // quiet: no proposals
		w.step()
	}
	if w.err != nil {
		return w.err
	}
	// Every replica holds and applied everything its group committed.
	for g := range GroupID(w.p.groups) {
		l := w.leader(g)
		if l < 0 {
			return fmt.Errorf("seed %d: group %v has no leader after healing (liveness)", w.p.seed, g)
		}
		want := len(w.chosen[g])
		for _, n := range w.members[g] {
			if got := len(w.applied[n][g]); got != want {
				return fmt.Errorf("seed %d: group %v: node %d applied %d of %d entries after healing and quiet (leader %d)", w.p.seed, g, n, got, want, l)
			}
		}
	}
	quiet := 0
	for g := range GroupID(w.p.groups) {
		all := true
		for _, n := range w.members[g] {
			if _, q, _ := w.hosts[n].Summary(g); !q {
				all = false
			}
		}
		if all {
			quiet++
		}
	}
	if quiet*10 < w.p.groups*9 {
		return fmt.Errorf("seed %d: only %d of %d groups quiet on every member after 300 idle ticks", w.p.seed, quiet, w.p.groups)
	}
	// The node leading the most groups dies for good: every group elects
	// a leader among the living and commits again.
	led := map[NodeID]int{}
	for g := range GroupID(w.p.groups) {
		led[w.leader(g)]++
	}
	victim := NodeID(0)
	for n, k := range led {
		if k > led[victim] || k == led[victim] && n < victim {
			victim = n
		}
	}
	w.crash(victim)
	for range 200 {
		w.step()
	}
	for g := range GroupID(w.p.groups) {
		l := w.leader(g)
		if l < 0 {
			return fmt.Errorf("seed %d: group %v has no leader %d ticks after node %d (its leader) died (liveness of quiet groups)", w.p.seed, g, 200, victim)
		}
		cmd := fmt.Sprintf("final-%d", g)
		if res := w.hosts[l].Propose(g, []byte(cmd)); res.Err != nil {
			return fmt.Errorf("seed %d: group %v: proposal at leader %d after node %d died: %v", w.p.seed, g, l, victim, res.Err)
		}
		w.pending[cmd] = l
	}
	for range 100 {
		w.step()
	}
	for g := range GroupID(w.p.groups) {
		if !slices.Contains(w.acked[g], fmt.Sprintf("final-%d", g)) {
			return fmt.Errorf("seed %d: group %v did not commit a proposal after node %d died", w.p.seed, g, victim)
		}
	}
	return w.err
}

func runSeeds(t *testing.T, first, n int64, broken brokenRules) (failed int64, firstErr error) {
	for seed := first; seed < first+n; seed++ {
		// Half the seeds keep the groups in a shared log on a simulated
		// disk (all of them for a bug of durability).
		disk := seed%4 >= 2 || broken.syncLate
		w := newSimWorld(t, simParams{seed: seed, nodes: 3 + 2*int(seed%2), groups: 24, broken: broken, disk: disk})
		if err := w.run(); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			failed++
		}
	}
	return failed, firstErr
}

func TestSimulationOfManyGroups(t *testing.T) {
	const seeds = 60
	if failed, err := runSeeds(t, 1, seeds, brokenRules{}); failed > 0 {
		t.Fatalf("%d of %d seeds failed; the first: %v", failed, seeds, err)
	}
}

// TestSimulationCatchesBrokenHosts breaks a rule of quiescence on purpose
// and expects the simulation to notice within a few seeds.
func TestSimulationCatchesBrokenHosts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		broken brokenRules
	}{
		{"a coalesced heartbeat loses the leader's commit index", brokenRules{heartbeatLosesCommit: true}},
		{"quiet followers never wake when their leader's node dies", brokenRules{noLivenessWake: true}},
		{"a round's batches leave before its Sync (the next round syncs it)", brokenRules{syncLate: true}},
	} {
		const seeds = 40
		failed, err := runSeeds(t, 1, seeds, tc.broken)
		if failed == 0 {
			t.Errorf("%s: %d seeds ran and none failed", tc.name, seeds)
			continue
		}
		t.Logf("%s: %d of %d seeds failed; the first: %v", tc.name, failed, seeds, err)
	}
}
