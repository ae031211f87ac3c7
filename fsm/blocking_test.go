package fsm

import (
	"strings"
	"testing"
	"time"
)

func TestBlockTimeout(t *testing.T) {
	check := func(parse func([]byte) (time.Duration, error), cases map[string]string) {
		t.Helper()
		for arg, want := range cases {
			d, err := parse([]byte(arg))
			got := d.String()
			if err != nil {
				got = ErrorText(err)
			}
			if got != want {
				t.Errorf("timeout %q: %s, want %s", arg, got, want)
			}
		}
	}
	// As Redis 7.0.8 on: a long double, milliseconds rounded up.
	check(BlockTimeout, map[string]string{
		"0": "0s", "1.5": "1.5s", "+2": "2s", "9.2e12": "2562047h47m16.854775807s",
		"0.0001": "1ms", "0.0009": "1ms", "0.0015": "2ms", "0.001": "1ms", "1e-400": "1ms", "0x10": "16s", "-0.0005": "0s",
		"abc": msgTimeoutNotFloat, "nan": msgTimeoutNotFloat, " 1": msgTimeoutNotFloat, "": msgTimeoutNotFloat,
		"1e-5000": msgTimeoutNotFloat, "1e5000": msgTimeoutNotFloat,
		"-1": msgTimeoutNegative, "-inf": msgTimeoutNegative, "inf": msgTimeoutRange, "1e20": msgTimeoutRange,
	})
	// Below level 6, inside MULTI: as before (rounded down).
	check(blockTimeoutLevel5, map[string]string{
		"0": "0s", "1.5": "1.5s", "0.0001": "0s", "+2": "2s", "9.2e12": "2562047h47m16.854775807s",
		"abc": msgTimeoutNotFloat, "nan": msgTimeoutNotFloat, " 1": msgTimeoutNotFloat, "": msgTimeoutNotFloat,
		"-1": msgTimeoutNegative, "inf": msgTimeoutNegative, "1e20": msgTimeoutNegative,
	})
}

// The engine's side of blocking commands, on the strings-backed test
// command: the non-blocking form pops the first key holding a value,
// answers nil (and is not remembered under its request id) when there is
// none, and a retry of a request that popped gets the same element.
func TestBlockingCommandsRunNonBlocking(t *testing.T) {
	RegisterTestCommands()
	f := New(nil)
	var b logBuilder
	raiseLevel(t, f, &b, LevelTypes)
	pop := unit(UnitPlain, "RAFTCACHE.TESTBPOP k1 k2 0")
	pop.ReqID = []byte("w1")
	if r := execEntry(t, f, &b, t0, pop).Results[0]; r.Duplicate || replies(r.Replies) != "(nil)" {
		t.Fatalf("empty: %s duplicate=%v", replies(r.Replies), r.Duplicate)
	}
	execEntry(t, f, &b, t0, unit(UnitPlain, "SET k2 a", "SET k3 b"))
	r := execEntry(t, f, &b, t0, pop).Results[0]
	if r.Duplicate || replies(r.Replies) != `["k2" "a"]` {
		t.Fatalf("after the set: %s duplicate=%v (a nil answer was remembered?)", replies(r.Replies), r.Duplicate)
	}
	execEntry(t, f, &b, t0, unit(UnitPlain, "SET k1 c"))
	again := execEntry(t, f, &b, t0, pop).Results[0]
	if !again.Duplicate || replies(again.Replies) != replies(r.Replies) {
		t.Fatalf("retry: %s duplicate=%v", replies(again.Replies), again.Duplicate)
	}
	if got := f.View(t0).Exec(argv("GET k1")).String(); got != `"c"` {
		t.Fatalf("k1 = %s: the retry popped again", got)
	}
	// Inside MULTI: nil, WRONGTYPE, bad timeouts fail that command only.
	res := execEntry(t, f, &b, t0, unit(UnitPlain, "RAFTCACHE.TESTBPOP none 1", "RAFTCACHE.TESTBPOP k1 x", "RAFTCACHE.TESTBPOP k1 -1", "RAFTCACHE.TESTBPOP none k1 0"))
	want := `(nil), (error) ERR timeout is not a float or out of range, (error) ERR timeout is negative, ["k1" "c"]`
	if got := replies(res.Results[0].Replies); got != want {
		t.Fatalf("in a transaction: %s, want %s", got, want)
	}
}

func TestBlockingInfo(t *testing.T) {
	RegisterTestCommands()
	for line, want := range map[string]string{
		"BLPOP a b 1.5":              "[a b] 4 1.5s <nil>",
		"BZPOPMAX z 0":               "[z] 3 0s <nil>",
		"BLMOVE s d left RIGHT 0":    "[s] 4 0s <nil>",
		"BRPOPLPUSH s d 2":           "[s] 4 2s <nil>",
		"BLMOVE s d up left 0":       "[] 0 0s ERR syntax error",
		"BLPOP a x":                  "[] 0 0s ERR timeout is not a float or out of range",
		"RAFTCACHE.TESTBPOP a b 0.5": "[a b] 0 500ms <nil>",
	} {
		keys, kind, timeout, ok, err := BlockingInfo(argv(line))
		var ks []string
		for _, k := range keys {
			ks = append(ks, string(k))
		}
		es := "<nil>"
		if err != nil {
			es = ErrorText(err)
		}
		if got := fmtInfo(ks, kind, timeout, es); !ok || got != want {
			t.Errorf("%s: %s ok=%v, want %s", line, got, ok, want)
		}
	}
	if _, _, _, ok, _ := BlockingInfo(argv("LPOP a")); ok {
		t.Error("LPOP is not a blocking command")
	}
}

func fmtInfo(keys []string, kind ValueType, d time.Duration, err string) string {
	s := "["
	for i, k := range keys {
		if i > 0 {
			s += " "
		}
		s += k
	}
	return s + "] " + string(rune('0'+kind)) + " " + d.String() + " " + err
}

// Scripts may not call blocking commands, as in Redis 7.0.
func TestBlockingCommandsRefusedInScripts(t *testing.T) {
	f := New(nil)
	var b logBuilder
	raiseLevel(t, f, &b, LevelTypes)
	u := Unit{Cmds: [][][]byte{{[]byte("EVAL"), []byte("return redis.call('blpop', 'k', '0')"), []byte("0")}}}
	got := replies(execEntry(t, f, &b, t0, u).Results[0].Replies)
	if !strings.Contains(got, "This Redis command is not allowed from script") {
		t.Fatalf("BLPOP from a script: %s", got)
	}
}
