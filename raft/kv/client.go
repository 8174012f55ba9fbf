package kv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/trace"
)

// Cluster is how a Client reaches the servers.
type Cluster interface {
	// IDs lists the servers' ids (crashed ones included, removed ones not).
	IDs() []int
	// Endpoint returns a running server, or an error saying why there is none.
	Endpoint(id int) (Endpoint, error)
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// ID is the client id of every command (non-zero; random, so that a
	// cluster recovered from disk does not take a new client for an old one).
	ID uint64
	// Num is a short number for traces: the id is long and random.
	Num int
	// Timeout bounds one operation, retries included (default 3 s), when
	// the caller's context has no deadline.
	Timeout time.Duration
	// AttemptTimeout bounds one try at one server, so that a server cut off
	// from the majority does not hold the client (default 600 ms).
	AttemptTimeout time.Duration
	// Pause is the wait after a full round of servers without success
	// (default 50 ms: a heartbeat).
	Pause time.Duration
	// History, if set, records every operation; Since stamps them.
	History *History
	Since   func() time.Duration
	Tracer  trace.Tracer
}

// Client is a KV client of a cluster. It finds the leader, retries on
// another server when one fails, and gives every write a (client id,
// sequence number) that stays the same across retries, so the write is
// applied once. A Client runs one operation at a time; use one Client per
// concurrent caller. Its decisions are those of a ClientState, which the
// deterministic simulation drives in virtual time.
type Client struct {
	cluster Cluster
	cfg     ClientConfig

	mu    sync.Mutex
	state ClientState
}

// NewClient returns a client of cluster.
func NewClient(cluster Cluster, cfg ClientConfig) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 600 * time.Millisecond
	}
	if cfg.Pause <= 0 {
		cfg.Pause = 50 * time.Millisecond
	}
	if cfg.Since == nil {
		start := time.Now()
		cfg.Since = func() time.Duration { return time.Since(start) }
	}
	return &Client{cluster: cluster, cfg: cfg, state: NewClientState(cfg.ID)}
}

// OutcomeUnknownError is returned when an operation got no definite answer
// before its deadline. A write may or may not have taken effect.
type OutcomeUnknownError struct {
	Op      Op
	Timeout time.Duration
	Last    error // the last error seen while retrying
}

func (e *OutcomeUnknownError) Error() string {
	msg := fmt.Sprintf("%v: no answer within %v", e.Op, e.Timeout)
	if e.Last != nil {
		msg += " (last error: " + e.Last.Error() + ")"
	}
	if e.Op != OpGet {
		msg += "; the outcome is unknown: the write may or may not have taken effect"
	}
	return msg
}

func (e *OutcomeUnknownError) Unwrap() error { return ErrTimeout }

// ErrTimeout is what an OutcomeUnknownError unwraps to.
var ErrTimeout = errors.New("no answer within the timeout")

// ID returns the client's id.
func (c *Client) ID() uint64 { return c.cfg.ID }

// Set sets key to value.
func (c *Client) Set(ctx context.Context, key, value string) error {
	_, err := c.do(ctx, OpSet, key, value, core.None)
	return err
}

// Get reads key; found is false if it has no value.
func (c *Client) Get(ctx context.Context, key string) (value string, found bool, err error) {
	res, err := c.do(ctx, OpGet, key, "", core.None)
	return res.Value, res.Found, err
}

// Delete removes key; existed says whether it had a value.
func (c *Client) Delete(ctx context.Context, key string) (existed bool, err error) {
	res, err := c.do(ctx, OpDelete, key, "", core.None)
	return res.Found, err
}

// Do runs one operation through the leader, found by the client.
func (c *Client) Do(ctx context.Context, op Op, key, value string) (Result, error) {
	return c.do(ctx, op, key, value, core.None)
}

// On sends one operation to one server only, without retrying elsewhere:
// a server that is not the leader answers with a *NotLeaderError.
func (c *Client) On(ctx context.Context, node int, op Op, key, value string) (Result, error) {
	return c.do(ctx, op, key, value, node)
}

func (c *Client) do(ctx context.Context, op Op, key, value string, only int) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := c.state.Command(op, key, value)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	timeout := time.Until(deadline).Round(time.Millisecond)
	call := c.cfg.Since()
	if only != core.None {
		return c.doOn(ctx, only, cmd, call, timeout)
	}

	var lastErr error
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			c.record(Operation{ClientID: c.cfg.ID, Input: cmd, Call: call, Unknown: true})
			return Result{}, &OutcomeUnknownError{Op: op, Timeout: timeout, Last: lastErr}
		}
		ids := c.cluster.IDs()
		target := c.state.Target(ids)
		srv, err := c.cluster.Endpoint(target)
		if err == nil {
			var res Result
			if res, err = c.attempt(ctx, srv, cmd); err == nil {
				c.state.Succeeded(target)
				c.record(Operation{ClientID: c.cfg.ID, Input: cmd, Call: call, Return: c.cfg.Since(), Output: res})
				c.traceDone(target, cmd, res)
				return res, nil
			}
		}
		lastErr = err
		if c.state.Failed(target, err, ids, attempt) == PauseThenRetry {
			c.pause(ctx)
		}
	}
}

// doOn runs the command at one server, once: a server that is not the
// leader refuses it (and it had no effect); any other failure leaves a
// write's outcome unknown.
func (c *Client) doOn(ctx context.Context, node int, cmd Command, call, timeout time.Duration) (Result, error) {
	srv, err := c.cluster.Endpoint(node)
	if err != nil {
		return Result{}, err
	}
	c.traceRequest(node, cmd)
	res, err := srv.Do(ctx, cmd)
	if err != nil {
		c.traceFailure(node, cmd, err)
	}
	var nl *NotLeaderError
	switch {
	case err == nil:
		c.record(Operation{ClientID: c.cfg.ID, Input: cmd, Call: call, Return: c.cfg.Since(), Output: res})
		c.traceDone(node, cmd, res)
		return res, nil
	case errors.As(err, &nl):
		return Result{}, err
	case errors.Is(err, context.DeadlineExceeded):
		err = &OutcomeUnknownError{Op: cmd.Op, Timeout: timeout}
	}
	c.record(Operation{ClientID: c.cfg.ID, Input: cmd, Call: call, Unknown: true})
	return Result{}, err
}

// attempt sends the command to one server with a bounded wait.
func (c *Client) attempt(ctx context.Context, srv Endpoint, cmd Command) (Result, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
	defer cancel()
	c.traceRequest(srv.ID(), cmd)
	res, err := srv.Do(actx, cmd)
	if err != nil {
		c.traceFailure(srv.ID(), cmd, err)
	}
	return res, err
}

func (c *Client) pause(ctx context.Context) {
	t := time.NewTimer(c.cfg.Pause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (c *Client) record(op Operation) {
	if c.cfg.History != nil {
		c.cfg.History.Add(op)
	}
}

// ClientState is the deterministic part of a client: its id, the sequence
// numbers of its writes, and where its next attempt goes — the leader it
// last learned of, or else the servers in turn, with a pause after every
// full round without success so that a cluster electing a leader is not
// hammered. Client drives it in real time; the simulation in virtual time.
type ClientState struct {
	id     uint64
	seq    uint64
	leader int // last known leader, or None
	next   int // round-robin position when no leader is known
}

// NewClientState returns the state of a client with the given id.
func NewClientState(id uint64) ClientState {
	return ClientState{id: id, leader: core.None}
}

// Command returns the command for one operation; a write gets the next
// sequence number, which its retries keep.
func (s *ClientState) Command(op Op, key, value string) Command {
	cmd := Command{Op: op, ClientID: s.id, Key: key, Value: value}
	if op != OpGet {
		s.seq++
		cmd.Seq = s.seq
	}
	return cmd
}

// Target is the server the next attempt goes to, among ids (None if ids
// is empty).
func (s *ClientState) Target(ids []int) int {
	if s.leader != core.None {
		return s.leader
	}
	if len(ids) == 0 {
		return core.None
	}
	return ids[s.next%len(ids)]
}

// Succeeded records that target answered: it is the leader.
func (s *ClientState) Succeeded(target int) { s.leader = target }

// RetryAction says how a client goes on after a failed attempt.
type RetryAction uint8

const (
	// RetryNow: try the next target at once (it was named as the leader).
	RetryNow RetryAction = iota
	// PauseThenRetry: a full round of servers failed; wait a little first.
	PauseThenRetry
)

// Failed records that attempt number attempt (from 0) at target failed
// with err, and says how to go on. A server that names another member as
// the leader is believed; any other failure moves on to the next server.
func (s *ClientState) Failed(target int, err error, ids []int, attempt int) RetryAction {
	var nl *NotLeaderError
	if errors.As(err, &nl) && nl.Leader != core.None && nl.Leader != target && slices.Contains(ids, nl.Leader) {
		s.leader = nl.Leader
		return RetryNow
	}
	s.leader = core.None
	s.next++
	if n := len(ids); n == 0 || (attempt+1)%n == 0 {
		return PauseThenRetry
	}
	return RetryNow
}

func (c *Client) traceDone(node int, cmd Command, res Result) {
	TraceDone(c.cfg.Tracer, node, c.cfg.Num, cmd, res)
}

func (c *Client) traceRequest(node int, cmd Command) {
	TraceRequest(c.cfg.Tracer, node, c.cfg.Num, cmd)
}

func (c *Client) traceFailure(node int, cmd Command, err error) {
	TraceFailure(c.cfg.Tracer, node, c.cfg.Num, cmd, err)
}

// TraceDone reports that client num's command succeeded at node. Every
// client (this package's, the simulation's) reports in the same words.
func TraceDone(t trace.Tracer, node, num int, cmd Command, res Result) {
	if t == nil {
		return
	}
	var msg string
	switch cmd.Op {
	case OpSet:
		msg = fmt.Sprintf("set %s=%s (client %d seq %d) → ok", cmd.Key, cmd.Value, num, cmd.Seq)
	case OpDelete:
		msg = fmt.Sprintf("delete %s (client %d seq %d) → existed=%v", cmd.Key, num, cmd.Seq, res.Found)
	case OpGet:
		if res.Found {
			msg = fmt.Sprintf("get %s (client %d) → %q", cmd.Key, num, res.Value)
		} else {
			msg = fmt.Sprintf("get %s (client %d) → not found", cmd.Key, num)
		}
	}
	trace.ForNode(t, node).Event(clientEvent(msg))
}

// TraceRequest reports a client request as it reaches a server, and
// TraceFailure a request that server could not answer.
func TraceRequest(t trace.Tracer, node, num int, cmd Command) {
	if t == nil {
		return
	}
	var msg string
	switch cmd.Op {
	case OpSet:
		msg = fmt.Sprintf("request set %s=%s (client %d seq %d)", cmd.Key, cmd.Value, num, cmd.Seq)
	case OpDelete:
		msg = fmt.Sprintf("request delete %s (client %d seq %d)", cmd.Key, num, cmd.Seq)
	case OpGet:
		msg = fmt.Sprintf("request get %s (client %d)", cmd.Key, num)
	}
	trace.ForNode(t, node).Event(clientEvent(msg))
}

// TraceFailure: see TraceRequest.
func TraceFailure(t trace.Tracer, node, num int, cmd Command, err error) {
	if t != nil {
		trace.ForNode(t, node).Event(clientEvent(fmt.Sprintf("%v %s (client %d) failed here: %v", cmd.Op, cmd.Key, num, err)))
	}
}

// History records client operations for the linearizability check.
type History struct {
	mu  sync.Mutex
	ops []Operation
}

// Operation is one client operation as the client saw it.
type Operation struct {
	ClientID uint64
	Input    Command
	// Call and Return are times since the history started. An operation
	// whose outcome is unknown (Unknown) has no Return: it may have taken
	// effect at any time after Call.
	Call, Return time.Duration
	Output       Result
	Unknown      bool
}

// Add records an operation. A read that never answered changed nothing
// and is not recorded.
func (h *History) Add(op Operation) {
	if op.Unknown && op.Input.Op == OpGet {
		return
	}
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Operations returns a copy of the history.
func (h *History) Operations() []Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// clientEvent is a trace event of a client's, at the server it talks to.
func clientEvent(detail string) core.Event {
	return core.Event{Kind: core.EventClient, Peer: core.None, Detail: detail}
}
