package sim

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"raft-consensus/raft/kv"
)

// client is a simulated KV client: kv.ClientState makes its decisions
// (sequence numbers, which server to try, when to pause), as it does in
// kv.Client; the simulation supplies the waiting, in virtual time. During
// the fault phase an operation that gets no answer within the client
// timeout ends with its outcome unknown, as kv.Client's do; after it,
// clients keep trying until they succeed (liveness).
type client struct {
	w     *world
	id    int
	state kv.ClientState

	op      *clientOp
	attempt int    // attempts of this operation, from 0
	token   uint64 // the attempt in progress; stale answers carry another
	target  int
	done    int
}

type clientOp struct {
	cmd  kv.Command
	call time.Duration
}

// Client timing, as a kv.Client of the ClusterSimulator has it.
const (
	attemptTimeout = 600 * time.Millisecond // 2 × the maximum election timeout
	clientTimeout  = 3 * time.Second        // one operation, retries included
	clientPause    = 50 * time.Millisecond  // after a full round of servers
)

var errAttemptTimeout = errors.New("sim: no answer within the attempt timeout")

func newClient(w *world, id int) *client {
	return &client{w: w, id: id, state: kv.NewClientState(uint64(id + 1))}
}

// next starts the client's next operation.
func (c *client) next() {
	w := c.w
	if c.done >= w.p.OpsPerClient {
		return
	}
	key := "k" + strconv.Itoa(w.rng.Intn(w.p.Keys))
	var cmd kv.Command
	switch r := w.rng.Intn(10); {
	case r < 5:
		cmd = c.state.Command(kv.OpSet, key, fmt.Sprintf("c%d-%d", c.id, c.done))
	case r < 8:
		cmd = c.state.Command(kv.OpGet, key, "")
	default:
		cmd = c.state.Command(kv.OpDelete, key, "")
	}
	c.op = &clientOp{cmd: cmd, call: w.now}
	c.attempt = 0
	c.send()
}

// send makes one attempt at the server the client state picks.
func (c *client) send() {
	w := c.w
	c.token++
	token := c.token
	ids := w.ids()
	c.target = c.state.Target(ids)
	target := c.target
	cmd := c.op.cmd
	w.after(clientDelay(w), func() {
		s := w.servers[target]
		if s == nil || !s.up || s.removed {
			return // a server that is down answers nothing: the attempt times out
		}
		s.input(func() { s.serve(cmd, func(res any, err error) { c.answer(s, token, res, err) }) })
	})
	w.after(attemptTimeout, func() {
		if c.token == token && c.op != nil {
			c.failed(errAttemptTimeout)
		}
	})
}

func clientDelay(w *world) time.Duration {
	return time.Duration(50+w.rng.Intn(500)) * time.Microsecond
}

// serve runs one client request at the server, as kv.Server does: a read
// through ReadIndex, a write through the log, the Host deciding.
func (s *server) serve(cmd kv.Command, done func(any, error)) {
	if cmd.Op == kv.OpGet {
		r := kv.NewRead(cmd.Key, done)
		s.driver.ReadIndex(func(index uint64, err error) { s.host.ReadIndexed(r, index, err) })
		return
	}
	wr := kv.NewWrite(kv.EncodeCommand(cmd), done)
	s.host.Proposed(wr, s.driver.Propose(wr.Command()))
}

// answer carries a server's answer back to the client.
func (c *client) answer(s *server, token uint64, res any, err error) {
	w := c.w
	s.emit(func() {
		w.after(clientDelay(w), func() {
			if c.token != token || c.op == nil {
				return
			}
			if err != nil {
				c.failed(err)
				return
			}
			r, _ := res.(kv.Result)
			c.succeeded(r)
		})
	})
}

func (c *client) succeeded(res kv.Result) {
	w := c.w
	c.state.Succeeded(c.target)
	w.history = append(w.history, kv.Operation{ClientID: c.op.cmd.ClientID, Input: c.op.cmd, Call: c.op.call, Return: w.now, Output: res})
	w.stats.ops++
	c.finish()
}

func (c *client) failed(err error) {
	w := c.w
	c.token++ // cancel this attempt's timeout and answer
	if !w.healed && w.now-c.op.call >= clientTimeout {
		// kv.Client gives up: a write's outcome is unknown.
		w.history = append(w.history, kv.Operation{ClientID: c.op.cmd.ClientID, Input: c.op.cmd, Call: c.op.call, Unknown: true})
		if c.op.cmd.Op != kv.OpGet {
			w.stats.unknown++
		}
		c.op = nil
		c.token++
		w.after(c.thinkTime(), c.next) // gone, but not counted among the operations done
		return
	}
	action := c.state.Failed(c.target, err, w.ids(), c.attempt)
	c.attempt++
	pause := time.Millisecond
	if action == kv.PauseThenRetry {
		pause = clientPause
	}
	token := c.token
	w.after(pause, func() {
		if c.token == token && c.op != nil {
			c.send()
		}
	})
}

func (c *client) finish() {
	w := c.w
	c.op = nil
	c.done++
	c.token++
	w.after(c.thinkTime(), c.next)
}

// thinkTime spreads each client's operations over the fault phase, so that
// the faults hit a cluster under load.
func (c *client) thinkTime() time.Duration {
	mean := c.w.p.FaultPhase / time.Duration(c.w.p.OpsPerClient)
	return time.Duration(c.w.rng.Int63n(int64(2 * mean)))
}
