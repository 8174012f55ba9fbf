package raft

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Client is a KV client of the simulated cluster. It finds the leader,
// retries on another server when one fails, and gives every write a
// (client id, sequence number) that stays the same across retries, so the
// write is applied once. A Client runs one operation at a time; use one
// Client per concurrent caller.
type Client struct {
	sim *ClusterSimulator
	id  uint64
	num int // short number for traces: the id is long and random

	mu     sync.Mutex
	seq    uint64
	leader int // last known leader, or None
	next   int // round-robin position when no leader is known
}

// OutcomeUnknownError is returned when an operation got no definite answer
// before its deadline. A write may or may not have taken effect.
type OutcomeUnknownError struct {
	Op      KVOp
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

// NewClient returns a client with a fresh client id.
func (s *ClusterSimulator) NewClient() *Client {
	s.mu.Lock()
	// Random, so that a cluster recovered from a data directory does not
	// mistake a new client for an old one with the same id.
	id := uint64(s.rand.Int63()) | 1
	s.clients++
	num := s.clients
	s.mu.Unlock()
	return &Client{sim: s, id: id, num: num, leader: None}
}

// ID returns the client's id.
func (c *Client) ID() uint64 { return c.id }

// Set sets key to value.
func (c *Client) Set(ctx context.Context, key, value string) error {
	_, err := c.do(ctx, OpSet, key, value, None)
	return err
}

// Get reads key; found is false if it has no value.
func (c *Client) Get(ctx context.Context, key string) (value string, found bool, err error) {
	res, err := c.do(ctx, OpGet, key, "", None)
	return res.Value, res.Found, err
}

// Delete removes key; existed says whether it had a value.
func (c *Client) Delete(ctx context.Context, key string) (existed bool, err error) {
	res, err := c.do(ctx, OpDelete, key, "", None)
	return res.Found, err
}

// On sends one operation to one server only, without retrying elsewhere:
// a server that is not the leader answers with a *NotLeaderError.
func (c *Client) On(ctx context.Context, node int, op KVOp, key, value string) (KVResult, error) {
	return c.do(ctx, op, key, value, node)
}

func (c *Client) do(ctx context.Context, op KVOp, key, value string, only int) (KVResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := KVCommand{Op: op, ClientID: c.id, Key: key, Value: value}
	if op != OpGet {
		c.seq++
		cmd.Seq = c.seq
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.sim.cfg.ClientTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	timeout := time.Until(deadline).Round(time.Millisecond)
	call := c.sim.sinceStart()
	if only != None {
		return c.doOn(ctx, only, cmd, call, timeout)
	}

	var lastErr error
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			err := &OutcomeUnknownError{Op: op, Timeout: timeout, Last: lastErr}
			c.sim.history.add(Operation{ClientID: c.id, Input: cmd, Call: call, Unknown: true})
			return KVResult{}, err
		}
		target := c.pickTarget()
		srv, err := c.sim.Server(target)
		if err != nil {
			lastErr = err
			c.leader = None
			c.next++
			c.backoff(ctx, attempt)
			continue
		}
		res, err := c.attempt(ctx, srv, cmd)
		if err == nil {
			c.leader = target
			c.sim.history.add(Operation{ClientID: c.id, Input: cmd, Call: call, Return: c.sim.sinceStart(), Output: res})
			c.sim.traceClient(target, c.num, cmd, res)
			return res, nil
		}
		lastErr = err
		var nl *NotLeaderError
		if errors.As(err, &nl) && nl.Leader != None && nl.Leader != target {
			c.leader = nl.Leader
			continue
		}
		c.leader = None
		c.next++
		c.backoff(ctx, attempt)
	}
}

// doOn runs the command at one server, once: a server that is not the
// leader refuses it (and it had no effect); any other failure leaves a
// write's outcome unknown.
func (c *Client) doOn(ctx context.Context, node int, cmd KVCommand, call, timeout time.Duration) (KVResult, error) {
	srv, err := c.sim.Server(node)
	if err != nil {
		return KVResult{}, err
	}
	c.sim.traceRequest(node, c.num, cmd)
	res, err := srv.do(ctx, cmd)
	if err != nil {
		c.sim.traceFailure(node, c.num, cmd, err)
	}
	var nl *NotLeaderError
	switch {
	case err == nil:
		c.sim.history.add(Operation{ClientID: c.id, Input: cmd, Call: call, Return: c.sim.sinceStart(), Output: res})
		c.sim.traceClient(node, c.num, cmd, res)
		return res, nil
	case errors.As(err, &nl):
		return KVResult{}, err
	case errors.Is(err, context.DeadlineExceeded):
		err = &OutcomeUnknownError{Op: cmd.Op, Timeout: timeout}
	}
	c.sim.history.add(Operation{ClientID: c.id, Input: cmd, Call: call, Unknown: true})
	return KVResult{}, err
}

// attempt sends the command to one server with a bounded wait, so that a
// server cut off from the majority does not hold the client forever.
func (c *Client) attempt(ctx context.Context, srv *Server, cmd KVCommand) (KVResult, error) {
	actx, cancel := context.WithTimeout(ctx, c.sim.attemptTimeout())
	defer cancel()
	c.sim.traceRequest(srv.id, c.num, cmd)
	res, err := srv.do(actx, cmd)
	if err != nil {
		c.sim.traceFailure(srv.id, c.num, cmd, err)
	}
	return res, err
}

func (c *Client) pickTarget() int {
	if c.leader != None {
		return c.leader
	}
	ids := c.sim.IDs()
	if len(ids) == 0 {
		return None
	}
	return ids[c.next%len(ids)]
}

// backoff pauses after a full round of servers without success, so that a
// cluster without a leader is not hammered while it elects one.
func (c *Client) backoff(ctx context.Context, attempt int) {
	if n := len(c.sim.IDs()); n == 0 || (attempt+1)%n != 0 {
		return
	}
	t := time.NewTimer(c.sim.heartbeat())
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (s *ClusterSimulator) attemptTimeout() time.Duration {
	return 2 * s.electionTimeoutMax()
}

func (s *ClusterSimulator) heartbeat() time.Duration {
	if s.cfg.HeartbeatInterval > 0 {
		return s.cfg.HeartbeatInterval
	}
	return 50 * time.Millisecond
}

func (s *ClusterSimulator) sinceStart() time.Duration { return time.Since(s.start) }

func (s *ClusterSimulator) traceClient(node, client int, cmd KVCommand, res KVResult) {
	if s.cfg.Tracer == nil {
		return
	}
	var msg string
	switch cmd.Op {
	case OpSet:
		msg = fmt.Sprintf("client set %s=%s (client %d seq %d) → ok", cmd.Key, cmd.Value, client, cmd.Seq)
	case OpDelete:
		msg = fmt.Sprintf("client delete %s (client %d seq %d) → existed=%v", cmd.Key, client, cmd.Seq, res.Found)
	case OpGet:
		if res.Found {
			msg = fmt.Sprintf("client get %s (client %d) → %q", cmd.Key, client, res.Value)
		} else {
			msg = fmt.Sprintf("client get %s (client %d) → not found", cmd.Key, client)
		}
	}
	s.traceNode(node, msg)
}

// traceRequest reports a client request as it reaches a server, and
// traceFailure a request that server could not answer.
func (s *ClusterSimulator) traceRequest(node, client int, cmd KVCommand) {
	if s.cfg.Tracer == nil {
		return
	}
	var msg string
	switch cmd.Op {
	case OpSet:
		msg = fmt.Sprintf("client request set %s=%s (client %d seq %d)", cmd.Key, cmd.Value, client, cmd.Seq)
	case OpDelete:
		msg = fmt.Sprintf("client request delete %s (client %d seq %d)", cmd.Key, client, cmd.Seq)
	case OpGet:
		msg = fmt.Sprintf("client request get %s (client %d)", cmd.Key, client)
	}
	s.traceNode(node, msg)
}

func (s *ClusterSimulator) traceFailure(node, client int, cmd KVCommand, err error) {
	if s.cfg.Tracer != nil {
		s.traceNode(node, fmt.Sprintf("client %v %s (client %d) failed here: %v", cmd.Op, cmd.Key, client, err))
	}
}

// Set, Get and Delete use the simulator's default client with the client
// timeout; SetOn, GetOn and DeleteOn go to one server only.

// Set sets key to value through the leader.
func (s *ClusterSimulator) Set(key, value string) error {
	return s.client.Set(context.Background(), key, value)
}

// Get reads key through the leader (linearizable: ReadIndex).
func (s *ClusterSimulator) Get(key string) (string, bool, error) {
	return s.client.Get(context.Background(), key)
}

// Delete removes key through the leader.
func (s *ClusterSimulator) Delete(key string) (bool, error) {
	return s.client.Delete(context.Background(), key)
}

// Do runs one operation, at server node (None: the leader, found by the client).
func (s *ClusterSimulator) Do(op KVOp, key, value string, node int) (KVResult, error) {
	if node == None {
		res, err := s.client.do(context.Background(), op, key, value, None)
		return res, err
	}
	return s.client.On(context.Background(), node, op, key, value)
}

// History returns the recorded client operations.
func (s *ClusterSimulator) History() []Operation { return s.history.Operations() }

// History records client operations for the linearizability check.
type History struct {
	off bool
	mu  sync.Mutex
	ops []Operation
}

// Operation is one client operation as the client saw it.
type Operation struct {
	ClientID uint64
	Input    KVCommand
	// Call and Return are times since the simulator started. An operation
	// whose outcome is unknown (Unknown) has no Return: it may have taken
	// effect at any time after Call.
	Call, Return time.Duration
	Output       KVResult
	Unknown      bool
}

func (h *History) add(op Operation) {
	if h.off || op.Unknown && op.Input.Op == OpGet {
		return // not recording, or a read that never answered: it changed nothing
	}
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Operations returns a copy of the history.
func (h *History) Operations() []Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Operation(nil), h.ops...)
}
