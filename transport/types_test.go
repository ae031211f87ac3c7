package transport_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/raftcache/raftcache/fsm"
)

// TestTypesOverHTTP: the HTTP API's values are strings. A key holding a
// hash or a set (written over the Redis commands) answers 409 wrong_type
// to every HTTP read or write of its value and is left intact; key
// listings show each key's type; DELETE removes a key of any type; a
// backup restores every type.
func TestTypesOverHTTP(t *testing.T) {
	s := featStart(t, 0)
	featEventually(t, "cluster level 3", func() error {
		if s.n.ClusterLevel() < fsm.LevelTypes {
			return context.DeadlineExceeded
		}
		return nil
	})
	exec := func(lines ...[]string) []fsm.Reply {
		t.Helper()
		u := fsm.Unit{}
		for _, l := range lines {
			var a [][]byte
			for _, w := range l {
				a = append(a, []byte(w))
			}
			u.Cmds = append(u.Cmds, a)
		}
		res, err := s.n.Exec(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Replies
	}
	exec([]string{"HSET", "h", "f", "v"}, []string{"SADD", "s", "m1", "m2"}, []string{"SET", "str", "x"}, []string{"EXPIRE", "s", "1000"})
	s.put("n", "5")

	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/kv/h", ""},
		{http.MethodHead, "/v1/kv/h", ""},
		{http.MethodPut, "/v1/kv/h", "new"},
		{http.MethodPost, "/v1/incr/s?by=1", ""},
		{http.MethodPut, "/v1/ttl/h?ttl=10s", ""},
		{http.MethodPost, "/v1/batch/get", `{"keys":["str","h"]}`},
		{http.MethodPost, "/v1/batch", `{"ops":[{"op":"set","key":"s","value":"v"}]}`},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		r := s.do(c.method, c.path, body, nil)
		if r.status != http.StatusConflict {
			t.Errorf("%s %s: %s, want 409 wrong_type", c.method, c.path, r)
			continue
		}
		if c.method == http.MethodHead {
			continue
		}
		var e struct{ Code string }
		if err := json.Unmarshal(r.body, &e); err != nil || e.Code != "wrong_type" {
			t.Errorf("%s %s: %s, want code wrong_type", c.method, c.path, r)
		}
	}
	// Untouched by the refused writes.
	if got := exec([]string{"HGETALL", "h"}, []string{"SCARD", "s"}, []string{"TTL", "s"}); got[0].String() != `["f" "v"]` ||
		got[1].String() != "(integer) 2" || got[2].Int < 900 {
		t.Fatalf("collections changed by refused HTTP writes: %v", got)
	}

	var keys struct {
		Keys  []string `json:"keys"`
		Types []string `json:"types"`
	}
	featDecode(t, s.must(http.StatusOK, http.MethodGet, "/v1/keys", nil, nil), &keys)
	if got, _ := json.Marshal(keys); string(got) != `{"keys":["h","n","s","str"],"types":["hash","string","set","string"]}` {
		t.Fatalf("key listing: %s", got)
	}

	// A backup round-trips every type (restored into the same cluster
	// after the keys changed).
	backup := s.must(http.StatusOK, http.MethodGet, "/v1/snapshot", nil, nil).body
	exec([]string{"DEL", "h"}, []string{"SADD", "s", "m3"}, []string{"HSET", "gone", "a", "b"})
	s.must(http.StatusOK, http.MethodPost, "/v1/restore", backup, nil)
	got := exec([]string{"HGETALL", "h"}, []string{"SMEMBERS", "s"}, []string{"EXISTS", "gone"},
		[]string{"GET", "str"}, []string{"TYPE", "s"}, []string{"TTL", "s"})
	if s := replyStrings(got[:5]); s != `["f" "v"] ["m1" "m2"] (integer) 0 "x" set` || got[5].Int < 900 {
		t.Fatalf("after restore: %s, TTL %s", s, got[5])
	}

	// DELETE removes a key of any type.
	s.must(http.StatusOK, http.MethodDelete, "/v1/kv/h", nil, nil)
	if got := exec([]string{"EXISTS", "h"}); got[0].String() != "(integer) 0" {
		t.Fatal("DELETE left the hash")
	}
}

func replyStrings(rs []fsm.Reply) string {
	out := ""
	for i, r := range rs {
		if i > 0 {
			out += " "
		}
		out += r.String()
	}
	return out
}
