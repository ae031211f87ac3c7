package transport_test

// In-process tests of the cache features of the HTTP API (docs/api.md):
// conditional writes, counters, TTLs, key listings, prefix deletes,
// batches, idempotency keys, the memory bound, stats and metrics. Each test
// runs one real single-node cluster (node.New with a real Raft and bolt
// store in t.TempDir()) behind an httptest server.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/transport"
)

// featServer is one single-node cluster served over HTTP.
type featServer struct {
	t   *testing.T
	n   *node.Node
	url string
}

// featStart starts a bootstrapped single node (maxMemory 0: unbounded) and
// waits until it serves strong reads.
func featStart(t *testing.T, maxMemory int64) *featServer {
	t.Helper()
	n := testcluster.Start(t, 1, testcluster.Options{HTTP: &transport.Config{}, MaxMemory: maxMemory, MaxMemoryPolicy: fsm.EvictAllLRU}).Leader(t)
	return &featServer{t: t, n: n.Node, url: n.URL}
}

// featEventually polls f every 20ms for up to 20s.
func featEventually(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: not within 20s: %v", what, err)
}

type featResp struct {
	status int
	header http.Header
	body   []byte
}

func (r *featResp) String() string {
	b := bytes.TrimSpace(r.body)
	if len(b) > 400 {
		return fmt.Sprintf("%d %s ... (%d bytes)", r.status, b[:400], len(b))
	}
	return fmt.Sprintf("%d %s", r.status, b)
}

var featClient = &http.Client{
	Timeout:       20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// do sends one request; hdr holds header name/value pairs.
func (s *featServer) do(method, path string, body []byte, hdr map[string]string) *featResp {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := featClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return &featResp{status: resp.StatusCode, header: resp.Header, body: b}
}

// must sends a request and fails unless the answer has status want.
func (s *featServer) must(want int, method, path string, body []byte, hdr map[string]string) *featResp {
	s.t.Helper()
	r := s.do(method, path, body, hdr)
	if r.status != want {
		s.t.Fatalf("%s %s: got %s, want status %d", method, path, r, want)
	}
	return r
}

// put writes key (a path segment, already escaped) and returns its version.
func (s *featServer) put(key, value string) uint64 {
	s.t.Helper()
	var w struct{ Version, Index uint64 }
	featDecode(s.t, s.must(http.StatusOK, http.MethodPut, "/v1/kv/"+key, []byte(value), nil), &w)
	if w.Version == 0 || w.Index == 0 {
		s.t.Fatalf("PUT %s: version %d index %d", key, w.Version, w.Index)
	}
	return w.Version
}

// get reads key strongly: found, value and version (from the ETag).
func (s *featServer) get(key string) (bool, string, uint64) {
	s.t.Helper()
	r := s.do(http.MethodGet, "/v1/kv/"+key, nil, nil)
	switch r.status {
	case http.StatusNotFound:
		featCode(s.t, r, "not_found")
		return false, "", 0
	case http.StatusOK:
		return true, string(r.body), featETag(s.t, r)
	}
	s.t.Fatalf("GET %s: %s", key, r)
	return false, "", 0
}

func (s *featServer) stats() featStats {
	s.t.Helper()
	var st featStats
	featDecode(s.t, s.must(http.StatusOK, http.MethodGet, "/v1/stats", nil, nil), &st)
	return st
}

type featStats struct {
	NodeID           string `json:"node_id"`
	Keys             int    `json:"keys"`
	Bytes            int64  `json:"bytes"`
	MaxMemory        int64  `json:"max_memory"`
	Hits             uint64 `json:"hits"`
	Misses           uint64 `json:"misses"`
	Evictions        uint64 `json:"evictions"`
	Expirations      uint64 `json:"expirations"`
	Sets             uint64 `json:"sets"`
	Deletes          uint64 `json:"deletes"`
	AppliedIndex     uint64 `json:"applied_index"`
	Digest           string `json:"digest"`
	StrongReadRounds uint64 `json:"strong_read_rounds"`
	StrongReads      uint64 `json:"strong_reads"`
	RequestIDs       int    `json:"request_ids"`
	RequestIDBytes   int64  `json:"request_id_bytes"`
}

type featError struct {
	Error          string  `json:"error"`
	Code           string  `json:"code"`
	CurrentVersion *uint64 `json:"current_version"`
	FailedOp       *int    `json:"failed_op"`
}

func featDecode(t *testing.T, r *featResp, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
}

// featCode checks an error answer's code and returns the decoded body.
func featCode(t *testing.T, r *featResp, code string) featError {
	t.Helper()
	var e featError
	featDecode(t, r, &e)
	if e.Code != code {
		t.Fatalf("error code %q, want %q (%s)", e.Code, code, r)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q", ct)
	}
	return e
}

// featConflict checks a 412 cas_conflict carrying current_version want.
func featConflict(t *testing.T, r *featResp, want uint64) {
	t.Helper()
	if r.status != http.StatusPreconditionFailed {
		t.Fatalf("got %s, want 412", r)
	}
	e := featCode(t, r, "cas_conflict")
	if e.CurrentVersion == nil || *e.CurrentVersion != want {
		t.Fatalf("current_version %v, want %d (%s)", e.CurrentVersion, want, r)
	}
	if want == 0 {
		if et := r.header.Get("ETag"); et != "" {
			t.Errorf("412 on an absent key carries ETag %s", et)
		}
	} else if got := featETag(t, r); got != want {
		t.Errorf("412 ETag %d, want %d", got, want)
	}
}

func featETag(t *testing.T, r *featResp) uint64 {
	t.Helper()
	et := r.header.Get("ETag")
	v, err := strconv.ParseUint(strings.Trim(et, `"`), 10, 64)
	if err != nil || !strings.HasPrefix(et, `"`) || !strings.HasSuffix(et, `"`) {
		t.Fatalf("bad ETag %q", et)
	}
	return v
}

func featVersion(t *testing.T, r *featResp) uint64 {
	t.Helper()
	var w struct{ Version uint64 }
	featDecode(t, r, &w)
	if w.Version == 0 {
		t.Fatalf("no version in %s", r)
	}
	return w.Version
}

func TestFeatCAS(t *testing.T) {
	s := featStart(t, 0)
	v1 := s.put("k", "one")
	if found, val, ver := s.get("k"); !found || val != "one" || ver != v1 {
		t.Fatalf("GET k: %v %q %d, want one at %d", found, val, ver, v1)
	}

	// ?cas=V: the current version wins, a stale one conflicts.
	v2 := featVersion(t, s.must(http.StatusOK, http.MethodPut, "/v1/kv/k?cas="+strconv.FormatUint(v1, 10), []byte("two"), nil))
	if v2 <= v1 {
		t.Fatalf("version after CAS %d, not above %d", v2, v1)
	}
	// notWritten checks that a refused write changed nothing.
	notWritten := func(what string, key, val string, ver uint64, sets uint64) {
		t.Helper()
		found, gotVal, gotVer := s.get(key)
		if ver == 0 {
			if found {
				t.Fatalf("%s: %s was written: %q at %d", what, key, gotVal, gotVer)
			}
		} else if !found || gotVal != val || gotVer != ver {
			t.Fatalf("%s: %s is %v %q at %d, want %q at %d", what, key, found, gotVal, gotVer, val, ver)
		}
		if st := s.stats(); st.Sets != sets {
			t.Fatalf("%s: sets %d, want %d", what, st.Sets, sets)
		}
	}
	sets := s.stats().Sets

	r := s.do(http.MethodPut, "/v1/kv/k?cas="+strconv.FormatUint(v1, 10), []byte("stale"), nil)
	featConflict(t, r, v2)
	notWritten("stale cas", "k", "two", v2, sets)

	// cas=0: only if absent.
	featConflict(t, s.do(http.MethodPut, "/v1/kv/k?cas=0", []byte("x"), nil), v2)
	notWritten("cas=0 on a present key", "k", "two", v2, sets)
	featVersion(t, s.must(http.StatusOK, http.MethodPut, "/v1/kv/fresh?cas=0", []byte("f"), nil))
	sets++
	// A version condition on an absent key: current_version 0.
	featConflict(t, s.do(http.MethodPut, "/v1/kv/absent?cas=5", []byte("x"), nil), 0)
	notWritten("cas on an absent key", "absent", "", 0, sets)

	// If-Match: "V" is cas=V.
	featConflict(t, s.do(http.MethodPut, "/v1/kv/k", []byte("x"), map[string]string{"If-Match": strconv.Quote(strconv.FormatUint(v1, 10))}), v2)
	notWritten("stale If-Match", "k", "two", v2, sets)
	v3 := featVersion(t, s.must(http.StatusOK, http.MethodPut, "/v1/kv/k", []byte("three"), map[string]string{"If-Match": strconv.Quote(strconv.FormatUint(v2, 10))}))
	sets++

	// If-Match: * needs the key to exist.
	featConflict(t, s.do(http.MethodPut, "/v1/kv/absent", []byte("x"), map[string]string{"If-Match": "*"}), 0)
	notWritten("If-Match * on an absent key", "absent", "", 0, sets)
	v4 := featVersion(t, s.must(http.StatusOK, http.MethodPut, "/v1/kv/k", []byte("four"), map[string]string{"If-Match": "*"}))
	sets++

	// If-None-Match: * needs it absent.
	featConflict(t, s.do(http.MethodPut, "/v1/kv/k", []byte("x"), map[string]string{"If-None-Match": "*"}), v4)
	notWritten("If-None-Match * on a present key", "k", "four", v4, sets)
	featVersion(t, s.must(http.StatusOK, http.MethodPut, "/v1/kv/inm", []byte("i"), map[string]string{"If-None-Match": "*"}))
	sets++
	if v3 >= v4 {
		t.Fatalf("versions not increasing: %d then %d", v3, v4)
	}

	// Malformed or doubled conditions are refused before anything is done.
	for _, c := range []struct {
		path string
		hdr  map[string]string
	}{
		{"/v1/kv/k?cas=abc", nil},
		{"/v1/kv/k?cas=-1", nil},
		{"/v1/kv/k", map[string]string{"If-Match": "nope"}},
		{"/v1/kv/k", map[string]string{"If-None-Match": `"3"`}},
		{"/v1/kv/k?cas=" + strconv.FormatUint(v4, 10), map[string]string{"If-Match": "*"}},
		{"/v1/kv/k", map[string]string{"If-Match": "*", "If-None-Match": "*"}},
	} {
		r := s.do(http.MethodPut, c.path, []byte("bad"), c.hdr)
		if r.status != http.StatusBadRequest {
			t.Fatalf("PUT %s %v: %s, want 400", c.path, c.hdr, r)
		}
		featCode(t, r, "bad_cas")
	}
	notWritten("malformed conditions", "k", "four", v4, sets)

	// DELETE ?cas and If-Match.
	deletes := s.stats().Deletes
	featConflict(t, s.do(http.MethodDelete, "/v1/kv/k?cas="+strconv.FormatUint(v3, 10), nil, nil), v4)
	featConflict(t, s.do(http.MethodDelete, "/v1/kv/k", nil, map[string]string{"If-Match": strconv.Quote(strconv.FormatUint(v3, 10))}), v4)
	notWritten("stale DELETE cas", "k", "four", v4, sets)
	var d struct {
		Deleted bool
		Index   uint64
	}
	featDecode(t, s.must(http.StatusOK, http.MethodDelete, "/v1/kv/k?cas="+strconv.FormatUint(v4, 10), nil, nil), &d)
	if !d.Deleted || d.Index == 0 {
		t.Fatalf("DELETE with the current version: %+v", d)
	}
	if found, _, _ := s.get("k"); found {
		t.Fatal("k survived its DELETE ?cas")
	}
	if st := s.stats(); st.Deletes != deletes+1 {
		t.Fatalf("deletes %d, want %d", st.Deletes, deletes+1)
	}
	// The key is gone: a version condition now fails with current_version 0.
	featConflict(t, s.do(http.MethodDelete, "/v1/kv/k?cas="+strconv.FormatUint(v4, 10), nil, nil), 0)
}

func TestFeatIncr(t *testing.T) {
	s := featStart(t, 0)
	incr := func(path string) int64 {
		t.Helper()
		var w struct {
			Value int64
			Index uint64
		}
		featDecode(t, s.must(http.StatusOK, http.MethodPost, path, nil, nil), &w)
		if w.Index == 0 {
			t.Fatalf("POST %s: no index", path)
		}
		return w.Value
	}
	for i, c := range []struct {
		path string
		want int64
	}{
		{"/v1/incr/c", 1},
		{"/v1/incr/c", 2},
		{"/v1/incr/c?by=40", 42},
		{"/v1/incr/c?by=-50", -8},
		{"/v1/incr/c?by=0", -8},
		{"/v1/incr/neg?by=-3", -3},
	} {
		if got := incr(c.path); got != c.want {
			t.Fatalf("step %d: POST %s = %d, want %d", i, c.path, got, c.want)
		}
	}
	if _, val, _ := s.get("c"); val != "-8" {
		t.Fatalf("the counter reads back as %q, want -8", val)
	}

	// The ttl applies only when the call creates the key.
	expiresAt := func(key string) string {
		t.Helper()
		return s.must(http.StatusOK, http.MethodGet, "/v1/kv/"+key, nil, nil).header.Get("X-Expires-At")
	}
	before := time.Now()
	incr("/v1/incr/win?ttl=1h")
	exp := expiresAt("win")
	ms, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		t.Fatalf("X-Expires-At %q after incr with ttl: %v", exp, err)
	}
	if at := time.UnixMilli(ms); at.Before(before.Add(time.Hour-time.Second)) || at.After(time.Now().Add(time.Hour+time.Second)) {
		t.Fatalf("expiry %v is not an hour from now", at)
	}
	if got := incr("/v1/incr/win?ttl=1s"); got != 2 {
		t.Fatalf("second incr of win = %d", got)
	}
	if got := expiresAt("win"); got != exp {
		t.Fatalf("a later incr with ttl moved the expiry: %s, was %s", got, exp)
	}
	if got := expiresAt("c"); got != "" {
		t.Fatalf("c was created without ttl but expires at %s", got)
	}
	incr("/v1/incr/c?ttl=1s")
	if got := expiresAt("c"); got != "" {
		t.Fatalf("incr with ttl on an existing counter set its expiry: %s", got)
	}

	// A counter whose window expired starts again at 0.
	if got := incr("/v1/incr/short?ttl=200ms"); got != 1 {
		t.Fatalf("short = %d", got)
	}
	featEventually(t, "short expires", func() error {
		if found, _, _ := s.get("short"); found {
			return fmt.Errorf("still present")
		}
		return nil
	})
	if got := incr("/v1/incr/short?ttl=200ms"); got != 1 {
		t.Fatalf("incr after expiry = %d, want 1", got)
	}

	// Non-counters and overflow: 409, the value untouched.
	for _, c := range []struct{ key, value, by, code string }{
		{"text", "hello", "1", "not_integer"},
		{"plus", "+5", "1", "not_integer"},
		{"space", " 5", "1", "not_integer"},
		{"empty", "", "1", "not_integer"},
		{"float", "1.5", "1", "not_integer"},
		{"max", "9223372036854775807", "1", "overflow"},
		{"min", "-9223372036854775808", "-1", "overflow"},
		{"big", "9223372036854775800", "100", "overflow"},
	} {
		ver := s.put(c.key, c.value)
		r := s.do(http.MethodPost, "/v1/incr/"+c.key+"?by="+c.by, nil, nil)
		if r.status != http.StatusConflict {
			t.Fatalf("incr %s (%q) by %s: %s, want 409", c.key, c.value, c.by, r)
		}
		featCode(t, r, c.code)
		if found, val, gotVer := s.get(c.key); !found || val != c.value || gotVer != ver {
			t.Fatalf("%s after a refused incr: %q at %d, want %q at %d", c.key, val, gotVer, c.value, ver)
		}
	}

	// Malformed parameters: 400, nothing created.
	for _, c := range []struct{ query, code string }{
		{"by=abc", "bad_by"},
		{"by=1.5", "bad_by"},
		{"by=", ""},
		{"by=9223372036854775808", "bad_by"},
		{"ttl=soon", "bad_ttl"},
		{"ttl=0", "bad_ttl"},
		{"ttl=-1s", "bad_ttl"},
	} {
		r := s.do(http.MethodPost, "/v1/incr/malformed?"+c.query, nil, nil)
		if c.code == "" { // an empty by is the default
			if r.status != http.StatusOK {
				t.Fatalf("incr ?%s: %s", c.query, r)
			}
			s.must(http.StatusOK, http.MethodDelete, "/v1/kv/malformed", nil, nil)
			continue
		}
		if r.status != http.StatusBadRequest {
			t.Fatalf("incr ?%s: %s, want 400", c.query, r)
		}
		featCode(t, r, c.code)
	}
	if found, _, _ := s.get("malformed"); found {
		t.Fatal("a refused incr created its key")
	}
}

func TestFeatTTL(t *testing.T) {
	s := featStart(t, 0)
	v1 := s.put("k", "value")
	r := s.must(http.StatusOK, http.MethodGet, "/v1/kv/k", nil, nil)
	if exp := r.header.Get("X-Expires-At"); exp != "" {
		t.Fatalf("a key without ttl has X-Expires-At %s", exp)
	}

	before := time.Now()
	v2 := featVersion(t, s.must(http.StatusOK, http.MethodPut, "/v1/ttl/k?ttl=1h", nil, nil))
	if v2 <= v1 {
		t.Fatalf("setting the ttl did not change the version: %d then %d", v1, v2)
	}
	r = s.must(http.StatusOK, http.MethodGet, "/v1/kv/k", nil, nil)
	if string(r.body) != "value" || featETag(t, r) != v2 {
		t.Fatalf("after PUT /v1/ttl: %q at %d", r.body, featETag(t, r))
	}
	ms, err := strconv.ParseInt(r.header.Get("X-Expires-At"), 10, 64)
	if err != nil {
		t.Fatalf("X-Expires-At %q: %v", r.header.Get("X-Expires-At"), err)
	}
	if at := time.UnixMilli(ms); at.Before(before.Add(time.Hour-time.Second)) || at.After(time.Now().Add(time.Hour+time.Second)) {
		t.Fatalf("expiry %v is not an hour from now", at)
	}
	// Plain seconds are accepted too.
	s.must(http.StatusOK, http.MethodPut, "/v1/ttl/k?ttl=7200", nil, nil)
	ms2, _ := strconv.ParseInt(s.must(http.StatusOK, http.MethodGet, "/v1/kv/k", nil, nil).header.Get("X-Expires-At"), 10, 64)
	if d := time.Duration(ms2-ms) * time.Millisecond; d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("ttl=7200 moved the expiry by %v, want about an hour more than ttl=1h", d)
	}

	// DELETE clears it; the value stays.
	v3 := featVersion(t, s.must(http.StatusOK, http.MethodDelete, "/v1/ttl/k", nil, nil))
	r = s.must(http.StatusOK, http.MethodGet, "/v1/kv/k", nil, nil)
	if exp := r.header.Get("X-Expires-At"); exp != "" || string(r.body) != "value" || featETag(t, r) != v3 {
		t.Fatalf("after DELETE /v1/ttl: expires %q, %q at %d (want version %d)", exp, r.body, featETag(t, r), v3)
	}

	// A plain PUT clears an existing ttl.
	s.must(http.StatusOK, http.MethodPut, "/v1/ttl/k?ttl=1h", nil, nil)
	s.put("k", "rewritten")
	if exp := s.must(http.StatusOK, http.MethodGet, "/v1/kv/k", nil, nil).header.Get("X-Expires-At"); exp != "" {
		t.Fatalf("a plain PUT kept the ttl: %s", exp)
	}

	// Missing keys, missing or bad ttl.
	featCode(t, s.must(http.StatusNotFound, http.MethodPut, "/v1/ttl/missing?ttl=1h", nil, nil), "not_found")
	featCode(t, s.must(http.StatusNotFound, http.MethodDelete, "/v1/ttl/missing", nil, nil), "not_found")
	featCode(t, s.must(http.StatusBadRequest, http.MethodPut, "/v1/ttl/k", nil, nil), "bad_ttl")
	for _, ttl := range []string{"0", "-5s", "later", "1000000y", "3153600001", "0s"} {
		featCode(t, s.must(http.StatusBadRequest, http.MethodPut, "/v1/ttl/k?ttl="+ttl, nil, nil), "bad_ttl")
		featCode(t, s.must(http.StatusBadRequest, http.MethodPut, "/v1/kv/k?ttl="+ttl, []byte("v"), nil), "bad_ttl")
	}
	if _, val, _ := s.get("k"); val != "rewritten" {
		t.Fatalf("a refused write changed k to %q", val)
	}
	if found, _, _ := s.get("missing"); found {
		t.Fatal("PUT /v1/ttl created a missing key")
	}

	// A short ttl expires: reads miss, and the leader's reaper removes it.
	exp0 := s.stats().Expirations
	s.must(http.StatusOK, http.MethodPut, "/v1/kv/brief?ttl=300ms", []byte("b"), nil)
	if found, _, _ := s.get("brief"); !found {
		t.Fatal("brief is missing right after its write")
	}
	featEventually(t, "brief expires and is reaped", func() error {
		if found, _, _ := s.get("brief"); found {
			return fmt.Errorf("brief still readable")
		}
		if st := s.stats(); st.Expirations <= exp0 {
			return fmt.Errorf("expirations still %d", st.Expirations)
		}
		return nil
	})
	featCode(t, s.must(http.StatusNotFound, http.MethodPut, "/v1/ttl/brief?ttl=1h", nil, nil), "not_found")
}

type featKeys struct {
	Keys     []string `json:"keys"`
	Encoding string   `json:"encoding"`
	Next     *string  `json:"next"`
	Index    uint64   `json:"index"`
}

// featBatch posts a batch and fails unless it answers want.
func (s *featServer) batch(want int, body string, hdr map[string]string) *featResp {
	s.t.Helper()
	return s.must(want, http.MethodPost, "/v1/batch", []byte(body), hdr)
}

// featSetOps is a batch body setting each key to its own name.
func featSetOps(keys []string) string {
	type op struct {
		Op    string `json:"op"`
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	ops := make([]op, len(keys))
	for i, k := range keys {
		ops[i] = op{"set", k, k}
	}
	b, _ := json.Marshal(map[string]any{"ops": ops})
	return string(b)
}

func TestFeatKeys(t *testing.T) {
	s := featStart(t, 0)
	// 2500 keys under p/, written in batches, and neighbours outside it.
	var want []string
	for i := 0; i < 2500; i++ {
		want = append(want, fmt.Sprintf("p/%05d", i))
	}
	for i := 0; i < len(want); i += 500 {
		s.batch(http.StatusOK, featSetOps(want[i:i+500]), nil)
	}
	s.batch(http.StatusOK, featSetOps([]string{"p", "o/1", "p0", "q/1"}), nil)

	list := func(query string) featKeys {
		t.Helper()
		var k featKeys
		featDecode(t, s.must(http.StatusOK, http.MethodGet, "/v1/keys?"+query, nil, nil), &k)
		return k
	}
	// Page through with the default and an explicit limit.
	for _, limit := range []int{0, 700} {
		var got []string
		var sizes []int
		cursor := ""
		for page := 0; page < 20; page++ {
			q := url.Values{"prefix": {"p/"}}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			k := list(q.Encode())
			if k.Encoding != "utf8" || k.Index == 0 {
				t.Fatalf("page %d: encoding %q index %d", page, k.Encoding, k.Index)
			}
			got = append(got, k.Keys...)
			sizes = append(sizes, len(k.Keys))
			if k.Next == nil {
				break
			}
			if *k.Next != k.Keys[len(k.Keys)-1] {
				t.Fatalf("next %q is not the page's last key %q", *k.Next, k.Keys[len(k.Keys)-1])
			}
			cursor = *k.Next
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("limit %d: listed %d keys (pages %v), want the %d keys under p/ in order", limit, len(got), sizes, len(want))
		}
		wantSizes := map[int]string{0: "[1000 1000 500]", 700: "[700 700 700 400]"}[limit]
		if fmt.Sprint(sizes) != wantSizes {
			t.Fatalf("limit %d: page sizes %v, want %s", limit, sizes, wantSizes)
		}
	}
	// An exact last page has no next.
	if k := list("prefix=p/&limit=2500"); len(k.Keys) != 2500 || k.Next != nil {
		t.Fatalf("limit=2500: %d keys, next %v", len(k.Keys), k.Next)
	}
	if k := list("prefix=p/&limit=2499"); len(k.Keys) != 2499 || k.Next == nil {
		t.Fatalf("limit=2499: %d keys, next %v", len(k.Keys), k.Next)
	}
	// No prefix lists everything; a prefix with no keys lists nothing.
	if k := list("limit=10000"); len(k.Keys) != 2504 || k.Keys[0] != "o/1" || k.Keys[2503] != "q/1" {
		t.Fatalf("all keys: %d, first %q", len(k.Keys), k.Keys[0])
	}
	if k := list("prefix=zzz"); len(k.Keys) != 0 || k.Next != nil || k.Keys == nil {
		t.Fatalf("empty prefix: %+v", k)
	}

	// Non-UTF-8 keys come back in base64, and the cursor is read in the
	// requested encoding.
	bin := []string{"bin\xff\x01", "bin\xff\x02", "bin\xff\x03"}
	for _, k := range bin {
		s.put(url.PathEscape(k), "b")
	}
	k := list("prefix=bin&limit=2")
	if k.Encoding != "base64" || len(k.Keys) != 2 || k.Next == nil {
		t.Fatalf("binary keys: %+v", k)
	}
	for i, enc := range k.Keys {
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || string(raw) != bin[i] {
			t.Fatalf("key %d: %q decodes to %q (%v), want %q", i, enc, raw, err, bin[i])
		}
	}
	k = list("prefix=bin&limit=2&encoding=base64&cursor=" + url.QueryEscape(*k.Next))
	if len(k.Keys) != 1 || k.Next != nil {
		t.Fatalf("second binary page: %+v", k)
	}
	if raw, _ := base64.StdEncoding.DecodeString(k.Keys[0]); string(raw) != bin[2] {
		t.Fatalf("second binary page holds %q", raw)
	}
	// ?encoding=base64 on UTF-8 keys.
	if k := list("prefix=o/&encoding=base64"); k.Encoding != "base64" || len(k.Keys) != 1 || k.Keys[0] != base64.StdEncoding.EncodeToString([]byte("o/1")) {
		t.Fatalf("encoding=base64: %+v", k)
	}

	// Expired keys are not listed.
	s.must(http.StatusOK, http.MethodPut, "/v1/kv/exp/1?ttl=100ms", []byte("x"), nil)
	s.put("exp/2", "x")
	featEventually(t, "exp/1 drops out of the listing", func() error {
		if k := list("prefix=exp/"); strings.Join(k.Keys, ",") != "exp/2" {
			return fmt.Errorf("listed %v", k.Keys)
		}
		return nil
	})

	for _, c := range []struct{ query, code string }{
		{"limit=0", "bad_limit"},
		{"limit=-1", "bad_limit"},
		{"limit=10001", "bad_limit"},
		{"limit=ten", "bad_limit"},
		{"encoding=hex", "bad_encoding"},
		{"encoding=base64&cursor=%21%21%21", "bad_cursor"},
		{"consistency=eventual", "bad_consistency"},
	} {
		featCode(t, s.must(http.StatusBadRequest, http.MethodGet, "/v1/keys?"+c.query, nil, nil), c.code)
	}
}

func TestFeatDeletePrefix(t *testing.T) {
	s := featStart(t, 0)
	var keys []string
	for i := 0; i < 10; i++ {
		keys = append(keys, fmt.Sprintf("a/%d", i))
	}
	s.batch(http.StatusOK, featSetOps(append(keys, "a", "ab", "b/1", "b/2", "c")), nil)
	// An expired key under the prefix is removed but not counted.
	s.must(http.StatusOK, http.MethodPut, "/v1/kv/a/expired?ttl=50ms", []byte("x"), nil)
	featEventually(t, "a/expired expires", func() error {
		if found, _, _ := s.get("a/expired"); found {
			return fmt.Errorf("still readable")
		}
		return nil
	})

	featCode(t, s.must(http.StatusBadRequest, http.MethodDelete, "/v1/keys", nil, nil), "empty_prefix")
	featCode(t, s.must(http.StatusBadRequest, http.MethodDelete, "/v1/keys?prefix=", nil, nil), "empty_prefix")
	featCode(t, s.must(http.StatusBadRequest, http.MethodDelete, "/v1/keys?all=yes", nil, nil), "empty_prefix")
	if st := s.stats(); st.Keys < 15 {
		t.Fatalf("a refused prefix delete removed keys: %d left", st.Keys)
	}

	deletes := s.stats().Deletes
	var d struct {
		Deleted int
		Index   uint64
	}
	featDecode(t, s.must(http.StatusOK, http.MethodDelete, "/v1/keys?prefix=a/", nil, nil), &d)
	if d.Deleted != 10 || d.Index == 0 {
		t.Fatalf("DELETE prefix=a/: %+v, want 10 deleted", d)
	}
	if st := s.stats(); st.Deletes != deletes+10 {
		t.Fatalf("deletes %d, want %d", st.Deletes, deletes+10)
	}
	var k featKeys
	featDecode(t, s.must(http.StatusOK, http.MethodGet, "/v1/keys", nil, nil), &k)
	if got := strings.Join(k.Keys, ","); got != "a,ab,b/1,b/2,c" {
		t.Fatalf("after deleting a/: %s", got)
	}
	// Deleting again finds nothing.
	featDecode(t, s.must(http.StatusOK, http.MethodDelete, "/v1/keys?prefix=a/", nil, nil), &d)
	if d.Deleted != 0 {
		t.Fatalf("second delete of a/: %d", d.Deleted)
	}
	// A percent-encoded prefix.
	featDecode(t, s.must(http.StatusOK, http.MethodDelete, "/v1/keys?prefix=b%2F", nil, nil), &d)
	if d.Deleted != 2 {
		t.Fatalf("DELETE prefix=b%%2F: %d", d.Deleted)
	}
	featDecode(t, s.must(http.StatusOK, http.MethodDelete, "/v1/keys?all=true", nil, nil), &d)
	if d.Deleted != 3 {
		t.Fatalf("DELETE all=true: %d, want 3", d.Deleted)
	}
	if st := s.stats(); st.Keys != 0 || st.Bytes != 0 {
		t.Fatalf("after deleting everything: %d keys, %d bytes", st.Keys, st.Bytes)
	}
}

type featBatchResp struct {
	Index   uint64 `json:"index"`
	Results []struct {
		Version uint64 `json:"version"`
		Deleted *bool  `json:"deleted"`
		Value   *int64 `json:"value"`
	} `json:"results"`
}

func TestFeatBatch(t *testing.T) {
	s := featStart(t, 0)
	vb := s.put("b", "bee")
	s.put("text", "hello")

	// Atomic success: every op applies, in one entry.
	var ok featBatchResp
	featDecode(t, s.batch(http.StatusOK, `{"atomic":true,"ops":[
		{"op":"set","key":"a","value":"1","ttl":"30s"},
		{"op":"set","key_b64":"/w==","value_b64":"AAE=","cas":0},
		{"op":"delete","key":"b","cas":`+strconv.FormatUint(vb, 10)+`},
		{"op":"incr","key":"hits","by":2},
		{"op":"incr","key":"hits"}
	]}`, nil), &ok)
	if len(ok.Results) != 5 || ok.Index == 0 {
		t.Fatalf("atomic batch: %+v", ok)
	}
	r := ok.Results
	if r[0].Version == 0 || r[1].Version <= r[0].Version || r[2].Deleted == nil || !*r[2].Deleted ||
		r[3].Value == nil || *r[3].Value != 2 || r[4].Value == nil || *r[4].Value != 3 || r[4].Version <= r[3].Version {
		t.Fatalf("atomic batch results: %+v", r)
	}
	got := s.must(http.StatusOK, http.MethodGet, "/v1/kv/a", nil, nil)
	if string(got.body) != "1" || got.header.Get("X-Expires-At") == "" || featETag(t, got) != r[0].Version {
		t.Fatalf("a after the batch: %q expires %q", got.body, got.header.Get("X-Expires-At"))
	}
	if got := s.must(http.StatusOK, http.MethodGet, "/v1/kv/%FF", nil, nil); !bytes.Equal(got.body, []byte{0, 1}) {
		t.Fatalf("key 0xff holds %v, want [0 1]", got.body)
	}
	if found, _, _ := s.get("b"); found {
		t.Fatal("b survived the batch delete")
	}
	if _, val, _ := s.get("hits"); val != "3" {
		t.Fatalf("hits = %q", val)
	}

	// Atomic failure: the first failed condition is reported, nothing applies.
	digest := s.stats().Digest
	va := r[0].Version
	for _, c := range []struct {
		body     string
		status   int
		code     string
		failedOp int
		current  uint64
	}{
		{`{"ops":[{"op":"set","key":"new1","value":"x"},{"op":"incr","key":"hits"},{"op":"set","key":"a","value":"2","cas":1}]}`,
			http.StatusPreconditionFailed, "cas_conflict", 2, va},
		{`{"atomic":true,"ops":[{"op":"delete","key":"a"},{"op":"set","key":"hits","value":"9","cas":0}]}`,
			http.StatusPreconditionFailed, "cas_conflict", 1, ok.Results[4].Version},
		{`{"ops":[{"op":"set","key":"new1","value":"x"},{"op":"incr","key":"text"},{"op":"set","key":"a","value":"2","cas":1}]}`,
			http.StatusConflict, "not_integer", 1, 0},
		{`{"ops":[{"op":"set","key":"n","value":"9223372036854775807"},{"op":"incr","key":"n"}]}`,
			http.StatusConflict, "overflow", 1, 0},
		{`{"ops":[{"op":"set","key":"new1","value":"x"},{"op":"delete","key":"gone","cas":3}]}`,
			http.StatusPreconditionFailed, "cas_conflict", 1, 0},
	} {
		resp := s.batch(c.status, c.body, nil)
		e := featCode(t, resp, c.code)
		if e.FailedOp == nil || *e.FailedOp != c.failedOp {
			t.Fatalf("%s: failed_op %v, want %d", c.body, e.FailedOp, c.failedOp)
		}
		if c.status == http.StatusPreconditionFailed && (e.CurrentVersion == nil || *e.CurrentVersion != c.current) {
			t.Fatalf("%s: current_version %v, want %d", c.body, e.CurrentVersion, c.current)
		}
		if st := s.stats(); st.Digest != digest {
			t.Fatalf("a failed atomic batch changed the cache: %s", c.body)
		}
	}
	for _, k := range []string{"new1", "n"} {
		if found, _, _ := s.get(k); found {
			t.Fatalf("%s was written by a failed atomic batch", k)
		}
	}
	if _, val, _ := s.get("hits"); val != "3" {
		t.Fatalf("hits = %q after failed batches", val)
	}

	// Non-atomic: ops apply independently.
	var na featBatchResp
	featDecode(t, s.batch(http.StatusOK, `{"atomic":false,"ops":[
		{"op":"set","key":"na1","value":"x"},
		{"op":"set","key":"a","value":"lost","cas":1},
		{"op":"set","key":"na2","value":"y"}
	]}`, nil), &na)
	if len(na.Results) != 3 || na.Results[0].Version == 0 || na.Results[1].Version != 0 || na.Results[2].Version == 0 {
		t.Fatalf("non-atomic batch: %+v", na.Results)
	}
	for k, want := range map[string]string{"na1": "x", "na2": "y", "a": "1"} {
		if _, val, _ := s.get(k); val != want {
			t.Fatalf("after the non-atomic batch %s = %q, want %q", k, val, want)
		}
	}

	// Malformed batches: 400, nothing applied.
	digest = s.stats().Digest
	many := make([]string, 4097)
	for i := range many {
		many[i] = fmt.Sprintf("m%d", i)
	}
	for _, c := range []struct{ body, code string }{
		{`{"ops":[]}`, "bad_batch"},
		{`{}`, "bad_batch"},
		{featSetOps(many), "bad_batch"},
		{`{"ops":[{"op":"set","key":"x","value":"1"},{"op":"frob","key":"x"}]}`, "bad_batch"},
		{`{"ops":[{"op":"set","value":"1"}]}`, "bad_batch"},
		{`{"ops":[{"op":"set","key":""}]}`, "bad_batch"},
		{`{"ops":[{"op":"set","key":"` + strings.Repeat("k", 1025) + `"}]}`, "bad_batch"},
		{`{"ops":[{"op":"set","key":"x","key_b64":"eA=="}]}`, "bad_batch"},
		{`{"ops":[{"op":"set","key_b64":"***"}]}`, "bad_batch"},
		{`{"ops":[{"op":"set","key":"x","value":"1","value_b64":"MQ=="}]}`, "bad_batch"},
		{`{"ops":[{"op":"set","key":"x","value_b64":"!"}]}`, "bad_batch"},
		{`{"ops":[{"op":"set","key":"x","ttl":"never"}]}`, "bad_batch"},
		{`{"ops":[{"op":"delete","key":"x","ttl":"1s"}]}`, "bad_batch"},
		{`{"ops":[{"op":"incr","key":"x","cas":0}]}`, "bad_batch"},
		{`{"ops":[{"op":"set","key":"x"}`, "bad_json"},
		{`not json`, "bad_json"},
		{`{"ops":[{"op":"set","key":"x"}]} trailing`, "bad_json"},
		{`{"ops":[{"op":"set","key":"x","colour":"red"}]}`, "bad_json"},
		{`{"atomik":false,"ops":[{"op":"set","key":"x"}]}`, "bad_json"},
		{`{"ops":[{"op":"incr","key":"x","by":"two"}]}`, "bad_json"},
	} {
		resp := s.do(http.MethodPost, "/v1/batch", []byte(c.body), nil)
		if resp.status != http.StatusBadRequest {
			t.Fatalf("%.80s: %s, want 400", c.body, resp)
		}
		featCode(t, resp, c.code)
	}
	if st := s.stats(); st.Digest != digest {
		t.Fatal("a malformed batch changed the cache")
	}
	featCode(t, s.must(http.StatusBadRequest, http.MethodPost, "/v1/batch", []byte(`{"ops":[{"op":"set","key":"x"}]}`),
		map[string]string{"Idempotency-Key": strings.Repeat("i", 65)}), "bad_idempotency_key")
	// A set with neither value nor value_b64 writes an empty value.
	s.batch(http.StatusOK, `{"ops":[{"op":"set","key":"emptyval"}]}`, nil)
	if found, val, _ := s.get("emptyval"); !found || val != "" {
		t.Fatalf("emptyval: %v %q", found, val)
	}
}

func TestFeatBatchGet(t *testing.T) {
	s := featStart(t, 0)
	va := s.put("a", "1")
	vbin := s.put("%FF%00", "")
	s.batch(http.StatusOK, `{"ops":[{"op":"set","key":"binval","value_b64":"/wA="}]}`, nil)
	type item struct {
		Key      *string `json:"key"`
		KeyB64   *string `json:"key_b64"`
		Found    bool    `json:"found"`
		Value    *string `json:"value"`
		ValueB64 *string `json:"value_b64"`
		Version  uint64  `json:"version"`
	}
	var out struct {
		Items []item `json:"items"`
		Index uint64 `json:"index"`
	}
	resp := s.must(http.StatusOK, http.MethodPost, "/v1/batch/get", []byte(`{"keys":["a","missing","binval"]}`), nil)
	featDecode(t, resp, &out)
	if len(out.Items) != 3 || out.Index == 0 || resp.header.Get("X-Raft-Index") == "" {
		t.Fatalf("batch get: %s", resp)
	}
	it := out.Items
	if it[0].Key == nil || *it[0].Key != "a" || !it[0].Found || it[0].Value == nil || *it[0].Value != "1" || it[0].Version != va {
		t.Fatalf("item a: %s", resp)
	}
	if it[1].Key == nil || *it[1].Key != "missing" || it[1].Found || it[1].Value != nil || it[1].Version != 0 {
		t.Fatalf("item missing: %s", resp)
	}
	if !it[2].Found || it[2].Value != nil || it[2].ValueB64 == nil || *it[2].ValueB64 != "/wA=" {
		t.Fatalf("item binval (non-UTF-8 value): %s", resp)
	}

	// Keys given in base64; a non-UTF-8 key comes back as key_b64.
	b64 := base64.StdEncoding.EncodeToString
	body := fmt.Sprintf(`{"keys":[%q,%q],"encoding":"base64"}`, b64([]byte{0xff, 0}), b64([]byte("a")))
	resp = s.must(http.StatusOK, http.MethodPost, "/v1/batch/get?consistency=stale", []byte(body), nil)
	out.Items = nil
	featDecode(t, resp, &out)
	if len(out.Items) != 2 {
		t.Fatalf("base64 batch get: %s", resp)
	}
	if it := out.Items[0]; it.KeyB64 == nil || *it.KeyB64 != "/wA=" || it.Key != nil || !it.Found || it.Value == nil || *it.Value != "" || it.Version != vbin {
		t.Fatalf("binary key: %s", resp)
	}
	if it := out.Items[1]; it.Key == nil || *it.Key != "a" || !it.Found {
		t.Fatalf("key a in base64: %s", resp)
	}

	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("k%d", i)
	}
	manyBody, _ := json.Marshal(map[string]any{"keys": many})
	for _, c := range []struct{ query, body, code string }{
		{"", `{"keys":[]}`, "bad_batch"},
		{"", string(manyBody), "bad_batch"},
		{"", `{"keys":[""]}`, "bad_key"},
		{"", `{"keys":["!!"],"encoding":"base64"}`, "bad_key"},
		{"", `{"keys":["a"],"encoding":"hex"}`, "bad_encoding"},
		{"", `{"keys":["a"],"consistency":"stale"}`, "bad_json"},
		{"", `{"keys":"a"}`, "bad_json"},
		{"?consistency=weak", `{"keys":["a"]}`, "bad_consistency"},
	} {
		resp := s.do(http.MethodPost, "/v1/batch/get"+c.query, []byte(c.body), nil)
		if resp.status != http.StatusBadRequest {
			t.Fatalf("%s %.60s: %s, want 400", c.query, c.body, resp)
		}
		featCode(t, resp, c.code)
	}
}

func TestFeatIdempotencyKey(t *testing.T) {
	s := featStart(t, 0)
	incr := func(key string) (*featResp, int64, uint64) {
		t.Helper()
		r := s.must(http.StatusOK, http.MethodPost, "/v1/incr/counter", nil, map[string]string{"Idempotency-Key": key})
		var w struct {
			Value int64
			Index uint64
		}
		featDecode(t, r, &w)
		return r, w.Value, w.Index
	}
	r1, v1, i1 := incr("req-1")
	if v1 != 1 || r1.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first incr: %d, replayed %q", v1, r1.header.Get("Idempotent-Replayed"))
	}
	r2, v2, i2 := incr("req-1")
	if r2.header.Get("Idempotent-Replayed") != "true" || v2 != v1 || i2 != i1 {
		t.Fatalf("retried incr: value %d index %d replayed %q, want the first answer %d at %d with Idempotent-Replayed: true",
			v2, i2, r2.header.Get("Idempotent-Replayed"), v1, i1)
	}
	if _, val, _ := s.get("counter"); val != "1" {
		t.Fatalf("the counter is %q after a retried incr, want 1", val)
	}
	if _, v3, _ := incr("req-2"); v3 != 2 {
		t.Fatalf("a new idempotency key: %d, want 2", v3)
	}
	// A request without the header is applied every time.
	s.must(http.StatusOK, http.MethodPost, "/v1/incr/counter", nil, nil)
	s.must(http.StatusOK, http.MethodPost, "/v1/incr/counter", nil, nil)
	if _, val, _ := s.get("counter"); val != "4" {
		t.Fatalf("counter = %q, want 4", val)
	}

	// A conditional PUT retried after it succeeded answers the first
	// success, not a conflict with its own write.
	hdr := map[string]string{"Idempotency-Key": "put-1"}
	p1 := s.must(http.StatusOK, http.MethodPut, "/v1/kv/once?cas=0", []byte("v"), hdr)
	p2 := s.must(http.StatusOK, http.MethodPut, "/v1/kv/once?cas=0", []byte("v"), hdr)
	if featVersion(t, p1) != featVersion(t, p2) || p2.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retried PUT: %s then %s (replayed %q)", p1, p2, p2.header.Get("Idempotent-Replayed"))
	}
	// A batch retried with its key is applied once.
	bh := map[string]string{"Idempotency-Key": "batch-1"}
	body := `{"ops":[{"op":"incr","key":"bc","by":5}]}`
	b1 := s.batch(http.StatusOK, body, bh)
	b2 := s.batch(http.StatusOK, body, bh)
	if string(b1.body) != string(b2.body) {
		t.Fatalf("retried batch answered %s, first %s", b2, b1)
	}
	if _, val, _ := s.get("bc"); val != "5" {
		t.Fatalf("bc = %q after a retried batch, want 5", val)
	}
	featCode(t, s.must(http.StatusBadRequest, http.MethodPost, "/v1/incr/counter", nil,
		map[string]string{"Idempotency-Key": strings.Repeat("k", 65)}), "bad_idempotency_key")
	s.must(http.StatusOK, http.MethodPost, "/v1/incr/counter", nil, map[string]string{"Idempotency-Key": strings.Repeat("k", 64)})
}

func TestFeatMaxMemory(t *testing.T) {
	const maxMem = 4096
	s := featStart(t, maxMem)
	if st := s.stats(); st.MaxMemory != maxMem {
		t.Fatalf("max_memory %d", st.MaxMemory)
	}
	// key + value + 64 bytes overhead > max: it can never fit.
	big := bytes.Repeat([]byte("x"), maxMem)
	r := s.do(http.MethodPut, "/v1/kv/big", big, nil)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("PUT of a value that can never fit: %s", r)
	}
	featCode(t, r, "too_large_for_memory")
	// The same without Content-Length (chunked).
	req, _ := http.NewRequest(http.MethodPut, s.url+"/v1/kv/big", io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	resp, err := featClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked PUT of a value that can never fit: %d %s", resp.StatusCode, b)
	}
	featCode(t, &featResp{status: resp.StatusCode, header: resp.Header, body: b}, "too_large_for_memory")
	// Exactly at the bound fits.
	s.put("big", string(big[:maxMem-64-len("big")]))
	if found, _, _ := s.get("big"); !found {
		t.Fatal("a value of exactly max memory was not stored")
	}

	// Writing past the bound evicts down to it.
	for i := 0; i < 20; i++ {
		s.put(fmt.Sprintf("fill/%02d", i), strings.Repeat("v", 1000))
	}
	featEventually(t, "eviction brings bytes under max memory", func() error {
		st := s.stats()
		if st.Bytes > maxMem || st.Evictions == 0 {
			return fmt.Errorf("bytes %d, evictions %d", st.Bytes, st.Evictions)
		}
		return nil
	})
	// Eviction frees what it must, least recently used first, not the
	// whole cache: three 1071-byte fills fit under 4096, and the most
	// recent write survives.
	if st := s.stats(); st.Keys < 3 || st.Bytes <= maxMem-1071 {
		t.Fatalf("eviction went too far: %d keys, %d bytes left of %d, %d evictions; keys: %s",
			st.Keys, st.Bytes, maxMem, st.Evictions, s.must(http.StatusOK, http.MethodGet, "/v1/keys", nil, nil))
	}
	if found, _, _ := s.get("fill/19"); !found {
		st := s.stats()
		t.Fatalf("the most recently written key was evicted: %d keys, %d bytes left of %d, %d evictions; keys: %s",
			st.Keys, st.Bytes, maxMem, st.Evictions, s.must(http.StatusOK, http.MethodGet, "/v1/keys", nil, nil))
	}
}

func TestFeatStats(t *testing.T) {
	s := featStart(t, 0)
	st0 := s.stats()
	if st0.NodeID != "n1" || st0.Keys != 0 || st0.Bytes != 0 || st0.MaxMemory != 0 || st0.Digest == "" || st0.AppliedIndex == 0 {
		t.Fatalf("initial stats: %+v", st0)
	}
	s.put("k1", "hello")
	s.put("key2", "")
	s.put("k1", "hi")
	s.must(http.StatusOK, http.MethodDelete, "/v1/kv/key2", nil, nil)
	s.must(http.StatusOK, http.MethodDelete, "/v1/kv/never", nil, nil)
	s.get("k1")
	s.get("k1")
	s.get("nope")
	st := s.stats()
	if st.Keys != 1 || st.Bytes != int64(len("k1")+len("hi")+64) {
		t.Fatalf("keys %d bytes %d, want 1 and %d", st.Keys, st.Bytes, len("k1")+len("hi")+64)
	}
	if st.Sets != st0.Sets+3 || st.Deletes != st0.Deletes+1 {
		t.Fatalf("sets %d deletes %d, want %d and %d", st.Sets, st.Deletes, st0.Sets+3, st0.Deletes+1)
	}
	if st.Hits != st0.Hits+2 || st.Misses != st0.Misses+1 {
		t.Fatalf("hits %d misses %d, want %d and %d", st.Hits, st.Misses, st0.Hits+2, st0.Misses+1)
	}
	if st.AppliedIndex <= st0.AppliedIndex || st.Digest == st0.Digest {
		t.Fatalf("applied index %d (was %d), digest %s (was %s)", st.AppliedIndex, st0.AppliedIndex, st.Digest, st0.Digest)
	}
	if st.StrongReadRounds == 0 || st.StrongReads < st.StrongReadRounds {
		t.Fatalf("strong reads %d in %d rounds", st.StrongReads, st.StrongReadRounds)
	}
	// Stale reads count too, and do not add strong reads.
	s.must(http.StatusOK, http.MethodGet, "/v1/kv/k1?consistency=stale", nil, nil)
	if st2 := s.stats(); st2.Hits != st.Hits+1 || st2.StrongReads != st.StrongReads {
		t.Fatalf("after a stale hit: hits %d strong reads %d", st2.Hits, st2.StrongReads)
	}

	// scope=cluster on one node.
	var cs struct {
		Scope  string            `json:"scope"`
		Hits   uint64            `json:"hits"`
		Misses uint64            `json:"misses"`
		Nodes  []featStats       `json:"nodes"`
		Errors map[string]string `json:"errors"`
	}
	featDecode(t, s.must(http.StatusOK, http.MethodGet, "/v1/stats?scope=cluster", nil, nil), &cs)
	if cs.Scope != "cluster" || len(cs.Nodes) != 1 || cs.Nodes[0].NodeID != "n1" || cs.Errors != nil ||
		cs.Hits != cs.Nodes[0].Hits || cs.Misses != cs.Nodes[0].Misses {
		t.Fatalf("scope=cluster: %+v", cs)
	}
	if r := s.must(http.StatusOK, http.MethodGet, "/v1/stats?scope=node", nil, nil); !strings.Contains(string(r.body), `"node_id":"n1"`) {
		t.Fatalf("scope=node: %s", r)
	}
	featCode(t, s.must(http.StatusBadRequest, http.MethodGet, "/v1/stats?scope=galaxy", nil, nil), "bad_scope")
}

func TestFeatMetrics(t *testing.T) {
	s := featStart(t, 0)
	s.put("m1", "v")
	s.must(http.StatusOK, http.MethodPost, "/v1/incr/m2", nil, nil)
	s.must(http.StatusOK, http.MethodPost, "/v1/incr/m4", nil, map[string]string{"Idempotency-Key": "metrics-key"})
	s.get("m1")
	s.get("missing")
	s.must(http.StatusOK, http.MethodGet, "/v1/keys?prefix=m", nil, nil)
	s.must(http.StatusOK, http.MethodDelete, "/v1/kv/m1", nil, nil)
	s.must(http.StatusOK, http.MethodPut, "/v1/kv/m3?ttl=50ms", []byte("x"), nil)
	featEventually(t, "m3 is reaped", func() error {
		if st := s.stats(); st.Expirations == 0 {
			return fmt.Errorf("expirations 0")
		}
		return nil
	})
	st := s.stats()

	r := s.must(http.StatusOK, http.MethodGet, "/metrics", nil, nil)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%.2000s", err, r.body)
	}
	value := func(name string) float64 {
		t.Helper()
		f, ok := fams[name]
		if !ok || len(f.Metric) == 0 {
			t.Fatalf("/metrics has no %s", name)
		}
		m := f.Metric[0]
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		}
		t.Fatalf("%s has type %v", name, f.GetType())
		return 0
	}
	for name, want := range map[string]float64{
		"raftcache_cache_hits_total":       float64(st.Hits),
		"raftcache_cache_misses_total":     float64(st.Misses),
		"raftcache_cache_evictions_total":  0,
		"raftcache_cache_expired_total":    float64(st.Expirations),
		"raftcache_cache_sets_total":       float64(st.Sets),
		"raftcache_cache_deletes_total":    float64(st.Deletes),
		"raftcache_cache_keys":             float64(st.Keys),
		"raftcache_cache_bytes":            float64(st.Bytes),
		"raftcache_cache_max_memory_bytes": 0,
		"raftcache_log_store_memory_bytes": 40 << 20, // pebble, the default, unbounded node
		"raftcache_request_ids":            float64(st.RequestIDs),
		"raftcache_request_ids_bytes":      float64(st.RequestIDBytes),
	} {
		if got := value(name); got != want {
			t.Errorf("%s = %v, want %v (from /v1/stats)", name, got, want)
		}
	}
	if st.RequestIDs != 1 || st.RequestIDBytes <= 0 {
		t.Errorf("the request-id table after one idempotency key: %d ids, %d bytes", st.RequestIDs, st.RequestIDBytes)
	}
	if st.Hits == 0 || st.Misses == 0 || st.Sets < 3 || st.Deletes == 0 {
		t.Errorf("stats did not count the workload: %+v", st)
	}
	for _, name := range []string{"raftcache_raft_term", "raftcache_raft_commit_index", "raftcache_raft_applied_index",
		"raftcache_strong_read_rounds_total", "raftcache_strong_reads_total"} {
		if v := value(name); v <= 0 {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	states := map[string]float64{}
	for _, m := range fams["raftcache_raft_state"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "state" {
				states[l.GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	if states["Leader"] != 1 || states["Follower"] != 0 || len(states) != 4 {
		t.Errorf("raftcache_raft_state: %v", states)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		}
	}
	// The write path's histograms (node/writestats.go): the workload's
	// writes went through the log, in entries of at least one write each.
	hist := func(name string) *dto.Histogram {
		t.Helper()
		f, ok := fams[name]
		if !ok || f.GetType() != dto.MetricType_HISTOGRAM || len(f.Metric) != 1 {
			t.Fatalf("/metrics has no %s histogram", name)
		}
		return f.Metric[0].GetHistogram()
	}
	appends, entries, sizes := hist("raftcache_log_append_duration_seconds"), hist("raftcache_write_entry_duration_seconds"), hist("raftcache_write_entry_writes")
	if appends.GetSampleCount() == 0 || appends.GetSampleSum() <= 0 || len(appends.GetBucket()) == 0 {
		t.Errorf("raftcache_log_append_duration_seconds: %d appends, %v s", appends.GetSampleCount(), appends.GetSampleSum())
	}
	if n := entries.GetSampleCount(); n == 0 || sizes.GetSampleCount() != n || sizes.GetSampleSum() < float64(n) || sizes.GetSampleSum() < float64(st.Sets) {
		t.Errorf("write entries: %d timed, %d sized, %v writes in all (%d sets)", n, sizes.GetSampleCount(), sizes.GetSampleSum(), st.Sets)
	}
	if v := value("raftcache_log_append_errors_total"); v != 0 {
		t.Errorf("raftcache_log_append_errors_total = %v", v)
	}
	rounds, roundReads := hist("raftcache_strong_read_round_duration_seconds"), hist("raftcache_strong_read_round_reads")
	// Only confirmed rounds are in the histograms (the counters also count
	// a round that failed, as one can just after an election).
	if n := rounds.GetSampleCount(); n == 0 || roundReads.GetSampleCount() != n || roundReads.GetSampleSum() < float64(n) ||
		roundReads.GetSampleSum() > value("raftcache_strong_reads_total") {
		t.Errorf("strong-read rounds: %d timed, %d sized with %v reads (raftcache_strong_reads_total %v)",
			n, roundReads.GetSampleCount(), roundReads.GetSampleSum(), value("raftcache_strong_reads_total"))
	}

	// Request latency by route template, method and code.
	h, ok := fams["raftcache_http_request_duration_seconds"]
	if !ok || h.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("no raftcache_http_request_duration_seconds histogram")
	}
	seen := map[string]uint64{}
	for _, m := range h.GetMetric() {
		lab := map[string]string{}
		for _, l := range m.GetLabel() {
			lab[l.GetName()] = l.GetValue()
		}
		seen[lab["route"]+" "+lab["method"]+" "+lab["code"]] += m.GetHistogram().GetSampleCount()
	}
	for _, want := range []string{
		"/v1/kv/{key:.+} PUT 200",
		"/v1/kv/{key:.+} GET 200",
		"/v1/kv/{key:.+} GET 404",
		"/v1/kv/{key:.+} DELETE 200",
		"/v1/incr/{key:.+} POST 200",
		"/v1/keys GET 200",
		"/v1/stats GET 200",
	} {
		if seen[want] == 0 {
			keys := make([]string, 0, len(seen))
			for k := range seen {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			t.Errorf("no observation for %q; have %v", want, keys)
		}
	}
	for k := range seen {
		if strings.Contains(k, "m1") || strings.Contains(k, "m2") {
			t.Errorf("a route label holds a key, not the template: %q", k)
		}
	}
}
