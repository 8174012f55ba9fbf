module raft-consensus

go 1.26

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/fortytw2/leaktest v1.3.0
)
