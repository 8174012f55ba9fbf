package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"raft-consensus/raft/storage/vfs"
)

// identity is what a data dir says about whose it is: written at its first
// start, checked at every later one, so that a node never starts on
// another node's (or another cluster's) log.
type identity struct {
	Cluster string `json:"cluster"`
	Node    int    `json:"node"`
	// Joined: the node was started to join a running cluster; it never
	// bootstraps a configuration of its own, even on an empty log.
	Joined bool `json:"joined,omitempty"`
	// Groups is the number of Raft groups the node hosts (0: one, the
	// single-group server); keys map to groups by it, so it never changes.
	Groups int `json:"groups,omitempty"`
}

const (
	identityFile = "identity.json"
	peersFile    = "peers.json"
	lockFile     = "LOCK"
	raftDir      = "raft"
)

// checkIdentity reads dir's identity, or writes want there if it has none.
func checkIdentity(dir string, want identity) (identity, error) {
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		// A log without the identity that says whose it is: starting would
		// bootstrap a new configuration over it.
		if holdsLog(dir) {
			return identity{}, fmt.Errorf("data dir %s holds a log but no %s: not a node's data dir, or damaged", dir, identityFile)
		}
		return want, writeJSON(path, want)
	}
	if err != nil {
		return identity{}, err
	}
	var got identity
	if err := json.Unmarshal(b, &got); err != nil {
		return identity{}, fmt.Errorf("%s: %v", path, err)
	}
	switch {
	case got.Cluster != want.Cluster:
		return got, fmt.Errorf("data dir %s belongs to cluster %q, not %q", dir, got.Cluster, want.Cluster)
	case got.Node != want.Node:
		return got, fmt.Errorf("data dir %s belongs to node %d, not node %d", dir, got.Node, want.Node)
	case got.Groups != want.Groups:
		return got, fmt.Errorf("data dir %s belongs to a node of %s, not %s: keys map to groups by their number, so it cannot change",
			dir, groupsWord(got.Groups), groupsWord(want.Groups))
	}
	return got, nil
}

// holdsLog says whether dir holds either log: one group's, or the shared
// log of many.
func holdsLog(dir string) bool {
	for _, log := range []string{raftDir, groupsDir} {
		if entries, _ := os.ReadDir(filepath.Join(dir, log)); len(entries) > 0 {
			return true
		}
	}
	return false
}

// readPeers reads the address book a node saved (nil if none).
func readPeers(dir string) (map[int]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, peersFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var book map[int]string
	if err := json.Unmarshal(b, &book); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, peersFile), err)
	}
	return book, nil
}

// writeJSON writes v to path atomically and durably (a temporary file,
// synced, renamed, and the directory synced so that the rename survives
// a power loss).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return vfs.OS{}.SyncDir(filepath.Dir(path))
}

// ParsePeers parses "0=host:port,1=host:port,…".
func ParsePeers(s string) (map[int]string, error) {
	book := map[int]string{}
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no peers (want id=host:port,…)")
	}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("peer %q: want id=host:port", part)
		}
		n, err := strconv.Atoi(id)
		if err != nil || n < 0 || n > MaxNodeID {
			return nil, fmt.Errorf("peer %q: the id must be a number from 0 to %d", part, MaxNodeID)
		}
		if _, dup := book[n]; dup {
			return nil, fmt.Errorf("node id %d is listed twice in the peers", n)
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			return nil, fmt.Errorf("peer %q: the address must be host:port", part)
		}
		book[n] = addr
	}
	return book, nil
}

// FormatPeers is ParsePeers' inverse, in id order.
func FormatPeers(book map[int]string) string {
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(book)) {
		parts = append(parts, fmt.Sprintf("%d=%s", id, book[id]))
	}
	return strings.Join(parts, ",")
}

// MaxNodeID is the largest node id.
const MaxNodeID = 999

// splitAddr checks that addr is host:port.
func splitAddr(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil || port == "" {
		return "", "", fmt.Errorf("address %q: want host:port", addr)
	}
	return host, port, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// groupsWord says how many groups a node of identity.Groups g hosts.
func groupsWord(g int) string {
	if g <= 1 {
		return "one group"
	}
	return strconv.Itoa(g) + " groups"
}
