module raft-consensus

go 1.26.0

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/fortytw2/leaktest v1.3.0
	github.com/jedib0t/go-pretty/v6 v6.8.3
	github.com/peterh/liner v1.2.3
	golang.org/x/net v0.58.0
	golang.org/x/term v0.47.0
)

require (
	github.com/clipperhouse/uax29/v2 v2.7.0 // indirect
	github.com/mattn/go-runewidth v0.0.31 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)
