package diagram_test

import (
	"os"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/trace"
	"raft-consensus/utils/diagram"
)

// The REPL keeps recent trace events in memory (trace.RingTracer) and draws
// them without going through text.
func ExampleFromRecords() {
	start := time.Date(2025, 1, 1, 9, 30, 0, 0, time.UTC)
	recs := []trace.Record{
		{Time: start, Node: "1", Event: core.Event{Kind: core.EventElectionWon, Term: 2, Peer: core.None}},
		{Time: start.Add(300 * time.Microsecond), Node: "0", Event: core.Event{Kind: core.EventVote, Term: 2, Peer: 1, Granted: true}},
		{Time: start.Add(900 * time.Microsecond), Node: "1", Event: core.Event{Kind: core.EventClient, Peer: core.None, Detail: "get x ok"}},
	}
	run, dropped := diagram.FromRecords("repl", recs)
	if dropped == 0 {
		diagram.WriteTable(os.Stdout, run, diagram.TableOptions{Width: 80})
	}
	// Output:
	// ┌─────────────────────────────────────────────────────────────────────────────┐
	// │ repl                                                                        │
	// ├─────────────────┬─────────────────────────────┬─────────────────────────────┤
	// │ time            │ node 0                      │ node 1                      │
	// ├─────────────────┼─────────────────────────────┼─────────────────────────────┤
	// │ 09:30:00.000000 │                             │ won the election for term 2 │
	// │ 09:30:00.000300 │ granted vote to 1 for term  │                             │
	// │                 │ 2                           │                             │
	// │ 09:30:00.000900 │                             │ client get x ok             │
	// └─────────────────┴─────────────────────────────┴─────────────────────────────┘
}
