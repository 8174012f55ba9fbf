package main

import (
	"os"
	"syscall"
)

// datasync is fdatasync: the data, and metadata only where needed to read it.
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
