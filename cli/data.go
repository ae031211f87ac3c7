package cli

import (
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/client"
)

// Data commands: one client call each (keys --all: one per page).

func oneKey(c *cli.Context, extra int) (string, error) {
	if c.NArg() < 1 || c.NArg() > 1+extra {
		return "", usagef("usage: raftcache %s %s", c.Command.Name, c.Command.ArgsUsage)
	}
	if c.Args().First() == "" {
		return "", usagef("the key is empty")
	}
	return c.Args().First(), nil
}

func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("%s takes no arguments, got %q", c.Command.FullName(), c.Args().Slice())
	}
	return nil
}

// casOption turns --cas into a client option (nil when not given).
func casOption(c *cli.Context) client.Option {
	if !c.IsSet("cas") {
		return nil
	}
	return client.WithCAS(c.Uint64("cas"))
}

func expiresJSON(m map[string]any, t time.Time) {
	if !t.IsZero() {
		m["expires_at"] = t.UTC().Format(time.RFC3339Nano)
	}
}

func getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "print a key's value",
		ArgsUsage: "KEY",
		Description: `Prints the raw value to stdout (text), or the value with its version,
expiry and the Raft index of the read (json, table); exits 3 if the key does
not exist. Reads are linearizable unless --stale.
   raftcache get greeting
   raftcache get --stale greeting
   raftcache -o json get greeting    # {"key":"greeting","value":"hello","version":9,...}`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "stale", Usage: "read from the node asked, without confirming leadership"}},
		Action: func(c *cli.Context) error {
			key, err := oneKey(c, 0)
			if err != nil {
				return err
			}
			return withClient(c, func(cl *client.Client) error {
				var opts []client.Option
				if c.Bool("stale") {
					opts = append(opts, client.WithConsistency(client.Stale))
				}
				item, err := cl.Get(c.Context, key, opts...)
				if err != nil {
					return err
				}
				doc := map[string]any{"version": item.Version, "index": item.Index, "served_by": item.ServedBy}
				bytesJSON(doc, "key", []byte(key))
				bytesJSON(doc, "value", item.Value)
				expiresJSON(doc, item.ExpiresAt)
				return emit(c, result{
					json: doc,
					text: func(w io.Writer) error { _, err := w.Write(item.Value); return err },
					table: func() ([]string, [][]string) {
						exp := "-"
						if !item.ExpiresAt.IsZero() {
							exp = item.ExpiresAt.UTC().Format(time.RFC3339)
						}
						return []string{"KEY", "VALUE", "VERSION", "EXPIRES"}, [][]string{{printable(key), printable(string(item.Value)), u64(item.Version), exp}}
					},
				})
			})
		},
	}
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

func setCommand() *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "write a key",
		ArgsUsage: "KEY [VALUE]",
		Description: `Writes VALUE, or standard input when VALUE is omitted. With --cas V the
write happens only if the key's version is V (--cas 0: only if the key does
not exist); a failed condition exits 1 and names the current version.
   raftcache set greeting hello
   raftcache set session:42 "$TOKEN" --ttl 30s
   raftcache set report < report.json
   raftcache set greeting hi --cas 9
   raftcache set lock:job1 me --cas 0 --ttl 1m    # take a lock if free`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "ttl", Usage: "expire the key after this long (e.g. 30s, 1h)"},
			&cli.Uint64Flag{Name: "cas", Usage: "write only if the key's current version is this (0: only if absent)"},
		},
		Action: func(c *cli.Context) error {
			key, err := oneKey(c, 1)
			if err != nil {
				return err
			}
			if c.Duration("ttl") < 0 {
				return usagef("--ttl must be positive")
			}
			var value []byte
			if c.NArg() == 2 {
				value = []byte(c.Args().Get(1))
			} else if value, err = io.ReadAll(c.App.Reader); err != nil {
				return err
			}
			return withClient(c, func(cl *client.Client) error {
				res, err := cl.Set(c.Context, key, value, client.WithTTL(c.Duration("ttl")), casOption(c))
				if err != nil {
					return err
				}
				doc := map[string]any{"version": res.Version, "index": res.Index}
				bytesJSON(doc, "key", []byte(key))
				return emit(c, result{
					json: doc,
					text: func(w io.Writer) error {
						_, err := fmt.Fprintf(w, "OK version=%d index=%d\n", res.Version, res.Index)
						return err
					},
					table: func() ([]string, [][]string) {
						return []string{"KEY", "VERSION", "INDEX"}, [][]string{{printable(key), u64(res.Version), u64(res.Index)}}
					},
				})
			})
		},
	}
}

func delCommand() *cli.Command {
	return &cli.Command{
		Name:      "del",
		Usage:     "delete a key",
		ArgsUsage: "KEY",
		Description: `Prints whether a live key was deleted (deleting a missing key is not an
error). With --cas V it deletes only if the key's version is V.
   raftcache del greeting
   raftcache del lock:job1 --cas 12`,
		Flags: []cli.Flag{&cli.Uint64Flag{Name: "cas", Usage: "delete only if the key's current version is this"}},
		Action: func(c *cli.Context) error {
			key, err := oneKey(c, 0)
			if err != nil {
				return err
			}
			return withClient(c, func(cl *client.Client) error {
				res, err := cl.Delete(c.Context, key, casOption(c))
				if err != nil {
					return err
				}
				doc := map[string]any{"deleted": res.Deleted, "index": res.Index}
				bytesJSON(doc, "key", []byte(key))
				return emit(c, result{
					json: doc,
					text: func(w io.Writer) error {
						_, err := fmt.Fprintf(w, "deleted=%t index=%d\n", res.Deleted, res.Index)
						return err
					},
					table: func() ([]string, [][]string) {
						return []string{"KEY", "DELETED", "INDEX"}, [][]string{{printable(key), strconv.FormatBool(res.Deleted), u64(res.Index)}}
					},
				})
			})
		},
	}
}

func incrCommand() *cli.Command {
	return &cli.Command{
		Name:      "incr",
		Usage:     "add to a counter and print its new value",
		ArgsUsage: "KEY",
		Description: `Adds --by (default 1, may be negative) to the decimal counter at KEY; a
missing key starts at 0. --ttl applies only when this call creates the
counter, so a fixed-window rate limit is one command. Retries never count
twice (the client sends an idempotency key).
   raftcache incr visits
   raftcache incr stock:42 --by -3
   raftcache incr rate:user42 --ttl 60s    # requests this minute`,
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "by", Value: 1, Usage: "amount to add (negative subtracts)"},
			&cli.DurationFlag{Name: "ttl", Usage: "expiry of a counter this call creates"},
		},
		Action: func(c *cli.Context) error {
			key, err := oneKey(c, 0)
			if err != nil {
				return err
			}
			if c.Duration("ttl") < 0 {
				return usagef("--ttl must be positive")
			}
			return withClient(c, func(cl *client.Client) error {
				v, err := cl.Incr(c.Context, key, c.Int64("by"), client.WithTTL(c.Duration("ttl")))
				if err != nil {
					return err
				}
				doc := map[string]any{"value": v}
				bytesJSON(doc, "key", []byte(key))
				return emit(c, result{
					json: doc,
					text: func(w io.Writer) error { _, err := fmt.Fprintln(w, v); return err },
					table: func() ([]string, [][]string) {
						return []string{"KEY", "VALUE"}, [][]string{{printable(key), strconv.FormatInt(v, 10)}}
					},
				})
			})
		},
	}
}

// maxListPages bounds keys --all (10^4 pages of up to 10^4 keys).
const maxListPages = 10000

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "list keys by prefix",
		Description: `Lists live keys starting with --prefix, in byte order, one page of --limit
keys (default 1000); --all follows every page. Without --all, when more keys
follow, text output ends with a note on stderr and json gives "next" (pass
it as --cursor). json: {"keys":[...],"encoding":"utf8"|"base64",...}; keys
that are not UTF-8 make the page base64.
   raftcache keys --prefix session:
   raftcache keys --prefix user: --all -o json | jq -r '.keys[]'
   raftcache keys --prefix user: --limit 100 --cursor user:0099`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "prefix", Aliases: []string{"p"}, Usage: "list keys starting with this (empty: every key)"},
			&cli.IntFlag{Name: "limit", Usage: "keys per page (server default 1000, at most 10000)"},
			&cli.BoolFlag{Name: "all", Usage: "list every page"},
			&cli.StringFlag{Name: "cursor", Usage: `continue after this key (a previous page's "next")`},
			&cli.BoolFlag{Name: "stale", Usage: "read from the node asked, without confirming leadership"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if c.Int("limit") < 0 {
				return usagef("--limit must be positive")
			}
			return withClient(c, func(cl *client.Client) error {
				var keys []string
				cursor, next, index := c.String("cursor"), "", uint64(0)
				for page := 0; ; page++ {
					if page == maxListPages {
						return fmt.Errorf("more than %d pages; narrow the prefix", maxListPages)
					}
					opts := []client.Option{client.WithCursor(cursor)}
					if n := c.Int("limit"); n > 0 {
						opts = append(opts, client.WithLimit(n))
					}
					if c.Bool("stale") {
						opts = append(opts, client.WithConsistency(client.Stale))
					}
					p, err := cl.Keys(c.Context, c.String("prefix"), opts...)
					if err != nil {
						return err
					}
					keys = append(keys, p.Keys...)
					next, index = p.Next, p.Index
					if next == "" || !c.Bool("all") {
						break
					}
					if next == cursor {
						return fmt.Errorf("the listing did not advance past %q", next)
					}
					cursor = next
				}
				return emit(c, result{
					json: keysJSON(keys, next, index),
					text: func(w io.Writer) error {
						for _, k := range keys {
							if _, err := fmt.Fprintln(w, printable(k)); err != nil {
								return err
							}
						}
						if next != "" {
							fmt.Fprintf(c.App.ErrWriter, "(more keys follow: --all, or --cursor %s)\n", printable(next))
						}
						return nil
					},
					table: func() ([]string, [][]string) {
						rows := make([][]string, len(keys))
						for i, k := range keys {
							rows[i] = []string{printable(k)}
						}
						return []string{"KEY"}, rows
					},
				})
			})
		},
	}
}

// keysJSON renders a listing as the server does: UTF-8 strings, or base64
// for every key (and the cursor) when any key is not UTF-8.
func keysJSON(keys []string, next string, index uint64) map[string]any {
	enc := "utf8"
	for _, k := range append([]string{next}, keys...) {
		if !utf8.ValidString(k) {
			enc = "base64"
		}
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k
		if enc == "base64" {
			out[i] = base64.StdEncoding.EncodeToString([]byte(k))
		}
	}
	doc := map[string]any{"keys": out, "encoding": enc, "count": len(keys), "index": index}
	if next != "" {
		if enc == "base64" {
			next = base64.StdEncoding.EncodeToString([]byte(next))
		}
		doc["next"] = next
	}
	return doc
}

func delPrefixCommand() *cli.Command {
	return &cli.Command{
		Name:      "del-prefix",
		Usage:     "delete every key under a prefix",
		ArgsUsage: "PREFIX",
		Description: `Deletes every key starting with PREFIX and prints how many live keys
went. A prefix of up to 4096 keys goes in one Raft entry (atomic); a bigger
one is deleted 4096 keys per entry, so it never stalls the log, and a reader
may see it partly deleted meanwhile. If it fails part way, run it again.
An empty prefix is refused (it would empty the cache).
   raftcache del-prefix session:
   raftcache -o json del-prefix tenant42/    # {"prefix":"tenant42/","deleted":17,"index":120}`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("usage: raftcache del-prefix PREFIX")
			}
			prefix := c.Args().First()
			if prefix == "" {
				return usagef("the prefix is empty (refusing to delete every key)")
			}
			return withClient(c, func(cl *client.Client) error {
				res, err := cl.DeletePrefix(c.Context, prefix)
				if err != nil {
					return err
				}
				doc := map[string]any{"deleted": res.Deleted, "index": res.Index}
				bytesJSON(doc, "prefix", []byte(prefix))
				return emit(c, result{
					json: doc,
					text: func(w io.Writer) error {
						_, err := fmt.Fprintf(w, "deleted=%d index=%d\n", res.Deleted, res.Index)
						return err
					},
					table: func() ([]string, [][]string) {
						return []string{"PREFIX", "DELETED", "INDEX"}, [][]string{{printable(prefix), strconv.Itoa(res.Deleted), u64(res.Index)}}
					},
				})
			})
		},
	}
}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "show cache statistics",
		Description: `One member's statistics (the leader's if known), or with --cluster every
member's, with hits and misses summed. Members that did not answer are
listed under errors. Equal digests at equal applied indices mean equal
caches.
   raftcache stats
   raftcache stats --cluster -o table`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "cluster", Usage: "ask every member"}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withClient(c, func(cl *client.Client) error {
				var opts []client.Option
				if c.Bool("cluster") {
					opts = append(opts, client.WithClusterScope())
				}
				st, err := cl.Stats(c.Context, opts...)
				if err != nil {
					return err
				}
				if st.Scope != "cluster" {
					return emit(c, result{
						json: st.NodeStats,
						text: func(w io.Writer) error { return writeTable(w, nil, colonRows(nodeStatsFields(st.NodeStats))) },
						table: func() ([]string, [][]string) {
							return []string{"FIELD", "VALUE"}, nodeStatsFields(st.NodeStats)
						},
					})
				}
				rows := func() ([]string, [][]string) {
					var rows [][]string
					for _, n := range st.Nodes {
						rows = append(rows, []string{n.NodeID, strconv.Itoa(n.Keys), strconv.FormatInt(n.Bytes, 10), u64(n.Hits), u64(n.Misses),
							u64(n.Evictions), u64(n.Expirations), u64(n.AppliedIndex), n.Digest})
					}
					return []string{"NODE", "KEYS", "BYTES", "HITS", "MISSES", "EVICTIONS", "EXPIRATIONS", "APPLIED", "DIGEST"}, rows
				}
				doc := map[string]any{"scope": "cluster", "hits": st.Hits, "misses": st.Misses, "nodes": st.Nodes}
				if st.Nodes == nil {
					doc["nodes"] = []client.NodeStats{}
				}
				if len(st.Errors) > 0 {
					doc["errors"] = st.Errors
				}
				return emit(c, result{
					json: doc,
					text: func(w io.Writer) error {
						fmt.Fprintf(w, "hits (all nodes): %d\nmisses (all nodes): %d\n\n", st.Hits, st.Misses)
						h, r := rows()
						if err := writeTable(w, h, r); err != nil {
							return err
						}
						ids := make([]string, 0, len(st.Errors))
						for id := range st.Errors {
							ids = append(ids, id)
						}
						sort.Strings(ids)
						for _, id := range ids {
							fmt.Fprintf(w, "%s did not answer: %s\n", id, st.Errors[id])
						}
						return nil
					},
					table: rows,
				})
			})
		},
	}
}

func nodeStatsFields(n client.NodeStats) [][]string {
	_, rows := fieldRows(
		"node", n.NodeID,
		"keys", strconv.Itoa(n.Keys),
		"bytes", strconv.FormatInt(n.Bytes, 10),
		"max_memory", strconv.FormatInt(n.MaxMemory, 10),
		"hits", u64(n.Hits),
		"misses", u64(n.Misses),
		"evictions", u64(n.Evictions),
		"expirations", u64(n.Expirations),
		"sets", u64(n.Sets),
		"deletes", u64(n.Deletes),
		"applied_index", u64(n.AppliedIndex),
		"digest", n.Digest,
		"strong_reads", u64(n.StrongReads),
		"strong_read_rounds", u64(n.StrongReadRounds),
	)
	return rows
}

// colonRows turns name/value rows into "name:" rows for text output.
func colonRows(rows [][]string) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = append([]string{r[0] + ":"}, r[1:]...)
	}
	return out
}
