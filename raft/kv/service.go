package kv

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Endpoint is one server as a client reaches it: a *Server in the same
// process, or a server in another process, over the network (the remote
// package's).
type Endpoint interface {
	ID() int
	// Do runs a KV command at the server: a *NotLeaderError if it does not
	// lead.
	Do(ctx context.Context, cmd Command) (Result, error)
}

var _ Endpoint = (*Server)(nil)

// ServiceName is the name of the KV service on a server's listener.
const ServiceName = "KV"

// MaxRequestTimeout bounds how long a server waits on one request from
// the network, whatever the request asks.
const MaxRequestTimeout = time.Minute

// WireRequest is a KV request from a client over the network. The
// client's deadline cannot travel with it, so it says how long it waits.
type WireRequest struct {
	Command   Command
	TimeoutMs int64
	// Group is the Raft group the command is for, on a server of many
	// groups (go run . node -groups); a server of one takes group 0 only.
	Group uint64 `json:",omitempty"`
}

// WireReply is the answer to a WireRequest: a result, a server that does
// not lead (and who does, if it knows), or another error.
type WireReply struct {
	Result    Result
	NotLeader bool
	Leader    int
	Error     string
}

// Service serves a Server's KV commands to clients over the network
// (registered as ServiceName on its listener).
type Service struct{ server *Server }

// Bounds of a command from the network.
const (
	MaxKeyBytes   = 64 << 10
	MaxValueBytes = 1 << 20
)

// CheckCommand refuses what no well-behaved client sends: it would be
// written to every log for nothing, or make the state machine guess.
func CheckCommand(c Command) error {
	switch {
	case c.Op != OpSet && c.Op != OpDelete && c.Op != OpGet:
		return fmt.Errorf("bad request: unknown operation %d", c.Op)
	case c.Key == "":
		return errors.New("bad request: an empty key")
	case len(c.Key) > MaxKeyBytes:
		return fmt.Errorf("bad request: a key of %d bytes (at most %d)", len(c.Key), MaxKeyBytes)
	case len(c.Value) > MaxValueBytes:
		return fmt.Errorf("bad request: a value of %d bytes (at most %d)", len(c.Value), MaxValueBytes)
	case c.Op != OpGet && (c.ClientID == 0 || c.Seq == 0):
		return errors.New("bad request: a write needs a client id and a sequence number (exactly-once)")
	}
	return nil
}

// Do runs one command, as Server.Do.
func (v *Service) Do(req *WireRequest, reply *WireReply) error {
	if req.Group != 0 {
		*reply = WireReply{Error: fmt.Sprintf("bad request: group %d, on a server of one group (group 0)", req.Group)}
		return nil
	}
	*reply = Answer(req, v.server.Do)
	return nil
}

// Answer runs a request from the network with do, for as long as the
// request allows (at most MaxRequestTimeout), and puts the outcome as the
// wire says it: a result, a server that does not lead, or an error. A
// command no well-behaved client sends is refused first (CheckCommand).
func Answer(req *WireRequest, do func(context.Context, Command) (Result, error)) WireReply {
	if err := CheckCommand(req.Command); err != nil {
		return WireReply{Error: err.Error()}
	}
	timeout := min(time.Duration(req.TimeoutMs)*time.Millisecond, MaxRequestTimeout)
	if timeout <= 0 {
		timeout = MaxRequestTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := do(ctx, req.Command)
	reply := WireReply{Result: res}
	var nl *NotLeaderError
	switch {
	case errors.As(err, &nl):
		reply.NotLeader, reply.Leader = true, nl.Leader
	case err != nil:
		reply.Error = err.Error()
	}
	return reply
}

// Err is the error a WireReply stands for (nil for a result).
func (r *WireReply) Err() error {
	switch {
	case r.NotLeader:
		return &NotLeaderError{Leader: r.Leader}
	case r.Error != "":
		return errors.New(r.Error)
	}
	return nil
}
