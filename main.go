// Command raft-consensus is an interactive REPL over a simulated Raft
// cluster: create a cluster, read and write keys, crash, disconnect and
// partition nodes, change the membership, and watch what the cluster does.
// See REPL.md for the commands.
package main

import (
	"os"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "bench":
			os.Exit(runBench(os.Args[2:]))
		case "sim":
			os.Exit(runSim(os.Args[2:], os.Stdout, os.Stderr))
		case "node":
			os.Exit(runNode(os.Args[2:], os.Stderr))
		case "health":
			os.Exit(runHealth(os.Args[2:], os.Stdout, os.Stderr))
		case "certs":
			os.Exit(runCerts(os.Args[2:], os.Stdout, os.Stderr))
		case "cluster":
			os.Exit(runClusterCmd(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		}
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
