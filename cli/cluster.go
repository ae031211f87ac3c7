package cli

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/fsm"
)

// Cluster commands: status, members, transfer-leadership.

type leaderJSON struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
}

func leaderOf(v *client.Cluster) *leaderJSON {
	if v == nil || v.Leader == nil {
		return nil
	}
	return &leaderJSON{ID: v.Leader.ID, HTTPAddr: v.Leader.HTTPAddr, RaftAddr: v.Leader.RaftAddr}
}

// memberHealth is one member's line in status.
type memberHealth struct {
	ID        string `json:"id"`
	HTTPAddr  string `json:"http_addr"`
	RaftAddr  string `json:"raft_addr"`
	Voter     bool   `json:"voter"`
	Reachable bool   `json:"reachable"`
	// Ready: its /readyz answered 200 (knows a leader, caught up with its
	// commit index).
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready,omitempty"`
	// The member's own view (zero when unreachable).
	State         string `json:"state,omitempty"`
	Term          uint64 `json:"term,omitempty"`
	CommitIndex   uint64 `json:"commit_index,omitempty"`
	AppliedIndex  uint64 `json:"applied_index,omitempty"`
	LastContactMS int64  `json:"last_contact_ms,omitempty"`
	Leader        string `json:"leader,omitempty"` // whom it believes leads
	// Lag is the leader's applied index minus the member's (null when
	// either is unknown).
	Lag   *uint64 `json:"lag"`
	RTTMS float64 `json:"rtt_ms,omitempty"`
	Error string  `json:"error,omitempty"`
	// FeatureLevel is the level of the member's binary, as it says itself
	// or else as the cluster last recorded it; 0 = unknown.
	FeatureLevel uint32 `json:"feature_level"`
}

type statusJSON struct {
	Asked        string         `json:"asked"` // the member whose view lists the members
	Leader       *leaderJSON    `json:"leader"`
	Term         uint64         `json:"term"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	Healthy      bool           `json:"healthy"` // a leader, and every member reachable and ready
	Members      []memberHealth `json:"members"`
	// ClusterFeatureLevel is the cluster's feature level; FeatureLevel
	// this CLI's binary's.
	ClusterFeatureLevel uint32 `json:"cluster_feature_level"`
	FeatureLevel        uint32 `json:"feature_level"`
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the leader, term, indices, and each member's health and lag",
		Description: `Asks the leader (or any member) for the member list, then every member
directly for its own view and /readyz. Each member's lag is the leader's
applied index minus the member's (both read within a few milliseconds, so a
busy cluster shows a small lag even when healthy). "healthy" means a leader
is known and every member is reachable and ready (and, with --max-lag, lags
by at most that many entries); --check exits 1 unless the cluster is.
   raftcache status
   raftcache status -o json | jq '.members[] | {id, lag}'
   raftcache status --check && echo healthy
   until raftcache status --check --max-lag 10 >/dev/null; do sleep 1; done    # rolling restarts`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "check", Usage: "exit 1 unless the cluster is healthy"},
			&cli.Uint64Flag{Name: "max-lag", Usage: "count a member lagging by more than this many entries as unhealthy"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withClient(c, func(cl *client.Client) error {
				st, err := clusterStatus(c, cl)
				if err != nil {
					return err
				}
				err = emit(c, result{
					json: st,
					text: func(w io.Writer) error {
						leader := "(none)"
						if st.Leader != nil {
							leader = st.Leader.ID + " (" + st.Leader.HTTPAddr + ")"
						}
						if err := writeTable(w, nil, [][]string{
							{"leader:", leader}, {"term:", u64(st.Term)},
							{"commit index:", u64(st.CommitIndex)}, {"applied index:", u64(st.AppliedIndex)},
							{"healthy:", yesNo(st.Healthy)},
							{"feature level:", fmt.Sprintf("cluster %d, this binary %d", st.ClusterFeatureLevel, st.FeatureLevel)},
						}); err != nil {
							return err
						}
						fmt.Fprintln(w)
						h, rows := statusRows(st)
						return writeTable(w, h, rows)
					},
					table: func() ([]string, [][]string) { return statusRows(st) },
				})
				if err == nil && c.Bool("check") && !st.Healthy {
					return errors.New("the cluster is not healthy")
				}
				return err
			})
		},
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func statusRows(st *statusJSON) ([]string, [][]string) {
	var rows [][]string
	for _, m := range st.Members {
		state, applied, lag := m.State, "-", "-"
		if !m.Reachable {
			state = "unreachable"
		}
		if m.Reachable {
			applied = u64(m.AppliedIndex)
		}
		if m.Lag != nil {
			lag = u64(*m.Lag)
		}
		ready := yesNo(m.Ready)
		if !m.Ready && m.NotReady != "" && m.Reachable {
			ready = "no: " + m.NotReady
		}
		level := "-"
		if m.FeatureLevel != 0 {
			level = strconv.FormatUint(uint64(m.FeatureLevel), 10)
		}
		rows = append(rows, []string{m.ID, state, strconv.FormatBool(m.Voter), m.HTTPAddr, m.RaftAddr, ready, applied, lag, level})
	}
	return []string{"ID", "STATE", "VOTER", "HTTP", "RAFT", "READY", "APPLIED", "LAG", "LEVEL"}, rows
}

// clusterStatus gathers the member list and asks every member about itself.
func clusterStatus(c *cli.Context, cl *client.Client) (*statusJSON, error) {
	view, err := cl.Cluster(c.Context)
	if err != nil {
		return nil, err
	}
	st := &statusJSON{Asked: view.NodeID, Leader: leaderOf(view), Term: view.Term,
		CommitIndex: view.CommitIndex, AppliedIndex: view.AppliedIndex, Members: []memberHealth{},
		ClusterFeatureLevel: max(view.ClusterFeatureLevel, 1), FeatureLevel: fsm.FeatureLevel}
	health := make([]*client.MemberStatus, len(view.Members))
	var wg sync.WaitGroup
	for i, m := range view.Members {
		if m.HTTPAddr == "" {
			health[i] = &client.MemberStatus{Err: errors.New("no HTTP address registered yet")}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			health[i] = cl.MemberStatus(c.Context, m.HTTPAddr)
		}()
	}
	wg.Wait()
	// The leader's own figures, if it answered, are the reference.
	var leaderApplied *uint64
	for i, m := range view.Members {
		if h := health[i]; st.Leader != nil && m.ID == st.Leader.ID && h.View != nil {
			st.Term, st.CommitIndex, st.AppliedIndex = h.View.Term, h.View.CommitIndex, h.View.AppliedIndex
			leaderApplied = &h.View.AppliedIndex
		}
	}
	if leaderApplied == nil && st.Leader != nil && view.NodeID == st.Leader.ID {
		leaderApplied = &view.AppliedIndex
	}
	st.Healthy = st.Leader != nil
	for i, m := range view.Members {
		h := health[i]
		mh := memberHealth{ID: m.ID, HTTPAddr: m.HTTPAddr, RaftAddr: m.RaftAddr, Voter: m.Voter,
			Ready: h.Ready, NotReady: h.NotReady, FeatureLevel: m.FeatureLevel}
		if h.Err != nil {
			mh.Error = h.Err.Error()
		}
		if v := h.View; v != nil {
			mh.Reachable = true
			// A member's own word; one from before levels does not say.
			mh.FeatureLevel = max(v.FeatureLevel, 1)
			mh.State, mh.Term, mh.CommitIndex, mh.AppliedIndex, mh.LastContactMS = v.State, v.Term, v.CommitIndex, v.AppliedIndex, v.LastContactMS
			if v.Leader != nil {
				mh.Leader = v.Leader.ID
			}
			mh.RTTMS = float64(h.RTT.Microseconds()) / 1000
			if leaderApplied != nil {
				lag := uint64(0)
				if *leaderApplied > v.AppliedIndex {
					lag = *leaderApplied - v.AppliedIndex
				}
				mh.Lag = &lag
			}
		}
		st.Healthy = st.Healthy && mh.Reachable && mh.Ready
		if c.IsSet("max-lag") && (mh.Lag == nil || *mh.Lag > c.Uint64("max-lag")) {
			st.Healthy = false
		}
		st.Members = append(st.Members, mh)
	}
	return st, nil
}

type memberJSON struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
}

type membersJSON struct {
	Leader  *leaderJSON  `json:"leader"`
	Members []memberJSON `json:"members"`
}

func membersOf(v *client.Cluster) membersJSON {
	out := membersJSON{Leader: leaderOf(v), Members: []memberJSON{}}
	for _, m := range v.Members {
		out.Members = append(out.Members, memberJSON{ID: m.ID, HTTPAddr: m.HTTPAddr, RaftAddr: m.RaftAddr, Voter: m.Voter})
	}
	return out
}

func membersRows(ms membersJSON) ([]string, [][]string) {
	var rows [][]string
	for _, m := range ms.Members {
		role := "voter"
		if !m.Voter {
			role = "non-voter"
		}
		if ms.Leader != nil && ms.Leader.ID == m.ID {
			role += ", leader"
		}
		rows = append(rows, []string{m.ID, m.HTTPAddr, m.RaftAddr, role})
	}
	return []string{"ID", "HTTP", "RAFT", "ROLE"}, rows
}

func emitMembers(c *cli.Context, v *client.Cluster) error {
	ms := membersOf(v)
	return emit(c, result{
		json: ms,
		text: func(w io.Writer) error {
			h, rows := membersRows(ms)
			return writeTable(w, h, rows)
		},
		table: func() ([]string, [][]string) { return membersRows(ms) },
	})
}

func membersCommand() *cli.Command {
	list := func(c *cli.Context) error {
		if err := noArgs(c); err != nil {
			return err
		}
		return withClient(c, func(cl *client.Client) error {
			v, err := cl.Cluster(c.Context)
			if err != nil {
				return err
			}
			return emitMembers(c, v)
		})
	}
	return &cli.Command{
		Name:  "members",
		Usage: "list, add, remove, promote or demote cluster members",
		Description: `Membership changes go through the leader (any member redirects) and the
Raft log. Keep an odd number of voters (3 or 5); non-voters replicate and
serve stale reads without counting toward the quorum.
   raftcache members list
   raftcache members add n4 --raft-addr 10.0.0.4:9001 --http-addr 10.0.0.4:8001
   raftcache members add r1 --raft-addr 10.0.0.9:9001 --http-addr 10.0.0.9:8001 --non-voter
   raftcache members promote r1
   raftcache members remove n4`,
		Subcommands: []*cli.Command{
			{
				Name:        "list",
				Aliases:     []string{"ls"},
				Usage:       "list the members",
				Description: "   raftcache members list\n   raftcache members list -o json | jq -r '.members[].id'",
				Action:      list,
			},
			{
				Name:      "add",
				Usage:     "add a member (then start it with --join, or start it first)",
				ArgsUsage: "ID",
				Description: `Adds a member with the given Raft and HTTP addresses (what the node's
--raft-advertise/--raft-addr and --http-addr say). Start the new node with
--join pointing at any member, so it does not bootstrap a cluster of its
own (its own join request is then a no-op). Adding a member already present
with the same addresses changes nothing.
   raftcache members add n4 --raft-addr 127.0.0.1:9004 --http-addr 127.0.0.1:8004
   raftcache node --id n4 --http-addr 127.0.0.1:8004 --raft-addr 127.0.0.1:9004 --data-dir data/n4 --join http://127.0.0.1:8001
   raftcache members add r1 --raft-addr 127.0.0.1:9010 --http-addr 127.0.0.1:8010 --non-voter`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "raft-addr", Usage: "the member's Raft address (host:port), as other members dial it"},
					&cli.StringFlag{Name: "http-addr", Usage: "the member's HTTP API address (host:port)"},
					&cli.BoolFlag{Name: "non-voter", Usage: "add as a non-voting member (read scaling; promote later)"},
					&cli.UintFlag{Name: "feature-level", Value: uint(fsm.FeatureLevel), Usage: "the feature level of the binary the member runs (default: this binary's); the cluster refuses one below its own level"},
				},
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "ID")
					if err != nil {
						return err
					}
					if c.String("raft-addr") == "" || c.String("http-addr") == "" {
						return usagef("members add needs --raft-addr and --http-addr")
					}
					m := client.Member{ID: id, RaftAddr: c.String("raft-addr"), HTTPAddr: c.String("http-addr"), Voter: !c.Bool("non-voter"),
						FeatureLevel: uint32(min(c.Uint("feature-level"), math.MaxUint32))}
					return withClient(c, func(cl *client.Client) error {
						view, err := cl.Cluster(c.Context)
						if err != nil {
							return err
						}
						m := joinRequest(m, view) // no level for a cluster that may run binaries from before levels
						if m.Voter {
							err = cl.AddMember(c.Context, m)
						} else {
							err = cl.AddNonVoter(c.Context, m)
						}
						if err != nil {
							return err
						}
						mj := memberJSON{ID: m.ID, HTTPAddr: m.HTTPAddr, RaftAddr: m.RaftAddr, Voter: m.Voter}
						return emit(c, result{
							json: map[string]any{"added": mj},
							text: func(w io.Writer) error {
								role := "voter"
								if !m.Voter {
									role = "non-voter"
								}
								_, err := fmt.Fprintf(w, "added %s (%s) raft=%s http=%s\n", m.ID, role, m.RaftAddr, m.HTTPAddr)
								return err
							},
						})
					})
				},
			},
			{
				Name:      "remove",
				Aliases:   []string{"rm"},
				Usage:     "remove a member",
				ArgsUsage: "ID",
				Description: `Removes the member from the Raft configuration (removing the leader makes
it step down first); stop its process afterwards. To replace a dead node,
remove it, then add the new one.
   raftcache members remove n3`,
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "ID")
					if err != nil {
						return err
					}
					return withClient(c, func(cl *client.Client) error {
						if err := cl.RemoveMember(c.Context, id); err != nil {
							return err
						}
						return emit(c, result{
							json: map[string]any{"removed": id},
							text: func(w io.Writer) error { _, err := fmt.Fprintf(w, "removed %s\n", id); return err },
						})
					})
				},
			},
			voterCommand("promote", "make a non-voting member a voter", true),
			voterCommand("demote", "make a voter a non-voting member", false),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command %q for members (list, add, remove, promote, demote)", c.Args().First())
			}
			return list(c)
		},
	}
}

func oneArg(c *cli.Context, name string) (string, error) {
	if c.NArg() != 1 || c.Args().First() == "" {
		return "", usagef("usage: raftcache %s %s", c.Command.FullName(), name)
	}
	return c.Args().First(), nil
}

func voterCommand(name, usage string, voter bool) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "ID",
		Description: fmt.Sprintf(`Prints the member list afterwards. A no-op if the member already is one.
   raftcache members %s n4`, name),
		Action: func(c *cli.Context) error {
			id, err := oneArg(c, "ID")
			if err != nil {
				return err
			}
			return withClient(c, func(cl *client.Client) error {
				var v *client.Cluster
				if voter {
					v, err = cl.Promote(c.Context, id)
				} else {
					v, err = cl.Demote(c.Context, id)
				}
				if err != nil {
					return err
				}
				return emitMembers(c, v)
			})
		},
	}
}

func transferCommand() *cli.Command {
	return &cli.Command{
		Name:  "transfer-leadership",
		Usage: "hand leadership to another member",
		Description: `Asks the leader to hand over to --to, or to the most up-to-date follower,
and waits until it has. Do this before restarting or removing the leader:
the cluster then never waits an election timeout. (A node stopped with
SIGTERM hands off by itself, too.)
   raftcache transfer-leadership
   raftcache transfer-leadership --to n2`,
		Flags: []cli.Flag{&cli.StringFlag{Name: "to", Usage: "the member id to hand leadership to (default: the most up-to-date follower)"}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withClient(c, func(cl *client.Client) error {
				before, err := cl.Cluster(c.Context)
				if err != nil {
					return err
				}
				v, err := cl.TransferLeadership(c.Context, c.String("to"))
				if err != nil {
					return err
				}
				prev := ""
				if before.Leader != nil {
					prev = before.Leader.ID
				}
				doc := map[string]any{"previous": prev, "leader": leaderOf(v), "term": v.Term}
				return emit(c, result{
					json: doc,
					text: func(w io.Writer) error {
						now := "(unknown)"
						if v.Leader != nil {
							now = v.Leader.ID
						}
						_, err := fmt.Fprintf(w, "leader: %s -> %s (term %d)\n", prev, now, v.Term)
						return err
					},
				})
			})
		},
	}
}
