package raft

import "errors"

// Placeholder until the durable storage lands (branch disk-storage).

type DiskOptions struct{ NoSync bool }

func OpenDiskStorage(dir string, opts DiskOptions) (Storage, error) {
	return nil, errors.New("durable storage not available yet")
}
