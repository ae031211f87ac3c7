package clustertest

import (
	"bufio"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRedisDiffChecker is the differential test's negative control, with
// no server: the RESP reader keeps types apart, and the comparison fails
// on what it must fail on.
func TestRedisDiffChecker(t *testing.T) {
	in := "+OK\r\n$2\r\nOK\r\n$-1\r\n*-1\r\n_\r\n:-7\r\n-ERR bad thing\r\n!9\r\nERR blob!\r\n#t\r\n,1.5\r\n(12345678901234567890\r\n" +
		"=7\r\ntxt:abc\r\n*2\r\n$1\r\na\r\n*0\r\n%1\r\n$1\r\nk\r\n:1\r\n~1\r\n$1\r\nx\r\n|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n>1\r\n+p\r\n$0\r\n\r\n"
	want := []string{`OK`, `"OK"`, `(nil)`, `(nil array)`, `(null)`, `(integer) -7`, `(error) ERR bad thing`, `(error) ERR blob!`,
		`(bool) t`, `(double) 1.5`, `(bignum) 12345678901234567890`, `(verbatim) "txt:abc"`, `["a", []]`, `{"k": (integer) 1}`,
		`~["x"]`, `"v"`, `>[p]`, `""`}
	r := bufio.NewReader(strings.NewReader(in))
	for i, w := range want {
		got, err := readReply(r)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if got.String() != w {
			t.Errorf("reply %d: %s, want %s", i, got, w)
		}
	}
	for _, bad := range []string{"$3\r\nab\r\n", "*1\r\n", ":x\r\n", "?\r\n", "+OK\n"} {
		if _, err := readReply(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}

	st := func(s string) *reply { return &reply{Kind: kStatus, Str: s} }
	bulk := func(s string) *reply { return &reply{Kind: kBulk, Str: s} }
	num := func(n int64) *reply { return &reply{Kind: kInt, Int: n} }
	er := func(s string) *reply { return &reply{Kind: kError, Str: s} }
	arr := func(e ...*reply) *reply { return &reply{Kind: kArray, Elems: e} }
	nilBulk, nilArr := &reply{Kind: kNilBulk}, &reply{Kind: kNilArray}
	e := &diffEnv{texts: map[string]string{}, hits: map[string]int{}, examples: map[string]string{}}
	for _, c := range []struct {
		argv   []string
		queued [][]string
		redis  *reply
		rc     *reply
		differ bool
	}{
		{[]string{"SET", "k", "v"}, nil, st("OK"), bulk("OK"), true},
		{[]string{"GET", "k"}, nil, nilBulk, nilArr, true},
		{[]string{"GET", "k"}, nil, nilBulk, &reply{Kind: kNull}, true},
		{[]string{"GET", "k"}, nil, bulk("1"), bulk("1"), false},
		{[]string{"INCR", "k"}, nil, num(2), bulk("2"), true},
		{[]string{"INCR", "k"}, nil, er("ERR value is not an integer or out of range"), er("ERR other words"), false},
		{[]string{"INCR", "k"}, nil, er("ERR value is not an integer or out of range"), er("WRONGTYPE x"), true},
		{[]string{"INCR", "k"}, nil, er("ERR x"), num(1), true},
		{[]string{"TTL", "k"}, nil, num(100), num(98), false},
		{[]string{"TTL", "k"}, nil, num(100), num(97), true},
		{[]string{"TTL", "k"}, nil, num(-1), num(-2), true},
		{[]string{"TTL", "k"}, nil, num(1), num(-2), true},
		{[]string{"PTTL", "k"}, nil, num(100000), num(98500), false},
		{[]string{"PTTL", "k"}, nil, num(100000), num(97000), true},
		{[]string{"KEYS", "*"}, nil, arr(bulk("a"), bulk("b")), arr(bulk("b"), bulk("a")), false},
		{[]string{"KEYS", "*"}, nil, arr(bulk("a"), bulk("b")), arr(bulk("a")), true},
		{[]string{"MGET", "a", "b"}, nil, arr(bulk("a"), bulk("b")), arr(bulk("b"), bulk("a")), true},
		{[]string{"SCAN", "0"}, nil, arr(bulk("0"), arr(bulk("a"), bulk("b"))), arr(bulk("0"), arr(bulk("b"), bulk("a"))), false},
		{[]string{"SCAN", "0"}, nil, arr(bulk("0"), arr(bulk("a"))), arr(bulk("0"), arr(bulk("b"))), true},
		{[]string{"EXEC"}, [][]string{{"SET", "k", "1"}, {"TTL", "k"}, {"KEYS", "*"}},
			arr(st("OK"), num(100), arr(bulk("a"), bulk("b"))), arr(st("OK"), num(99), arr(bulk("b"), bulk("a"))), false},
		{[]string{"EXEC"}, [][]string{{"SET", "k", "1"}, {"INCR", "k"}, {"GET", "k"}},
			arr(st("OK"), num(2), bulk("2")), arr(st("OK"), num(2), nilBulk), true},
		{[]string{"EXEC"}, [][]string{{"SET", "k", "1"}}, arr(st("OK")), er("EXECABORT Transaction discarded"), true},
		{[]string{"EXEC"}, [][]string{{"SET", "k", "1"}}, arr(st("OK")), arr(st("OK"), st("OK")), true},
	} {
		why := e.compare(c.argv, c.queued, c.redis, c.rc)
		if (why != "") != c.differ {
			t.Errorf("%v: redis %s, raftcache %s: difference %q, want a difference: %v", c.argv, c.redis, c.rc, why, c.differ)
		}
	}

	far := strconv.FormatInt(time.Now().Unix()+200*365*24*3600, 10)
	for _, c := range []struct {
		argv []string
		far  bool
	}{
		{[]string{"EXPIRE", "k", "100000000000"}, true},
		{[]string{"EXPIRE", "k", "100"}, false},
		{[]string{"PEXPIRE", "k", "100000000000"}, false},
		{[]string{"PEXPIRE", "k", "100000000000000"}, true},
		{[]string{"EXPIREAT", "k", far}, true},
		{[]string{"EXPIREAT", "k", strconv.FormatInt(time.Now().Unix()+1000, 10)}, false},
		{[]string{"PEXPIREAT", "k", far + "000"}, true},
		{[]string{"SETEX", "k", "100000000000", "v"}, true},
		{[]string{"SET", "k", "100000000000", "EX", "100"}, false},
		{[]string{"SET", "k", "v", "PX", "100000000000000"}, true},
		{[]string{"SET", "k", "v", "EXAT", far}, true},
		{[]string{"GET", "100000000000"}, false},
	} {
		if got := diffHasFarTime(c.argv); got != c.far {
			t.Errorf("diffHasFarTime(%v) = %v", c.argv, got)
		}
	}
}
