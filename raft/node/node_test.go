package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"

	"github.com/fortytw2/leaktest"
)

func TestCoalesceAppends(t *testing.T) {
	ae := func(term, prev, prevTerm uint64, n int, commit, round uint64) core.Message {
		m := core.Message{Type: core.MsgAppendEntries, From: 0, To: 1, Term: term, PrevLogIndex: prev, PrevLogTerm: prevTerm,
			LeaderCommit: commit, ReadRound: round}
		for i := range n {
			m.Entries = append(m.Entries, core.Entry{Index: prev + 1 + uint64(i), Term: term, Data: []byte{byte(i)}})
		}
		return m
	}
	indexes := func(m core.Message) []uint64 {
		var out []uint64
		for _, e := range m.Entries {
			out = append(out, e.Index)
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		queue       []core.Message
		maxEntries  int
		wantTaken   int
		wantIndexes []uint64
		wantCommit  uint64
		wantRound   uint64
	}{
		{"alone", []core.Message{ae(2, 10, 2, 2, 9, 1)}, 100, 1, []uint64{11, 12}, 9, 1},
		{"contiguous", []core.Message{ae(2, 10, 2, 2, 9, 1), ae(2, 12, 2, 1, 10, 1), ae(2, 13, 2, 2, 11, 2)}, 100,
			3, []uint64{11, 12, 13, 14, 15}, 11, 2},
		{"heartbeat behind entries", []core.Message{ae(2, 10, 2, 2, 9, 1), ae(2, 12, 2, 0, 12, 3)}, 100, 2, []uint64{11, 12}, 12, 3},
		{"entries behind heartbeat", []core.Message{ae(2, 10, 2, 0, 9, 1), ae(2, 10, 2, 2, 9, 1)}, 100, 2, []uint64{11, 12}, 9, 1},
		{"gap", []core.Message{ae(2, 10, 2, 2, 9, 1), ae(2, 13, 2, 1, 10, 1)}, 100, 1, []uint64{11, 12}, 9, 1},
		{"overlap", []core.Message{ae(2, 10, 2, 2, 9, 1), ae(2, 11, 2, 1, 10, 1)}, 100, 1, []uint64{11, 12}, 9, 1},
		{"prev term differs", []core.Message{ae(2, 10, 2, 2, 9, 1), ae(2, 12, 1, 1, 10, 1)}, 100, 1, []uint64{11, 12}, 9, 1},
		{"new term", []core.Message{ae(2, 10, 2, 2, 9, 1), ae(3, 12, 2, 1, 10, 1)}, 100, 1, []uint64{11, 12}, 9, 1},
		{"entry cap", []core.Message{ae(2, 10, 2, 2, 9, 1), ae(2, 12, 2, 2, 10, 1), ae(2, 14, 2, 1, 11, 1)}, 4,
			2, []uint64{11, 12, 13, 14}, 10, 1},
		{"other type stops", []core.Message{ae(2, 10, 2, 2, 9, 1), {Type: core.MsgTimeoutNow, Term: 2}, ae(2, 12, 2, 1, 10, 1)}, 100,
			1, []uint64{11, 12}, 9, 1},
		{"not an append", []core.Message{{Type: core.MsgRequestVote, Term: 2}, ae(2, 12, 2, 1, 10, 1)}, 100, 1, nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := make([][]uint64, len(tc.queue))
			for i, m := range tc.queue {
				before[i] = indexes(m)
			}
			m, taken := coalesceAppends(tc.queue, tc.maxEntries, 1<<20)
			if taken != tc.wantTaken || !slices.Equal(indexes(m), tc.wantIndexes) || m.LeaderCommit != tc.wantCommit || m.ReadRound != tc.wantRound {
				t.Errorf("got taken=%d entries=%v commit=%d round=%d, want %d %v %d %d",
					taken, indexes(m), m.LeaderCommit, m.ReadRound, tc.wantTaken, tc.wantIndexes, tc.wantCommit, tc.wantRound)
			}
			if m.Type == core.MsgAppendEntries && !wellFormedAppend(m) {
				t.Errorf("merged message is not a valid AppendEntries: %v", m)
			}
			for i, q := range tc.queue {
				if !slices.Equal(indexes(q), before[i]) {
					t.Errorf("queued message %d changed: %v, was %v", i, indexes(q), before[i])
				}
			}
		})
	}
}

// wellFormedAppend checks what a follower checks of an AppendEntries:
// entries numbered on from PrevLogIndex, terms never falling and never above
// the message's.
func wellFormedAppend(m core.Message) bool {
	for i, e := range m.Entries {
		if e.Index != m.PrevLogIndex+1+uint64(i) || e.Term > m.Term || e.Term == 0 || (i > 0 && e.Term < m.Entries[i-1].Term) {
			return false
		}
	}
	return len(m.Entries) == 0 || m.Entries[0].Term >= m.PrevLogTerm
}

// waitTimeout bounds every wait for an election or a commit: generous for
// a loaded machine, while a correct run finishes in a fraction of it.
const waitTimeout = 10 * time.Second

// TestCommitChan drives a single-node RaftNode through its public API:
// every submitted command comes out of CommitChan once, in log order, and
// the channel closes when the node stops. With AsyncLeaderWrites a lone
// leader commits only what its writer made durable.
func TestCommitChan(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) { testCommitChan(t, async) })
	}
}

func testCommitChan(t *testing.T, async bool) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	st := storage.NewMemoryStorage()
	n, err := NewRaftNode(Config{ID: 0, Members: []int{0}, Storage: st, AsyncLeaderWrites: async})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		if _, _, isLeader := n.Report(); isLeader {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a single node did not elect itself")
		}
		time.Sleep(time.Millisecond)
	}
	const count = 500
	want := map[uint64]string{}
	for i := range count {
		cmd := fmt.Sprintf("cmd-%d", i)
		index, _, isLeader := n.Submit([]byte(cmd))
		if !isLeader {
			t.Fatalf("submit %d: not the leader", i)
		}
		want[index] = cmd
	}
	var last uint64
	got := 0
	for got < count {
		select {
		case e, ok := <-n.CommitChan():
			if !ok {
				t.Fatal("CommitChan closed early")
			}
			if e.Index <= last {
				t.Fatalf("entry %d after %d", e.Index, last)
			}
			last = e.Index
			if cmd, ok := want[e.Index]; ok {
				if string(e.Command) != cmd || e.Type != core.EntryNormal {
					t.Fatalf("entry %d: %q (%v), want %q", e.Index, e.Command, e.Type, cmd)
				}
				got++
			}
		case <-time.After(waitTimeout):
			t.Fatalf("only %d of %d commands delivered", got, count)
		}
	}
	n.Stop()
	for range n.CommitChan() {
	}
	// Everything delivered was durable first: a lone leader has no other copy.
	_, snap, ents, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	stored := uint64(len(ents))
	if snap != nil {
		stored += snap.LastIncludedIndex
	}
	if stored < last {
		t.Fatalf("applied up to %d, but only %d entries are in storage", last, stored)
	}
}
