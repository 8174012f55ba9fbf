//go:build !linux

package vfs

import "os"

// datasync falls back to fsync where there is no fdatasync (os.File.Sync
// is F_FULLFSYNC on macOS, FlushFileBuffers on Windows).
func datasync(f *os.File) error { return f.Sync() }
