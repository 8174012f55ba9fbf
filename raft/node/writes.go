package node

import (
	"sync"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"
)

// WriteQueue holds a leader's entries waiting to be written by its log
// writer. Take hands out everything queued as one batch, so that every
// batch queued while a Save is in progress goes into the next Save and one
// sync covers them all (group commit). Batches are contiguous: the driver
// waits for the writer before any other write. It has no goroutine:
// RaftNode's writer goroutine and the simulation both take from it. Safe
// for concurrent use.
type WriteQueue struct {
	mu    sync.Mutex
	queue []core.Entry
	spare []core.Entry
}

// Push queues entries. It copies them: the core may replace its log's
// entries in place once it has stepped down.
func (w *WriteQueue) Push(ents []core.Entry) {
	w.mu.Lock()
	w.queue = append(w.queue, ents...)
	w.mu.Unlock()
}

// Take removes and returns everything queued (nil if nothing is). Give the
// batch back with Recycle once written.
func (w *WriteQueue) Take() []core.Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return nil
	}
	batch := w.queue
	w.queue, w.spare = w.spare[:0], nil
	return batch
}

// Recycle lets the queue reuse a written batch's array.
func (w *WriteQueue) Recycle(batch []core.Entry) {
	clear(batch) // drop the references to the entries' data
	w.mu.Lock()
	w.spare = batch[:0]
	w.mu.Unlock()
}

// Empty reports whether nothing is queued.
func (w *WriteQueue) Empty() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue) == 0
}

// WriteBatch writes one taken batch to st and returns its report.
func WriteBatch(st storage.Storage, batch []core.Entry) Written {
	err := st.Save(nil, batch)
	last := batch[len(batch)-1]
	return Written{Index: last.Index, Term: last.Term, Count: len(batch), Err: err}
}
