package main

import (
	"fmt"
	"os"
)

// runBench is the "bench" subcommand (raft-consensus bench ...).
//
// PLACEHOLDER: the benchmark subcommand is another issue; this stub only
// reserves the name. Replace this whole file with the real implementation.
func runBench(args []string) int {
	fmt.Fprintln(os.Stderr, "error: bench is not implemented yet")
	return 2
}
