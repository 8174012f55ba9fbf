package node

import (
	"sync"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"
)

// timedStorage records when each Save started and how many entries it took.
type timedStorage struct {
	storage.Storage
	mu    sync.Mutex
	saves []timedSave
}

type timedSave struct {
	at      time.Time
	entries int
}

func (s *timedStorage) Save(hs *core.HardState, ents []core.Entry) error {
	s.mu.Lock()
	s.saves = append(s.saves, timedSave{time.Now(), len(ents)})
	s.mu.Unlock()
	return s.Storage.Save(hs, ents)
}

// TestLogWriterRestsBetweenWrites: after a write the leader's writer rests
// for Config.LeaderSyncGap, and everything submitted meanwhile goes into
// one write once the rest is over; stopping does not wait for the rest.
func TestLogWriterRestsBetweenWrites(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	const gap = 200 * time.Millisecond
	st := &timedStorage{Storage: storage.NewMemoryStorage()}
	stopc := make(chan struct{})
	w := newLogWriter(st, gap, stopc)
	go w.run()
	ent := func(i uint64) []core.Entry { return []core.Entry{{Index: i, Term: 1, Data: []byte("x")}} }

	w.Submit(ent(1))
	first := w.Wait()
	if first.Err != nil || first.Index != 1 {
		t.Fatalf("first write: %+v", first)
	}
	reported := time.Now()
	w.Submit(ent(2))
	w.Submit(ent(3))
	second := w.Wait()
	if second.Err != nil || second.Index != 3 || second.Count != 2 {
		t.Fatalf("second write %+v, want entries 2 and 3 in one write", second)
	}
	st.mu.Lock()
	saves := append([]timedSave(nil), st.saves...)
	st.mu.Unlock()
	if len(saves) != 2 || saves[1].entries != 2 {
		t.Fatalf("saves %+v, want two, the second of both entries submitted during the rest", saves)
	}
	if rested := saves[1].at.Sub(reported); rested < gap-10*time.Millisecond {
		t.Errorf("the second write started %v after the first was reported, want the rest of %v", rested, gap)
	}

	// A writer resting for a long time stops at once.
	long := newLogWriter(st, time.Hour, stopc)
	go long.run()
	long.Submit(ent(4))
	if r := long.Wait(); r.Err != nil {
		t.Fatal(r.Err)
	}
	close(stopc)
	done := make(chan struct{})
	go func() { w.stop(); long.stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("a resting writer did not stop")
	}
}
