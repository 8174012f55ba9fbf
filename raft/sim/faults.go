package sim

import (
	"fmt"
	"slices"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/sim/simdisk"
	"raft-consensus/raft/trace"
)

// scheduleFaults spreads the run's faults over the fault phase, and the
// end of all of them at its end.
func (w *world) scheduleFaults() {
	n := w.p.MinFaults + w.rng.Intn(20)
	for range n {
		at := time.Duration(w.rng.Int63n(int64(w.p.FaultPhase)))
		w.at(at, w.randomFault)
	}
	w.at(w.p.FaultPhase, w.healAll)
}

// randomFault injects one fault of the kinds the run allows.
func (w *world) randomFault() {
	if w.healed {
		return
	}
	w.stats.faults++
	type fault struct {
		weight int
		fn     func()
	}
	// Membership changes are rare in a cluster's life but the runs where
	// they happen must meet every other fault with them (a joint change
	// meets a crash of its leader in about one seed in a hundred).
	membership := 10
	if w.p.Membership {
		membership = 25
	}
	faults := []fault{
		{15, w.crashRandom},
		{15, w.crashLeader},
		{membership, w.membershipFault},
	}
	if w.p.Faults.Net {
		faults = append(faults,
			fault{8, w.partitionRandom}, fault{8, w.isolateLeader}, fault{5, w.partitionBridge},
			fault{3, w.partitionRing}, fault{6, w.cutLinks}, fault{8, w.healNet},
			fault{6, w.setDropRate}, fault{4, w.setDupRate}, fault{6, w.setDelay}, fault{3, w.setLateRate})
	}
	if w.p.Faults.Disk {
		faults = append(faults, fault{10, w.crashInsideStep})
		if w.p.Disk {
			faults = append(faults, fault{5, w.failSyncs}, fault{4, w.fillDisk}, fault{4, w.slowDisk}, fault{5, w.corruptNextStart})
		}
	}
	if w.p.Faults.Clock {
		faults = append(faults, fault{8, w.pauseProcess}, fault{3, w.changeDrift})
	}
	total := 0
	for _, f := range faults {
		total += f.weight
	}
	r := w.rng.Intn(total)
	for _, f := range faults {
		if r < f.weight {
			f.fn()
			return
		}
		r -= f.weight
	}
}

func (w *world) pick() *server {
	ids := w.ids()
	return w.servers[ids[w.rng.Intn(len(ids))]]
}

// leader is the running leader with the highest term, or nil.
func (w *world) leader() *server {
	var best *server
	for _, id := range w.ids() {
		s := w.servers[id]
		if s.up && s.driver.Core().Role() == core.Leader && (best == nil || s.driver.Core().Term() > best.driver.Core().Term()) {
			best = s
		}
	}
	return best
}

// crashFor crashes a server and restarts it later.
func (w *world) crashFor(s *server) {
	if s == nil || !s.up {
		return
	}
	s.crash("")
	w.after(time.Duration(50+w.rng.Intn(1000))*time.Millisecond, s.restart)
}

func (w *world) crashRandom() { w.crashFor(w.pick()) }
func (w *world) crashLeader() { w.crashFor(w.leader()) }

// crashInsideStep arms a crash inside one of the next storage writes of a
// server: between a write and the sends that depend on it, or in the
// middle of a multi-file update.
func (w *world) crashInsideStep() {
	s := w.pick()
	if !s.up {
		return
	}
	n := 1 + w.rng.Intn(8)
	if s.disk != nil {
		s.disk.CrashAfter(n)
	} else {
		s.memc.countdown = 1 + w.rng.Intn(3)
	}
	w.traceFault(nodeName(s.id), nil, "crash armed inside a coming write")
	// A restart is scheduled when the crash happens.
}

func (w *world) failSyncs() {
	s := w.pick()
	if s.disk == nil {
		return
	}
	s.disk.Faults.SyncFail = 0.05 + 0.3*w.rng.Float64()
	w.traceFault(nodeName(s.id), nil, "fsync fails with probability %.2f", s.disk.Faults.SyncFail)
	w.after(time.Duration(50+w.rng.Intn(500))*time.Millisecond, func() { s.disk.Faults.SyncFail = 0 })
}

func (w *world) fillDisk() {
	s := w.pick()
	if s.disk == nil {
		return
	}
	s.disk.Faults.Capacity = s.disk.Used() + int64(w.rng.Intn(16<<10))
	w.traceFault(nodeName(s.id), nil, "disk full at %d bytes", s.disk.Faults.Capacity)
}

func (w *world) slowDisk() {
	s := w.pick()
	if s.disk == nil {
		return
	}
	s.disk.Faults.SlowOp = 0.05 + 0.3*w.rng.Float64()
	w.traceFault(nodeName(s.id), nil, "slow disk (%.2f of operations 20× slower)", s.disk.Faults.SlowOp)
	w.after(time.Duration(100+w.rng.Intn(1000))*time.Millisecond, func() { s.disk.Faults.SlowOp = 0 })
}

// corruptNextStart crashes a server whose next start will read corrupted
// bytes now and then.
func (w *world) corruptNextStart() {
	s := w.pick()
	if s.disk == nil || !s.up {
		return
	}
	s.disk.Faults.CorruptRead = 0.05 + 0.5*w.rng.Float64()
	s.disk.Faults.TornZeros = w.rng.Float64()
	w.crashFor(s)
}

// pauseProcess stalls a process, as a long GC pause or SIGSTOP would: it
// takes no input for up to several election timeouts.
func (w *world) pauseProcess() {
	s := w.pick()
	if !s.up {
		return
	}
	d := time.Duration(50+w.rng.Intn(1200)) * time.Millisecond
	s.freeAt = max(s.freeAt, w.now+d)
	w.traceFault(nodeName(s.id), nil, "paused for %v", d)
}

func (w *world) changeDrift() {
	s := w.pick()
	s.drift = 0.8 + 0.4*w.rng.Float64()
	w.traceFault(nodeName(s.id), nil, "clock runs at %.2f× speed", 1/s.drift)
}

func (w *world) partition(kind string, groups [][]int) {
	w.net.links.Partition(groups...)
	w.traceFault(trace.SimNode, groups, "partition %s (%s)", w.net.describe(), kind)
}

func (w *world) partitionRandom() {
	g := [][]int{nil, nil}
	for _, id := range w.ids() {
		k := w.rng.Intn(2)
		g[k] = append(g[k], id)
	}
	w.partition("random", g)
}

func (w *world) isolateLeader() {
	l := w.leader()
	if l == nil {
		return
	}
	var rest []int
	for _, id := range w.ids() {
		if id != l.id {
			rest = append(rest, id)
		}
	}
	w.partition("leader-isolating", [][]int{{l.id}, rest})
}

// partitionBridge: two halves that share one server (Jepsen's bridge).
func (w *world) partitionBridge() {
	ids := w.ids()
	w.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	mid := len(ids) / 2
	a := slices.Clone(ids[:mid+1])
	b := slices.Clone(ids[mid:])
	slices.Sort(a)
	slices.Sort(b)
	w.partition("bridge", [][]int{a, b})
}

// partitionRing: each server talks to its two neighbours only.
func (w *world) partitionRing() {
	ids := w.ids()
	w.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	var g [][]int
	for i := range ids {
		pair := []int{ids[i], ids[(i+1)%len(ids)]}
		slices.Sort(pair)
		g = append(g, pair)
	}
	w.partition("ring", g)
}

// cutLinks cuts a few links one way only.
func (w *world) cutLinks() {
	ids := w.ids()
	for range 1 + w.rng.Intn(3) {
		a, b := ids[w.rng.Intn(len(ids))], ids[w.rng.Intn(len(ids))]
		if a != b {
			w.net.links.Cut(a, b)
			w.traceFault(trace.SimNode, nil, "cut %d → %d", a, b)
		}
	}
}

func (w *world) healNet() {
	w.net.links.Heal()
	w.traceFault(trace.SimNode, nil, "heal")
}

func (w *world) setDropRate() {
	w.net.dropRate = w.rng.Float64() * 0.3
	w.traceFault(trace.SimNode, nil, "drop rate %.2f", w.net.dropRate)
}

func (w *world) setDupRate() {
	w.net.dupRate = w.rng.Float64() * 0.2
	w.traceFault(trace.SimNode, nil, "duplicate rate %.2f", w.net.dupRate)
}

func (w *world) setDelay() {
	w.net.maxDelay = time.Duration(1+w.rng.Intn(80)) * time.Millisecond
	w.traceFault(trace.SimNode, nil, "delay up to %v", w.net.maxDelay)
}

func (w *world) setLateRate() {
	w.net.lateRate = w.rng.Float64() * 0.05
	w.traceFault(trace.SimNode, nil, "%.3f of messages arrive several election timeouts late", w.net.lateRate)
}

// membershipFault adds or removes a server, one at a time (thesis §4.1),
// changes several at once (jointChange), or transfers leadership (thesis
// §3.10). The leader does it in a step of
// its own, as RaftNode does on its goroutine.
func (w *world) membershipFault() {
	l := w.leader()
	if l == nil {
		return
	}
	r := w.rng.Intn(5)
	if !w.p.Membership {
		r = 2
	}
	c := l.driver.Core()
	switch r {
	case 0:
		if len(w.ids()) >= 7 {
			return
		}
		l.input(func() {
			id := w.nextID // taken when the leader proposes, not when the fault was drawn
			if res := l.driver.ProposeConfChange(core.AddLearner, id); res.Err != nil {
				return
			}
			w.nextID++
			w.stats.confChanges++
			w.traceFault(nodeName(l.id), nil, "add server %d", id)
			s := w.newServer(id)
			w.after(0, func() { s.start(nil) })
		})
	case 1:
		members := c.Config().Members()
		target := members[w.rng.Intn(len(members))]
		l.input(func() {
			res := l.driver.ProposeConfChange(core.RemoveServer, target)
			if res.Err != nil {
				return
			}
			w.stats.confChanges++
			w.traceFault(nodeName(l.id), nil, "remove server %d", target)
			w.removals = append(w.removals, removal{id: target, index: res.Index})
		})
	case 3, 4:
		w.jointChange(l)
	case 2:
		voters := c.Config().Voters
		target := voters[w.rng.Intn(len(voters))]
		if target == l.id {
			return
		}
		l.input(func() {
			if l.driver.TransferLeadership(target) == nil {
				w.traceFault(nodeName(l.id), nil, "transfer leadership to %d", target)
			}
		})
	}
}

// jointChange adds and removes several voters in one step (Raft paper
// §6): a replacement of one or two servers, two added, or two removed.
// The new servers join as voters at once, empty, or, in half the changes
// that add some, as staged learners first (Configuration.Staged), which a
// later jointChange promotes once they are ready (promoteStaged), as the
// clusters' change command does.
func (w *world) jointChange(l *server) {
	cfg := l.driver.Core().Config()
	if cfg.IsJoint() {
		return
	}
	if len(cfg.Staged) > 0 {
		w.promoteStaged(l, cfg)
		return
	}
	adds, removes := w.rng.Intn(3), w.rng.Intn(3)
	if adds+removes < 2 || len(w.ids())+adds > 7 || len(cfg.Voters)+adds-removes < 1 || removes > len(cfg.Voters) {
		return
	}
	staged := adds > 0 && w.rng.Intn(2) == 0
	var changes []core.ConfChange
	for _, i := range w.rng.Perm(len(cfg.Voters))[:removes] {
		changes = append(changes, core.ConfChange{Type: core.RemoveServer, ID: cfg.Voters[i]})
	}
	add := core.AddVoter
	if staged {
		changes, add = nil, core.AddStagedLearner // the removals come with the promotion
	}
	l.input(func() {
		first := w.nextID // taken when the leader proposes, as for a single add
		all := slices.Clone(changes)
		for i := range adds {
			all = append(all, core.ConfChange{Type: add, ID: first + i})
		}
		res := l.driver.ProposeConfChanges(all)
		if res.Err != nil {
			return
		}
		w.nextID += adds
		w.stats.confChanges++
		if l.driver.Core().Config().IsJoint() {
			w.stats.jointChanges++
		}
		w.traceFault(nodeName(l.id), nil, "change %v", all)
		for _, ch := range changes {
			w.removals = append(w.removals, removal{id: ch.ID, index: res.Index})
		}
		for i := range adds {
			s := w.newServer(first + i)
			w.after(0, func() { s.start(nil) })
		}
	})
}

// promoteStaged ends a staged change: once the leader reports every
// staged learner ready and has committed their staging, one entry
// promotes them all and removes up to two voters, through C_old,new when
// more than one voter changes.
func (w *world) promoteStaged(l *server, cfg core.Configuration) {
	sum := l.driver.Summary()
	if sum.Commit < sum.ConfigIndex {
		return
	}
	for _, id := range cfg.Staged {
		if !slices.Contains(sum.Ready, id) {
			return
		}
	}
	var changes []core.ConfChange
	for _, id := range cfg.Staged {
		changes = append(changes, core.ConfChange{Type: core.PromoteLearner, ID: id})
	}
	for _, i := range w.rng.Perm(len(cfg.Voters))[:w.rng.Intn(min(3, len(cfg.Voters)+1))] {
		changes = append(changes, core.ConfChange{Type: core.RemoveServer, ID: cfg.Voters[i]})
	}
	l.input(func() {
		res := l.driver.ProposeConfChanges(changes)
		if res.Err != nil {
			return
		}
		w.stats.confChanges++
		w.stats.stagedChanges++
		if l.driver.Core().Config().IsJoint() {
			w.stats.jointChanges++
		}
		w.traceFault(nodeName(l.id), nil, "change %v", changes)
		for _, ch := range changes {
			if ch.Type == core.RemoveServer {
				w.removals = append(w.removals, removal{id: ch.ID, index: res.Index})
			}
		}
	})
}

type removal struct {
	id    int
	index uint64
}

// finishRemovals stops a removed server once some server has committed a
// configuration without it, as the ClusterSimulator does.
func (w *world) finishRemovals(s *server) {
	if len(w.removals) == 0 || !s.up {
		return
	}
	c := s.driver.Core()
	keep := w.removals[:0]
	for _, r := range w.removals {
		gone := w.servers[r.id]
		if gone == nil || gone.removed {
			continue
		}
		if c.ConfigIndex() <= c.Committed() && c.ConfigIndex() >= r.index && !c.Config().IsMember(r.id) {
			if gone.up {
				gone.down()
			}
			gone.removed = true
			w.traceFault(nodeName(r.id), nil, "removed")
			continue
		}
		keep = append(keep, r)
	}
	w.removals = keep
}

// healAll ends the fault phase: every server runs and every link works.
func (w *world) healAll() {
	w.healed = true
	w.net = newNetwork()
	w.traceFault(trace.SimNode, nil, "heal all")
	for _, id := range w.ids() {
		s := w.servers[id]
		if s.disk != nil {
			s.disk.Faults = simdisk.Faults{}
			s.disk.Disarm()
		}
		s.memc.countdown = 0
		if !s.up {
			s.restart()
		}
	}
}

func (w *world) String() string { return fmt.Sprintf("sim seed %d at %v", w.p.Seed, w.now) }
