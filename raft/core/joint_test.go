package core_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"
)

// jointNet is a 3-voter coreNet led by 0, with servers 3 and 4 started
// empty, ready to join.
func jointNet(t *testing.T, tweak func(*core.CoreConfig)) *coreNet {
	t.Helper()
	n := newCoreNet(t, 3, tweak)
	n.campaign(0)
	n.deliver()
	if n.leader() != 0 {
		t.Fatalf("leader %d, want 0", n.leader())
	}
	for i := range 5 {
		n.propose(0, fmt.Sprint("before-", i))
	}
	for _, id := range []int{3, 4} {
		n.storage[id] = storage.NewMemoryStorage()
		n.start(id, core.Configuration{}, tweak)
	}
	return n
}

// replace is the change of the tests: C_old {0,1,2} → C_new {0,3,4}.
var replace = []core.ConfChange{
	{Type: core.AddVoter, ID: 3}, {Type: core.AddVoter, ID: 4},
	{Type: core.RemoveServer, ID: 1}, {Type: core.RemoveServer, ID: 2},
}

func (n *coreNet) cutBetween(a, b []int) {
	for _, x := range a {
		for _, y := range b {
			n.cut[[2]int{x, y}], n.cut[[2]int{y, x}] = true, true
		}
	}
}

func TestJointChangeReplacesAMajorityAndLeavesByItself(t *testing.T) {
	n := jointNet(t, nil)
	idx, err := n.cores[0].ProposeConfChanges(replace)
	if err != nil {
		t.Fatal(err)
	}
	cfg := n.cores[0].Config()
	if !cfg.IsJoint() || !slices.Equal(cfg.Voters, []int{0, 3, 4}) || !slices.Equal(cfg.Outgoing, []int{0, 1, 2}) {
		t.Fatalf("configuration after the proposal: %v, want joint voters=[0 3 4] outgoing=[0 1 2]", cfg)
	}
	if _, err := n.cores[0].ProposeConfChange(core.AddLearner, 5); !errors.Is(err, core.ErrConfigPending) {
		t.Fatalf("a change during the joint configuration: %v, want ErrConfigPending", err)
	}
	n.process(0)
	n.tickAll(10)
	want := core.Configuration{Voters: []int{0, 3, 4}}
	for _, id := range []int{0, 3, 4} {
		c := n.cores[id]
		if got := c.Config(); !got.Equal(want) || c.ConfigIndex() <= idx || c.Committed() < c.ConfigIndex() {
			t.Fatalf("server %d: configuration %v at %d (commit %d), want %v committed after %d",
				id, got, c.ConfigIndex(), c.Committed(), want, idx)
		}
	}
	n.propose(0, "after")
	n.tickAll(5)
	for _, id := range []int{3, 4} {
		if got := commands(n.applied[id]); len(got) != 6 || got[5] != "after" {
			t.Fatalf("server %d applied %v", id, got)
		}
	}
}

func TestJointChangeCommitsOnlyWithBothMajorities(t *testing.T) {
	for _, tc := range []struct {
		name   string
		absent []int
	}{
		{"the new voters cut off", []int{3, 4}},
		{"the old voters cut off", []int{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := jointNet(t, nil)
			present := []int{0}
			for _, id := range []int{1, 2, 3, 4} {
				if !slices.Contains(tc.absent, id) {
					present = append(present, id)
				}
			}
			n.cutBetween(tc.absent, present)
			idx, err := n.cores[0].ProposeConfChanges(replace)
			if err != nil {
				t.Fatal(err)
			}
			n.process(0)
			for range 5 {
				n.tick(0) // ticks of the leader alone: no one else may time out
				n.deliver()
			}
			if c := n.cores[0].Committed(); c >= idx {
				t.Fatalf("joint entry %d committed (commit %d) with %v cut off", idx, c, tc.absent)
			}
			n.heal()
			n.tickAll(10)
			if c := n.cores[0]; c.Config().IsJoint() || c.Committed() < c.ConfigIndex() {
				t.Fatalf("after healing: %v at %d, commit %d", c.Config(), c.ConfigIndex(), c.Committed())
			}
		})
	}
}

// TestJointElectionNeedsBothMajorities leaves the joint entry on every
// follower, uncommitted, and the leader gone: a candidate then needs a
// majority of C_old and one of C_new.
func TestJointElectionNeedsBothMajorities(t *testing.T) {
	n := jointNet(t, nil)
	idx, err := n.cores[0].ProposeConfChanges(replace)
	if err != nil {
		t.Fatal(err)
	}
	// The followers get the joint entry; their acknowledgements are lost.
	n.drop = func(m core.Message) bool {
		return m.Type == core.MsgAppendEntriesReply && m.Success && m.MatchIndex >= idx
	}
	n.process(0)
	n.deliver()
	n.drop = nil
	for id := range 5 {
		if !n.cores[id].Config().IsJoint() {
			t.Fatalf("server %d: %v, want the joint configuration", id, n.cores[id].Config())
		}
	}
	n.isolate(0)
	n.isolate(1)
	n.isolate(2)
	for range 60 { // 3 and 4 make a majority of C_new only
		n.tick(3, 4)
		n.deliver()
	}
	for _, id := range []int{3, 4} {
		if n.cores[id].Role() == core.Leader {
			t.Fatalf("server %d leads with the votes of C_new alone", id)
		}
	}
	// With 1 and 2 back, C_old has its majority too.
	n.heal()
	n.isolate(0)
	n.tickAll(60)
	l := n.leader()
	if l == core.None || l == 0 {
		t.Fatalf("no leader once both majorities can vote (leader %d)", l)
	}
	if cfg := n.cores[l].Config(); cfg.IsJoint() || !slices.Equal(cfg.Voters, []int{0, 3, 4}) {
		t.Fatalf("the new leader %d did not leave the joint configuration: %v", l, cfg)
	}
}

func TestProposeConfChangesRules(t *testing.T) {
	n := jointNet(t, nil)
	c := n.cores[0]
	for _, tc := range []struct {
		name    string
		changes []core.ConfChange
	}{
		{"no change", nil},
		{"a node twice", []core.ConfChange{{Type: core.AddVoter, ID: 3}, {Type: core.RemoveServer, ID: 3}}},
		{"every voter removed", []core.ConfChange{{Type: core.RemoveServer, ID: 0}, {Type: core.RemoveServer, ID: 1}, {Type: core.RemoveServer, ID: 2}}},
		{"a member added", []core.ConfChange{{Type: core.AddVoter, ID: 1}, {Type: core.AddVoter, ID: 3}}},
		{"a stranger removed", []core.ConfChange{{Type: core.AddVoter, ID: 3}, {Type: core.RemoveServer, ID: 9}}},
		{"a negative id", []core.ConfChange{{Type: core.AddVoter, ID: -2}, {Type: core.AddVoter, ID: 3}}},
		{"an unknown change", []core.ConfChange{{Type: 77, ID: 3}, {Type: core.AddVoter, ID: 4}}},
	} {
		if _, err := c.ProposeConfChanges(tc.changes); !errors.Is(err, core.ErrBadMember) {
			t.Errorf("%s: %v, want ErrBadMember", tc.name, err)
		}
	}
	if got := (core.ConfChange{Type: 77, ID: 3}).String(); got != "ConfChangeType(77) 3" {
		t.Errorf("unknown change prints %q", got)
	}
	// One voter apart needs no joint step (thesis §4.1), even in several changes.
	if _, err := c.ProposeConfChanges([]core.ConfChange{{Type: core.AddLearner, ID: 4}, {Type: core.AddVoter, ID: 3}}); err != nil {
		t.Fatal(err)
	}
	if cfg := c.Config(); cfg.IsJoint() || !slices.Equal(cfg.Voters, []int{0, 1, 2, 3}) || !slices.Equal(cfg.Learners, []int{4}) {
		t.Fatalf("configuration %v, want voters=[0 1 2 3] learners=[4] (not joint)", cfg)
	}
	if follower := n.cores[1]; true {
		if _, err := follower.ProposeConfChanges(replace); !errors.Is(err, core.ErrNotLeader) {
			t.Errorf("a follower's proposal: %v, want ErrNotLeader", err)
		}
	}
}

func TestConfigurationEncodingKeepsTheOldFormat(t *testing.T) {
	simple := core.Configuration{Voters: []int{0, 1, 2}, Learners: []int{3}}
	joint := core.Configuration{Voters: []int{0, 3, 4}, Outgoing: []int{0, 1, 2}}
	// The bytes a simple configuration had before joint consensus existed.
	if got, want := core.EncodeConfiguration(simple), []byte{3, 0, 1, 2, 1, 3}; !slices.Equal(got, want) {
		t.Fatalf("simple configuration encodes as %v, want %v", got, want)
	}
	for _, cfg := range []core.Configuration{simple, joint} {
		got, err := core.DecodeConfiguration(core.EncodeConfiguration(cfg))
		if err != nil || !got.Equal(cfg) {
			t.Fatalf("%v decodes as %v, %v", cfg, got, err)
		}
		if got.IsJoint() != cfg.IsJoint() {
			t.Fatalf("%v decodes as %v", cfg, got)
		}
	}
	if _, err := core.DecodeConfiguration([]byte{1, 0, 0, 0}); err == nil {
		t.Fatal("an empty outgoing list decodes")
	}
}

// TestStagedLearnersCatchUpBeforeTheJointStep: the change of Raft paper
// §6 in two steps. The new servers join as staged learners, which the
// leader reports ready once caught up and never promotes by itself; then
// one step promotes them and removes the old ones, through C_old,new.
func TestStagedLearnersCatchUpBeforeTheJointStep(t *testing.T) {
	n := jointNet(t, nil)
	stage := []core.ConfChange{{Type: core.AddStagedLearner, ID: 3}, {Type: core.AddStagedLearner, ID: 4}}
	if _, err := n.cores[0].ProposeConfChanges(stage); err != nil {
		t.Fatal(err)
	}
	cfg := n.cores[0].Config()
	if cfg.IsJoint() || !slices.Equal(cfg.Learners, []int{3, 4}) || !slices.Equal(cfg.Staged, []int{3, 4}) {
		t.Fatalf("configuration after staging: %v, want learners=[3 4] staged=[3 4], not joint", cfg)
	}
	if ready := n.cores[0].Summary().Ready; len(ready) != 0 {
		t.Fatalf("staged learners ready before they hold anything: %v", ready)
	}
	n.process(0)
	n.tickAll(30) // many catch-up rounds: an unstaged learner would have been promoted
	sum := n.cores[0].Summary()
	if !slices.Equal(sum.Ready, []int{3, 4}) {
		t.Fatalf("ready staged learners %v, want [3 4]", sum.Ready)
	}
	if got := n.cores[0].Config(); !slices.Equal(got.Learners, []int{3, 4}) || !slices.Equal(got.Voters, []int{0, 1, 2}) {
		t.Fatalf("the leader changed the staged configuration by itself: %v", got)
	}
	for _, id := range []int{3, 4} {
		if got := n.cores[id].Config(); !got.IsStaged(id) {
			t.Fatalf("server %d does not know it is staged: %v", id, got)
		}
	}
	// Cut off, 4 is no longer ready once a round runs out (it would stall
	// the joint configuration, whose C_new it would be in); back, it is.
	n.cutBetween([]int{4}, []int{0, 1, 2, 3})
	for i := range 30 {
		n.propose(0, fmt.Sprint("while-cut-", i))
		n.tickAll(1)
	}
	if ready := n.cores[0].Summary().Ready; !slices.Equal(ready, []int{3}) {
		t.Fatalf("ready with 4 cut off: %v, want [3]", ready)
	}
	n.heal()
	n.tickAll(30)
	if ready := n.cores[0].Summary().Ready; !slices.Equal(ready, []int{3, 4}) {
		t.Fatalf("ready after the heal: %v, want [3 4]", ready)
	}
	n.cutBetween([]int{4}, []int{0, 1, 2, 3}) // again, with nothing to replicate: its rounds finish, but it is not heard
	n.tickAll(30)
	if ready := n.cores[0].Summary().Ready; !slices.Equal(ready, []int{3}) {
		t.Fatalf("ready with 4 cut off and the log idle: %v, want [3]", ready)
	}
	n.heal()
	n.tickAll(30)
	final := []core.ConfChange{{Type: core.PromoteLearner, ID: 3}, {Type: core.PromoteLearner, ID: 4},
		{Type: core.RemoveServer, ID: 1}, {Type: core.RemoveServer, ID: 2}}
	if _, err := n.cores[0].ProposeConfChanges(final); err != nil {
		t.Fatal(err)
	}
	if cfg := n.cores[0].Config(); !cfg.IsJoint() || len(cfg.Staged) != 0 || len(cfg.Learners) != 0 {
		t.Fatalf("configuration after the promotion: %v, want joint, nothing staged", cfg)
	}
	n.process(0)
	n.tickAll(10)
	want := core.Configuration{Voters: []int{0, 3, 4}}
	for _, id := range []int{0, 3, 4} {
		if got := n.cores[id].Config(); !got.Equal(want) {
			t.Fatalf("server %d: configuration %v, want %v", id, got, want)
		}
	}
}

// TestStagedLearnerRemoved: a staged learner removed leaves Staged too.
func TestStagedLearnerRemoved(t *testing.T) {
	n := jointNet(t, nil)
	if _, err := n.cores[0].ProposeConfChanges([]core.ConfChange{{Type: core.AddStagedLearner, ID: 3}, {Type: core.AddStagedLearner, ID: 4}}); err != nil {
		t.Fatal(err)
	}
	n.process(0)
	n.tickAll(5)
	if _, err := n.cores[0].ProposeConfChange(core.RemoveServer, 3); err != nil {
		t.Fatal(err)
	}
	n.process(0)
	n.tickAll(5)
	if got, want := n.cores[0].Config(), (core.Configuration{Voters: []int{0, 1, 2}, Learners: []int{4}, Staged: []int{4}}); !got.Equal(want) {
		t.Fatalf("after removing staged learner 3: %v, want %v", got, want)
	}
}

func TestStagedConfigurationEncoding(t *testing.T) {
	staged := core.Configuration{Voters: []int{0, 1, 2}, Learners: []int{3, 4}, Staged: []int{3}}
	b := core.EncodeConfiguration(staged)
	got, err := core.DecodeConfiguration(b)
	if err != nil || !got.Equal(staged) || got.IsJoint() {
		t.Fatalf("%v decodes as %v, %v", staged, got, err)
	}
	jointStaged := core.Configuration{Voters: []int{0, 3}, Learners: []int{5}, Outgoing: []int{0, 1}, Staged: []int{5}}
	if got, err := core.DecodeConfiguration(core.EncodeConfiguration(jointStaged)); err != nil || !got.Equal(jointStaged) || !got.IsJoint() {
		t.Fatalf("%v decodes as %v, %v", jointStaged, got, err)
	}
	for name, bad := range map[string]core.Configuration{
		"a staged server that is no learner": {Voters: []int{0}, Staged: []int{1}},
	} {
		if _, err := core.DecodeConfiguration(core.EncodeConfiguration(bad)); err == nil {
			t.Errorf("%s decodes", name)
		}
	}
	if _, err := core.DecodeConfiguration(b[:len(b)-1]); err == nil {
		t.Error("a truncated staged configuration decodes")
	}
	if _, err := core.DecodeConfiguration(append(slices.Clone(b), 0)); err == nil {
		t.Error("a staged configuration with a trailing byte decodes")
	}
}

// TestStagedChangeDoesNotStallCommits measures, in messages delivered,
// what the learner stage buys (Raft paper §6): a write proposed right
// after a replacement's joint entry commits only once a majority of
// C_new holds the whole log. Joined as voters at once, the empty servers
// must first catch up (200 entries, one per AppendEntries); staged and
// caught up first, they hold it already.
func TestStagedChangeDoesNotStallCommits(t *testing.T) {
	oneEntry := func(cfg *core.CoreConfig) { cfg.MaxEntriesPerAppend = 1 }
	costOfWrite := func(staged bool) int {
		n := jointNet(t, oneEntry)
		for i := range 200 {
			n.propose(0, fmt.Sprint("load-", i))
		}
		changes := replace
		if staged {
			if _, err := n.cores[0].ProposeConfChanges([]core.ConfChange{{Type: core.AddStagedLearner, ID: 3}, {Type: core.AddStagedLearner, ID: 4}}); err != nil {
				t.Fatal(err)
			}
			n.process(0)
			for range 200 {
				if len(n.cores[0].Summary().Ready) == 2 {
					break
				}
				n.tickAll(1)
			}
			if ready := n.cores[0].Summary().Ready; len(ready) != 2 {
				t.Fatalf("staged learners ready: %v, want both", ready)
			}
			changes = []core.ConfChange{{Type: core.PromoteLearner, ID: 3}, {Type: core.PromoteLearner, ID: 4},
				{Type: core.RemoveServer, ID: 1}, {Type: core.RemoveServer, ID: 2}}
		}
		if _, err := n.cores[0].ProposeConfChanges(changes); err != nil {
			t.Fatal(err)
		}
		idx, _, err := n.cores[0].Propose([]byte("write"))
		if err != nil {
			t.Fatal(err)
		}
		n.process(0)
		before := n.delivery
		for n.cores[0].Committed() < idx {
			if len(n.queue) == 0 {
				n.tickAll(1)
				continue
			}
			n.deliverUntil(func() bool { return n.cores[0].Committed() >= idx })
		}
		return n.delivery - before
	}
	direct, staged := costOfWrite(false), costOfWrite(true)
	t.Logf("messages delivered before the write commits: %d with the new servers voters at once, %d staged first", direct, staged)
	if staged*10 > direct {
		t.Fatalf("staged: %d messages, direct: %d; the learner stage should spare the catch-up", staged, direct)
	}
}
