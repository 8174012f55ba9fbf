package cluster

import (
	"errors"
	"fmt"
	"time"

	"raft-consensus/raft/core"
)

// Step is what a membership change does next, seen from the leader.
type Step int

const (
	// Propose the change at the leader.
	Propose Step = iota
	// Wait: the change is in the leader's configuration but not committed
	// yet, or the server is a learner the leader will promote once it has
	// caught up (thesis §4.2.1).
	Wait
	// Done: a configuration satisfying the change is committed.
	Done
)

// NextStep decides a change's next step from the leader's summary: done
// says whether a configuration is the one wanted. Both clusters' change
// loops follow it.
func NextStep(t core.ConfChangeType, id int, leader core.Summary, done func(core.Configuration) bool) Step {
	switch {
	case done(leader.Config) && leader.Commit >= leader.ConfigIndex:
		return Done
	case done(leader.Config):
		return Wait
	case t == core.AddLearner && leader.Config.IsLearner(id):
		return Wait // added (by this call or an earlier one); promoted once caught up
	}
	return Propose
}

// AddFailed says why adding server id failed, and what became of it:
// proposed says whether a leader ever took the change. If none did, the
// change can never commit and the server was taken away; otherwise it may
// still commit and the server stays, joining.
func AddFailed(err error, id int, proposed bool) error {
	if !proposed {
		return fmt.Errorf("%w (node %d was not added)", err, id)
	}
	return fmt.Errorf("%w; the change may still commit: node %d stays, joining (add %d again to wait for it, or remove %d)", err, id, id, id)
}

// NotCommitted is the error of a change that did not commit in time; last
// is the last refusal seen, if any.
func NotCommitted(t core.ConfChangeType, id int, timeout time.Duration, last error) error {
	if last == nil {
		last = ErrTimeout
	}
	return fmt.Errorf("%v %d not committed within %v: %w", t, id, timeout, last)
}

// Refused reports whether a proposal's error ends the change (the server
// cannot be added or removed) rather than asking for a retry (not leader
// any more, a change pending, nothing committed in the term yet).
func Refused(err error) bool { return errors.Is(err, core.ErrBadMember) }
