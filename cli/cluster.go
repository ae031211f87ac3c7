package cli

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
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
	// Version is the member's build as it says itself (or as the
	// leader's probe last heard it); "" unknown.
	Version string `json:"version,omitempty"`
	// MemberState is voter, catching_up or learner (the leader's view).
	MemberState string `json:"member_state,omitempty"`
	// LastHeardMS: how long ago the member last answered the leader
	// (null when the leader does not say).
	LastHeardMS *int64 `json:"last_heard_ms"`
}

// deadVoter is a voter the leader has not heard from for too long.
type deadVoter struct {
	ID          string `json:"id"`
	LastHeardMS *int64 `json:"last_heard_ms"` // null: never, since this leader leads
	Reachable   bool   `json:"reachable"`     // whether status itself reached it
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
	// DeadVoters are voters not heard from (by the leader, or by this
	// command) for longer than --dead-after: replace them (README).
	DeadVoters []deadVoter `json:"dead_voters"`
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
"dead voters" lists the voters the leader has not heard from for longer
than --dead-after (or that neither the leader nor this command reached):
replace them as the README says (add a learner, let it be promoted, then
remove the dead voter) before another failure costs the quorum.
   raftcache status
   raftcache status -o json | jq '.members[] | {id, lag}'
   raftcache status --check && echo healthy
   until raftcache status --check --max-lag 10 >/dev/null; do sleep 1; done    # rolling restarts`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "check", Usage: "exit 1 unless the cluster is healthy"},
			&cli.Uint64Flag{Name: "max-lag", Usage: "count a member lagging by more than this many entries as unhealthy"},
			&cli.DurationFlag{Name: "dead-after", Value: 10 * time.Second, Usage: "list voters not heard from for longer than this as dead"},
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
						if err := writeTable(w, h, rows); err != nil {
							return err
						}
						if len(st.DeadVoters) > 0 {
							fmt.Fprintln(w)
							for _, d := range st.DeadVoters {
								heard := "never, since this leader leads"
								if d.LastHeardMS != nil {
									heard = (time.Duration(*d.LastHeardMS) * time.Millisecond).Round(100*time.Millisecond).String() + " ago"
								}
								fmt.Fprintf(w, "dead voter: %s (last heard by the leader: %s); replace it: add a learner, let it be promoted, then remove %s\n", d.ID, heard, d.ID)
							}
						}
						return nil
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
		role := m.MemberState
		if role == "" {
			role = "learner"
			if m.Voter {
				role = "voter"
			}
		}
		version := m.Version
		if version == "" {
			version = "-"
		}
		rows = append(rows, []string{m.ID, state, role, m.HTTPAddr, m.RaftAddr, ready, applied, lag, level, version})
	}
	return []string{"ID", "STATE", "ROLE", "HTTP", "RAFT", "READY", "APPLIED", "LAG", "LEVEL", "VERSION"}, rows
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
	// The leader's view says whom it last heard from when.
	if st.Leader != nil && view.NodeID != st.Leader.ID {
		for i, m := range view.Members {
			if h := health[i]; m.ID == st.Leader.ID && h.View != nil && len(h.View.Members) > 0 {
				view.Members = mergeLeaderView(view.Members, h.View.Members)
			}
		}
	}
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
			Ready: h.Ready, NotReady: h.NotReady, FeatureLevel: m.FeatureLevel, MemberState: m.State, LastHeardMS: m.LastHeardMS, Version: m.Version}
		if h.Err != nil {
			mh.Error = h.Err.Error()
		}
		if v := h.View; v != nil {
			mh.Reachable = true
			// A member's own word; one from before levels does not say.
			mh.FeatureLevel = max(v.FeatureLevel, 1)
			if v.Version != "" {
				mh.Version = node.Build{Version: v.Version, Revision: v.Revision}.String()
			}
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
		if mh.Voter && (st.Leader == nil || mh.ID != st.Leader.ID) {
			dead := mh.LastHeardMS != nil && time.Duration(*mh.LastHeardMS)*time.Millisecond > c.Duration("dead-after")
			if mh.LastHeardMS == nil && !mh.Reachable {
				dead = true // the leader does not say, and status could not reach it either
			}
			if dead {
				st.DeadVoters = append(st.DeadVoters, deadVoter{ID: mh.ID, LastHeardMS: mh.LastHeardMS, Reachable: mh.Reachable})
			}
		}
	}
	if st.DeadVoters == nil {
		st.DeadVoters = []deadVoter{}
	}
	return st, nil
}

// mergeLeaderView takes the leader's state and last-heard figures for the
// members of a follower's view.
func mergeLeaderView(ms, leader []client.Member) []client.Member {
	byID := map[string]client.Member{}
	for _, m := range leader {
		byID[m.ID] = m
	}
	out := append([]client.Member(nil), ms...)
	for i, m := range out {
		if l, ok := byID[m.ID]; ok {
			out[i].State, out[i].LastHeardMS = l.State, l.LastHeardMS
		}
	}
	return out
}

type memberJSON struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
	State    string `json:"state,omitempty"` // voter, catching_up or learner
}

type membersJSON struct {
	Leader  *leaderJSON  `json:"leader"`
	Members []memberJSON `json:"members"`
}

func membersOf(v *client.Cluster) membersJSON {
	out := membersJSON{Leader: leaderOf(v), Members: []memberJSON{}}
	for _, m := range v.Members {
		out.Members = append(out.Members, memberJSON{ID: m.ID, HTTPAddr: m.HTTPAddr, RaftAddr: m.RaftAddr, Voter: m.Voter, State: m.State})
	}
	return out
}

func membersRows(ms membersJSON) ([]string, [][]string) {
	var rows [][]string
	for _, m := range ms.Members {
		role := "voter"
		switch {
		case m.Voter:
		case m.State == "catching_up":
			role = "non-voter (catching up; promoted once caught up)"
		default:
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
serve stale reads without counting toward the quorum. Every add is learner
first: the member joins as a non-voter and the leader promotes it once it
has caught up and stayed healthy (--promote-after on the leader). Removing
or demoting a voter while another voter does not answer, or so that the
voters that answer would not be a majority, is refused (quorum_at_risk)
unless --force.
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
--raft-advertise/--raft-addr and --http-addr say) as a non-voter; unless
--non-voter, the leader promotes it once it has caught up and stayed
healthy, so an unstarted or lagging node never counts toward the quorum.
Start the new node with --join pointing at any member, so it does not
bootstrap a cluster of its own. Adding a member already present with the
same addresses changes nothing. (Simplest: just start the node with
--join; it adds itself the same way.)
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
						state := "learner"
						if m.Voter {
							state, err = cl.AddMemberState(c.Context, m)
						} else {
							err = cl.AddNonVoter(c.Context, m)
						}
						if err != nil {
							return err
						}
						mj := memberJSON{ID: m.ID, HTTPAddr: m.HTTPAddr, RaftAddr: m.RaftAddr, Voter: state == "voter", State: state}
						return emit(c, result{
							json: map[string]any{"added": mj},
							text: func(w io.Writer) error {
								role := "voter"
								switch state {
								case "voter":
								case "catching_up":
									role = "non-voter, catching up: promoted to voter once caught up and healthy"
								default:
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
it step down first). The removed node exits with status 4; started again
with its flags it rejoins as a learner, so stop it for good to shrink.
Removing a voter while another voter does not answer, or so that the
voters that answer would not be a majority, is refused (exit 1, code
quorum_at_risk, naming the unreachable voters) unless --force. To replace
a dead voter, add the replacement first, wait until it is a voter, then
remove the dead one.
   raftcache members remove n3
   raftcache members remove n3 --force     # disaster recovery only`,
				Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Usage: "remove even when it puts the quorum at risk"}},
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "ID")
					if err != nil {
						return err
					}
					return withClient(c, func(cl *client.Client) error {
						var opts []client.Option
						if c.Bool("force") {
							opts = append(opts, client.WithForce())
						}
						if err := cl.RemoveMember(c.Context, id, opts...); err != nil {
							return quorumHint(err)
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

// quorumHint names the unreachable voters of a quorum_at_risk refusal.
func quorumHint(err error) error {
	var ce *client.Error
	if errors.As(err, &ce) && errors.Is(err, client.ErrQuorumAtRisk) {
		return fmt.Errorf("%w\nunreachable voters: %s; replace them first, or pass --force (disaster recovery only)", err, strings.Join(ce.Unreachable, ", "))
	}
	return err
}

func voterCommand(name, usage string, voter bool) *cli.Command {
	var flags []cli.Flag
	desc := `Prints the member list afterwards. A no-op if the member already is one.
A member that has not caught up is not promoted at once: it is marked
catching up and the leader promotes it once it has.`
	if !voter {
		flags = []cli.Flag{&cli.BoolFlag{Name: "force", Usage: "demote even when it puts the quorum at risk"}}
		desc = `Prints the member list afterwards. A no-op if the member is not a voter.
Refused (quorum_at_risk) when another voter does not answer, or when the
voters that answer would not be a majority afterwards, unless --force.`
	}
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "ID",
		Flags:     flags,
		Description: fmt.Sprintf(`%s
   raftcache members %s n4`, desc, name),
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
					var opts []client.Option
					if c.Bool("force") {
						opts = append(opts, client.WithForce())
					}
					v, err = cl.Demote(c.Context, id, opts...)
				}
				if err != nil {
					return quorumHint(err)
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
