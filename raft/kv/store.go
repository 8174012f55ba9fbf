package kv

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"

	"github.com/google/btree"

	"raft-consensus/raft/internal/wire"
	"raft-consensus/raft/node"
)

// The KV state machine: string keys to string values, with exactly-once
// client requests. Every write carries (client id, sequence number); the
// store remembers each client's last sequence number and its result, so a
// request retried after a timeout or a leader change is applied once (the
// client session of thesis §6.3).

// Op is a KV operation.
type Op uint8

const (
	OpSet Op = iota + 1
	OpDelete
	OpGet
)

func (o Op) String() string {
	switch o {
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpGet:
		return "get"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Command is one client request as it travels in the log.
type Command struct {
	Op       Op
	ClientID uint64
	Seq      uint64
	Key      string
	Value    string
}

// Result is the outcome of applying a command.
type Result struct {
	Value string
	// Found says whether the key existed (before a delete, for a get).
	Found bool
}

// kvMagic marks KV payloads, so that other payloads in the log (raw test
// commands) are recognised and ignored rather than misread.
const kvMagic = 0xCB

var errNotKV = errors.New("not a KV command")

// EncodeCommand serializes a command for the log.
func EncodeCommand(c Command) []byte {
	b := make([]byte, 0, 2+3*binary.MaxVarintLen64+len(c.Key)+len(c.Value))
	b = append(b, kvMagic, byte(c.Op))
	b = binary.AppendUvarint(b, c.ClientID)
	b = binary.AppendUvarint(b, c.Seq)
	b = binary.AppendUvarint(b, uint64(len(c.Key)))
	b = append(b, c.Key...)
	b = binary.AppendUvarint(b, uint64(len(c.Value)))
	return append(b, c.Value...)
}

// DecodeCommand parses EncodeCommand's output.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if len(b) < 2 || b[0] != kvMagic {
		return c, errNotKV
	}
	c.Op = Op(b[1])
	if c.Op < OpSet || c.Op > OpGet {
		return c, errNotKV
	}
	r := wire.Decoder{B: b[2:]}
	c.ClientID = r.Uvarint()
	c.Seq = r.Uvarint()
	c.Key = r.Str()
	c.Value = r.Str()
	if r.Failed || len(r.B) != 0 {
		return c, errNotKV
	}
	return c, nil
}

// Store is the deterministic KV state machine. It is not safe for
// concurrent use: the Server serializes access.
type Store struct {
	// data is a B-tree with copy-on-write clones (google/btree, as etcd's
	// index): Snapshot clones it in constant time, and the writes that
	// follow copy only the nodes they touch. A map had to be copied whole
	// on the apply path, which stalled every client for as long as a copy
	// of a large state takes (thesis §5.2: copy-on-write snapshots).
	data     *btree.BTreeG[kvPair]
	sessions map[uint64]kvSession
	// applyRetries applies every command, a client's retries included;
	// sharedSnapshots hands out the live tree instead of a clone, so a
	// snapshot being written out sees the writes applied after it was
	// taken: broken stores for the mutation tests only.
	applyRetries, sharedSnapshots bool
}

// kvPair is one key and its value, ordered by key.
type kvPair struct{ key, value string }

func pairLess(a, b kvPair) bool { return a.key < b.key }

// storeDegree is the B-tree's degree: nodes of 31 to 63 pairs, a few
// levels for millions of keys, and a copy of a few KiB per touched node.
const storeDegree = 32

func newData() *btree.BTreeG[kvPair] { return btree.NewG(storeDegree, pairLess) }

type kvSession struct {
	Seq    uint64
	Result Result
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{data: newData(), sessions: map[uint64]kvSession{}}
}

// ApplyCommand applies one command, at most once per (client, sequence
// number), and returns its result; a duplicate returns the result of the
// first.
func (s *Store) ApplyCommand(c Command) Result {
	if c.ClientID != 0 && !s.applyRetries {
		if sess, ok := s.sessions[c.ClientID]; ok && c.Seq <= sess.Seq {
			return sess.Result
		}
	}
	var res Result
	var old kvPair
	switch c.Op {
	case OpSet:
		old, res.Found = s.data.ReplaceOrInsert(kvPair{c.Key, c.Value})
	case OpDelete:
		old, res.Found = s.data.Delete(kvPair{key: c.Key})
	case OpGet:
		old, res.Found = s.data.Get(kvPair{key: c.Key})
	}
	res.Value = old.value
	if c.ClientID != 0 {
		s.sessions[c.ClientID] = kvSession{Seq: c.Seq, Result: res}
	}
	return res
}

// Get reads a key (the caller has ensured linearizability).
func (s *Store) Get(key string) (string, bool) {
	p, ok := s.data.Get(kvPair{key: key})
	return p.value, ok
}

// Session returns the last sequence number applied for a client and its
// result.
func (s *Store) Session(clientID uint64) (seq uint64, res Result) {
	sess := s.sessions[clientID]
	return sess.Seq, sess.Result
}

// Len is the number of keys.
func (s *Store) Len() int { return s.data.Len() }

// Apply implements StateMachine: a Result per KV command, nil for
// payloads that are not KV commands (raw test commands).
func (s *Store) Apply(entries []node.CommitEntry) []any {
	out := make([]any, len(entries))
	for i := range entries {
		if cmd, err := DecodeCommand(entries[i].Command); err == nil {
			out[i] = s.ApplyCommand(cmd)
		}
	}
	return out
}

// Read implements StateMachine: the query is a key, the answer a Result.
func (s *Store) Read(query any) (any, error) {
	key, ok := query.(string)
	if !ok {
		return nil, fmt.Errorf("kv: a query is a key, not %T", query)
	}
	p, found := s.data.Get(kvPair{key: key})
	return Result{Value: p.value, Found: found}, nil
}

// Outcome implements Deduplicator: a write was applied if its client's
// session has reached its sequence number; its result is then the
// session's (exact for the client's latest write, which is the only one
// it can be waiting for).
func (s *Store) Outcome(cmd []byte) (any, bool) {
	c, err := DecodeCommand(cmd)
	if err != nil || c.ClientID == 0 {
		return nil, false
	}
	sess, ok := s.sessions[c.ClientID]
	if !ok || sess.Seq < c.Seq {
		return nil, false
	}
	return sess.Result, true
}

// Snapshot implements StateMachine: a copy-on-write clone of the data (in
// constant time) and a copy of the session table (one entry per client:
// without the sessions, a retried request could apply twice after a
// restart from the snapshot), encoded later by WriteTo.
func (s *Store) Snapshot() (StateSnapshot, error) {
	data := s.data
	if !s.sharedSnapshots {
		data = data.Clone()
	}
	return storeSnapshot{data: data, sessions: maps.Clone(s.sessions)}, nil
}

type storeSnapshot struct {
	data     *btree.BTreeG[kvPair]
	sessions map[uint64]kvSession
}

// WriteTo implements StateSnapshot: the pairs in key order, then the
// sessions in client order, streamed (a large state is never held twice
// in memory).
func (s storeSnapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	var b []byte
	var err error
	b = binary.AppendUvarint(b, uint64(s.data.Len()))
	s.data.Ascend(func(p kvPair) bool {
		b = appendString(b, p.key)
		b = appendString(b, p.value)
		if len(b) >= 32<<10 {
			_, err = bw.Write(b)
			b = b[:0]
			// Writing out a large state takes seconds of CPU: let the
			// node's goroutines run in between, or its heartbeats and
			// replies wait behind the snapshot (runtime.Gosched only
			// yields when others are ready to run).
			runtime.Gosched()
		}
		return err == nil
	})
	if err != nil {
		return cw.n, err
	}
	b = binary.AppendUvarint(b, uint64(len(s.sessions)))
	for _, id := range slices.Sorted(maps.Keys(s.sessions)) {
		sess := s.sessions[id]
		b = binary.AppendUvarint(b, id)
		b = binary.AppendUvarint(b, sess.Seq)
		b = appendString(b, sess.Result.Value)
		found := byte(0)
		if sess.Result.Found {
			found = 1
		}
		b = append(b, found)
	}
	if _, err := bw.Write(b); err != nil {
		return cw.n, err
	}
	err = bw.Flush()
	return cw.n, err
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Restore implements StateMachine.
func (s *Store) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("kv snapshot: %w", err)
	}
	return s.restore(b)
}

func (s *Store) restore(b []byte) error {
	r := wire.Decoder{B: b}
	n := r.Uvarint()
	if n > uint64(len(b)) {
		return errors.New("kv snapshot: bad key count")
	}
	data := newData()
	for range n {
		k := r.Str()
		data.ReplaceOrInsert(kvPair{k, r.Str()})
	}
	m := r.Uvarint()
	if m > uint64(len(b)) {
		return errors.New("kv snapshot: bad session count")
	}
	sessions := make(map[uint64]kvSession, m)
	for range m {
		id := r.Uvarint()
		seq := r.Uvarint()
		val := r.Str()
		found := r.Byte() == 1
		if r.Failed {
			break
		}
		sessions[id] = kvSession{Seq: seq, Result: Result{Value: val, Found: found}}
	}
	if r.Failed || len(r.B) != 0 {
		return errors.New("kv snapshot: malformed")
	}
	s.data, s.sessions = data, sessions
	return nil
}
