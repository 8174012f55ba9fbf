package simdisk

import (
	"errors"
	"math/rand"
	"os"
	"syscall"
	"testing"
)

func newDisk(seed int64) *Disk {
	d := New(rand.New(rand.NewSource(seed)))
	d.MkdirAll("/n")
	return d
}

func mustWrite(t *testing.T, f interface {
	WriteAt([]byte, int64) (int, error)
}, s string, off int64) {
	t.Helper()
	if _, err := f.WriteAt([]byte(s), off); err != nil {
		t.Fatal(err)
	}
}

// TestSyncedDataSurvivesCrash: what was synced, file and directory, is
// there after every crash; what was not may be lost, in part, or torn.
func TestSyncedDataSurvivesCrash(t *testing.T) {
	sawLoss, sawKeep := false, false
	for seed := int64(1); seed <= 200; seed++ {
		d := newDisk(seed)
		f, err := d.OpenFile("/n/a", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, "hello", 0)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := d.SyncDir("/n"); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, " world", 5)
		d.Crash()
		if _, err := d.ReadFile("/n/a"); !errors.Is(err, ErrCrashed) {
			t.Fatalf("a crashed disk answered: %v", err)
		}
		d.Recover()
		b, err := d.ReadFile("/n/a")
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		if len(got) < 5 || got[:5] != "hello" || len(got) > 11 || got != "hello world"[:len(got)] {
			t.Fatalf("seed %d: after a crash the file holds %q", seed, got)
		}
		if got == "hello" {
			sawLoss = true
		}
		if got == "hello world" {
			sawKeep = true
		}
	}
	if !sawLoss || !sawKeep {
		t.Errorf("unsynced data always lost (%v) or always kept (%v): not a random prefix", !sawKeep, !sawLoss)
	}
}

// TestUnsyncedDirectoryEntryMayVanish: a new file whose directory was not
// synced is sometimes gone after a crash, even if the file was synced.
func TestUnsyncedDirectoryEntryMayVanish(t *testing.T) {
	gone, kept := 0, 0
	for seed := int64(1); seed <= 100; seed++ {
		d := newDisk(seed)
		f, _ := d.OpenFile("/n/b", os.O_RDWR|os.O_CREATE, 0o640)
		mustWrite(t, f, "x", 0)
		f.Sync()
		d.Crash()
		d.Recover()
		if _, err := d.ReadFile("/n/b"); err != nil {
			gone++
		} else {
			kept++
		}
	}
	if gone == 0 || kept == 0 {
		t.Errorf("gone %d, kept %d: want both", gone, kept)
	}
}

func TestDiskFull(t *testing.T) {
	d := newDisk(1)
	d.Faults.Capacity = 10
	f, _ := d.OpenFile("/n/c", os.O_RDWR|os.O_CREATE, 0o640)
	n, err := f.WriteAt([]byte("0123456789abc"), 0)
	if n != 10 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("wrote %d, %v; want 10 and ENOSPC", n, err)
	}
}

func TestSyncFailureKeepsDataVolatile(t *testing.T) {
	d := newDisk(3)
	d.Faults.SyncFail = 1
	f, _ := d.OpenFile("/n/d", os.O_RDWR|os.O_CREATE, 0o640)
	d.Faults.SyncFail = 0
	d.SyncDir("/n")
	d.Faults.SyncFail = 1
	mustWrite(t, f, "data", 0)
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("sync: %v, want EIO", err)
	}
	if d.ino("/n/d").pending == nil {
		t.Fatal("a failed sync made the data durable")
	}
}

func TestArmedCrashHappensInsideTheOperation(t *testing.T) {
	d := newDisk(5)
	crashed := false
	d.OnCrash = func() { crashed = true }
	f, _ := d.OpenFile("/n/e", os.O_RDWR|os.O_CREATE, 0o640)
	d.CrashAfter(2)
	mustWrite(t, f, "first", 0)
	if _, err := f.WriteAt([]byte("second"), 5); !errors.Is(err, ErrCrashed) || !crashed || !d.Crashed() {
		t.Fatalf("second write: %v, crashed %v", err, crashed)
	}
	if err := f.Sync(); !errors.Is(err, ErrCrashed) {
		t.Fatalf("sync after the crash: %v", err)
	}
}

func TestCorruptReadLeavesTheDiskIntact(t *testing.T) {
	d := newDisk(7)
	f, _ := d.OpenFile("/n/f", os.O_RDWR|os.O_CREATE, 0o640)
	mustWrite(t, f, "payload", 0)
	d.Faults.CorruptRead = 1
	b, _ := d.ReadFile("/n/f")
	if string(b) == "payload" {
		t.Fatal("no bit flipped")
	}
	d.Faults.CorruptRead = 0
	if b, _ := d.ReadFile("/n/f"); string(b) != "payload" {
		t.Fatalf("the disk itself changed: %q", b)
	}
}

func (d *Disk) ino(name string) *inode { return d.names[name] }
