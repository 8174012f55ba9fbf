package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeCommandRefusesMisconfiguration: exit status 2 and a message
// saying what is wrong, for each misconfiguration.
func TestNodeCommandRefusesMisconfiguration(t *testing.T) {
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-peers", "0=127.0.0.1:1"}, "-id is required"},
		{[]string{"-id", "0", "-peers", "0=127.0.0.1:1,0=127.0.0.1:2", "-data-dir", dir}, "listed twice"},
		{[]string{"-id", "3", "-peers", "0=127.0.0.1:1", "-data-dir", dir}, "node 3 is not in the peers"},
		{[]string{"-id", "0", "-peers", "0=127.0.0.1:1"}, "a data dir is required"},
		{[]string{"-id", "0", "-peers", "0=" + busy.Addr().String(), "-data-dir", filepath.Join(dir, "d")}, "address already in use"},
		{[]string{"-id", "0", "-peers", "0=127.0.0.1:1", "-data-dir", dir, "-heartbeat", "1s"}, "shorter than the election timeout"},
		{[]string{"-id", "0", "-peers", "0=127.0.0.1:1", "-data-dir", dir, "extra"}, "unexpected argument"},
	} {
		var stderr bytes.Buffer
		if code := runNode(c.args, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("node %v: status %d, %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}

// TestIDFromHostname: a StatefulSet's pod names and compose's service names.
func TestIDFromHostname(t *testing.T) {
	for host, want := range map[string]int{"raft-2": 2, "raft-consensus-node-12.raft.default.svc": 12, "node0": 0} {
		if got, err := idFromHostname(host); err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", host, got, err, want)
		}
	}
	for _, bad := range []string{"raft", "raft-1000", ""} {
		if _, err := idFromHostname(bad); err == nil {
			t.Errorf("%q gave an id", bad)
		}
	}
}

// TestCertsAndHealth: certs writes a CA and the certificates once; health
// of an address where no node listens is unhealthy (status 1).
func TestCertsAndHealth(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := runCerts([]string{"-dir", dir, "-nodes", "2"}, &out, &errOut); code != 0 {
		t.Fatalf("certs: %d %s", code, errOut.String())
	}
	for _, f := range []string{"ca.crt", "ca.key", "node-0.crt", "node-1.key", "client.crt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("certs did not write %s", f)
		}
	}
	out.Reset()
	if code := runCerts([]string{"-dir", dir, "-nodes", "0,1"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "already") {
		t.Errorf("certs again: %d %q", code, out.String())
	}
	if code := runCerts([]string{"-dir", dir, "-nodes", "x"}, &out, &errOut); code != 2 {
		t.Errorf("certs -nodes x: status %d", code)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	out.Reset()
	if code := runHealth([]string{"-addr", addr, "-timeout", "500ms"}, &out, &errOut); code != 1 || !strings.Contains(out.String(), "unhealthy") {
		t.Errorf("health of nobody: %d %q", code, out.String())
	}
}
