package diagram

import (
	"reflect"
	"testing"
)

func interpreted(node, msg string) Event {
	e := Event{Node: node, Msg: msg}
	interpret(&e)
	return e
}

// TestVocabulary covers every message form of utils/TRACE.md.
func TestVocabulary(t *testing.T) {
	cases := []struct {
		msg  string
		want Event
	}{
		{"term 3 → 4", Event{Kind: KindTerm, PrevTerm: 3, Term: 4, HasTerm: true}},
		{"follower → candidate in term 4", Event{Kind: KindRole, PrevRole: RoleFollower, Role: RoleCandidate, Term: 4, HasTerm: true}},
		{"follower → pre-candidate in term 3", Event{Kind: KindRole, PrevRole: RoleFollower, Role: RolePreCandidate, Term: 3, HasTerm: true}},
		{"candidate → leader in term 4", Event{Kind: KindRole, PrevRole: RoleCandidate, Role: RoleLeader, Term: 4, HasTerm: true}},
		{"leader → follower in term 5", Event{Kind: KindRole, PrevRole: RoleLeader, Role: RoleFollower, Term: 5, HasTerm: true}},
		{"leader is 0 in term 4", Event{Kind: KindLeader, Peer: "0", Term: 4, HasTerm: true}},
		{"won the election for term 4", Event{Kind: KindElection, Term: 4, HasTerm: true}},
		{"election timeout after 23 ticks in term 3", Event{Kind: KindElection, Term: 3, HasTerm: true}},
		{"starting election for term 4 (last log 7/3)", Event{Kind: KindElection, Term: 4, HasTerm: true}},
		{"starting pre-vote for term 4 (last log 7/3)", Event{Kind: KindElection, PreVote: true, Term: 4, HasTerm: true}},
		{"pre-vote won with 2 of 3", Event{Kind: KindElection, PreVote: true}},
		{"election lost in term 4 (2 rejections)", Event{Kind: KindElection, Term: 4, HasTerm: true}},
		{"check quorum failed: stepping down in term 4", Event{Kind: KindElection, Term: 4, HasTerm: true}},
		{"granted vote to 1 for term 4", Event{Kind: KindVote, Granted: true, Peer: "1", Term: 4, HasTerm: true}},
		{"refused vote to 1 for term 4 (candidate's log is behind ours)", Event{Kind: KindVote, Peer: "1", Term: 4, HasTerm: true}},
		{"granted pre-vote to 1 for term 4", Event{Kind: KindVote, Granted: true, PreVote: true, Peer: "1", Term: 4, HasTerm: true}},
		{"refused pre-vote to 2 for term 5 (we heard from a leader)", Event{Kind: KindVote, PreVote: true, Peer: "2", Term: 5, HasTerm: true}},
		{"appended entries 6..8 from 0", Event{Kind: KindLog, Lo: 6, Hi: 8, Peer: "0"}},
		{"truncating log from 6 (had 9 entries)", Event{Kind: KindLog}},
		{"rejected AppendEntries from 0: no entry 5/2 (hint 3/2)", Event{Kind: KindLog, Peer: "0"}},
		{"commit index 5 → 8", Event{Kind: KindCommit, Lo: 5, Hi: 8}},
		{"applied 6..8", Event{Kind: KindLog, Lo: 6, Hi: 8}},
		{"configuration at 9: voters=[0 1 2] learners=[3]", Event{Kind: KindLog}},
		{"snapshot through 100/3 (2048 bytes); log now 101..120", Event{Kind: KindSnapshot}},
		{"installed snapshot through 100/3 from 0 (2048 bytes)", Event{Kind: KindSnapshot, Peer: "0"}},
		{"transferring leadership to 2", Event{Kind: KindTransfer, Peer: "2"}},
		{"TimeoutNow from 0: campaigning at once", Event{Kind: KindTransfer, Peer: "0"}},
		{"client set x=5 → ok at index 12", Event{Kind: KindClient}},
		{`client get x → "5"`, Event{Kind: KindClient}},
		{"SAFETY: two leaders in term 4: 0 and 2", Event{Kind: KindSafety}},
		{"something else entirely", Event{Kind: KindOther}},
		// Near misses stay free text rather than being half understood.
		{"term 3 → x", Event{Kind: KindOther}},
		{"follower → emperor in term 4", Event{Kind: KindOther}},
		{"term 3 → 99999999999999999999999", Event{Kind: KindOther}},
		{"send nothing useful", Event{Kind: KindOther}},
		{"send AppendEntries 0→x term=1", Event{Kind: KindOther}},
		{"send AppendEntries 0→sim term=1", Event{Kind: KindOther}},
	}
	for _, c := range cases {
		got := interpreted("1", c.msg)
		c.want.Node, c.want.Msg, c.want.Match = "1", c.msg, -1
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.msg, got, c.want)
		}
	}
}

func TestVocabularyRPCs(t *testing.T) {
	cases := []struct {
		msg  string
		kind Kind
		want RPC
	}{
		{"send RequestVote 1→0 term=4 last=7/3", KindSend, RPC{Name: "RequestVote", From: "1", To: "0", Term: 4, HasTerm: true}},
		{"recv PreVote 1→0 term=4 last=7/3", KindRecv, RPC{Name: "PreVote", From: "1", To: "0", Term: 4, HasTerm: true, PreVote: true}},
		{"send VoteReply 0→1 term=4 granted=true prevote=false", KindSend, RPC{Name: "VoteReply", From: "0", To: "1", Term: 4, HasTerm: true, Granted: true}},
		{"send VoteReply 0→1 term=4 granted=false prevote=true", KindSend, RPC{Name: "VoteReply", From: "0", To: "1", Term: 4, HasTerm: true, PreVote: true}},
		{"send AppendEntries 0→2 term=3 prev=5/2 entries=3 commit=5", KindSend, RPC{Name: "AppendEntries", From: "0", To: "2", Term: 3, HasTerm: true, Entries: 3, HasCount: true}},
		{"send AppendEntries 0→2 term=3 prev=5/2 entries=0 commit=5", KindSend, RPC{Name: "AppendEntries", From: "0", To: "2", Term: 3, HasTerm: true, HasCount: true}},
		{"recv AppendReply 2→0 term=3 ok match=8", KindRecv, RPC{Name: "AppendReply", From: "2", To: "0", Term: 3, HasTerm: true}},
		{"recv AppendReply 2→0 term=3 reject prev=5 conflict=3/2", KindRecv, RPC{Name: "AppendReply", From: "2", To: "0", Term: 3, HasTerm: true, Reject: true}},
		{"send InstallSnapshot 0→2 term=3", KindSend, RPC{Name: "InstallSnapshot", From: "0", To: "2", Term: 3, HasTerm: true}},
		{"send InstallSnapshotReply 2→0 term=3", KindSend, RPC{Name: "InstallSnapshotReply", From: "2", To: "0", Term: 3, HasTerm: true}},
		{"send TimeoutNow 0→1 term=3", KindSend, RPC{Name: "TimeoutNow", From: "0", To: "1", Term: 3, HasTerm: true}},
		{"recv TimeoutNowReply 1→0 term=3", KindRecv, RPC{Name: "TimeoutNowReply", From: "1", To: "0", Term: 3, HasTerm: true}},
		{"send ReadIndex 3→0 ctx=17", KindSend, RPC{Name: "ReadIndex", From: "3", To: "0"}},
		{"send Ping 3→0", KindSend, RPC{Name: "Ping", From: "3", To: "0"}},
		{"send AppendEntries 0→2 term=x entries=-1", KindSend, RPC{Name: "AppendEntries", From: "0", To: "2"}},
	}
	for _, c := range cases {
		e := interpreted("1", c.msg)
		if e.Kind != c.kind || e.RPC == nil {
			t.Errorf("%q: kind %v, rpc %v", c.msg, e.Kind, e.RPC)
			continue
		}
		c.want.Text = c.msg[5:]
		if !reflect.DeepEqual(*e.RPC, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.msg, *e.RPC, c.want)
		}
	}
}

func TestVocabularyFaults(t *testing.T) {
	cases := []struct {
		node, msg string
		want      Fault
	}{
		{"2", "fault: crash", Fault{What: "crash"}},
		{"2", "fault: restart", Fault{What: "restart"}},
		{"2", "fault: disconnect", Fault{What: "disconnect"}},
		{"2", "fault: reconnect", Fault{What: "reconnect"}},
		{"3", "fault: added", Fault{What: "added"}},
		{"3", "fault: removed", Fault{What: "removed"}},
		{"sim", "fault: partition 0 1 | 2 3 4", Fault{What: "partition", Arg: "0 1 | 2 3 4", Groups: [][]string{{"0", "1"}, {"2", "3", "4"}}}},
		{"sim", "fault: partition 0 x | | 2", Fault{What: "partition", Arg: "0 x | | 2", Groups: [][]string{{"0"}, {"2"}}}},
		{"sim", "fault: heal", Fault{What: "heal"}},
		{"sim", "fault: drop rate 0.10", Fault{What: "drop", Arg: "0.10"}},
		{"sim", "fault: delay 5ms", Fault{What: "delay", Arg: "5ms"}},
		{"sim", "fault: clock skew 3ms", Fault{What: "clock", Arg: "skew 3ms"}},
	}
	for _, c := range cases {
		e := interpreted(c.node, c.msg)
		if e.Kind != KindFault || !reflect.DeepEqual(*e.Fault, c.want) {
			t.Errorf("%q: got %v %+v, want %+v", c.msg, e.Kind, e.Fault, c.want)
		}
	}
}
