package cluster

// What every wall-clock Cluster does the same way: waiting on a condition
// with a deadline, cut short by Interrupt, and saying what an interrupted
// client operation left behind.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"raft-consensus/raft/kv"
)

// Interrupts gives the calls in progress a context that Interrupt cancels;
// calls made afterwards get a fresh one. The zero value is ready.
type Interrupts struct {
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
}

// Context is the context of a call starting now.
func (i *Interrupts) Context() context.Context {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.ctx == nil {
		i.ctx, i.cancel = context.WithCancel(context.Background())
	}
	return i.ctx
}

// Interrupt cancels the calls in progress.
func (i *Interrupts) Interrupt() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cancel != nil {
		i.cancel()
	}
	i.ctx, i.cancel = context.WithCancel(context.Background())
}

// Sleep waits d, or less if ctx ends first (false then).
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Poll calls cond every interval until it holds or fails, for at most
// timeout (ErrTimeout); ctx ending cuts it short (ErrInterrupted).
func Poll(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return ErrTimeout
		}
		if !Sleep(ctx, interval) {
			return ErrInterrupted
		}
	}
}

// WaitUniqueLeader polls status until exactly one running, connected
// server leads (UniqueLeader), for at most timeout.
func WaitUniqueLeader(ctx context.Context, timeout, interval time.Duration, status func() []NodeStatus) (int, uint64, error) {
	var leader int
	var term uint64
	err := Poll(ctx, timeout, interval, func() (bool, error) {
		var ok bool
		var err error
		leader, term, ok, err = UniqueLeader(status())
		return ok, err
	})
	if errors.Is(err, ErrTimeout) {
		err = fmt.Errorf("%w: no single leader within %v", ErrNoLeader, timeout)
	}
	return leader, term, err
}

// Interrupted says that a client operation was interrupted, if ctx was
// cancelled: a write's outcome is then unknown.
func Interrupted(ctx context.Context, op kv.Op, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	if op == kv.OpGet {
		return ErrInterrupted
	}
	return fmt.Errorf("%w: the outcome of the %v is unknown: it may or may not have taken effect", ErrInterrupted, op)
}
