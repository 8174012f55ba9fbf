module raft-consensus

go 1.26

require (
	github.com/anishathalye/porcupine v1.3.1 // indirect
	github.com/fortytw2/leaktest v1.3.0 // indirect
	github.com/jedib0t/go-pretty/v6 v6.8.3 // indirect
)
