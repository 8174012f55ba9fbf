module raft-consensus

go 1.26

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/fortytw2/leaktest v1.3.0
	github.com/jedib0t/go-pretty/v6 v6.8.3
	golang.org/x/net v0.58.0
)

require (
	github.com/mattn/go-runewidth v0.0.16 // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)
