package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// Change is a membership change that the clusters' change loops drive to
// commitment: the changes the leader proposes, and what the committed
// configuration must then be.
type Change struct {
	Changes []core.ConfChange
	// Done says whether a configuration is the one wanted.
	Done func(core.Configuration) bool
	// Adds are the servers the change adds.
	Adds []int
	// Staged are servers added first as staged learners, and promoted
	// once they have all caught up, with Removes removed in the same step
	// (MembersChange).
	Staged, Removes []int
}

// Taken reports whether a leader's configuration shows that some log
// holds the change (it names a server the change adds): the change may
// then commit, even if no proposal was seen to succeed (a reply lost to a
// timeout), and the servers it started must stay.
func (ch Change) Taken(cfg core.Configuration) bool {
	return slices.ContainsFunc(ch.Adds, cfg.IsMember)
}

// AddChange adds server id: as a learner, which the leader promotes once
// it has caught up (thesis §4.2.1).
func AddChange(id int) Change {
	return Change{
		Changes: []core.ConfChange{{Type: core.AddLearner, ID: id}},
		Done:    func(cfg core.Configuration) bool { return cfg.IsVoter(id) },
		Adds:    []int{id},
	}
}

// RemoveChange removes server id.
func RemoveChange(id int) Change {
	return Change{
		Changes: []core.ConfChange{{Type: core.RemoveServer, ID: id}},
		Done:    func(cfg core.Configuration) bool { return !cfg.IsMember(id) },
	}
}

// MembersChange adds the servers adds as voters and removes the servers
// removes, in one step: through a joint configuration when more than one
// voter changes (Raft paper §6). The new servers join as staged learners
// first (the paper's non-voting members), so that the step waits for no
// server to catch up: it comes once the leader reports every one of them
// ready. It is done once the configuration without the outgoing voters is
// committed.
func MembersChange(adds, removes []int) Change {
	var changes []core.ConfChange
	for _, id := range adds {
		changes = append(changes, core.ConfChange{Type: core.AddVoter, ID: id})
	}
	for _, id := range removes {
		changes = append(changes, core.ConfChange{Type: core.RemoveServer, ID: id})
	}
	adds, removes = slices.Clone(adds), slices.Clone(removes)
	return Change{Changes: changes, Adds: adds, Staged: adds, Removes: removes, Done: func(cfg core.Configuration) bool {
		if cfg.IsJoint() {
			return false
		}
		for _, id := range adds {
			if !cfg.IsVoter(id) {
				return false
			}
		}
		for _, id := range removes {
			if cfg.IsMember(id) {
				return false
			}
		}
		return true
	}}
}

func (ch Change) String() string {
	parts := make([]string, len(ch.Changes))
	for i, c := range ch.Changes {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// NextStep decides a change's next step from the leader's summary, and
// what to propose when it is Propose. Every cluster's change loop follows
// it.
func NextStep(ch Change, leader core.Summary) (Step, []core.ConfChange) {
	cfg := leader.Config
	switch {
	case ch.Done(cfg) && leader.Commit >= leader.ConfigIndex:
		return Done, nil
	case ch.Done(cfg):
		return Wait, nil
	case cfg.IsJoint():
		return Wait, nil // the leader leaves it by itself; then the change is done, or can be proposed
	case len(ch.Changes) == 1 && ch.Changes[0].Type == core.AddLearner && cfg.IsStaged(ch.Changes[0].ID):
		// Staged by a change that did not finish: promoted once ready.
		id := ch.Changes[0].ID
		if !slices.Contains(leader.Ready, id) {
			return Wait, nil
		}
		return Propose, []core.ConfChange{{Type: core.PromoteLearner, ID: id}}
	case len(ch.Changes) == 1 && ch.Changes[0].Type == core.AddLearner && cfg.IsLearner(ch.Changes[0].ID):
		return Wait, nil // added (by this call or an earlier one); promoted once caught up
	case len(ch.Staged) == 0:
		return Propose, ch.Changes
	}
	// The learner stage (Raft paper §6, thesis §4.2.1): first the servers
	// not yet members join as staged learners, in one entry (learners
	// change no majority); once the leader reports them all caught up, one
	// entry promotes them and removes the others.
	var stage []core.ConfChange
	for _, id := range ch.Staged {
		if !cfg.IsMember(id) {
			stage = append(stage, core.ConfChange{Type: core.AddStagedLearner, ID: id})
		}
	}
	if len(stage) > 0 {
		return Propose, stage
	}
	var final []core.ConfChange
	for _, id := range ch.Staged {
		if cfg.IsLearner(id) {
			if !slices.Contains(leader.Ready, id) || leader.Commit < leader.ConfigIndex {
				return Wait, nil // still catching up, or its staging not committed yet
			}
			final = append(final, core.ConfChange{Type: core.PromoteLearner, ID: id})
		}
	}
	for _, id := range ch.Removes {
		if cfg.IsMember(id) {
			final = append(final, core.ConfChange{Type: core.RemoveServer, ID: id})
		}
	}
	if len(final) == 0 {
		return Wait, nil
	}
	return Propose, final
}

// ChangeRun is what Drive needs of a cluster to carry a change through:
// every cluster's change loop is Drive with its own ways to reach the
// leader and to let time pass.
type ChangeRun struct {
	// Leader is the leader to ask now and its summary; ok false: none is
	// known at the moment.
	Leader func() (id int, sum core.Summary, ok bool)
	// Propose proposes changes at the leader id: nil if it took them, an
	// error Refused reports when the change cannot be made (it ends the
	// change), any other to try again.
	Propose func(id int, changes []core.ConfChange) error
	// Wait lets time pass before the next look: nil to go on, ErrTimeout
	// when the change's time is up, any other error to stop with it (an
	// interrupt).
	Wait func() error
	// Up, if set, reports whether server id is running and reachable, so
	// that a removal that would leave no majority of the remaining voters
	// up is refused before it is proposed (CheckUpMajority).
	Up func(id int) bool
}

// UpFrom is a ChangeRun.Up from one look at the servers' status (taken
// when first asked): running (answering) and not disconnected.
func UpFrom(status func() []NodeStatus) func(id int) bool {
	var up map[int]bool
	return func(id int) bool {
		if up == nil {
			up = map[int]bool{}
			for _, st := range status() {
				up[st.ID] = st.Alive && st.Connected
			}
		}
		return up[id]
	}
}

// CheckUpMajority refuses a change that removes servers when the voters it
// would leave have no majority up, though the voters now have one: the
// removal could not commit (a server uses a configuration as soon as it is
// in its log, thesis §4.1, so the entry needs a majority of the new
// voters), and the group would stop until enough of them came back.
// "remove 0" with node 2 down in a cluster of three left every group of a
// newcomer's trial without a leader.
func CheckUpMajority(ch Change, cfg core.Configuration, up func(int) bool) error {
	removes := slices.Clone(ch.Removes)
	for _, cc := range ch.Changes {
		if cc.Type == core.RemoveServer && !slices.Contains(removes, cc.ID) {
			removes = append(removes, cc.ID)
		}
	}
	if len(removes) == 0 || up == nil {
		return nil
	}
	var after, down []int
	for _, id := range append(slices.Clone(cfg.AllVoters()), ch.Adds...) {
		if !slices.Contains(removes, id) && !slices.Contains(after, id) {
			after = append(after, id)
		}
	}
	for _, id := range after {
		if !up(id) {
			down = append(down, id)
		}
	}
	if len(after) == 0 || 2*(len(after)-len(down)) > len(after) {
		return nil
	}
	// Where the voters have no majority up already, nothing commits now
	// either: the removal waits, shown as leaving, like any other write.
	upBefore, before := 0, cfg.AllVoters()
	for _, id := range before {
		if up(id) {
			upBefore++
		}
	}
	if 2*upBefore <= len(before) {
		return nil
	}
	what := "node " + strconv.Itoa(down[0]) + " is"
	if len(down) > 1 {
		what = "nodes " + IDRange(down) + " are"
	}
	return Refusal(fmt.Sprintf("removing %s would leave voters %s, of which %s down: no majority of them could commit the change, and the group would stop until they are back — restart or reconnect them first",
		IDRange(removes), IDRange(after), what))
}

// Drive proposes ch at whichever server leads, step by step as NextStep
// plans, retrying while the leader is unknown or busy with a previous
// change, until a leader has committed the configuration ch wants.
// proposed says whether a leader ever took the change (if not, it cannot
// commit later); timeout is the change's time, for the error.
func Drive(ch Change, timeout time.Duration, run ChangeRun) (proposed bool, err error) {
	var last error
	for {
		if id, sum, ok := run.Leader(); ok {
			if ch.Taken(sum.Config) {
				proposed = true
			}
			switch step, changes := NextStep(ch, sum); step {
			case Done:
				return proposed, nil
			case Propose:
				if !proposed {
					if err := CheckUpMajority(ch, sum.Config, run.Up); err != nil {
						return false, err
					}
				}
				switch perr := run.Propose(id, changes); {
				case perr == nil:
					proposed = true
				case Refused(perr):
					return proposed, perr
				default:
					last = perr // retry
				}
			}
		}
		if werr := run.Wait(); errors.Is(werr, ErrTimeout) {
			return proposed, NotCommitted(ch, timeout, last)
		} else if werr != nil {
			return proposed, werr
		}
	}
}

// Refusal is the error of a change a server refused, told by message only
// (across processes): Refused reports it.
func Refusal(msg string) error { return refusal(msg) }

type refusal string

func (r refusal) Error() string        { return string(r) }
func (r refusal) Is(target error) bool { return target == core.ErrBadMember }

// CheckMembersChange says what is wrong with a change of several members
// (the REPL's change command) against the configuration cfg, before any
// server is started for it: every id in range and named once, the added
// not members, the removed members, at least one voter left, at most
// MaxNodes servers.
func CheckMembersChange(cfg core.Configuration, adds, removes []int, maxID int) error {
	if len(adds)+len(removes) == 0 {
		return errors.New("no change given: name servers to add (+3) or remove (-0)")
	}
	named := map[int]bool{}
	for _, id := range append(slices.Clone(adds), removes...) {
		switch {
		case id < 0 || id > maxID:
			return fmt.Errorf("node id %d is out of range (0–%d)", id, maxID)
		case named[id]:
			return fmt.Errorf("node %d is named twice", id)
		}
		named[id] = true
	}
	for _, id := range adds {
		if cfg.IsMember(id) {
			return fmt.Errorf("node %d is already a member", id)
		}
	}
	voters := 0
	for _, id := range cfg.AllVoters() {
		if !slices.Contains(removes, id) {
			voters++
		}
	}
	for _, id := range removes {
		if !cfg.IsMember(id) {
			return fmt.Errorf("%w: node %d is not a member", ErrNoSuchNode, id)
		}
	}
	if voters+len(adds) == 0 {
		return errors.New("no voter would remain")
	}
	if n := len(cfg.Members()) + len(adds); n > MaxNodes {
		return fmt.Errorf("%w: the cluster would have %d nodes during the change (at most %d)", ErrBadNodeCount, n, MaxNodes)
	}
	return nil
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

// RemoveFailed says why removing server id failed, and what became of it,
// as AddFailed does for an add: a removal a leader took may still commit;
// one none took leaves the server a member.
func RemoveFailed(err error, id int, proposed bool) error {
	switch {
	case Refused(err) || errors.Is(err, ErrInterrupted) && !proposed:
		return err
	case proposed:
		return fmt.Errorf("%w — the removal may still commit once a majority is up and connected (status shows node %d as leaving until then)", err, id)
	}
	return fmt.Errorf("%w — no leader took the removal: node %d is still a member (remove it again once a majority is up)", err, id)
}

// ChangeFailed says why a change of several members failed, and what
// became of the servers it started, as AddFailed does for one.
func ChangeFailed(err error, adds []int, proposed bool) error {
	switch {
	case len(adds) == 0:
		return err
	case !proposed:
		if len(adds) == 1 {
			return fmt.Errorf("%w (node %d was not added)", err, adds[0])
		}
		return fmt.Errorf("%w (nodes %s were not added)", err, IDRange(adds))
	}
	return fmt.Errorf("%w; the change may still commit: nodes %s stay, joining (status shows how it ends; "+
		"one left a learner becomes a voter with add, or leaves with remove)", err, IDRange(adds))
}

// NotCommitted is the error of a change that did not commit in time; last
// is the last refusal seen, if any.
func NotCommitted(ch Change, timeout time.Duration, last error) error {
	if last == nil {
		last = ErrTimeout
	}
	return fmt.Errorf("%v not committed within %v: %w", ch, timeout, last)
}

// Refused reports whether a proposal's error ends the change (the server
// cannot be added or removed) rather than asking for a retry (not leader
// any more, a change pending, nothing committed in the term yet).
func Refused(err error) bool { return errors.Is(err, core.ErrBadMember) }
