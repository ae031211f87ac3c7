package cli

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/fsm"
)

// Backups: snapshot save, snapshot inspect, restore.

// backupInfo summarizes a backup file.
type backupInfo struct {
	File       string `json:"file"`
	Bytes      int64  `json:"bytes"`
	SHA256     string `json:"sha256"`
	Keys       int    `json:"keys"`
	ValueBytes int64  `json:"value_bytes"`
	WithTTL    int    `json:"with_ttl"`
	// Expired: keys whose expiry time (the leader's clock) is already past
	// by this machine's clock; a restore skips them.
	Expired int `json:"expired"`
}

// inspectBackup parses a backup (the whole file: a truncated or corrupt
// one fails) and counts its keys.
func inspectBackup(path string) (*backupInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(f, h)}
	info := &backupInfo{File: path}
	now := time.Now().UnixNano() // expiry times are Unix nanoseconds (leader time)
	err = fsm.ReadBackup(cr, func(it fsm.BackupItem) error {
		info.Keys++
		info.ValueBytes += int64(len(it.Value))
		if it.ExpireAt != 0 {
			info.WithTTL++
			if it.ExpireAt <= now {
				info.Expired++
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s is not a valid backup: %w", path, err)
	}
	if _, err := io.Copy(io.Discard, cr); err != nil { // the rest, for the size and hash
		return nil, err
	}
	info.Bytes, info.SHA256 = cr.n, hex.EncodeToString(h.Sum(nil))
	return info, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func backupRows(info *backupInfo) ([]string, [][]string) {
	return fieldRows(
		"file", info.File,
		"bytes", strconv.FormatInt(info.Bytes, 10),
		"sha256", info.SHA256,
		"keys", strconv.Itoa(info.Keys),
		"value_bytes", strconv.FormatInt(info.ValueBytes, 10),
		"with_ttl", strconv.Itoa(info.WithTTL),
		"expired", strconv.Itoa(info.Expired),
	)
}

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "save a consistent backup of the cluster, or inspect one",
		Description: `   raftcache snapshot save backup.snap
   raftcache snapshot inspect backup.snap
   raftcache restore backup.snap`,
		Subcommands: []*cli.Command{
			{
				Name:      "save",
				Usage:     "stream a consistent backup from the leader into FILE",
				ArgsUsage: "FILE",
				Description: `The leader takes the backup after confirming its leadership and applying
everything committed, so it holds every write acknowledged before the
command started. It is written to a temporary file next to FILE, synced,
checked (parsed in full) and only then renamed to FILE: FILE is never a
partial backup. Writes go on while it runs. The backup holds keys, values,
versions and absolute expiry times (not the membership). Restore it with
raftcache restore. FILE "-" writes to stdout (unchecked; the summary goes to
stderr).
   raftcache snapshot save backup-$(date +%F).snap
   raftcache -o json snapshot save backup.snap    # {"file":...,"bytes":...,"keys":...,"sha256":...}`,
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "no-verify", Usage: "skip parsing the file after writing it"}},
				Action: snapshotSave,
			},
			{
				Name:      "inspect",
				Usage:     "check a backup file and count its keys",
				ArgsUsage: "FILE",
				Description: `Parses the whole file (exits 1 if it is truncated or corrupt) and prints
its size, SHA-256, keys, value bytes, keys with a TTL, and keys already
expired by this machine's clock (a restore skips those).
   raftcache snapshot inspect backup.snap`,
				Action: func(c *cli.Context) error {
					path, err := oneArg(c, "FILE")
					if err != nil {
						return err
					}
					info, err := inspectBackup(path)
					if err != nil {
						return err
					}
					return emit(c, result{
						json: info,
						text: func(w io.Writer) error {
							_, rows := backupRows(info)
							return writeTable(w, nil, colonRows(rows))
						},
						table: func() ([]string, [][]string) { return backupRows(info) },
					})
				},
			},
		},
	}
}

func snapshotSave(c *cli.Context) error {
	path, err := oneArg(c, "FILE")
	if err != nil {
		return err
	}
	ctx, cancel := longContext(c)
	defer cancel()
	start := time.Now()
	if path == "-" {
		return withClient(c, func(cl *client.Client) error {
			h := sha256.New()
			n, err := cl.Snapshot(ctx, io.MultiWriter(c.App.Writer, h))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.ErrWriter, "saved %d bytes to stdout in %v, sha256 %x\n", n, time.Since(start).Round(time.Millisecond), h.Sum(nil))
			return nil
		})
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	err = withClient(c, func(cl *client.Client) error {
		_, err := cl.Snapshot(ctx, bw)
		return err
	})
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	var info *backupInfo
	if c.Bool("no-verify") {
		st, err := os.Stat(tmp.Name())
		if err != nil {
			return err
		}
		info = &backupInfo{Bytes: st.Size(), Keys: -1}
	} else if info, err = inspectBackup(tmp.Name()); err != nil {
		return fmt.Errorf("the backup received is not valid (nothing saved): %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	keep = true
	syncDir(filepath.Dir(path))
	info.File = path
	took := time.Since(start)
	doc := map[string]any{"file": path, "bytes": info.Bytes, "took_ms": took.Milliseconds()}
	if info.Keys >= 0 {
		doc["keys"], doc["sha256"], doc["with_ttl"] = info.Keys, info.SHA256, info.WithTTL
	}
	return emit(c, result{
		json: doc,
		text: func(w io.Writer) error {
			if info.Keys < 0 {
				_, err := fmt.Fprintf(w, "saved %s: %d bytes in %v (not verified)\n", path, info.Bytes, took.Round(time.Millisecond))
				return err
			}
			_, err := fmt.Fprintf(w, "saved %s: %d keys, %d bytes in %v, sha256 %s\n", path, info.Keys, info.Bytes, took.Round(time.Millisecond), info.SHA256)
			return err
		},
	})
}

// syncDir makes a rename durable (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "replace the cluster's contents with a backup",
		ArgsUsage: "FILE",
		Description: `Restores a backup made by "raftcache snapshot save" into a running cluster,
through the Raft log: one entry deletes every key, then batches of sets
recreate the backup's keys with their versions renewed and their absolute
expiry times (keys expired since the backup are skipped). Every member
applies the same entries, so nothing needs stopping. It is not atomic:
while it runs readers may see the cache partly restored, and writes made
meanwhile are lost. Membership is not touched.

The file is checked first (parsed in full) and nothing is sent if it is
not a valid backup; the server checks it again before deleting anything.

To restore into a brand-new cluster: start it (bootstrap one node, join the
others), wait for "raftcache status --check", then restore.
   raftcache restore backup.snap
   raftcache -e http://10.0.0.1:8001 restore --timeout 1h big.snap`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "no-verify", Usage: "skip checking the file before sending it"}},
		Action: func(c *cli.Context) error {
			path, err := oneArg(c, "FILE")
			if err != nil {
				return err
			}
			var info *backupInfo
			if !c.Bool("no-verify") {
				if info, err = inspectBackup(path); err != nil {
					return err
				}
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			ctx, cancel := longContext(c)
			defer cancel()
			start := time.Now()
			return withClient(c, func(cl *client.Client) error {
				res, err := cl.Restore(ctx, f)
				if err != nil {
					return err
				}
				took := time.Since(start)
				doc := map[string]any{"file": path, "keys": res.Keys, "index": res.Index, "took_ms": took.Milliseconds()}
				if info != nil {
					doc["backup_keys"] = info.Keys
				}
				return emit(c, result{
					json: doc,
					text: func(w io.Writer) error {
						of := ""
						if info != nil {
							of = fmt.Sprintf(" of %d in the backup", info.Keys)
						}
						_, err := fmt.Fprintf(w, "restored %d keys%s from %s in %v (index %d)\n", res.Keys, of, path, took.Round(time.Millisecond), res.Index)
						return err
					},
				})
			})
		},
	}
}
