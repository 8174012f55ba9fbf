package node

import (
	"errors"
	"testing"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/trace"
)

type nopPort struct{}

func (nopPort) Send(core.Message)   {}
func (nopPort) Apply([]CommitEntry) {}
func (nopPort) Submit([]core.Entry) {}
func (nopPort) Wait() Written       { return Written{Err: ErrStopped} }

// A log writer that reports the node stopping (its Wait gave up) stops the
// driver as a stop, not as a storage failure: callers hear ErrStopped, and
// no storage-failed event is traced. A real write error is a failure.
func TestWriterStopIsNoStorageFailure(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		want      error
		failEvent bool
	}{
		{"stopped", ErrStopped, ErrStopped, false},
		{"write error", errors.New("disk on fire"), ErrStorageFailed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var events []core.Event
			d, err := NewDriver(DriverConfig{
				Core: core.DefaultConfig(0, 1), Members: []int{0}, Storage: storage.NewMemoryStorage(),
				Outbox: nopPort{}, Applier: nopPort{}, Writer: nopPort{},
				Tracer: trace.Func(func(_ string, e core.Event) { events = append(events, e) }),
			})
			if err != nil {
				t.Fatal(err)
			}
			d.ProcessReady()
			d.WriteDone(Written{Err: tc.err})
			if got := d.Propose([]byte("x")).Err; !errors.Is(got, tc.want) {
				t.Errorf("Propose after the writer reported %v: %v, want %v", tc.err, got, tc.want)
			}
			traced := false
			for _, e := range events {
				traced = traced || e.Kind == core.EventStorageFailed
			}
			if traced != tc.failEvent {
				t.Errorf("storage-failed event traced: %v, want %v", traced, tc.failEvent)
			}
		})
	}
}
