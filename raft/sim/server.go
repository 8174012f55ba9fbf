package sim

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/kv"
	"raft-consensus/raft/node"
	"raft-consensus/raft/sim/simdisk"
	"raft-consensus/raft/storage"
)

// server is one simulated server process: the shipped Driver and Host on
// the shipped storage, run one step at a time. A step takes the inputs
// that arrived (as RaftNode's goroutine drains its channels), then lets
// the driver persist, send and apply; the process is busy for as long as
// its disk operations took, inputs arriving meanwhile wait for the next
// step, and what it sent leaves when the step ends. What a step sent
// before a crash inside it (armed on the disk) escapes; the rest is lost.
type server struct {
	w       *world
	id      int
	inc     int // incarnation: bumps at every start, so stale events find out
	up      bool
	removed bool

	disk *simdisk.Disk // nil: MemoryStorage
	// corruptReadsAtStart is the disk's count of damaged reads when the
	// latest start began.
	corruptReadsAtStart int
	mem                 *storage.MemoryStorage // kept across crashes, as a disk would be
	st                  *checkedStorage        // this incarnation's storage
	memc                crashPoint             // armed crash for MemoryStorage
	dir                 string

	driver *node.Driver
	host   *kv.Host
	links  map[int]*link // outgoing RPC links, by peer
	writer *simWriter

	inbox        []func()
	runScheduled bool
	freeAt       time.Duration // the process is busy until then
	drift        float64       // tick period factor (clock drift)
	tickQueued   bool          // a tick waits in the inbox (a ticker buffers one)
	applies      [][]node.CommitEntry
	snapWriting  bool

	// restoreFailed is set when the state machine could not read a
	// snapshot from storage: the process stops at the end of the step.
	restoreFailed error

	// Within a step.
	stepping bool
	out      []func()
	crashIdx int           // outputs before it escaped a crash inside the step; -1: no crash
	memLat   time.Duration // MemoryStorage's simulated latency
	waitLat  time.Duration // time the step waited for the log writer

	// Checks.
	lastApplied uint64    // index the state machine applied last
	lastChecked uint64    // committed index up to which entries were checked
	role        core.Role // after the last step
	acted       uint64    // highest term it sent a message in, across restarts
}

// crashPoint counts storage writes of a MemoryStorage toward an armed crash.
type crashPoint struct{ countdown int }

const (
	maxBatch = 4096 // as RaftNode: inputs stepped per round
	stepCost = 5 * time.Microsecond
)

func (w *world) newServer(id int) *server {
	s := &server{w: w, id: id, drift: 1, crashIdx: -1, dir: filepath.Join("/data", fmt.Sprintf("node-%d", id))}
	if w.p.Faults.Clock {
		s.drift = 0.8 + 0.4*w.rng.Float64()
	}
	if w.p.Disk {
		s.disk = simdisk.New(w.rng)
		s.disk.OnCrash = s.crashedInStep
	} else {
		s.mem = storage.NewMemoryStorage()
	}
	w.servers[id] = s
	return s
}

// summaryOf gives the Host its node's state before the driver exists.
type summaryOf struct{ s *server }

func (n summaryOf) Summary() core.Summary {
	if n.s.driver == nil {
		return core.Summary{Leader: core.None}
	}
	return n.s.driver.Summary()
}

// start (re)starts the server from its storage. boot is the founding
// configuration (nil for a restart or a server that joins later).
func (s *server) start(boot []int) {
	w := s.w
	s.inc++
	s.inbox, s.applies, s.out = nil, nil, nil
	s.links = map[int]*link{}
	s.freeAt, s.runScheduled, s.tickQueued, s.snapWriting = w.now, false, false, false
	s.driver, s.host = nil, nil
	if s.disk != nil {
		s.corruptReadsAtStart = s.disk.Stats().CorruptReads
	}
	inner, err := s.openStorage()
	if err != nil {
		s.refuseStart(err)
		return
	}
	hs, snap, ents, err := inner.Load()
	if err != nil {
		inner.Close()
		s.refuseStart(err)
		return
	}
	if s.st != nil {
		if err := s.st.checkLoaded(hs, snap, ents); err != nil {
			w.fail(fmt.Errorf("node %d: %w", s.id, err))
		}
		s.st.reset(inner)
	} else {
		s.st = newCheckedStorage(s, inner)
	}
	for i := range ents {
		if err := w.checker.observeEntry(s.id, &ents[i]); err != nil {
			w.fail(fmt.Errorf("node %d loaded from storage: %w", s.id, err))
		}
	}
	s.lastApplied, s.lastChecked, s.restoreFailed = 0, 0, nil
	violated := func(v core.InvariantViolation) { w.fail(v) }
	hc := kv.HostConfig{SnapshotThreshold: w.p.SnapshotEvery, OnApply: s.onApply, OnViolation: violated, Tracer: w.tracer, ID: s.id,
		OnStorageFailure: func(err error) { s.restoreFailed = err }}
	if w.opts.Host != nil {
		w.opts.Host(&hc)
	}
	var sm kv.StateMachine = kv.NewStore()
	if w.opts.Store != nil {
		sm = w.opts.Store()
	}
	s.host = kv.NewHost(summaryOf{s}, sm, hc)
	cc := w.p.Core
	cc.ID = s.id
	cc.Seed = w.p.Seed*1000 + int64(s.id)*17 + int64(s.inc)
	cc.OnViolation = violated
	if w.opts.Core != nil {
		w.opts.Core(&cc)
	}
	dc := node.DriverConfig{Core: cc, Members: boot, Storage: s.st, Outbox: s, Applier: s, Tracer: w.tracer}
	s.writer = nil
	if w.p.AsyncWrites {
		s.writer = &simWriter{s: s}
		dc.Writer = s.writer
	}
	if w.opts.Driver != nil {
		w.opts.Driver(&dc)
	}
	s.up = true
	d, err := node.NewDriver(dc)
	if err != nil {
		s.up = false
		s.st.Close()
		s.refuseStart(err)
		return
	}
	s.driver = d
	s.role = core.Follower
	// A random phase, so the servers' ticks do not march in lockstep.
	w.after(time.Duration(w.rng.Int63n(int64(w.p.Tick))), s.tickLoop(s.inc))
	s.step(nil)
}

func (s *server) openStorage() (storage.Storage, error) {
	if s.disk == nil {
		return s.mem, nil
	}
	opts := storage.DiskOptions{FS: s.disk, SegmentBytes: s.w.p.SegmentBytes}
	if s.w.opts.Disk != nil {
		s.w.opts.Disk(&opts)
	}
	return storage.OpenDiskStorage(s.dir, opts)
}

// refuseStart: the server would not start (a corrupted read, say); it is
// tried again later, as a supervisor would.
func (s *server) refuseStart(err error) {
	w := s.w
	w.stats.refusedStarts++
	w.traceFault(nodeName(s.id), nil, "refused to start: %v", err)
	var ce *storage.WALCorruptionError
	if errors.As(err, &ce) && (ce.Path == "" || ce.Reason == "") {
		w.fail(fmt.Errorf("node %d: a corruption error that names no file or reason: %v", s.id, err))
	}
	// The simulated disk damages data only as it is read, never at rest
	// (a crash tears the last write, which is not corruption): a log
	// judged corrupt when no read of this start was damaged is the
	// storage's mistake.
	if ce != nil && s.disk != nil && s.disk.Stats().CorruptReads == s.corruptReadsAtStart {
		w.fail(fmt.Errorf("node %d: the storage found corruption where the disk damaged no read: %v", s.id, err))
	}
	if s.disk != nil {
		s.disk.Faults.CorruptRead = 0
		s.disk.Crash() // the failed start's writes, if any, are not trusted
	}
	w.after(time.Duration(100+w.rng.Intn(400))*time.Millisecond, func() { s.restart() })
}

// restart starts a server that is down.
func (s *server) restart() {
	if s.up || s.removed {
		return
	}
	if s.disk != nil {
		s.disk.Recover()
	}
	s.w.traceFault(nodeName(s.id), nil, "restart")
	s.start(nil)
}

// crash stops the server at once: volatile state is lost, the disk keeps
// what a crash keeps.
func (s *server) crash(why string) {
	if !s.up {
		return
	}
	s.down()
	if s.disk != nil {
		s.disk.Crash()
	}
	s.w.stats.crashes++
	s.w.traceFault(nodeName(s.id), nil, "crash%s", why)
}

// down marks the process gone; events of this incarnation find it so.
func (s *server) down() {
	s.up = false
	s.inc++
	s.inbox, s.applies = nil, nil
	s.links = map[int]*link{}
	if s.st != nil {
		s.st.Close()
	}
}

// crashedInStep is the disk's OnCrash: a crash armed inside an operation.
func (s *server) crashedInStep() {
	if s.crashIdx < 0 {
		s.crashIdx = len(s.out)
	}
}

// input queues work for the process and makes sure a step will take it.
func (s *server) input(fn func()) {
	if !s.up {
		return
	}
	s.inbox = append(s.inbox, fn)
	if !s.runScheduled {
		s.runScheduled = true
		inc := s.inc
		s.w.at(s.freeAt, func() {
			if s.inc == inc {
				s.run()
			}
		})
	}
}

// run is one step of the process, with the inputs that have arrived.
func (s *server) run() {
	s.runScheduled = false
	if !s.up {
		return
	}
	if s.w.now < s.freeAt { // paused, or still busy
		s.runScheduled = true
		inc := s.inc
		s.w.at(s.freeAt, func() {
			if s.inc == inc {
				s.run()
			}
		})
		return
	}
	n := min(len(s.inbox), maxBatch)
	batch := s.inbox[:n:n]
	s.inbox = slices.Clone(s.inbox[n:])
	s.step(batch)
	if s.up && len(s.inbox) > 0 && !s.runScheduled {
		s.runScheduled = true
		inc := s.inc
		s.w.at(s.freeAt, func() {
			if s.inc == inc {
				s.run()
			}
		})
	}
}

// step steps the inputs, then lets the driver do what they call for, and
// releases the outputs when the step's I/O is done.
func (s *server) step(inputs []func()) {
	w := s.w
	w.stats.steps++
	s.stepping, s.out, s.crashIdx, s.memLat, s.waitLat = true, nil, -1, 0, 0
	if s.disk != nil {
		s.disk.TakeElapsed()
	}
	for _, in := range inputs {
		if s.crashIdx >= 0 || s.driver.Failed() != nil {
			break
		}
		in()
	}
	if s.crashIdx < 0 && s.driver.Failed() == nil {
		s.driver.ProcessReady()
		s.applyPending()
	}
	s.stepping = false
	elapsed := stepCost*time.Duration(len(inputs)+1) + s.memLat + s.waitLat
	if s.disk != nil {
		elapsed += s.disk.TakeElapsed()
	}
	end := w.now + elapsed
	s.freeAt = end
	outs := s.out
	s.out = nil
	if s.crashIdx >= 0 {
		outs = outs[:s.crashIdx]
	}
	if len(outs) > 0 {
		inc, escaped := s.inc, s.crashIdx >= 0
		w.at(end, func() {
			// A crash while the step's I/O was still going on: the sends
			// that follow it never happened. Those made before a crash
			// inside the step itself did.
			if s.inc != inc && !escaped {
				return
			}
			for _, f := range outs {
				f()
			}
		})
	}
	switch {
	case s.crashIdx >= 0:
		w.stats.stepCrashes++
		s.crash(" inside a step")
		s.scheduleRestart()
		return
	case s.driver.Failed() != nil:
		s.storageStop(s.driver.Failed())
		return
	case s.restoreFailed != nil:
		err := s.restoreFailed
		s.restoreFailed = nil
		s.storageStop(err)
		return
	}
	s.checkAfterStep()
}

// emit records an output of the current step; outside a step (a callback
// of a write completing between steps) it happens at once.
func (s *server) emit(fn func()) {
	if s.stepping {
		s.out = append(s.out, fn)
		return
	}
	fn()
}

// storageStop: the storage failed (fsync error, full disk); the driver
// stopped, and so does the process. A supervisor restarts it later, once
// the fault is gone. After a failed fsync the page cache cannot be
// trusted, so the restart reads what the disk kept, as after a crash.
func (s *server) storageStop(err error) {
	w := s.w
	w.stats.storageStops++
	w.traceFault(nodeName(s.id), nil, "stopped: %v", err)
	s.down()
	if s.disk != nil {
		s.disk.Crash()
		s.disk.Faults.SyncFail, s.disk.Faults.Capacity = 0, 0
	}
	s.scheduleRestart()
}

func (s *server) scheduleRestart() {
	s.w.after(time.Duration(50+s.w.rng.Intn(1000))*time.Millisecond, func() { s.restart() })
}

// tickLoop ticks the core every tick (scaled by the clock's drift); a
// tick that finds one still queued is dropped, as a time.Ticker drops
// ticks that nobody received.
func (s *server) tickLoop(inc int) func() {
	var tick func()
	tick = func() {
		if s.inc != inc || !s.up {
			return
		}
		if !s.tickQueued {
			s.tickQueued = true
			s.input(func() {
				s.tickQueued = false
				s.driver.Tick()
			})
		}
		s.w.after(time.Duration(float64(s.w.p.Tick)*s.drift), tick)
	}
	return tick
}

// Send implements node.Outbox.
func (s *server) Send(m core.Message) {
	s.checkActedTerm(m)
	s.emit(func() { s.link(m.To).push(m) })
}

// Apply implements node.Applier: the batches are applied once the driver
// has done its part of the step, as RaftNode's applier goroutine does.
func (s *server) Apply(batch []node.CommitEntry) { s.applies = append(s.applies, batch) }

func (s *server) applyPending() {
	for len(s.applies) > 0 && s.host != nil {
		batch := s.applies[0]
		s.applies = s.applies[1:]
		if job := s.host.Apply(batch); job != nil {
			s.writeSnapshot(job, nil)
		}
	}
}

// writeSnapshot writes a captured state out to storage, as Server's
// snapshot goroutine does (through RaftNode.Snapshot), and hands it to the
// driver later, as an input. then, if set, hears how it ended.
func (s *server) writeSnapshot(job *kv.SnapshotJob, then func(error)) {
	w := s.w
	inc := s.inc
	finish := func(err error) {
		if then != nil {
			then(err)
		}
	}
	// Writing takes a while; the process goes on meanwhile.
	w.after(time.Duration(100+w.rng.Intn(2000))*time.Microsecond, func() {
		if s.inc != inc || !s.up {
			finish(errGone)
			return
		}
		sw, err := storage.WriteSnapshot(s.st, job.Index, job.Write)
		if s.disk != nil {
			s.disk.TakeElapsed() // the snapshot goroutine's time, not the process's
			if s.disk.Crashed() {
				s.crash(" writing a snapshot")
				s.scheduleRestart()
				finish(errGone)
				return
			}
		}
		if err != nil {
			s.input(func() {
				s.host.SnapshotDone(job, err)
				finish(err)
			})
			return
		}
		s.input(func() {
			err := s.driver.Snapshot(job.Index, sw, nil)
			if err == nil {
				w.stats.snapshots++
			}
			s.host.SnapshotDone(job, err)
			finish(err)
		})
	})
}

// errGone: the server stopped before it finished what it was doing.
var errGone = errors.New("the node stopped meanwhile")

// onApply checks every entry the state machine applies.
func (s *server) onApply(e node.CommitEntry) {
	w := s.w
	if e.Snapshot != nil {
		s.lastApplied = max(s.lastApplied, e.Index)
		return
	}
	if e.Index != s.lastApplied+1 {
		w.fail(fmt.Errorf("node %d applied index %d after %d", s.id, e.Index, s.lastApplied))
	}
	s.lastApplied = e.Index
	ent := core.Entry{Index: e.Index, Term: e.Term, Type: e.Type, Data: e.Command}
	if err := w.checker.observeCommitted(s.id, s.driver.Core().Term(), &ent); err != nil {
		w.fail(err)
	}
}

// simWriter is the leader's log writer, on a thread of its own: it takes
// what waits in its WriteQueue, writes it as one batch, and reports when
// the write is done.
type simWriter struct {
	s         *server
	queue     node.WriteQueue
	reports   []report // written, not yet taken by the driver
	scheduled bool
	freeAt    time.Duration
}

type report struct {
	w  node.Written
	at time.Duration // when the write is done
}

// Submit implements node.LogWriter.
func (sw *simWriter) Submit(ents []core.Entry) {
	sw.queue.Push(ents)
	sw.schedule()
}

func (sw *simWriter) schedule() {
	if sw.scheduled || sw.queue.Empty() {
		return
	}
	sw.scheduled = true
	s, inc := sw.s, sw.s.inc
	w := s.w
	w.at(max(sw.freeAt, w.now+time.Duration(w.rng.Intn(200))*time.Microsecond), func() {
		if s.inc == inc && s.up {
			sw.write()
		}
	})
}

// write writes one batch; the report reaches the driver as an input once
// the write is done.
func (sw *simWriter) write() {
	sw.scheduled = false
	s := sw.s
	lat, r, ok := sw.writeNow()
	if !ok {
		return
	}
	if s.disk != nil && s.disk.Crashed() {
		s.crash(" in the log writer")
		s.scheduleRestart()
		return
	}
	done := s.w.now + lat
	// The writer rests before its next write, as RaftNode's does
	// (node.Config.LeaderSyncGap); the report does not wait for it.
	sw.freeAt = done + s.w.p.LeaderSyncGap
	sw.reports = append(sw.reports, report{w: r, at: done})
	inc := s.inc
	s.w.at(done, func() {
		if s.inc != inc {
			return
		}
		s.input(func() {
			if len(sw.reports) > 0 { // not taken by Wait meanwhile
				r := sw.reports[0]
				sw.reports = sw.reports[1:]
				s.driver.WriteDone(r.w)
			}
		})
		sw.schedule()
	})
}

// writeNow writes what is queued and returns how long it took.
func (sw *simWriter) writeNow() (time.Duration, node.Written, bool) {
	s := sw.s
	batch := sw.queue.Take()
	if batch == nil {
		return 0, node.Written{}, false
	}
	var before time.Duration
	if s.disk != nil {
		before = s.disk.TakeElapsed()
	}
	mem := s.memLat
	r := node.WriteBatch(s.st, batch)
	sw.queue.Recycle(batch)
	lat := s.memLat - mem
	s.memLat = mem
	if s.disk != nil {
		lat += s.disk.TakeElapsed()
		s.disk.AddElapsed(before)
	}
	return lat, r, true
}

// Wait implements node.LogWriter: the driver waits for the writer within
// its step, for the oldest report, or for a write of what is queued.
func (sw *simWriter) Wait() node.Written {
	s := sw.s
	if len(sw.reports) > 0 {
		r := sw.reports[0]
		sw.reports = sw.reports[1:]
		s.waitLat = max(s.waitLat, r.at-s.w.now)
		return r.w
	}
	lat, r, ok := sw.writeNow()
	if !ok {
		// Cannot happen: the driver waits only for what it handed out.
		return node.Written{Err: errors.New("sim: the driver waits for a write it never handed out")}
	}
	// A writer still resting starts the write once its rest is over, and
	// rests again after it.
	start := max(sw.freeAt, s.w.now)
	s.waitLat += start - s.w.now + lat
	sw.freeAt = start + lat + s.w.p.LeaderSyncGap
	return r
}
