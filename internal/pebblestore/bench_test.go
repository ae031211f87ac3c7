package pebblestore

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// BenchmarkStoreLogs compares one synced append of a batch of entries on
// pebble (one WAL write, one fdatasync) and on raft-boltdb opened as the
// node opens it (page writes and a meta page, two fdatasyncs), on the disk
// of t.TempDir. Run with -benchtime=2000x or so; the figure is latency per
// StoreLogs call, i.e. per Raft append on the leader.
//
//	go test ./internal/pebblestore -run '^$' -bench StoreLogs -benchtime 2000x
func BenchmarkStoreLogs(b *testing.B) {
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("pebble/batch=%d", batch), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchAppend(b, s, batch)
		})
		b.Run(fmt.Sprintf("bolt/batch=%d", batch), func(b *testing.B) {
			s, err := raftboltdb.New(raftboltdb.Options{Path: b.TempDir() + "/raft.db",
				BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchAppend(b, s, batch)
		})
	}
}

func benchAppend(b *testing.B, s raft.LogStore, batch int) {
	data := bytes.Repeat([]byte("v"), 200) // an entry of a few coalesced writes
	logs := make([]*raft.Log, batch)
	idx := uint64(1)
	b.ResetTimer()
	for range b.N {
		for i := range logs {
			logs[i] = &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}
			idx++
		}
		if err := s.StoreLogs(logs); err != nil {
			b.Fatal(err)
		}
	}
}
