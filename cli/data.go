package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/client"
)

func oneKey(c *cli.Context, extra int) (string, error) {
	if c.NArg() < 1 || c.NArg() > 1+extra {
		return "", usagef("usage: raftcache %s %s", c.Command.Name, c.Command.ArgsUsage)
	}
	if c.Args().First() == "" {
		return "", usagef("the key is empty")
	}
	return c.Args().First(), nil
}

func getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "print a key's value",
		ArgsUsage: "KEY",
		Description: `Prints the raw value to stdout; exits 3 if the key does not exist.
   raftcache get greeting
   raftcache get --stale greeting`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "stale", Usage: "read from the node asked, without confirming leadership"}},
		Action: func(c *cli.Context) error {
			key, err := oneKey(c, 0)
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			var opts []client.Option
			if c.Bool("stale") {
				opts = append(opts, client.WithConsistency(client.Stale))
			}
			item, err := cl.Get(c.Context, key, opts...)
			if err != nil {
				return err
			}
			_, err = c.App.Writer.Write(item.Value)
			return err
		},
	}
}

func setCommand() *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "write a key",
		ArgsUsage: "KEY [VALUE]",
		Description: `Writes VALUE, or standard input when VALUE is omitted.
   raftcache set greeting hello
   raftcache set --ttl 30s session:42 "$TOKEN"
   raftcache set report < report.json`,
		Flags: []cli.Flag{&cli.DurationFlag{Name: "ttl", Usage: "expire the key after this long"}},
		Action: func(c *cli.Context) error {
			key, err := oneKey(c, 1)
			if err != nil {
				return err
			}
			var value []byte
			if c.NArg() == 2 {
				value = []byte(c.Args().Get(1))
			} else if value, err = io.ReadAll(c.App.Reader); err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			res, err := cl.Set(c.Context, key, value, client.WithTTL(c.Duration("ttl")))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "OK version=%d index=%d\n", res.Version, res.Index)
			return nil
		},
	}
}

func delCommand() *cli.Command {
	return &cli.Command{
		Name:      "del",
		Usage:     "delete a key",
		ArgsUsage: "KEY",
		Description: `Prints whether a live key was deleted.
   raftcache del greeting`,
		Action: func(c *cli.Context) error {
			key, err := oneKey(c, 0)
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			res, err := cl.Delete(c.Context, key)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "deleted=%t index=%d\n", res.Deleted, res.Index)
			return nil
		},
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the leader, term, indices and members",
		Description: `Asks one member for its view of the cluster.
   raftcache status
   raftcache -e http://127.0.0.1:8002 status`,
		Action: func(c *cli.Context) error {
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			st, err := cl.Cluster(c.Context)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			leader := "(none)"
			if st.Leader != nil {
				leader = st.Leader.ID + " " + st.Leader.HTTPAddr
			}
			fmt.Fprintf(w, "asked:\t%s (%s)\nleader:\t%s\nterm:\t%d\ncommit index:\t%d\napplied index:\t%d\n\n",
				st.NodeID, st.State, leader, st.Term, st.CommitIndex, st.AppliedIndex)
			fmt.Fprintln(w, "ID\tHTTP\tRAFT\tVOTER")
			for _, m := range st.Members {
				fmt.Fprintf(w, "%s\t%s\t%s\t%t\n", m.ID, m.HTTPAddr, m.RaftAddr, m.Voter)
			}
			return w.Flush()
		},
	}
}
