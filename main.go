// Command raftcache runs a node of a Raft-replicated cache cluster and
// administers one. All of the work lives in package cli; main only hands it
// the process arguments so that tests can run the same code in-process.
package main

import (
	"os"

	"github.com/raftcache/raftcache/cli"
)

func main() {
	os.Exit(cli.Main(os.Args))
}
