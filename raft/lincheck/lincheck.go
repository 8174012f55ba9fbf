package lincheck

import (
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"raft-consensus/raft/kv"

	"github.com/anishathalye/porcupine"
)

// Linearizability of the KV client history, checked with porcupine
// against a sequential model of a map, partitioned by key.

// kvModelInput and kvModelOutput are porcupine's view of an Operation.
type kvModelInput struct {
	Op    kv.Op
	Key   string
	Value string
}

type kvModelOutput struct {
	Value   string
	Found   bool
	Unknown bool // the client never learned the outcome
}

// kvModelState is the state of one key. Unset: its value from before the
// history is not known (CheckLinearizableFromUnknown), and the first
// operation to see it says what it was.
type kvModelState struct {
	Value string
	Found bool
	Unset bool
}

// Model is the sequential specification of the KV store. Every write
// returns the key's previous value, so a write applied twice (a broken
// exactly-once guarantee) shows up as a wrong previous value.
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvModelInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return kvModelState{} },
	Step: func(state, input, output any) (bool, any) {
		st := state.(kvModelState)
		in := input.(kvModelInput)
		out := output.(kvModelOutput)
		sawState := out.Unknown || st.Unset || (out.Found == st.Found && (!st.Found || out.Value == st.Value))
		if st.Unset && !out.Unknown {
			st = kvModelState{Value: out.Value, Found: out.Found} // what it was, as seen
		}
		switch in.Op {
		case kv.OpGet:
			return sawState, st
		case kv.OpSet:
			return sawState, kvModelState{Value: in.Value, Found: true}
		case kv.OpDelete:
			return sawState, kvModelState{}
		}
		return false, st
	},
	DescribeOperation: func(input, output any) string {
		in := input.(kvModelInput)
		out := output.(kvModelOutput)
		// A set and a delete answer with the value the key had before.
		before := fmt.Sprintf("%s had no value before", in.Key)
		switch {
		case out.Unknown:
			before = "outcome unknown (no answer: it may or may not have taken effect)"
		case out.Found:
			before = fmt.Sprintf("%s was %q before", in.Key, out.Value)
		}
		switch in.Op {
		case kv.OpSet:
			return fmt.Sprintf("set(%s, %q): %s", in.Key, in.Value, before)
		case kv.OpDelete:
			return fmt.Sprintf("delete(%s): %s", in.Key, before)
		}
		if out.Found {
			return fmt.Sprintf("get(%s) → %q", in.Key, out.Value)
		}
		return fmt.Sprintf("get(%s) → no value", in.Key)
	},
	DescribeState: func(state any) string {
		st := state.(kvModelState)
		if st.Unset {
			return "?"
		}
		if !st.Found {
			return "∅"
		}
		return fmt.Sprintf("%q", st.Value)
	},
}

// LinearizabilityResult is the outcome of checking a history.
type LinearizabilityResult struct {
	// Result is porcupine's verdict: "Ok", "Illegal" or "Unknown" (the
	// check timed out).
	Result porcupine.CheckResult
	Ops    int
	info   porcupine.LinearizationInfo
	ops    []porcupine.Operation
	model  porcupine.Model
}

// Linearizable reports whether the history was proven linearizable.
func (r LinearizabilityResult) Linearizable() bool { return r.Result == porcupine.Ok }

// WriteHTML writes porcupine's visualization of the history.
func (r LinearizabilityResult) WriteHTML(w io.Writer) error {
	return porcupine.Visualize(r.model, r.info, w)
}

// CheckLinearizable checks a client history with porcupine, from an empty
// store. An operation whose outcome is unknown may take effect at any time
// after its call.
func CheckLinearizable(history []kv.Operation, timeout time.Duration) LinearizabilityResult {
	return check(Model, history, timeout)
}

// ModelFromUnknown is Model over a store that held data before the
// history began: each key starts with whatever value the first operation
// to see it saw (a cluster recovered from disk, or written by clients
// whose operations are not in the history).
var ModelFromUnknown = func() porcupine.Model {
	m := Model
	m.Init = func() any { return kvModelState{Unset: true} }
	return m
}()

// CheckLinearizableFromUnknown is CheckLinearizable over ModelFromUnknown:
// the history is linearizable if it is from some starting state.
func CheckLinearizableFromUnknown(history []kv.Operation, timeout time.Duration) LinearizabilityResult {
	return check(ModelFromUnknown, history, timeout)
}

func check(model porcupine.Model, history []kv.Operation, timeout time.Duration) LinearizabilityResult {
	ops := make([]porcupine.Operation, 0, len(history))
	clients := map[uint64]int{}
	for _, h := range history {
		if h.Unknown && h.Input.Op == kv.OpGet {
			continue // a read without an answer constrains nothing
		}
		cid, ok := clients[h.ClientID]
		if !ok {
			cid = len(clients)
			clients[h.ClientID] = cid
		}
		op := porcupine.Operation{
			ClientId: cid,
			Input:    kvModelInput{Op: h.Input.Op, Key: h.Input.Key, Value: h.Input.Value},
			Call:     int64(h.Call),
			Output:   kvModelOutput{Value: h.Output.Value, Found: h.Output.Found, Unknown: h.Unknown},
			Return:   int64(h.Return),
		}
		if h.Unknown {
			op.Return = math.MaxInt64
		}
		ops = append(ops, op)
	}
	res, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	return LinearizabilityResult{Result: res, Ops: len(ops), info: info, ops: ops, model: model}
}
