package node

import (
	"sync"

	"raft-consensus/raft/core"
)

// PeerQueue holds the messages waiting to be sent to one peer, oldest first.
// It is bounded: when full, the oldest message is dropped, and Raft recovers
// from the loss by retrying. Take hands out the next message merged with
// the AppendEntries queued behind it that continue it, so that one RPC
// carries what the core sent in several rounds while the previous RPC was
// in flight. It has no goroutine: RaftNode's sender goroutine and the
// simulation's network both take from it. Safe for concurrent use.
type PeerQueue struct {
	maxEntries, maxBytes int

	mu    sync.Mutex
	queue []core.Message
}

// maxPeerQueue bounds the messages waiting for a slow peer.
const maxPeerQueue = 256

// NewPeerQueue returns a queue whose merged AppendEntries carry at most
// maxEntries entries and about maxBytes of payload.
func NewPeerQueue(maxEntries, maxBytes int) *PeerQueue {
	return &PeerQueue{maxEntries: maxEntries, maxBytes: maxBytes}
}

// Push queues m.
func (q *PeerQueue) Push(m core.Message) {
	q.mu.Lock()
	if len(q.queue) >= maxPeerQueue {
		q.queue = q.queue[1:]
	}
	q.queue = append(q.queue, m)
	q.mu.Unlock()
}

// Take removes and returns the next message to send, or false if none waits.
func (q *PeerQueue) Take() (core.Message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) == 0 {
		return core.Message{}, false
	}
	m, taken := coalesceAppends(q.queue, q.maxEntries, q.maxBytes)
	clear(q.queue[:taken])
	if taken == len(q.queue) {
		q.queue = q.queue[:0] // start over at the front of the array
	} else {
		q.queue = q.queue[taken:]
	}
	return m, true
}

// Len is the number of messages waiting.
func (q *PeerQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// coalesceAppends returns the first queued message, merged with the
// AppendEntries queued behind it that continue it: same term, each one's
// PrevLogIndex at the end of the entries before it. One RPC then carries
// what the core sent in several rounds while the previous RPC was in
// flight, and the follower persists it with one sync. Commit index and
// read round are the latest ones: the merged message leaves after every
// part was sent, so acknowledging the latest read round is sound. It
// returns how many queued messages the result stands for.
func coalesceAppends(queue []core.Message, maxEntries, maxBytes int) (core.Message, int) {
	m := queue[0]
	if m.Type != core.MsgAppendEntries {
		return m, 1
	}
	end, lastTerm := m.PrevLogIndex+uint64(len(m.Entries)), m.PrevLogTerm
	if len(m.Entries) > 0 {
		lastTerm = m.Entries[len(m.Entries)-1].Term
	}
	count, bytes := len(m.Entries), entryBytes(m.Entries)
	taken, extra := 1, 0
	for _, q := range queue[1:] {
		if q.Type != core.MsgAppendEntries || q.Term != m.Term || q.PrevLogIndex != end || q.PrevLogTerm != lastTerm {
			break
		}
		if len(q.Entries) > 0 {
			b := entryBytes(q.Entries)
			if count+len(q.Entries) > maxEntries || bytes+b > maxBytes {
				break
			}
			count, bytes = count+len(q.Entries), bytes+b
			extra += len(q.Entries)
			end += uint64(len(q.Entries))
			lastTerm = q.Entries[len(q.Entries)-1].Term
		}
		taken++
	}
	if taken == 1 {
		return m, 1
	}
	merged := m
	if extra > 0 {
		// A fresh slice: the parts alias the leader's log.
		merged.Entries = make([]core.Entry, 0, count)
		merged.Entries = append(merged.Entries, m.Entries...)
	}
	for _, q := range queue[1:taken] {
		if extra > 0 {
			merged.Entries = append(merged.Entries, q.Entries...)
		}
		merged.LeaderCommit = max(merged.LeaderCommit, q.LeaderCommit)
		merged.ReadRound = max(merged.ReadRound, q.ReadRound)
	}
	return merged, taken
}

func entryBytes(ents []core.Entry) int {
	n := 0
	for i := range ents {
		n += len(ents[i].Data)
	}
	return n
}
