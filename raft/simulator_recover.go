package raft

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"
)

// recovery is what a data directory holds: the servers with storage, the
// configuration of the most up-to-date log (a server uses the last one in
// its log, thesis §4.1), and so the servers to start and those to leave
// out (removed from the configuration, or never added to it).
type recovery struct {
	found   []int
	config  core.Configuration
	members []int // found and in the configuration: the servers to start
	left    []int // found, not in the configuration
}

// readDataDir reads every server's storage under dir.
func readDataDir(dir string) (recovery, error) {
	var rec recovery
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return rec, nil
	}
	if err != nil {
		return rec, fmt.Errorf("data directory %s: %w", dir, err)
	}
	// The configuration is the latest one in the most up-to-date log (by
	// last term, then last index: §5.4.1's order), the log a new leader
	// would have: a deposed leader's uncommitted change loses to it.
	var best struct{ term, index uint64 }
	haveConfig := false
	for _, e := range entries {
		idStr, ok := strings.CutPrefix(e.Name(), "node-")
		id, err := strconv.Atoi(idStr)
		if !ok || !e.IsDir() || err != nil || id < 0 || strconv.Itoa(id) != idStr {
			continue
		}
		nodeDir := filepath.Join(dir, e.Name())
		if files, _ := os.ReadDir(nodeDir); len(files) == 0 {
			continue
		}
		rec.found = append(rec.found, id)
		st, err := storage.OpenDiskStorage(nodeDir, storage.DiskOptions{})
		if err != nil {
			return rec, fmt.Errorf("node %d's storage in %s: %w", id, nodeDir, err)
		}
		_, snap, ents, err := st.Load()
		st.Close()
		if err != nil {
			return rec, fmt.Errorf("node %d's storage in %s: %w", id, nodeDir, err)
		}
		var cfg core.Configuration
		found := false
		var lastTerm, lastIndex uint64
		if snap != nil {
			cfg, found = snap.Config, true
			lastTerm, lastIndex = snap.LastIncludedTerm, snap.LastIncludedIndex
		}
		for _, ent := range ents {
			lastTerm, lastIndex = ent.Term, ent.Index
			if ent.Type != core.EntryConfig {
				continue
			}
			if c, err := core.DecodeConfiguration(ent.Data); err == nil {
				cfg, found = c, true
			}
		}
		upToDate := lastTerm > best.term || (lastTerm == best.term && lastIndex > best.index)
		if found && (!haveConfig || upToDate) {
			rec.config, haveConfig = cfg, true
		}
		if upToDate {
			best.term, best.index = lastTerm, lastIndex
		}
	}
	slices.Sort(rec.found)
	if !haveConfig {
		rec.config = core.Configuration{Voters: rec.found} // nothing stored yet but the founding
	}
	for _, id := range rec.found {
		if rec.config.IsMember(id) {
			rec.members = append(rec.members, id)
		} else {
			rec.left = append(rec.left, id)
		}
	}
	if len(rec.found) > 0 {
		for _, id := range rec.config.Members() {
			if !slices.Contains(rec.found, id) {
				return rec, fmt.Errorf("data directory %s: the stored configuration (%v) names node %d, whose storage is not there: put it back, or use another directory", dir, rec.config, id)
			}
		}
	}
	return rec, nil
}

// note says what was recovered, for the user.
func (rec recovery) note(dir string) string {
	if len(rec.found) == 0 {
		return ""
	}
	msg := fmt.Sprintf("the stored configuration: %v", rec.config) // the nodes are named beside it
	if len(rec.left) > 0 {
		msg += fmt.Sprintf("; not started: nodes %s, which the configuration does not hold (removed; their storage stays in %s)", cluster.IDRange(rec.left), dir)
	}
	return msg
}
