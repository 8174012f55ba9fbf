// Package simdisk is a simulated disk for the deterministic simulation: a
// vfs.FS in memory that remembers what is durable and what only sits in the
// page cache, and injects the faults of real disks, each drawn from the
// simulation's seed:
//
//   - a crash keeps what was synced, plus a random prefix of what was
//     written since, the last write of it possibly torn (cut short, or with
//     the rest of its bytes left as zeros, as when a file's new size reached
//     the disk before its data);
//   - changes to a directory (new files, renames, removals) survive a crash
//     only once the directory is synced, again with a random prefix of the
//     unsynced ones kept;
//   - an fsync fails (EIO); what it was to make durable stays volatile;
//   - a read returns a flipped bit (the data on the disk is intact);
//   - writes are slow now and then;
//   - the disk is full: a write that does not fit fails with ENOSPC, after
//     writing what fits;
//   - a crash in the middle of an operation (armed with CrashAfter), so
//     that a crash can fall between a write and the sends that depend on
//     it, or in the middle of a multi-file update.
//
// A Disk serves one server and is not safe for concurrent use (the
// simulation is single-threaded).
package simdisk

import (
	"errors"
	"io"
	"io/fs"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"raft-consensus/raft/storage/vfs"
)

// ErrCrashed is what every operation returns once the machine crashed,
// until Recover.
var ErrCrashed = errors.New("simdisk: the machine crashed")

// Faults are the fault rates of a Disk; the zero value is a perfect disk.
type Faults struct {
	SyncFail    float64 // probability that a Sync fails with EIO
	CorruptRead float64 // probability that a read returns a flipped bit
	SlowOp      float64 // probability that an operation takes 20× longer
	TornZeros   float64 // probability that a torn write leaves zeros past its cut
	// Capacity bounds the bytes in files (0: unlimited); a write past it
	// fails with ENOSPC.
	Capacity int64
}

// Latency of the operations, before slowness.
const (
	opLatency   = 20 * time.Microsecond
	byteLatency = time.Nanosecond // 1 GB/s
	syncLatency = 500 * time.Microsecond
	slowdown    = 20
)

// Stats count what the disk did and injected.
type Stats struct {
	Writes, Syncs, FailedSyncs, CorruptReads, FullWrites, Crashes, TornWrites int
}

// Disk is a simulated disk.
type Disk struct {
	rng    *rand.Rand
	Faults Faults
	// OnCrash, if set, is called when an armed crash happens inside an
	// operation (CrashAfter).
	OnCrash func()

	dirs         map[string]bool
	names        map[string]*inode // what the running system sees
	durableNames map[string]*inode // what a crash keeps for sure
	nsOps        []nsOp            // directory changes since the last SyncDir
	used         int64

	crashed   bool
	countdown int // mutating operations until an armed crash; 0: none
	elapsed   time.Duration
	stats     Stats
}

type inode struct {
	data    []byte  // the page cache: what reads see
	durable []byte  // what survives a crash for sure
	pending []write // writes and truncations since the last sync, oldest first
}

// sync makes the pending writes durable, at the cost of their size only.
func (ino *inode) sync() {
	for _, w := range ino.pending {
		if w.truncate {
			ino.durable = resize(ino.durable, w.off)
		} else {
			ino.durable = writeAt(ino.durable, w.data, w.off)
		}
	}
	clear(ino.pending)
	ino.pending = ino.pending[:0]
}

type write struct {
	off      int64
	data     []byte
	truncate bool // a truncation to off
}

type nsOp struct {
	kind     byte // 'c'reate, 'r'ename, 'd'elete
	name, to string
	ino      *inode
}

// New returns an empty disk whose faults are drawn from rng.
func New(rng *rand.Rand) *Disk {
	return &Disk{rng: rng, dirs: map[string]bool{}, names: map[string]*inode{}, durableNames: map[string]*inode{}}
}

// Stats returns what the disk did and injected so far.
func (d *Disk) Stats() Stats { return d.stats }

// TakeElapsed returns the time the operations since the last call took,
// and starts counting again.
func (d *Disk) TakeElapsed() time.Duration {
	e := d.elapsed
	d.elapsed = 0
	return e
}

// AddElapsed adds d to the time counted since the last TakeElapsed.
func (d *Disk) AddElapsed(t time.Duration) { d.elapsed += t }

// Used is the number of bytes in files.
func (d *Disk) Used() int64 { return d.used }

func (d *Disk) spend(lat time.Duration) {
	if d.Faults.SlowOp > 0 && d.rng.Float64() < d.Faults.SlowOp {
		lat *= slowdown
	}
	d.elapsed += lat
}

// CrashAfter arms a crash inside the n-th mutating operation from now
// (n ≥ 1): that operation happens in part or not at all, then every
// operation fails with ErrCrashed and OnCrash is called.
func (d *Disk) CrashAfter(n int) { d.countdown = max(n, 1) }

// Disarm cancels an armed crash.
func (d *Disk) Disarm() { d.countdown = 0 }

// Crashed reports whether the machine crashed (and has not recovered).
func (d *Disk) Crashed() bool { return d.crashed }

// Crash crashes the machine now, between operations.
func (d *Disk) Crash() {
	if !d.crashed {
		d.crashed = true
		d.countdown = 0
		d.stats.Crashes++
	}
}

// tick counts a mutating operation toward an armed crash; it reports
// whether the crash happens in this one.
func (d *Disk) tick() bool {
	if d.countdown == 0 {
		return false
	}
	d.countdown--
	if d.countdown > 0 {
		return false
	}
	d.Crash()
	if d.OnCrash != nil {
		d.OnCrash()
	}
	return true
}

// Recover brings the machine back after a crash: the files become what
// the disk kept (see the package comment).
func (d *Disk) Recover() {
	if !d.crashed {
		return
	}
	names := maps.Clone(d.durableNames)
	for _, op := range d.nsOps[:d.rng.Intn(len(d.nsOps)+1)] {
		switch op.kind {
		case 'c':
			names[op.name] = op.ino
		case 'r':
			if ino, ok := names[op.name]; ok {
				delete(names, op.name)
				names[op.to] = ino
			}
		case 'd':
			delete(names, op.name)
		}
	}
	seen := map[*inode]bool{}
	d.used = 0
	for _, n := range slices.Sorted(maps.Keys(names)) {
		ino := names[n]
		if !seen[ino] {
			seen[ino] = true
			d.settle(ino)
		}
		d.used += int64(len(ino.data))
	}
	d.names = names
	d.durableNames = maps.Clone(names)
	d.nsOps = nil
	d.crashed = false
}

// settle makes an inode what a crash leaves of it: its durable content
// plus a random prefix of its pending writes, the last one maybe torn.
func (d *Disk) settle(ino *inode) {
	data := slices.Clone(ino.durable)
	k := d.rng.Intn(len(ino.pending) + 1)
	for i, w := range ino.pending[:k] {
		if w.truncate {
			data = resize(data, w.off)
			continue
		}
		b := w.data
		if i == k-1 && len(b) > 1 && d.rng.Intn(2) == 0 {
			cut := d.rng.Intn(len(b))
			d.stats.TornWrites++
			if d.Faults.TornZeros > 0 && d.rng.Float64() < d.Faults.TornZeros {
				b = append(slices.Clone(b[:cut]), make([]byte, len(b)-cut)...)
			} else {
				b = b[:cut]
			}
		}
		data = writeAt(data, b, w.off)
	}
	ino.data, ino.durable, ino.pending = data, slices.Clone(data), nil
}

func resize(b []byte, size int64) []byte {
	if int64(len(b)) >= size {
		return b[:size]
	}
	return append(b, make([]byte, size-int64(len(b)))...)
}

func writeAt(b, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(b)) {
		b = resize(b, end)
	}
	copy(b[off:], p)
	return b
}

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

func (d *Disk) check(op, name string) error {
	if d.crashed {
		return pathErr(op, name, ErrCrashed)
	}
	return nil
}

// corrupt returns b, or a copy of it with one bit flipped.
func (d *Disk) corrupt(b []byte) []byte {
	if len(b) == 0 || d.Faults.CorruptRead == 0 || d.rng.Float64() >= d.Faults.CorruptRead {
		return b
	}
	d.stats.CorruptReads++
	c := slices.Clone(b)
	c[d.rng.Intn(len(c))] ^= 1 << d.rng.Intn(8)
	return c
}

// MkdirAll implements vfs.FS.
func (d *Disk) MkdirAll(dir string) error {
	if err := d.check("mkdir", dir); err != nil {
		return err
	}
	for p := filepath.Clean(dir); p != "." && p != "/" && !d.dirs[p]; p = filepath.Dir(p) {
		d.dirs[p] = true
	}
	return nil
}

// ReadDir implements vfs.FS.
func (d *Disk) ReadDir(dir string) ([]string, error) {
	if err := d.check("readdir", dir); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	if !d.dirs[dir] {
		return nil, pathErr("readdir", dir, fs.ErrNotExist)
	}
	var out []string
	for n := range d.names {
		if filepath.Dir(n) == dir {
			out = append(out, filepath.Base(n))
		}
	}
	slices.Sort(out)
	d.spend(opLatency)
	return out, nil
}

// ReadFile implements vfs.FS.
func (d *Disk) ReadFile(name string) ([]byte, error) {
	if err := d.check("open", name); err != nil {
		return nil, err
	}
	ino, ok := d.names[filepath.Clean(name)]
	if !ok {
		return nil, pathErr("open", name, fs.ErrNotExist)
	}
	d.spend(opLatency + time.Duration(len(ino.data))*byteLatency)
	return d.corrupt(slices.Clone(ino.data)), nil
}

// Size implements vfs.FS.
func (d *Disk) Size(name string) (int64, error) {
	if err := d.check("stat", name); err != nil {
		return 0, err
	}
	ino, ok := d.names[filepath.Clean(name)]
	if !ok {
		return 0, pathErr("stat", name, fs.ErrNotExist)
	}
	return int64(len(ino.data)), nil
}

// OpenFile implements vfs.FS.
func (d *Disk) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	if err := d.check("open", name); err != nil {
		return nil, err
	}
	name = filepath.Clean(name)
	if !d.dirs[filepath.Dir(name)] {
		return nil, pathErr("open", name, fs.ErrNotExist)
	}
	ino, ok := d.names[name]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", name, fs.ErrExist)
	case !ok && flag&os.O_CREATE == 0:
		return nil, pathErr("open", name, fs.ErrNotExist)
	case !ok:
		if d.tick() {
			return nil, pathErr("open", name, ErrCrashed)
		}
		ino = &inode{}
		d.names[name] = ino
		d.nsOps = append(d.nsOps, nsOp{kind: 'c', name: name, ino: ino})
	}
	d.spend(opLatency)
	writable := flag&(os.O_WRONLY|os.O_RDWR) != 0
	f := &file{d: d, ino: ino, name: name, writable: writable, readable: flag&os.O_WRONLY == 0}
	if ok && flag&os.O_TRUNC != 0 && writable {
		if err := f.Truncate(0); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Remove implements vfs.FS.
func (d *Disk) Remove(name string) error {
	if err := d.check("remove", name); err != nil {
		return err
	}
	name = filepath.Clean(name)
	ino, ok := d.names[name]
	if !ok {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	if d.tick() && d.rng.Intn(2) == 0 {
		return pathErr("remove", name, ErrCrashed)
	}
	delete(d.names, name)
	d.used -= int64(len(ino.data))
	d.nsOps = append(d.nsOps, nsOp{kind: 'd', name: name})
	d.spend(opLatency)
	if d.crashed {
		return pathErr("remove", name, ErrCrashed)
	}
	return nil
}

// Rename implements vfs.FS.
func (d *Disk) Rename(oldname, newname string) error {
	if err := d.check("rename", oldname); err != nil {
		return err
	}
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	ino, ok := d.names[oldname]
	if !ok {
		return pathErr("rename", oldname, fs.ErrNotExist)
	}
	if d.tick() && d.rng.Intn(2) == 0 {
		return pathErr("rename", oldname, ErrCrashed)
	}
	if old, ok := d.names[newname]; ok {
		d.used -= int64(len(old.data))
	}
	delete(d.names, oldname)
	d.names[newname] = ino
	d.nsOps = append(d.nsOps, nsOp{kind: 'r', name: oldname, to: newname})
	d.spend(opLatency)
	if d.crashed {
		return pathErr("rename", oldname, ErrCrashed)
	}
	return nil
}

// SyncDir implements vfs.FS.
func (d *Disk) SyncDir(dir string) error {
	if err := d.check("sync", dir); err != nil {
		return err
	}
	if d.tick() {
		return pathErr("sync", dir, ErrCrashed)
	}
	d.spend(syncLatency)
	dir = filepath.Clean(dir)
	// Directory changes reach the disk in order: the synced directory's
	// changes and every change before the last of them.
	last := -1
	for i, op := range d.nsOps {
		if filepath.Dir(op.name) == dir || (op.to != "" && filepath.Dir(op.to) == dir) {
			last = i
		}
	}
	for _, op := range d.nsOps[:last+1] {
		switch op.kind {
		case 'c':
			d.durableNames[op.name] = op.ino
		case 'r':
			if ino, ok := d.durableNames[op.name]; ok {
				delete(d.durableNames, op.name)
				d.durableNames[op.to] = ino
			}
		case 'd':
			delete(d.durableNames, op.name)
		}
	}
	d.nsOps = d.nsOps[last+1:]
	return nil
}

// file is an open file of a Disk.
type file struct {
	d                  *Disk
	ino                *inode
	name               string
	pos                int64
	readable, writable bool
	closed             bool
}

func (f *file) check(op string) error {
	if f.closed {
		return pathErr(op, f.name, fs.ErrClosed)
	}
	return f.d.check(op, f.name)
}

// ReadAt implements vfs.File.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if !f.readable {
		return 0, pathErr("read", f.name, syscall.EBADF)
	}
	data := f.ino.data
	if off >= int64(len(data)) {
		return 0, io.EOF
	}
	n := copy(p, f.d.corrupt(data[off:min(int64(len(data)), off+int64(len(p)))]))
	f.d.spend(opLatency + time.Duration(n)*byteLatency)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt implements vfs.File.
func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if err := f.check("write"); err != nil {
		return 0, err
	}
	if !f.writable {
		return 0, pathErr("write", f.name, syscall.EBADF)
	}
	d := f.d
	n := len(p)
	var err error
	if cap := d.Faults.Capacity; cap > 0 {
		grow := max(0, off+int64(n)-int64(len(f.ino.data)))
		if room := cap - d.used; grow > room {
			d.stats.FullWrites++
			n = max(0, n-int(grow-max(room, 0)))
			err = pathErr("write", f.name, syscall.ENOSPC)
		}
	}
	if d.tick() {
		// Crashed in the middle of the write: part of it reached the cache.
		n = d.rng.Intn(n + 1)
		err = pathErr("write", f.name, ErrCrashed)
	}
	before := int64(len(f.ino.data))
	f.ino.data = writeAt(f.ino.data, p[:n], off)
	f.ino.pending = append(f.ino.pending, write{off: off, data: slices.Clone(p[:n])})
	d.used += int64(len(f.ino.data)) - before
	d.stats.Writes++
	d.spend(opLatency + time.Duration(n)*byteLatency)
	return n, err
}

// Write implements vfs.File.
func (f *file) Write(p []byte) (int, error) {
	n, err := f.WriteAt(p, f.pos)
	f.pos += int64(n)
	return n, err
}

// Truncate implements vfs.File.
func (f *file) Truncate(size int64) error {
	if err := f.check("truncate"); err != nil {
		return err
	}
	if !f.writable {
		return pathErr("truncate", f.name, syscall.EBADF)
	}
	if f.d.tick() && f.d.rng.Intn(2) == 0 {
		return pathErr("truncate", f.name, ErrCrashed)
	}
	before := int64(len(f.ino.data))
	f.ino.data = resize(f.ino.data, size)
	f.ino.pending = append(f.ino.pending, write{off: size, truncate: true})
	f.d.used += int64(len(f.ino.data)) - before
	f.d.spend(opLatency)
	if f.d.crashed {
		return pathErr("truncate", f.name, ErrCrashed)
	}
	return nil
}

// Sync implements vfs.File.
func (f *file) Sync() error {
	if err := f.check("sync"); err != nil {
		return err
	}
	d := f.d
	if d.tick() {
		return pathErr("sync", f.name, ErrCrashed)
	}
	d.stats.Syncs++
	d.spend(syncLatency)
	if d.Faults.SyncFail > 0 && d.rng.Float64() < d.Faults.SyncFail {
		// What the sync was to make durable stays volatile; the caller
		// cannot know how much of it reached the disk.
		d.stats.FailedSyncs++
		return pathErr("sync", f.name, syscall.EIO)
	}
	f.ino.sync()
	return nil
}

// Datasync implements vfs.File. fdatasync(2) makes the data durable and
// the file's size with it (the metadata a read of the data needs), so in
// this model it is Sync; what it saves on a real disk is time.
func (f *file) Datasync() error { return f.Sync() }

// Close implements vfs.File.
func (f *file) Close() error {
	if f.closed {
		return pathErr("close", f.name, fs.ErrClosed)
	}
	f.closed = true
	return nil
}

// Files lists the files the running system sees, for tests and summaries.
func (d *Disk) Files() []string {
	var out []string
	for n := range d.names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// String describes the disk in one line.
func (d *Disk) String() string {
	var b strings.Builder
	b.WriteString("simdisk:")
	for _, n := range d.Files() {
		ino := d.names[n]
		b.WriteString(" " + filepath.Base(n))
		if len(ino.pending) > 0 {
			b.WriteString("*")
		}
	}
	return b.String()
}
