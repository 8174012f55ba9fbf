package main

import (
	"os"

	"raft-consensus/bench"
)

// runBench is the "bench" subcommand: the workload of the hashicorp/raft
// baseline (../shared/bench/hashicorp) on this project's cluster, one JSON
// line on stdout. "go run . bench -h" lists its flags.
func runBench(args []string) int {
	return bench.Run(args, os.Stdout, os.Stderr)
}
