package transport_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tornKeys are written together by every atomic batch of the test below.
var tornKeys = []string{"a", "b", "c"}

// tornRead is one POST /v1/batch/get of tornKeys that answered 200.
type tornRead struct {
	Items []struct {
		Key   string  `json:"key"`
		Found bool    `json:"found"`
		Value *string `json:"value"`
	} `json:"items"`
	Index uint64 `json:"index"`
}

// value checks that the read saw one atomic batch whole (all three keys,
// one value) and returns that value; 0 if it saw none of the keys (a
// follower that has not applied the first batch yet).
func (r *tornRead) value() (int, error) {
	if len(r.Items) != len(tornKeys) {
		return 0, fmt.Errorf("%d items for %d keys", len(r.Items), len(tornKeys))
	}
	v := "0"
	for i, it := range r.Items {
		if it.Key != tornKeys[i] || it.Found != (it.Value != nil) {
			return 0, fmt.Errorf("item %d: %+v", i, it)
		}
		cur := "0"
		if it.Found {
			cur = *it.Value
		}
		if i > 0 && cur != v {
			return 0, fmt.Errorf("torn read at index %d: %s=%s but %s=%s (0: absent)", r.Index, tornKeys[0], v, it.Key, cur)
		}
		v = cur
	}
	return strconv.Atoi(v)
}

// TestBatchGetNeverTorn runs atomic batch writers of a, b and c (each
// batch writes one value to all three) against batch readers of a, b and
// c on the leader (strong) and on a follower (stale) for 10 s: every read
// must see one batch whole, with an index at or after the write of the
// value it saw. Reads must actually interleave with writes (each side
// sees many distinct values), and, as a negative control, the check must
// refuse a read stitched together from two real reads that saw different
// values.
func TestBatchGetNeverTorn(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 10 s")
	}
	const run = 10 * time.Second
	c := startCluster(t, 3)
	leader := c.WaitAgreed(t)
	follower := c.Followers(leader)[0]

	client := &http.Client{Timeout: deadline, Transport: &http.Transport{MaxIdleConnsPerHost: 16}} // follows 307s, re-sending bodies
	t.Cleanup(client.CloseIdleConnections)
	post := func(url, body string) (int, []byte, error) {
		resp, err := client.Post(url, "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}

	var next atomic.Int64 // the next value a writer writes
	var mu sync.Mutex
	writeIndex := map[int]uint64{} // value -> the index of the batch that wrote it
	write := func() error {
		v := int(next.Add(1))
		var ops []string
		for _, k := range tornKeys {
			ops = append(ops, fmt.Sprintf(`{"op":"set","key":%q,"value":"%d"}`, k, v))
		}
		// Whoever leads: a follower redirects, and the client follows.
		status, body, err := post(leader.URL+"/v1/batch", `{"atomic":true,"ops":[`+ops[0]+","+ops[1]+","+ops[2]+`]}`)
		switch {
		case err != nil || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
			// An election on a busy machine: not applied, or perhaps
			// applied (504 unknown_outcome); its value is not checked.
			time.Sleep(10 * time.Millisecond)
			return nil
		case status != http.StatusOK:
			return fmt.Errorf("batch %d: %d %s", v, status, body)
		}
		var res struct{ Index uint64 }
		if err := json.Unmarshal(body, &res); err != nil || res.Index == 0 {
			return fmt.Errorf("batch %d: %s (%v)", v, body, err)
		}
		mu.Lock()
		writeIndex[v] = res.Index
		mu.Unlock()
		return nil
	}
	// The first batch, retried while the cluster settles (a 503 is not
	// an error of the check).
	waitFor(t, "a first batch", func() bool {
		if err := write(); err != nil {
			t.Fatalf("first batch: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		return len(writeIndex) > 0
	})

	type seen struct {
		value int
		index uint64
	}
	stop := make(chan struct{})
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := write(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	reader := func(url string, out *[]seen, pairs *[2]tornRead) {
		defer wg.Done()
		var prev *tornRead
		for {
			select {
			case <-stop:
				return
			default:
			}
			status, body, err := post(url, `{"keys":["a","b","c"]}`)
			if err != nil || status == http.StatusServiceUnavailable {
				time.Sleep(10 * time.Millisecond) // an election: not a read
				continue
			}
			if status != http.StatusOK {
				errs <- fmt.Errorf("batch get on %s: %d %s", url, status, body)
				return
			}
			var r tornRead
			if err := json.Unmarshal(body, &r); err != nil {
				errs <- fmt.Errorf("batch get on %s: %s: %v", url, body, err)
				return
			}
			v, err := r.value()
			if err != nil {
				errs <- fmt.Errorf("batch get on %s: %v (body %s)", url, err, body)
				return
			}
			if prev != nil && pairs[0].Items == nil {
				if pv, _ := prev.value(); pv != v {
					pairs[0], pairs[1] = *prev, r // two real reads of different batches
				}
			}
			prev = &r
			*out = append(*out, seen{v, r.Index})
		}
	}
	var onLeader, onFollower []seen
	var leaderPair, followerPair [2]tornRead
	wg.Add(2)
	go reader(leader.URL+"/v1/batch/get", &onLeader, &leaderPair)
	go reader(follower.URL+"/v1/batch/get?consistency=stale", &onFollower, &followerPair)

	select {
	case err := <-errs:
		t.Error(err)
	case <-time.After(run):
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Every value read was written by a batch whose index the read's
	// state had applied: the index reported is the state read.
	for _, side := range []struct {
		name  string
		reads []seen
		pair  [2]tornRead
	}{{"leader", onLeader, leaderPair}, {"follower", onFollower, followerPair}} {
		distinct := map[int]bool{}
		for _, s := range side.reads {
			distinct[s.value] = true
			wi, ok := writeIndex[s.value]
			if !ok {
				// Its writer gave up waiting (a 503 or a timeout) after
				// the batch was proposed; it may have been applied.
				continue
			}
			if s.index < wi {
				t.Errorf("%s read value %d at index %d, but it was written at index %d", side.name, s.value, s.index, wi)
			}
		}
		t.Logf("%s: %d reads, %d distinct values; %d batches written", side.name, len(side.reads), len(distinct), len(writeIndex))
		if len(side.reads) < 100 || len(distinct) < 10 {
			t.Errorf("%s: %d reads of %d distinct values: reads did not interleave with writes enough to test anything",
				side.name, len(side.reads), len(distinct))
		}
		// Negative control: a read made of the first key of one real
		// read and the others of a read of another batch is torn, and
		// the check must say so.
		stitched := side.pair[1]
		if stitched.Items == nil {
			t.Errorf("%s: no two consecutive reads saw different batches", side.name)
			continue
		}
		stitched.Items = append(side.pair[0].Items[:1:1], stitched.Items[1:]...)
		if _, err := stitched.value(); err == nil {
			t.Errorf("%s: the check passed a read stitched from two batches: %+v", side.name, stitched)
		}
	}
	if len(writeIndex) < 100 {
		t.Errorf("only %d batches written", len(writeIndex))
	}
}
