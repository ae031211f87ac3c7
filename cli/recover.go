package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/node"
)

// recoverJSON is `raftcache recover -o json`.
type recoverJSON struct {
	DataDir       string   `json:"data_dir"`
	ID            string   `json:"id"`
	RaftAddr      string   `json:"raft_addr"`
	Previous      []string `json:"previous_voters"`
	OldClusterID  string   `json:"old_cluster_id"`
	NewClusterID  string   `json:"new_cluster_id"`
	LastIndex     uint64   `json:"last_index"`
	LastTerm      uint64   `json:"last_term"`
	PreviousCount int      `json:"previous_voter_count"`
}

func recoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "recover",
		Usage: "make a stopped node the only voter of its data directory, after a majority of the voters is lost for good",
		Description: `Disaster recovery (hashicorp/raft's RecoverCluster, as Consul's peers.json):
when a majority of the voters is lost for good, no leader can be elected
again. Stop the surviving node you trust most (the one with the highest
applied index), run recover on its data directory, and start it again with
its usual flags: it leads a cluster of one, with its data. Then empty the
data directories of the other nodes (or give them new ones) and start them
with --join pointing at it: they join as learners and are promoted once
caught up.

Cost: every entry in the survivor's log becomes committed, including
writes whose outcome was unknown when the quorum was lost; writes the lost
members committed but the survivor never received are gone.

recover mints a new cluster id: the lost members, should they return with
their old data, are refused at the Raft handshake and cannot re-form the
old quorum. It refuses to run while a node uses the data directory (the
directory's lock file), and works with any log store (bolt, wal, ...).

   raftcache recover --data-dir /var/lib/raftcache
   raftcache recover --data-dir data/n1 --id n1`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-dir", Required: true, Usage: "the surviving node's data directory (the node must be stopped)"},
			&cli.StringFlag{Name: "id", Usage: "the surviving node's member id (default: the member whose record carries this data directory's incarnation)"},
			&cli.StringFlag{Name: "raft-advertise", Usage: "the survivor's Raft address in the new configuration (default: the one the old configuration lists)"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			host, _ := os.Hostname()
			logger := hclog.New(&hclog.LoggerOptions{Name: "recover", Level: hclog.Warn, Output: c.App.ErrWriter})
			res, err := node.Recover(c.String("data-dir"), c.String("id"), c.String("raft-advertise"), host, logger)
			if err != nil {
				return err
			}
			out := recoverJSON{DataDir: c.String("data-dir"), ID: res.ID, RaftAddr: res.RaftAddr, Previous: res.Previous,
				OldClusterID: res.OldCluster, NewClusterID: res.NewCluster, LastIndex: res.LastIndex, LastTerm: res.LastTerm,
				PreviousCount: len(res.Previous)}
			return emit(c, result{
				json: out,
				text: func(w io.Writer) error {
					_, err := fmt.Fprintf(w, `recovered %s: %s (%s) is now the only voter, at index %d (term %d)
previous voters: %s
cluster id: %s -> %s (members of the old cluster are refused from now on)
next: start this node with its usual flags; then start the others on EMPTY data directories with --join pointing at it
`, out.DataDir, out.ID, out.RaftAddr, out.LastIndex, out.LastTerm, strings.Join(out.Previous, ", "), orNone(out.OldClusterID), out.NewClusterID)
					return err
				},
				table: func() ([]string, [][]string) {
					return []string{"ID", "RAFT", "INDEX", "TERM", "NEW CLUSTER ID"}, [][]string{{out.ID, out.RaftAddr, u64(out.LastIndex), u64(out.LastTerm), out.NewClusterID}}
				},
			})
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
