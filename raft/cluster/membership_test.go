package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"raft-consensus/raft/core"
)

func TestNextStep(t *testing.T) {
	add3, remove3 := AddChange(3), RemoveChange(3)
	replace := MembersChange([]int{3, 4}, []int{0, 1})
	cfg := func(voters []int, learners ...int) core.Configuration {
		return core.Configuration{Voters: voters, Learners: learners}
	}
	joint := core.Configuration{Voters: []int{2, 3, 4}, Outgoing: []int{0, 1, 2}}
	staged := core.Configuration{Voters: []int{0, 1, 2}, Learners: []int{3, 4}, Staged: []int{3, 4}}
	addStaged := []core.ConfChange{{Type: core.AddStagedLearner, ID: 3}, {Type: core.AddStagedLearner, ID: 4}}
	promote := []core.ConfChange{{Type: core.PromoteLearner, ID: 3}, {Type: core.PromoteLearner, ID: 4},
		{Type: core.RemoveServer, ID: 0}, {Type: core.RemoveServer, ID: 1}}
	for _, tt := range []struct {
		name     string
		ch       Change
		sum      core.Summary
		want     Step
		proposal []core.ConfChange // when want is Propose; nil: ch.Changes
	}{
		{"add: not there yet", add3, core.Summary{Config: cfg([]int{0, 1, 2}), Commit: 5, ConfigIndex: 1}, Propose, nil},
		// Resuming an add whose learner is already in: wait for the
		// promotion, never propose it again (that is refused).
		{"add: a learner catching up", add3, core.Summary{Config: cfg([]int{0, 1, 2}, 3), Commit: 5, ConfigIndex: 4}, Wait, nil},
		{"add: promoted, not committed", add3, core.Summary{Config: cfg([]int{0, 1, 2, 3}), Commit: 5, ConfigIndex: 6}, Wait, nil},
		{"add: committed", add3, core.Summary{Config: cfg([]int{0, 1, 2, 3}), Commit: 6, ConfigIndex: 6}, Done, nil},
		{"remove: still a member", remove3, core.Summary{Config: cfg([]int{0, 1, 2, 3}), Commit: 6, ConfigIndex: 6}, Propose, nil},
		{"remove: proposed", remove3, core.Summary{Config: cfg([]int{0, 1, 2}), Commit: 6, ConfigIndex: 7}, Wait, nil},
		{"remove: committed", remove3, core.Summary{Config: cfg([]int{0, 1, 2}), Commit: 7, ConfigIndex: 7}, Done, nil},
		// The learner stage of a change of several members (Raft paper §6).
		{"replace: not there yet", replace, core.Summary{Config: cfg([]int{0, 1, 2}), Commit: 5, ConfigIndex: 1}, Propose, addStaged},
		{"replace: one staged already", replace, core.Summary{Config: core.Configuration{Voters: []int{0, 1, 2}, Learners: []int{3}, Staged: []int{3}}, Commit: 5, ConfigIndex: 5},
			Propose, addStaged[1:]},
		{"replace: staged, catching up", replace, core.Summary{Config: staged, Commit: 6, ConfigIndex: 6, Ready: []int{3}}, Wait, nil},
		{"replace: staged and ready, not committed", replace, core.Summary{Config: staged, Commit: 5, ConfigIndex: 6, Ready: []int{3, 4}}, Wait, nil},
		{"replace: staged and ready", replace, core.Summary{Config: staged, Commit: 6, ConfigIndex: 6, Ready: []int{3, 4}}, Propose, promote},
		{"add: staged by a change that stopped", add3, core.Summary{Config: staged, Commit: 6, ConfigIndex: 6, Ready: []int{3}},
			Propose, []core.ConfChange{{Type: core.PromoteLearner, ID: 3}}},
		{"add: staged, not ready", add3, core.Summary{Config: staged, Commit: 6, ConfigIndex: 6}, Wait, nil},
		// The joint configuration, committed or not, is left by the leader.
		{"replace: joint", replace, core.Summary{Config: joint, Commit: 8, ConfigIndex: 7}, Wait, nil},
		{"replace: leaving, not committed", replace, core.Summary{Config: cfg([]int{2, 3, 4}), Commit: 8, ConfigIndex: 9}, Wait, nil},
		{"replace: committed", replace, core.Summary{Config: cfg([]int{2, 3, 4}), Commit: 9, ConfigIndex: 9}, Done, nil},
		{"add during another joint change", add3, core.Summary{Config: core.Configuration{Voters: []int{1}, Outgoing: []int{0}}, Commit: 5, ConfigIndex: 5}, Wait, nil},
	} {
		got, proposal := NextStep(tt.ch, tt.sum)
		if got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
			continue
		}
		want := tt.proposal
		if want == nil && got == Propose {
			want = tt.ch.Changes
		}
		if got == Propose && !slices.Equal(proposal, want) {
			t.Errorf("%s: proposes %v, want %v", tt.name, proposal, want)
		}
	}
	if got := replace.String(); got != "add-voter 3, add-voter 4, remove 0, remove 1" {
		t.Errorf("replace prints %q", got)
	}
}

func TestCheckMembersChange(t *testing.T) {
	cfg := core.Configuration{Voters: []int{0, 1, 2}, Learners: []int{5}}
	for _, tt := range []struct {
		adds, removes []int
		want          string // a part of the error; "" for none
	}{
		{[]int{3, 4}, []int{0, 1}, ""},
		{nil, []int{5}, ""},
		{nil, nil, "no change given"},
		{[]int{3}, []int{3}, "node 3 is named twice"},
		{[]int{3, 3}, nil, "node 3 is named twice"},
		{[]int{1}, nil, "node 1 is already a member"},
		{nil, []int{7}, "node 7 is not a member"},
		{nil, []int{0, 1, 2}, "no voter would remain"},
		{[]int{1000}, nil, "node id 1000 is out of range (0–999)"},
		{[]int{-1}, nil, "out of range"},
		{[]int{3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, nil, "the cluster would have 17 nodes"},
	} {
		err := CheckMembersChange(cfg, tt.adds, tt.removes, 999)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("+%v -%v: %v", tt.adds, tt.removes, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("+%v -%v: %v, want an error with %q", tt.adds, tt.removes, err, tt.want)
		}
	}
}

func TestMemberColumn(t *testing.T) {
	cfg := core.Configuration{Voters: []int{1, 2, 3}, Learners: []int{4, 5}, Outgoing: []int{0, 1, 2}, Staged: []int{5}}
	for id, want := range map[int]string{0: "leaving", 1: "voter", 3: "voter", 4: "learner", 5: "staged", 6: "joining"} {
		if got := Member(cfg, true, id, false); got != want {
			t.Errorf("node %d: %q, want %q", id, got, want)
		}
	}
	if got := Member(cfg, false, 1, false); got != "unknown" {
		t.Errorf("with no configuration known: %q", got)
	}
}

// TestDrive carries a replacement through a fake leader that applies what
// it is given at once and commits it at the next look: the staged
// learners first, then, once ready, the joint entry, then C_new; a refusal
// ends a change, and a change whose time runs out says what was refused.
func TestDrive(t *testing.T) {
	sum := core.Summary{Role: core.Leader, Config: core.Configuration{Voters: []int{0, 1, 2}}, Commit: 1, ConfigIndex: 1}
	var proposals []string
	looks := 0
	run := ChangeRun{
		Leader: func() (int, core.Summary, bool) {
			looks++
			sum.Commit = sum.ConfigIndex // committed by the next look
			switch {
			case sum.Config.IsJoint():
				sum.Config.Outgoing = nil // the leader leaves it by itself
				sum.ConfigIndex++
			case len(sum.Config.Staged) > 0 && looks > 3:
				sum.Ready = sum.Config.Staged // caught up after a while
			}
			return 0, sum, true
		},
		Propose: func(_ int, changes []core.ConfChange) error {
			proposals = append(proposals, Change{Changes: changes}.String())
			next := sum.Config.Clone()
			for _, ch := range changes {
				switch ch.Type {
				case core.AddStagedLearner:
					next.Learners, next.Staged = append(next.Learners, ch.ID), append(next.Staged, ch.ID)
				case core.PromoteLearner:
					next.Learners = slices.DeleteFunc(next.Learners, func(x int) bool { return x == ch.ID })
					next.Staged = slices.DeleteFunc(next.Staged, func(x int) bool { return x == ch.ID })
					next.Voters = append(next.Voters, ch.ID)
				case core.RemoveServer:
					next.Voters = slices.DeleteFunc(next.Voters, func(x int) bool { return x == ch.ID })
				}
			}
			if len(changes) > 1 && ch0(changes) == core.PromoteLearner {
				next.Outgoing = sum.Config.Voters
			}
			slices.Sort(next.Voters)
			sum.Config, sum.ConfigIndex = next, sum.ConfigIndex+1
			return nil
		},
		Wait: func() error { return nil },
	}
	proposed, err := Drive(MembersChange([]int{3, 4}, []int{0, 1}), time.Second, run)
	if err != nil || !proposed {
		t.Fatalf("Drive: %v, %v", proposed, err)
	}
	want := []string{"add-staged-learner 3, add-staged-learner 4", "promote 3, promote 4, remove 0, remove 1"}
	if !slices.Equal(proposals, want) {
		t.Fatalf("proposals %q, want %q", proposals, want)
	}
	if got := sum.Config; !got.Equal(core.Configuration{Voters: []int{2, 3, 4}}) {
		t.Fatalf("configuration at the end: %v", got)
	}

	refused := errors.New("no")
	run.Propose = func(int, []core.ConfChange) error { return fmt.Errorf("%w: %w", core.ErrBadMember, refused) }
	if _, err := Drive(AddChange(7), time.Second, run); !errors.Is(err, refused) {
		t.Fatalf("a refused change: %v", err)
	}
	run.Propose = func(int, []core.ConfChange) error { return errors.New("busy") }
	waits := 0
	run.Wait = func() error {
		if waits++; waits == 3 {
			return ErrTimeout
		}
		return nil
	}
	if proposed, err := Drive(AddChange(8), time.Second, run); proposed || err == nil || !strings.Contains(err.Error(), "not committed within 1s: busy") {
		t.Fatalf("a change out of time: %v, %v", proposed, err)
	}
	run.Wait = func() error { return ErrInterrupted }
	if _, err := Drive(AddChange(9), time.Second, run); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("an interrupted change: %v", err)
	}
	if !Refused(Refusal("node 3 is already a member")) {
		t.Fatal("a refusal told by message is not Refused")
	}
}

func ch0(changes []core.ConfChange) core.ConfChangeType { return changes[0].Type }

// TestCheckUpMajority: a removal is refused when the voters it leaves have
// no majority up while the voters now have one, and let through otherwise.
func TestCheckUpMajority(t *testing.T) {
	cfg := core.Configuration{Voters: []int{0, 1, 2, 3, 4}}
	down := func(ids ...int) func(int) bool {
		return func(id int) bool { return !slices.Contains(ids, id) }
	}
	for _, tc := range []struct {
		ch     Change
		up     func(int) bool
		refuse bool
	}{
		{RemoveChange(0), down(4), false},                        // 1, 2, 3 of 1–4 up
		{RemoveChange(0), down(3, 4), true},                      // 1, 2 of 1–4
		{RemoveChange(4), down(3, 4), false},                     // 0, 1, 2 of 0–3
		{MembersChange([]int{5}, []int{0}), down(3, 4, 5), true}, // 1, 2 of 1–5
		{MembersChange([]int{5}, []int{0}), down(3, 4), false},   // 1, 2, 5 of 1–5
		{AddChange(5), down(1, 2, 3, 4), false},                  // adds are not checked
		{RemoveChange(0), nil, false},                            // nothing known of who is up
		{RemoveChange(0), down(2, 3, 4), false},                  // no majority up before either: it waits
	} {
		err := CheckUpMajority(tc.ch, cfg, tc.up)
		if (err != nil) != tc.refuse || err != nil && !Refused(err) {
			t.Errorf("%v: got %v, want refused %v", tc.ch, err, tc.refuse)
		}
	}
	cfg3 := core.Configuration{Voters: []int{0, 1, 2}}
	if err := CheckUpMajority(RemoveChange(0), cfg3, down(2)); err == nil || !strings.Contains(err.Error(), "would leave voters 1, 2, of which node 2 is down") {
		t.Errorf("remove 0 with 2 down: %v", err)
	}
}
