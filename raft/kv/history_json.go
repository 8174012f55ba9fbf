package kv

import (
	"bufio"
	"encoding/json"
	"io"
)

// OperationJSON is one operation of a history as WriteHistoryJSON writes
// it: times are seconds since the history started; an operation whose
// outcome is unknown has no return time (it may have taken effect at any
// time after its call).
type OperationJSON struct {
	Op      string   `json:"op"`
	Key     string   `json:"key"`
	Value   *string  `json:"value,omitempty"` // set: the value written
	Client  uint64   `json:"client"`
	Seq     uint64   `json:"seq,omitempty"` // writes: the client's sequence number
	Invoke  float64  `json:"invoke"`
	Return  *float64 `json:"return,omitempty"`
	Outcome string   `json:"outcome"`         // "ok" or "unknown"
	Found   *bool    `json:"found,omitempty"` // get: the key had a value; delete: it existed
	Read    *string  `json:"read,omitempty"`  // get: the value read
}

// WriteHistoryJSON writes ops as JSON lines, one operation a line.
func WriteHistoryJSON(w io.Writer, ops []Operation) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, op := range ops {
		j := OperationJSON{Op: op.Input.Op.String(), Key: op.Input.Key, Client: op.ClientID, Seq: op.Input.Seq,
			Invoke: op.Call.Seconds(), Outcome: "ok"}
		if op.Input.Op == OpSet {
			v := op.Input.Value
			j.Value = &v
		}
		if op.Unknown {
			j.Outcome = "unknown"
		} else {
			ret, found := op.Return.Seconds(), op.Output.Found
			j.Return, j.Found = &ret, &found
			if op.Input.Op == OpGet && found {
				v := op.Output.Value
				j.Read = &v
			}
		}
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	return bw.Flush()
}
