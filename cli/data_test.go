package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDataCommandsJSON(t *testing.T) {
	tc := newTestCluster(t, 3)
	e := tc.endpoints()

	// set, get (json and text), TTL.
	var set struct {
		Key     string `json:"key"`
		Version uint64 `json:"version"`
		Index   uint64 `json:"index"`
	}
	cliOK(t, e, &set, "set", "greeting", "hello", "--ttl", "1h") // flags after arguments
	if set.Key != "greeting" || set.Version == 0 || set.Index == 0 {
		t.Fatalf("set answered %+v", set)
	}
	var got struct {
		Key       string `json:"key"`
		Value     string `json:"value"`
		Version   uint64 `json:"version"`
		ExpiresAt string `json:"expires_at"`
		ServedBy  string `json:"served_by"`
	}
	cliOK(t, e, &got, "get", "greeting")
	exp, err := time.Parse(time.RFC3339Nano, got.ExpiresAt)
	if got.Value != "hello" || got.Version != set.Version || err != nil || time.Until(exp) < 50*time.Minute || time.Until(exp) > time.Hour+time.Minute {
		t.Fatalf("get answered %+v (expiry parse: %v)", got, err)
	}
	if r := runCLI(t, "", "-e", e, "get", "greeting"); r.code != 0 || r.stdout != "hello" {
		t.Fatalf("text get: %+v", r)
	}
	// Global flags after the command, table output.
	if r := runCLI(t, "", "get", "greeting", "-e", e, "-o", "table"); r.code != 0 || !strings.Contains(r.stdout, "VERSION") || !strings.Contains(r.stdout, "hello") {
		t.Fatalf("table get: %+v", r)
	}

	// A missing key exits 3, with a JSON error on stderr and nothing on stdout.
	r := runCLI(t, "", "-e", e, "-o", "json", "get", "nope")
	if r.code != ExitNotFound || r.stdout != "" {
		t.Fatalf("get of a missing key: %+v", r)
	}
	var jerr struct {
		Code     string `json:"code"`
		ExitCode int    `json:"exit_code"`
	}
	decodeOne(t, r.stderr, &jerr)
	if jerr.Code != "not_found" || jerr.ExitCode != ExitNotFound {
		t.Fatalf("error document %s", r.stderr)
	}

	// CAS: a stale version fails (exit 1, current version reported); the
	// right one succeeds; --cas 0 creates only.
	r = runCLI(t, "", "-e", e, "-o", "json", "set", "greeting", "x", "--cas", fmt.Sprint(set.Version+1000))
	var cas struct {
		Code           string `json:"code"`
		CurrentVersion uint64 `json:"current_version"`
	}
	if r.code != ExitError {
		t.Fatalf("stale CAS set: %+v", r)
	}
	decodeOne(t, r.stderr, &cas)
	if cas.Code != "cas_conflict" || cas.CurrentVersion != set.Version {
		t.Fatalf("stale CAS error %s", r.stderr)
	}
	cliOK(t, e, &set, "set", "--cas", fmt.Sprint(set.Version), "greeting", "hi")
	if r := runCLI(t, "", "-e", e, "set", "greeting", "again", "--cas", "0"); r.code != ExitError {
		t.Fatalf("--cas 0 on an existing key: %+v", r)
	}
	cliOK(t, e, nil, "set", "lock", "me", "--cas", "0")

	// The value from stdin, bytes that are not UTF-8: json gives base64.
	bin := "\x00\xff\xfebin"
	if r := runCLI(t, bin, "-e", e, "set", "blob"); r.code != 0 {
		t.Fatalf("set from stdin: %+v", r)
	}
	var blob struct {
		Value    *string `json:"value"`
		ValueB64 string  `json:"value_b64"`
	}
	cliOK(t, e, &blob, "get", "blob")
	if dec, _ := base64.StdEncoding.DecodeString(blob.ValueB64); blob.Value != nil || string(dec) != bin {
		t.Fatalf("binary value read back as %+v", blob)
	}
	if r := runCLI(t, "", "-e", e, "get", "blob"); r.stdout != bin {
		t.Fatalf("text get of a binary value: %q", r.stdout)
	}

	// del, with --cas.
	var del struct {
		Deleted bool `json:"deleted"`
	}
	if r := runCLI(t, "", "-e", e, "del", "greeting", "--cas", "1"); r.code != ExitError {
		t.Fatalf("del with a stale --cas: %+v", r)
	}
	cliOK(t, e, &del, "del", "greeting", "--cas", fmt.Sprint(set.Version))
	if !del.Deleted {
		t.Fatal("del --cas with the right version deleted nothing")
	}
	cliOK(t, e, &del, "del", "greeting")
	if del.Deleted {
		t.Fatal("deleting a missing key reported deleted")
	}

	// incr.
	var inc struct {
		Value int64 `json:"value"`
	}
	cliOK(t, e, &inc, "incr", "hits")
	cliOK(t, e, &inc, "incr", "hits", "--by", "10", "--ttl", "1m")
	cliOK(t, e, &inc, "incr", "hits", "--by", "-4")
	if inc.Value != 7 {
		t.Fatalf("counter = %d, want 7", inc.Value)
	}
	if r := runCLI(t, "", "-e", e, "incr", "lock"); r.code != ExitError {
		t.Fatalf("incr of a non-integer: %+v", r)
	}

	// keys: one page, then --all over pages of 2.
	var want []string
	for i := 0; i < 5; i++ {
		k := fmt.Sprintf("user:%d", i)
		want = append(want, k)
		cliOK(t, e, nil, "set", k, "v")
	}
	var page struct {
		Keys     []string `json:"keys"`
		Encoding string   `json:"encoding"`
		Next     string   `json:"next"`
		Count    int      `json:"count"`
	}
	cliOK(t, e, &page, "keys", "--prefix", "user:", "--limit", "2")
	if !slices.Equal(page.Keys, want[:2]) || page.Next != "user:1" {
		t.Fatalf("first page %+v", page)
	}
	cliOK(t, e, &page, "keys", "--prefix", "user:", "--limit", "2", "--cursor", page.Next)
	if !slices.Equal(page.Keys, want[2:4]) {
		t.Fatalf("second page %+v", page)
	}
	page.Next = ""
	cliOK(t, e, &page, "keys", "--prefix", "user:", "--limit", "2", "--all")
	if !slices.Equal(page.Keys, want) || page.Next != "" || page.Count != 5 || page.Encoding != "utf8" {
		t.Fatalf("--all listing %+v", page)
	}
	r = runCLI(t, "", "-e", e, "keys", "-p", "user:", "--all")
	if r.code != 0 || r.stdout != strings.Join(want, "\n")+"\n" {
		t.Fatalf("text listing %+v", r)
	}
	// A key that is not UTF-8 makes the page base64.
	runCLI(t, "", "-e", e, "set", "user:\xff", "v")
	cliOK(t, e, &page, "keys", "--prefix", "user:", "--all")
	if page.Encoding != "base64" || len(page.Keys) != 6 {
		t.Fatalf("listing with a binary key %+v", page)
	}
	if k, _ := base64.StdEncoding.DecodeString(page.Keys[5]); string(k) != "user:\xff" {
		t.Fatalf("binary key listed as %q", page.Keys[5])
	}

	// del-prefix.
	var dp struct {
		Deleted int    `json:"deleted"`
		Prefix  string `json:"prefix"`
	}
	cliOK(t, e, &dp, "del-prefix", "user:")
	if dp.Deleted != 6 || dp.Prefix != "user:" {
		t.Fatalf("del-prefix %+v", dp)
	}
	if r := runCLI(t, "", "-e", e, "del-prefix", ""); r.code != ExitUsage {
		t.Fatalf("del-prefix with an empty prefix: %+v", r)
	}

	// stats, node and cluster scope.
	var st struct {
		NodeID string `json:"node_id"`
		Keys   int    `json:"keys"`
		Digest string `json:"digest"`
	}
	cliOK(t, e, &st, "stats")
	if st.NodeID == "" || st.Digest == "" {
		t.Fatalf("stats %+v", st)
	}
	var cst struct {
		Scope string `json:"scope"`
		Nodes []struct {
			NodeID string `json:"node_id"`
			Keys   int    `json:"keys"`
		} `json:"nodes"`
		Errors map[string]string `json:"errors"`
	}
	cliOK(t, e, &cst, "stats", "--cluster")
	if cst.Scope != "cluster" || len(cst.Nodes) != 3 || len(cst.Errors) != 0 {
		t.Fatalf("cluster stats %+v", cst)
	}
	if r := runCLI(t, "", "-e", e, "stats", "--cluster", "-o", "table"); r.code != 0 || strings.Count(r.stdout, "\n") != 4 {
		t.Fatalf("cluster stats table: %+v", r)
	}
}

func TestKeysJSONEncoding(t *testing.T) {
	doc := keysJSON([]string{"a", "b\xff"}, "b\xff", 7)
	b, _ := json.Marshal(doc)
	var out struct {
		Keys     []string `json:"keys"`
		Encoding string   `json:"encoding"`
		Next     string   `json:"next"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Encoding != "base64" || out.Keys[0] != "YQ==" || out.Next != base64.StdEncoding.EncodeToString([]byte("b\xff")) {
		t.Fatalf("keysJSON = %s", b)
	}
}
