package multi

import (
	"errors"
	"math/rand"
	"reflect"
	"slices"
	"testing"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"
)

func testHost(id NodeID) *Host {
	cc := simCoreConfig()
	return NewHost(Config{ID: id, Core: cc, Storage: func(GroupID) storage.Storage { return storage.NewMemoryStorage() }})
}

// TestUnknownGroupsCreateNothing: a message for a group the host does not
// host is dropped and named back; no group appears.
func TestUnknownGroupsCreateNothing(t *testing.T) {
	h := testHost(1)
	h.Step(&Batch{From: 0, To: 1,
		Heartbeats: []Heartbeat{{Group: 7, Term: 3}},
		Messages:   []GroupMessage{{Group: 8, Msg: core.Message{Type: core.MsgRequestVote, From: 0, To: 1, Term: 5}}}})
	if g := h.Groups(); len(g) != 0 {
		t.Fatalf("groups after messages for unknown ones: %v", g)
	}
	out := h.Flush()
	if len(out) == 1 {
		slices.Sort(out[0].UnknownGroups)
	}
	if len(out) != 1 || out[0].To != 0 || !reflect.DeepEqual(out[0].UnknownGroups, []GroupID{7, 8}) {
		t.Fatalf("reply batches %+v, want one to node 0 naming groups 7 and 8", out)
	}
	if res := h.Propose(7, []byte("x")); !errors.Is(res.Err, ErrUnknownGroup) {
		t.Errorf("a proposal to an unknown group: %v", res.Err)
	}
	if err := h.DestroyGroup(7); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("destroying an unknown group: %v", err)
	}
	if _, _, err := h.Summary(7); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("summary of an unknown group: %v", err)
	}
	if err := h.CreateGroup(3, []NodeID{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := h.CreateGroup(3, []NodeID{0, 1, 2}); !errors.Is(err, ErrGroupExists) {
		t.Errorf("creating a group twice: %v", err)
	}
	// A batch meant for another node is not stepped.
	h.Step(&Batch{From: 0, To: 2, Messages: []GroupMessage{{Group: 9}}})
	if out := h.Flush(); len(out) != 0 {
		t.Errorf("a batch for node 2 was answered: %+v", out)
	}
}

// TestCoalescedFormsAreLossless: a heartbeat and an append reply, coalesced
// and expanded, are the message the core sent.
func TestCoalescedFormsAreLossless(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for range 1000 {
		hb := core.Message{Type: core.MsgAppendEntries, From: 0, To: 1, Term: r.Uint64(), PrevLogIndex: r.Uint64(),
			PrevLogTerm: r.Uint64(), LeaderCommit: r.Uint64(), ReadRound: r.Uint64()}
		if !isHeartbeat(&hb) {
			t.Fatal("an empty AppendEntries is not a heartbeat")
		}
		c := heartbeatOf(5, &hb)
		if got := c.message(0, 1); !reflect.DeepEqual(got, hb) {
			t.Fatalf("heartbeat %+v came back as %+v", hb, got)
		}
		rep := core.Message{Type: core.MsgAppendEntriesReply, From: 1, To: 0, Term: r.Uint64(), Success: r.Intn(2) == 0,
			MatchIndex: r.Uint64(), PrevLogIndex: r.Uint64(), ReadRound: r.Uint64(), ConflictTerm: r.Uint64(), ConflictIndex: r.Uint64()}
		cr := appendReplyOf(5, &rep)
		if got := cr.message(1, 0); !reflect.DeepEqual(got, rep) {
			t.Fatalf("reply %+v came back as %+v", rep, got)
		}
	}
	withEntries := core.Message{Type: core.MsgAppendEntries, Entries: []core.Entry{{Index: 1}}}
	if isHeartbeat(&withEntries) {
		t.Fatal("an AppendEntries with entries travels as a heartbeat")
	}
}
