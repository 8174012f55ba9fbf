package core

import (
	"slices"
	"testing"
)

// TestTruncateKeepsSentEntries: entries handed out (in a message queued for
// sending) stay as they were when a new leader's entries replace them.
func TestTruncateKeepsSentEntries(t *testing.T) {
	var l raftLog
	for i := uint64(1); i <= 10; i++ {
		l.append(Entry{Index: i, Term: 2, Data: []byte{byte(i)}})
	}
	sent := l.slice(6, 11, 0, 0)
	before := slices.Clone(sent)
	l.truncateAndAppend([]Entry{{Index: 6, Term: 3, Data: []byte("new")}, {Index: 7, Term: 3}})
	if !slices.EqualFunc(sent, before, func(a, b Entry) bool {
		return a.Index == b.Index && a.Term == b.Term && string(a.Data) == string(b.Data)
	}) {
		t.Fatalf("entries already handed out changed: %v, were %v", sent, before)
	}
	if l.lastIndex() != 7 || l.entry(6).Term != 3 || l.entry(5).Term != 2 {
		t.Fatalf("log after truncation: last %d, entry 6 term %d", l.lastIndex(), l.entry(6).Term)
	}
}
