package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// session records what a virtual-time session did, so that "save" can
// write a script that replays it exactly: the seed, then every command
// typed, with "run D" inserted wherever virtual time passed between two
// commands (while the cluster played). Play and pause themselves are
// left out: the runs say what they did.
type session struct {
	mu     sync.Mutex
	lines  []string
	lastAt time.Duration // session time at the end of the last command
}

// notRecorded are the commands a replay must not repeat.
var notRecorded = map[string]bool{"save": true, "play": true, "pause": true, "exit": true, "web": true}

// before is called before a command runs, at session time at.
func (s *session) before(at time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at > s.lastAt {
		s.lines = append(s.lines, "run "+(at-s.lastAt).String())
	}
}

// after is called once the command ran, at session time at.
func (s *session) after(line string, at time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, strings.TrimSpace(line))
	s.lastAt = at
}

// write saves the session as a script for "-sim -script FILE".
func (s *session) write(path string, seed int64, now time.Duration) (int, error) {
	s.mu.Lock()
	lines := append([]string(nil), s.lines...)
	if now > s.lastAt {
		lines = append(lines, "run "+(now-s.lastAt).String())
	}
	s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "# A raft-consensus session in virtual time; replay it with\n#   go run . -sim -script %s\n", path)
	fmt.Fprintf(&b, "seed %d\n", seed)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return len(lines), os.WriteFile(path, []byte(b.String()), 0o644)
}
