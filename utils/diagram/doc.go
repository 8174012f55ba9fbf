// Package diagram turns Raft trace events into timing diagrams: a terminal
// table (one column per node) and a self-contained HTML page with one swim
// lane per node and an arrow per RPC.
//
// Events come either from text (Parse: trace lines mixed with go test -v
// output, or JSON lines) or from memory (FromRecords: the REPL's ring of
// recent events). Both end up as a Run, the unit every renderer draws. The
// message vocabulary a Run understands is the contract written down in
// utils/TRACE.md; anything outside it is still shown, as free text.
package diagram
