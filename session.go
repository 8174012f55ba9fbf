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
	failed int           // lines recorded although they failed (time passed)
}

// notRecorded are the commands a replay must not repeat.
var notRecorded = map[string]bool{"save": true, "play": true, "pause": true, "exit": true, "web": true}

// before is called before a command runs, at session time at.
func (s *session) before(at time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at > s.lastAt {
		s.lines = append(s.lines, runLines(at-s.lastAt)...)
	}
}

// runLines lets d pass in "run" lines no longer than a run may be.
func runLines(d time.Duration) []string {
	var out []string
	for d > 0 {
		step := min(d, maxRun)
		out = append(out, "run "+step.String())
		d -= step
	}
	return out
}

// after is called once the command ran, at session time at; failed says
// it printed an error, skip that it did nothing (refused at once).
func (s *session) after(line string, at time.Duration, failed, skip bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !skip {
		s.lines = append(s.lines, strings.TrimSpace(line))
		if failed {
			s.failed++
		}
	}
	s.lastAt = at
}

// write saves the session as a script for "-sim -script FILE", and says
// how to replay it.
func (s *session) write(path string, seed int64, now time.Duration) (lines int, replay string, err error) {
	s.mu.Lock()
	all := append([]string(nil), s.lines...)
	if now > s.lastAt {
		all = append(all, runLines(now-s.lastAt)...)
	}
	failed := s.failed
	s.mu.Unlock()
	replay = "go run . -sim -script " + path
	if failed > 0 {
		// Lines that failed but took time (a write without a majority)
		// are replayed too, and fail again: the replay must go on.
		replay = "go run . -sim -keep-going -script " + path
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# A raft-consensus session in virtual time; replay it with\n#   %s\n", replay)
	fmt.Fprintf(&b, "seed %d\n", seed)
	for _, l := range all {
		b.WriteString(l + "\n")
	}
	return len(all), replay, os.WriteFile(path, []byte(b.String()), 0o644)
}
