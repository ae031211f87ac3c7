package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Atomic means atomic, across processes: writers replace keys a, b and c
// together (MSET on the Redis port, an atomic POST /v1/batch over HTTP)
// while readers read the three at once (MGET; POST /v1/batch/get) on the
// leader, relayed through a follower, and from a follower's own state
// (READONLY; consistency=stale). A read that returns values from two
// different writes is torn. The test fails on any torn read, and also if
// too few reads or writes happened for the check to mean anything.
func TestNoTornMultiKeyReads(t *testing.T) {
	c, addrs := respCluster(t)
	leader := c.WaitForLeader()
	follower := c.Followers(leader)[0]
	const run = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()

	var writes, reads, torn atomic.Int64
	var wg sync.WaitGroup
	var tornSample atomic.Value
	report := func(where string, vals []string) {
		if vals[0] != vals[1] || vals[1] != vals[2] {
			torn.Add(1)
			tornSample.Store(fmt.Sprintf("%s: %q", where, vals))
		}
		reads.Add(1)
	}
	// Redis-protocol writers and readers.
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rdb := redis.NewClient(&redis.Options{Addr: addrs[leader.ID], MaxRetries: -1})
			defer rdb.Close()
			for i := 0; ctx.Err() == nil; i++ {
				v := strconv.Itoa(w*1_000_000 + i)
				if rdb.MSet(ctx, "a", v, "b", v, "c", v).Err() == nil {
					writes.Add(1)
				}
			}
		}(w)
	}
	respReader := func(addr string, readonly bool, where string) {
		defer wg.Done()
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, PoolSize: 1,
			OnConnect: func(ctx context.Context, cn *redis.Conn) error {
				if readonly {
					return cn.ReadOnly(ctx).Err()
				}
				return nil
			}})
		defer rdb.Close()
		for ctx.Err() == nil {
			vals, err := rdb.MGet(ctx, "a", "b", "c").Result()
			if err != nil || vals[0] == nil {
				continue
			}
			report(where, []string{vals[0].(string), vals[1].(string), vals[2].(string)})
		}
	}
	wg.Add(3)
	go respReader(addrs[leader.ID], false, "MGET on the leader")
	go respReader(addrs[follower.ID], false, "MGET relayed by a follower")
	go respReader(addrs[follower.ID], true, "MGET on a READONLY follower")

	// HTTP writers and readers, on keys of their own.
	hc := &http.Client{Timeout: 5 * time.Second}
	post := func(url string, body any, out any) error {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			v := strconv.Itoa(i)
			ops := []map[string]string{}
			for _, k := range []string{"ha", "hb", "hc"} {
				ops = append(ops, map[string]string{"op": "set", "key": k, "value": v})
			}
			var out any
			if post(leader.URL()+"/v1/batch", map[string]any{"ops": ops, "atomic": true}, &out) == nil {
				writes.Add(1)
			}
		}
	}()
	httpReader := func(url, where string) {
		defer wg.Done()
		for ctx.Err() == nil {
			var out struct {
				Items []struct {
					Key   string  `json:"key"`
					Value *string `json:"value"`
					Found *bool   `json:"found"`
				} `json:"items"`
			}
			if post(url, map[string]any{"keys": []string{"ha", "hb", "hc"}}, &out) != nil || len(out.Items) != 3 || out.Items[0].Value == nil {
				continue
			}
			vals := make([]string, 3)
			for i, it := range out.Items {
				if it.Value != nil {
					vals[i] = *it.Value
				}
			}
			report(where, vals)
		}
	}
	wg.Add(2)
	go httpReader(leader.URL()+"/v1/batch/get", "batch/get on the leader")
	go httpReader(follower.URL()+"/v1/batch/get?consistency=stale", "stale batch/get on a follower")
	wg.Wait()

	t.Logf("%d writes, %d multi-key reads, %d torn", writes.Load(), reads.Load(), torn.Load())
	if n := torn.Load(); n > 0 {
		t.Fatalf("%d torn multi-key reads, e.g. %v", n, tornSample.Load())
	}
	if writes.Load() < 100 || reads.Load() < 100 {
		t.Fatalf("only %d writes and %d reads in %v: the check means nothing", writes.Load(), reads.Load(), run)
	}
}
