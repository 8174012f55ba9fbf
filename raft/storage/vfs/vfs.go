// Package vfs is the file system DiskStorage works on: the operating
// system's (OS), or a simulated disk that injects faults (package
// raft/sim/simdisk). It holds only what the write-ahead log needs.
package vfs

import (
	"io"
	"os"
	"runtime"
	"slices"
)

// FS is a file system.
type FS interface {
	// MkdirAll creates dir and its parents if they do not exist.
	MkdirAll(dir string) error
	// ReadDir lists the names of the regular files in dir, sorted.
	ReadDir(dir string) ([]string, error)
	// ReadFile reads a whole file.
	ReadFile(name string) ([]byte, error)
	// Size returns the size of a file.
	Size(name string) (int64, error)
	// OpenFile opens a file with os.OpenFile's flags (O_RDONLY, O_WRONLY,
	// O_RDWR, O_CREATE, O_EXCL, O_TRUNC).
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Remove removes a file.
	Remove(name string) error
	// Rename renames a file, replacing newname if it exists.
	Rename(oldname, newname string) error
	// SyncDir makes the creation, renaming and removal of files in dir
	// durable.
	SyncDir(dir string) error
}

// File is an open file.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Writer
	Truncate(size int64) error
	// Sync makes what was written durable (fsync).
	Sync() error
	// Datasync makes what was written durable, with only the metadata
	// needed to read it back (fdatasync(2); Sync where the system has
	// none): cheaper than Sync when the writes changed no file size.
	Datasync() error
	Close() error
}

// OS is the operating system's file system.
type OS struct{}

// MkdirAll implements FS.
func (OS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o750) }

// ReadDir implements FS.
func (OS) ReadDir(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, de := range des {
		if de.Type().IsRegular() {
			names = append(names, de.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// ReadFile implements FS.
func (OS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// Size implements FS.
func (OS) Size(name string) (int64, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// OpenFile implements FS.
func (OS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return osFile{f}, nil
}

// osFile is an operating system file with Datasync.
type osFile struct{ *os.File }

// Datasync implements File.
func (f osFile) Datasync() error { return datasync(f.File) }

// Remove implements FS.
func (OS) Remove(name string) error { return os.Remove(name) }

// Rename implements FS.
func (OS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// SyncDir implements FS.
func (OS) SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for syncing there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
