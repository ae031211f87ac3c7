package resp_test

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/resp"
)

// TestCommands runs every supported command through go-redis against the
// leader and against a follower (which relays to the leader), in RESP2
// and RESP3.
func TestCommands(t *testing.T) {
	c := startCluster(t, resp.Config{})
	for _, tc := range []struct {
		name     string
		follower bool
		proto    int
	}{
		{"leader-resp3", false, 3},
		{"leader-resp2", false, 2},
		{"follower-resp3", true, 3},
		{"follower-resp2", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := c.leader(t)
			if tc.follower {
				n = c.follower(t)
			}
			commandSuite(t, client(t, n.RESPAddr(), tc.proto), tc.name+":", tc.follower, tc.proto)
		})
	}
}

// check fails the test if err is not nil.
func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantErr checks that err is a Redis error starting with prefix.
func wantErr(t *testing.T, what string, err error, prefix string) {
	t.Helper()
	var rerr redis.Error
	if err == nil || !errors.As(err, &rerr) || !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("%s: got error %v, want one starting with %q", what, err, prefix)
	}
}

func wantEq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func commandSuite(t *testing.T, rdb *redis.Client, p string, follower bool, proto int) {
	ctx := ctxT(t)
	k := func(s string) string { return p + s }
	do := func(args ...any) *redis.Cmd { return rdb.Do(ctx, args...) }
	ttl := func(key string) int64 {
		t.Helper()
		n, err := do("TTL", key).Int64()
		check(t, "TTL "+key, err)
		return n
	}
	pttl := func(key string) int64 {
		t.Helper()
		n, err := do("PTTL", key).Int64()
		check(t, "PTTL "+key, err)
		return n
	}
	getNil := func(key string) {
		t.Helper()
		if v, err := rdb.Get(ctx, key).Result(); err != redis.Nil {
			t.Errorf("GET %s: got %q, %v; want nil", key, v, err)
		}
	}
	get := func(key, want string) {
		t.Helper()
		v, err := rdb.Get(ctx, key).Result()
		check(t, "GET "+key, err)
		wantEq(t, "GET "+key, v, want)
	}

	t.Run("ping-echo", func(t *testing.T) {
		v, err := rdb.Ping(ctx).Result()
		check(t, "PING", err)
		wantEq(t, "PING", v, "PONG")
		s, err := do("PING", "hi").Text()
		check(t, "PING hi", err)
		wantEq(t, "PING hi", s, "hi")
		s, err = rdb.Echo(ctx, "hello\r\nworld").Result()
		check(t, "ECHO", err)
		wantEq(t, "ECHO", s, "hello\r\nworld")
	})

	t.Run("set-get", func(t *testing.T) {
		check(t, "SET", rdb.Set(ctx, k("a"), "1", 0).Err())
		get(k("a"), "1")
		getNil(k("missing"))
		bin := string([]byte{0, 255, '\r', '\n', 'x'})
		check(t, "SET binary", rdb.Set(ctx, k("bin\x00key"), bin, 0).Err())
		get(k("bin\x00key"), bin)
		check(t, "SET empty", rdb.Set(ctx, k("empty"), "", 0).Err())
		get(k("empty"), "")
		n, err := do("STRLEN", k("a")).Int()
		check(t, "STRLEN", err)
		wantEq(t, "STRLEN", n, 1)
	})

	t.Run("set-options", func(t *testing.T) {
		ok, err := rdb.SetNX(ctx, k("nx"), "1", 0).Result()
		check(t, "SET NX new", err)
		wantEq(t, "SET NX new", ok, true)
		ok, err = rdb.SetNX(ctx, k("nx"), "2", 0).Result()
		check(t, "SET NX existing", err)
		wantEq(t, "SET NX existing", ok, false)
		get(k("nx"), "1")
		ok, err = rdb.SetXX(ctx, k("xx"), "1", 0).Result()
		check(t, "SET XX missing", err)
		wantEq(t, "SET XX missing", ok, false)
		getNil(k("xx"))
		ok, err = rdb.SetXX(ctx, k("nx"), "3", 0).Result()
		check(t, "SET XX existing", err)
		wantEq(t, "SET XX existing", ok, true)
		get(k("nx"), "3")

		check(t, "SET EX", rdb.Set(ctx, k("ex"), "v", 100*time.Second).Err())
		if n := ttl(k("ex")); n < 99 || n > 100 {
			t.Errorf("TTL after EX 100: %d", n)
		}
		check(t, "SET PX", rdb.Set(ctx, k("px"), "v", 100500*time.Millisecond).Err())
		if n := pttl(k("px")); n < 99000 || n > 100500 {
			t.Errorf("PTTL after PX 100500: %d", n)
		}
		check(t, "SET EXAT", rdb.SetArgs(ctx, k("exat"), "v", redis.SetArgs{ExpireAt: time.Now().Add(time.Hour)}).Err())
		if n := ttl(k("exat")); n < 3590 || n > 3601 {
			t.Errorf("TTL after EXAT +1h: %d", n)
		}
		at := time.Now().Add(time.Hour).UnixMilli()
		check(t, "SET PXAT", do("SET", k("pxat"), "v", "PXAT", at).Err())
		if n := pttl(k("pxat")); n < 3590000 || n > 3600000 {
			t.Errorf("PTTL after PXAT +1h: %d", n)
		}
		check(t, "SET PXAT past", do("SET", k("past"), "v", "PXAT", 1).Err())
		getNil(k("past"))

		// KEEPTTL keeps the expiry; a plain SET clears it.
		check(t, "SET KEEPTTL", rdb.Set(ctx, k("ex"), "w", redis.KeepTTL).Err())
		get(k("ex"), "w")
		if n := ttl(k("ex")); n < 99 {
			t.Errorf("TTL after KEEPTTL: %d", n)
		}
		check(t, "SET plain", rdb.Set(ctx, k("ex"), "x", 0).Err())
		wantEq(t, "TTL after plain SET", ttl(k("ex")), -1)

		// GET returns the previous value.
		old, err := rdb.SetArgs(ctx, k("g"), "1", redis.SetArgs{Get: true}).Result()
		if err != redis.Nil {
			t.Errorf("SET GET on a missing key: %q, %v", old, err)
		}
		old, err = rdb.SetArgs(ctx, k("g"), "2", redis.SetArgs{Get: true}).Result()
		check(t, "SET GET", err)
		wantEq(t, "SET GET", old, "1")
		old, err = rdb.SetArgs(ctx, k("g"), "3", redis.SetArgs{Get: true, Mode: "XX"}).Result()
		check(t, "SET XX GET", err)
		wantEq(t, "SET XX GET", old, "2")
		old, err = rdb.SetArgs(ctx, k("g"), "4", redis.SetArgs{Get: true, Mode: "NX"}).Result()
		check(t, "SET NX GET existing", err)
		wantEq(t, "SET NX GET existing", old, "3")
		get(k("g"), "3")
		old, err = rdb.SetArgs(ctx, k("g2"), "1", redis.SetArgs{Get: true, Mode: "NX", TTL: time.Minute}).Result()
		if err != redis.Nil {
			t.Errorf("SET NX GET missing: %q, %v", old, err)
		}
		get(k("g2"), "1")
		if n := ttl(k("g2")); n < 59 {
			t.Errorf("TTL after SET NX GET EX 60: %d", n)
		}

		wantErr(t, "SET EX 0", do("SET", k("e"), "v", "EX", 0).Err(), "ERR invalid expire time in 'set' command")
		wantErr(t, "SET EX -5", do("SET", k("e"), "v", "EX", -5).Err(), "ERR invalid expire time in 'set' command")
		wantErr(t, "SET EX x", do("SET", k("e"), "v", "EX", "x").Err(), "ERR value is not an integer or out of range")
		wantErr(t, "SET EX huge", do("SET", k("e"), "v", "EX", strconv.FormatInt(math.MaxInt64, 10)).Err(), "ERR invalid expire time in 'set' command")
		wantErr(t, "SET NX XX", do("SET", k("e"), "v", "NX", "XX").Err(), "ERR syntax error")
		wantErr(t, "SET EX KEEPTTL", do("SET", k("e"), "v", "EX", 10, "KEEPTTL").Err(), "ERR syntax error")
		wantErr(t, "SET EX PX", do("SET", k("e"), "v", "EX", 10, "PX", 10).Err(), "ERR syntax error")
		wantErr(t, "SET EX missing", do("SET", k("e"), "v", "EX").Err(), "ERR syntax error")
		wantErr(t, "SET bogus", do("SET", k("e"), "v", "BOGUS").Err(), "ERR syntax error")
		wantErr(t, "SET arity", do("SET", k("e")).Err(), "ERR wrong number of arguments for 'set' command")
		wantErr(t, "GET long key", do("GET", strings.Repeat("k", node.MaxKeySize+1)).Err(), "ERR key is longer than")
		getNil(k("e"))
	})

	t.Run("setex-setnx-getset-getdel", func(t *testing.T) {
		check(t, "SETEX", rdb.SetEx(ctx, k("se"), "v", 50*time.Second).Err())
		if n := ttl(k("se")); n < 49 || n > 50 {
			t.Errorf("TTL after SETEX 50: %d", n)
		}
		check(t, "PSETEX", do("PSETEX", k("pse"), 50000, "v").Err())
		if n := pttl(k("pse")); n < 49000 || n > 50000 {
			t.Errorf("PTTL after PSETEX 50000: %d", n)
		}
		wantErr(t, "SETEX 0", do("SETEX", k("se"), 0, "v").Err(), "ERR invalid expire time in 'setex' command")
		wantErr(t, "PSETEX -1", do("PSETEX", k("se"), -1, "v").Err(), "ERR invalid expire time in 'psetex' command")
		n, err := do("SETNX", k("snx"), "1").Int()
		check(t, "SETNX", err)
		wantEq(t, "SETNX new", n, 1)
		n, err = do("SETNX", k("snx"), "2").Int()
		check(t, "SETNX", err)
		wantEq(t, "SETNX existing", n, 0)
		get(k("snx"), "1")

		old, err := rdb.GetSet(ctx, k("snx"), "9").Result()
		check(t, "GETSET", err)
		wantEq(t, "GETSET", old, "1")
		if old, err := rdb.GetSet(ctx, k("gsnew"), "1").Result(); err != redis.Nil {
			t.Errorf("GETSET missing: %q %v", old, err)
		}

		v, err := rdb.GetDel(ctx, k("snx")).Result()
		check(t, "GETDEL", err)
		wantEq(t, "GETDEL", v, "9")
		getNil(k("snx"))
		if v, err := rdb.GetDel(ctx, k("snx")).Result(); err != redis.Nil {
			t.Errorf("GETDEL missing: %q %v", v, err)
		}
	})

	t.Run("mget-mset-msetnx", func(t *testing.T) {
		check(t, "MSET", rdb.MSet(ctx, k("m1"), "1", k("m2"), "2").Err())
		vals, err := rdb.MGet(ctx, k("m1"), k("m2"), k("m3")).Result()
		check(t, "MGET", err)
		if len(vals) != 3 || vals[0] != "1" || vals[1] != "2" || vals[2] != nil {
			t.Errorf("MGET: %#v", vals)
		}
		wantErr(t, "MSET odd", do("MSET", k("m1"), "1", k("m2")).Err(), "ERR wrong number of arguments for 'mset' command")
		ok, err := rdb.MSetNX(ctx, k("m3"), "3", k("m1"), "x").Result()
		check(t, "MSETNX with an existing key", err)
		wantEq(t, "MSETNX with an existing key", ok, false)
		getNil(k("m3")) // all or nothing
		get(k("m1"), "1")
		ok, err = rdb.MSetNX(ctx, k("m3"), "3", k("m4"), "4").Result()
		check(t, "MSETNX", err)
		wantEq(t, "MSETNX new keys", ok, true)
		get(k("m4"), "4")
	})

	t.Run("del-exists-type", func(t *testing.T) {
		check(t, "MSET", rdb.MSet(ctx, k("d1"), "1", k("d2"), "2", k("d3"), "3").Err())
		n, err := rdb.Exists(ctx, k("d1"), k("d1"), k("d2"), k("nope")).Result()
		check(t, "EXISTS", err)
		wantEq(t, "EXISTS", n, int64(3))
		typ, err := rdb.Type(ctx, k("d1")).Result()
		check(t, "TYPE", err)
		wantEq(t, "TYPE", typ, "string")
		typ, err = rdb.Type(ctx, k("nope")).Result()
		check(t, "TYPE missing", err)
		wantEq(t, "TYPE missing", typ, "none")
		n, err = rdb.Del(ctx, k("d1"), k("d2"), k("nope")).Result()
		check(t, "DEL", err)
		wantEq(t, "DEL", n, int64(2))
		n, err = rdb.Unlink(ctx, k("d3")).Result()
		check(t, "UNLINK", err)
		wantEq(t, "UNLINK", n, int64(1))
		n, err = rdb.Del(ctx, k("d3")).Result()
		check(t, "DEL again", err)
		wantEq(t, "DEL again", n, int64(0))
	})

	t.Run("incr-decr", func(t *testing.T) {
		n, err := rdb.Incr(ctx, k("c")).Result()
		check(t, "INCR", err)
		wantEq(t, "INCR new", n, int64(1))
		n, err = rdb.IncrBy(ctx, k("c"), 41).Result()
		check(t, "INCRBY", err)
		wantEq(t, "INCRBY", n, int64(42))
		n, err = rdb.Decr(ctx, k("c")).Result()
		check(t, "DECR", err)
		wantEq(t, "DECR", n, int64(41))
		n, err = rdb.DecrBy(ctx, k("c"), 50).Result()
		check(t, "DECRBY", err)
		wantEq(t, "DECRBY", n, int64(-9))
		get(k("c"), "-9")
		// INCR keeps the expiry.
		check(t, "SET EX", rdb.Set(ctx, k("ce"), "5", time.Minute).Err())
		n, err = rdb.Incr(ctx, k("ce")).Result()
		check(t, "INCR with TTL", err)
		wantEq(t, "INCR with TTL", n, int64(6))
		if s := ttl(k("ce")); s < 59 {
			t.Errorf("TTL after INCR: %d", s)
		}

		check(t, "SET", rdb.Set(ctx, k("s"), "abc", 0).Err())
		wantErr(t, "INCR text", rdb.Incr(ctx, k("s")).Err(), "ERR value is not an integer or out of range")
		check(t, "SET", rdb.Set(ctx, k("s"), " 1", 0).Err())
		wantErr(t, "INCR space", rdb.Incr(ctx, k("s")).Err(), "ERR value is not an integer or out of range")
		check(t, "SET", rdb.Set(ctx, k("big"), strconv.FormatInt(math.MaxInt64, 10), 0).Err())
		wantErr(t, "INCR overflow", rdb.Incr(ctx, k("big")).Err(), "ERR increment or decrement would overflow")
		wantErr(t, "INCRBY text", do("INCRBY", k("c"), "x").Err(), "ERR value is not an integer or out of range")
		wantErr(t, "INCRBY 1.5", do("INCRBY", k("c"), "1.5").Err(), "ERR value is not an integer or out of range")
		wantErr(t, "DECRBY min", do("DECRBY", k("c"), strconv.FormatInt(math.MinInt64, 10)).Err(), "ERR decrement would overflow")
		get(k("c"), "-9")
	})

	t.Run("expire-family", func(t *testing.T) {
		check(t, "SET", rdb.Set(ctx, k("x"), "v", 0).Err())
		wantEq(t, "TTL no expiry", ttl(k("x")), -1)
		wantEq(t, "TTL missing", ttl(k("nope")), -2)
		wantEq(t, "PTTL missing", pttl(k("nope")), -2)
		ok, err := rdb.Expire(ctx, k("x"), 100*time.Second).Result()
		check(t, "EXPIRE", err)
		wantEq(t, "EXPIRE", ok, true)
		if n := ttl(k("x")); n < 99 || n > 100 {
			t.Errorf("TTL after EXPIRE 100: %d", n)
		}
		get(k("x"), "v")
		ok, err = rdb.Expire(ctx, k("nope"), time.Second).Result()
		check(t, "EXPIRE missing", err)
		wantEq(t, "EXPIRE missing", ok, false)

		ok, err = rdb.PExpire(ctx, k("x"), 200500*time.Millisecond).Result()
		check(t, "PEXPIRE", err)
		wantEq(t, "PEXPIRE", ok, true)
		if n := pttl(k("x")); n < 199000 || n > 200500 {
			t.Errorf("PTTL after PEXPIRE: %d", n)
		}
		ok, err = rdb.ExpireAt(ctx, k("x"), time.Now().Add(time.Hour)).Result()
		check(t, "EXPIREAT", err)
		wantEq(t, "EXPIREAT", ok, true)
		if n := ttl(k("x")); n < 3590 || n > 3600 {
			t.Errorf("TTL after EXPIREAT +1h: %d", n)
		}
		ok, err = rdb.PExpireAt(ctx, k("x"), time.Now().Add(2*time.Hour)).Result()
		check(t, "PEXPIREAT", err)
		wantEq(t, "PEXPIREAT", ok, true)
		if n := ttl(k("x")); n < 7190 || n > 7200 {
			t.Errorf("TTL after PEXPIREAT +2h: %d", n)
		}

		// Conditions.
		ok, err = rdb.ExpireNX(ctx, k("x"), time.Minute).Result()
		check(t, "EXPIRE NX", err)
		wantEq(t, "EXPIRE NX with an expiry", ok, false)
		ok, err = rdb.ExpireGT(ctx, k("x"), time.Minute).Result()
		check(t, "EXPIRE GT", err)
		wantEq(t, "EXPIRE GT earlier", ok, false)
		ok, err = rdb.ExpireLT(ctx, k("x"), time.Minute).Result()
		check(t, "EXPIRE LT", err)
		wantEq(t, "EXPIRE LT earlier", ok, true)
		if n := ttl(k("x")); n < 59 || n > 60 {
			t.Errorf("TTL after EXPIRE LT 60: %d", n)
		}
		ok, err = rdb.ExpireXX(ctx, k("x"), 30*time.Second).Result()
		check(t, "EXPIRE XX", err)
		wantEq(t, "EXPIRE XX with an expiry", ok, true)
		get(k("x"), "v")
		check(t, "SET", rdb.Set(ctx, k("y"), "v", 0).Err())
		ok, err = rdb.ExpireXX(ctx, k("y"), time.Minute).Result()
		check(t, "EXPIRE XX", err)
		wantEq(t, "EXPIRE XX without expiry", ok, false)
		ok, err = rdb.ExpireGT(ctx, k("y"), time.Minute).Result()
		check(t, "EXPIRE GT", err)
		wantEq(t, "EXPIRE GT without expiry (infinite)", ok, false)
		ok, err = rdb.ExpireNX(ctx, k("y"), time.Minute).Result()
		check(t, "EXPIRE NX", err)
		wantEq(t, "EXPIRE NX without expiry", ok, true)
		ok, err = rdb.ExpireNX(ctx, k("nope"), time.Minute).Result()
		check(t, "EXPIRE NX missing", err)
		wantEq(t, "EXPIRE NX missing", ok, false)
		wantErr(t, "EXPIRE NX XX", do("EXPIRE", k("y"), 10, "NX", "XX").Err(), "ERR NX and XX, GT or LT options at the same time are not compatible")
		wantErr(t, "EXPIRE GT LT", do("EXPIRE", k("y"), 10, "GT", "LT").Err(), "ERR GT and LT options at the same time are not compatible")
		wantErr(t, "EXPIRE bogus", do("EXPIRE", k("y"), 10, "ZZ").Err(), "ERR Unsupported option ZZ")
		wantErr(t, "EXPIRE text", do("EXPIRE", k("y"), "soon").Err(), "ERR value is not an integer or out of range")

		// PERSIST.
		ok, err = rdb.Persist(ctx, k("y")).Result()
		check(t, "PERSIST", err)
		wantEq(t, "PERSIST with an expiry", ok, true)
		wantEq(t, "TTL after PERSIST", ttl(k("y")), -1)
		ok, err = rdb.Persist(ctx, k("y")).Result()
		check(t, "PERSIST", err)
		wantEq(t, "PERSIST without expiry", ok, false)
		ok, err = rdb.Persist(ctx, k("nope")).Result()
		check(t, "PERSIST missing", err)
		wantEq(t, "PERSIST missing", ok, false)

		// A time not in the future deletes the key, as in Redis.
		n, err := do("EXPIRE", k("y"), 0).Int()
		check(t, "EXPIRE 0", err)
		wantEq(t, "EXPIRE 0", n, 1)
		getNil(k("y"))
		check(t, "SET", rdb.Set(ctx, k("z"), "v", 0).Err())
		n, err = do("PEXPIREAT", k("z"), 1000).Int()
		check(t, "PEXPIREAT past", err)
		wantEq(t, "PEXPIREAT past", n, 1)
		getNil(k("z"))
		n, err = do("EXPIRE", k("z"), -10).Int()
		check(t, "EXPIRE negative missing", err)
		wantEq(t, "EXPIRE negative missing", n, 0)

		// Expiry takes effect.
		check(t, "SET PX 50", rdb.Set(ctx, k("short"), "v", 50*time.Millisecond).Err())
		waitFor(t, "a 50ms key to expire", func() bool { return rdb.Get(ctx, k("short")).Err() == redis.Nil })
		wantEq(t, "TTL of an expired key", ttl(k("short")), -2)
	})

	t.Run("keys-scan-dbsize", func(t *testing.T) {
		var want []string
		pairs := []any{}
		for i := 0; i < 57; i++ {
			key := k(fmt.Sprintf("scan:%02d", i))
			want = append(want, key)
			pairs = append(pairs, key, i)
		}
		check(t, "MSET", rdb.MSet(ctx, pairs...).Err())
		check(t, "SET", rdb.Set(ctx, k("scan*lit"), "x", 0).Err())
		keys, err := rdb.Keys(ctx, k("scan:*")).Result()
		check(t, "KEYS", err)
		sort.Strings(keys)
		wantEq(t, "KEYS scan:*", strings.Join(keys, ","), strings.Join(want, ","))
		keys, err = rdb.Keys(ctx, k("scan:1?")).Result()
		check(t, "KEYS ?", err)
		wantEq(t, "KEYS scan:1?", len(keys), 10)
		keys, err = rdb.Keys(ctx, k("scan:[0-1][^0-8]")).Result()
		check(t, "KEYS class", err)
		sort.Strings(keys)
		wantEq(t, "KEYS classes", strings.Join(keys, ","), k("scan:09")+","+k("scan:19"))
		keys, err = rdb.Keys(ctx, k(`scan\*lit`)).Result()
		check(t, "KEYS escape", err)
		wantEq(t, "KEYS escaped *", strings.Join(keys, ","), k("scan*lit"))

		seen := map[string]bool{}
		var cursor uint64
		for i := 0; ; i++ {
			if i > 100 {
				t.Fatal("SCAN did not finish")
			}
			var page []string
			page, cursor, err = rdb.Scan(ctx, cursor, k("scan:*"), 7).Result()
			check(t, "SCAN", err)
			for _, key := range page {
				seen[key] = true
			}
			if cursor == 0 {
				break
			}
		}
		wantEq(t, "SCAN keys seen", len(seen), len(want))
		wantErr(t, "SCAN unknown cursor", rdb.Scan(ctx, 12345, "", 10).Err(), "ERR invalid cursor")
		wantErr(t, "SCAN bad cursor", do("SCAN", "x").Err(), "ERR invalid cursor")
		res, _, err := rdb.ScanType(ctx, 0, k("scan:*"), 1000, "hash").Result()
		check(t, "SCAN TYPE hash", err)
		wantEq(t, "SCAN TYPE hash", len(res), 0)

		n, err := rdb.DBSize(ctx).Result()
		check(t, "DBSIZE", err)
		if n < int64(len(want)) {
			t.Errorf("DBSIZE %d, want at least %d", n, len(want))
		}
	})

	t.Run("multi-exec", func(t *testing.T) {
		check(t, "SET", rdb.Set(ctx, k("t1"), "old", 0).Err())
		var incr *redis.IntCmd
		var get1 *redis.StringCmd
		var setnx *redis.BoolCmd
		cmds, err := rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, k("t1"), "new", 0)
			get1 = pipe.Get(ctx, k("t1"))
			incr = pipe.Incr(ctx, k("tc"))
			setnx = pipe.SetNX(ctx, k("t1"), "nx", 0)
			pipe.Incr(ctx, k("tc"))
			pipe.Expire(ctx, k("tc"), time.Minute)
			return nil
		})
		check(t, "MULTI/EXEC", err)
		wantEq(t, "commands", len(cmds), 6)
		wantEq(t, "GET inside MULTI sees the SET queued before it", get1.Val(), "new")
		wantEq(t, "INCR", incr.Val(), int64(1))
		wantEq(t, "SET NX inside MULTI", setnx.Val(), false)
		get(k("t1"), "new")
		get(k("tc"), "2")
		if n := ttl(k("tc")); n < 59 {
			t.Errorf("TTL after EXPIRE in MULTI: %d", n)
		}
		// The rate-limit idiom: SET NX EX + INCR in one transaction.
		for i := 1; i <= 3; i++ {
			var cnt *redis.IntCmd
			_, err := rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.SetNX(ctx, k("rate"), 0, time.Minute)
				cnt = pipe.Incr(ctx, k("rate"))
				return nil
			})
			check(t, "rate-limit transaction", err)
			wantEq(t, "rate counter", cnt.Val(), int64(i))
		}
		// An INCR that fails does not stop the others (as in Redis).
		check(t, "SET", rdb.Set(ctx, k("txt"), "abc", 0).Err())
		cmds, err = rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Incr(ctx, k("txt"))
			pipe.Set(ctx, k("after"), "1", 0)
			return nil
		})
		if err == nil || len(cmds) != 2 {
			t.Fatalf("EXEC with a failing INCR: %v %v", cmds, err)
		}
		wantErr(t, "INCR inside EXEC", cmds[0].Err(), "ERR value is not an integer")
		check(t, "SET inside EXEC", cmds[1].Err())
		get(k("after"), "1")
	})

	t.Run("connection", func(t *testing.T) {
		conn := rdb.Conn()
		defer conn.Close()
		check(t, "CLIENT SETNAME", conn.ClientSetName(ctx, "worker-1").Err())
		name, err := conn.ClientGetName(ctx).Result()
		check(t, "CLIENT GETNAME", err)
		wantEq(t, "CLIENT GETNAME", name, "worker-1")
		wantErr(t, "CLIENT SETNAME space", conn.Do(ctx, "CLIENT", "SETNAME", "a b").Err(), "ERR Client names cannot contain spaces")
		id, err := conn.ClientID(ctx).Result()
		check(t, "CLIENT ID", err)
		if id <= 0 {
			t.Errorf("CLIENT ID %d", id)
		}
		check(t, "CLIENT SETINFO", conn.Do(ctx, "CLIENT", "SETINFO", "LIB-NAME", "test").Err())
		info, err := conn.Do(ctx, "CLIENT", "INFO").Text()
		check(t, "CLIENT INFO", err)
		if !strings.Contains(info, "name=worker-1") || !strings.Contains(info, "lib-name=test") ||
			!strings.Contains(info, fmt.Sprintf("resp=%d", proto)) {
			t.Errorf("CLIENT INFO: %q", info)
		}
		wantErr(t, "CLIENT bogus", conn.Do(ctx, "CLIENT", "BOGUS").Err(), "ERR unknown subcommand")
		check(t, "SELECT 0", conn.Select(ctx, 0).Err())
		wantErr(t, "SELECT 1", conn.Select(ctx, 1).Err(), "ERR DB index is out of range")
		wantErr(t, "HELLO 4", conn.Do(ctx, "HELLO", 4).Err(), "NOPROTO")
		wantErr(t, "unknown command", conn.Do(ctx, "FOO", "bar").Err(), "ERR unknown command 'FOO', with args beginning with: 'bar'")
		wantEq(t, "EVAL", conn.Do(ctx, "EVAL", "return 1", 0).Val(), any(int64(1)))
		wantEq(t, "SCRIPT LOAD", conn.Do(ctx, "SCRIPT", "LOAD", "return 1").Val(), any("e0e1f9fabfc9d4800c877a703b823ac0578ff8db"))
		check(t, "WATCH", rdb.Watch(ctx, func(*redis.Tx) error { return nil }, k("a")))
		wantErr(t, "FUNCTION", conn.Do(ctx, "FUNCTION", "LIST").Err(), "ERR FUNCTION and FCALL are not supported")
		n, err := conn.Do(ctx, "COMMAND", "COUNT").Int()
		check(t, "COMMAND COUNT", err)
		if n < 40 {
			t.Errorf("COMMAND COUNT %d", n)
		}
		check(t, "COMMAND DOCS", conn.Do(ctx, "COMMAND", "DOCS").Err())
		check(t, "COMMAND", conn.Do(ctx, "COMMAND").Err())
		cfg, err := conn.ConfigGet(ctx, "maxmemory*").Result()
		check(t, "CONFIG GET", err)
		if _, ok := cfg["maxmemory"]; !ok {
			t.Errorf("CONFIG GET maxmemory*: %v", cfg)
		}
		wantErr(t, "AUTH", conn.Do(ctx, "AUTH", "x").Err(), "ERR AUTH")
		wantErr(t, "CONFIG SET", conn.Do(ctx, "CONFIG", "SET", "maxmemory", "1").Err(), "ERR CONFIG SET is not supported")
		check(t, "UNWATCH", conn.Do(ctx, "UNWATCH").Err())
		tm, err := conn.Time(ctx).Result()
		check(t, "TIME", err)
		if d := time.Since(tm); d > time.Minute || d < -time.Minute {
			t.Errorf("TIME %v", tm)
		}
		list, err := conn.ClientList(ctx).Result()
		check(t, "CLIENT LIST", err)
		if !strings.Contains(list, fmt.Sprintf("id=%d ", id)) {
			t.Errorf("CLIENT LIST lacks this connection (id %d): %q", id, list)
		}
		// Other connections' names, as rq reads its workers' (name=).
		other := rdb.Conn()
		check(t, "CLIENT SETNAME", other.ClientSetName(ctx, "rq:worker:w1").Err())
		list, err = conn.ClientList(ctx).Result()
		check(t, "CLIENT LIST", err)
		if !strings.Contains(list, " name=rq:worker:w1 ") {
			t.Errorf("CLIENT LIST lacks the other connection's name: %q", list)
		}
		other.Close()
		infos, err := conn.Do(ctx, "COMMAND", "INFO", "get", "nosuch").Slice()
		check(t, "COMMAND INFO", err)
		if len(infos) != 2 || infos[1] != nil {
			t.Errorf("COMMAND INFO get nosuch: %v", infos)
		} else if e, ok := infos[0].([]any); !ok || e[0] != "get" || e[1] != int64(2) {
			t.Errorf("COMMAND INFO get: %v", infos[0])
		}
		s, err := conn.Do(ctx, "RESET").Text()
		check(t, "RESET", err)
		wantEq(t, "RESET", s, "RESET")
		if name, _ := conn.ClientGetName(ctx).Result(); name != "" {
			t.Errorf("name after RESET: %q", name)
		}
	})

	t.Run("info", func(t *testing.T) {
		check(t, "GET", rdb.Get(ctx, k("a")).Err())
		info, err := rdb.Info(ctx).Result()
		check(t, "INFO", err)
		for _, want := range []string{"# Server", "redis_version:", "raftcache_version:", "raftcache_git_sha1:", "raftcache_feature_level:", "# Clients", "connected_clients:", "# Memory", "used_memory:", "raftcache_request_ids:", "raftcache_request_ids_memory:",
			"# Stats", "keyspace_hits:", "keyspace_misses:", "# Replication", "# Keyspace", "db0:keys="} {
			if !strings.Contains(info, want) {
				t.Errorf("INFO lacks %q", want)
			}
		}
		role := "role:master"
		if follower {
			role = "role:slave"
		}
		repl, err := rdb.Info(ctx, "replication").Result()
		check(t, "INFO replication", err)
		if !strings.Contains(repl, role) || strings.Contains(repl, "# Server") {
			t.Errorf("INFO replication: %q, want %s only", repl, role)
		}
		if follower && !strings.Contains(repl, "master_link_status:up") {
			t.Errorf("INFO replication on a follower: %q", repl)
		}
	})
}

// TestFlush checks FLUSHDB/FLUSHALL and DBSIZE.
func TestFlush(t *testing.T) {
	c := startCluster(t, resp.Config{})
	rdb := client(t, c.follower(t).RESPAddr(), 3)
	ctx := ctxT(t)
	check(t, "MSET", rdb.MSet(ctx, "a", 1, "b", 2, "c", 3).Err())
	n, err := rdb.DBSize(ctx).Result()
	check(t, "DBSIZE", err)
	wantEq(t, "DBSIZE", n, int64(3))
	check(t, "FLUSHDB", rdb.FlushDB(ctx).Err())
	n, err = rdb.DBSize(ctx).Result()
	check(t, "DBSIZE", err)
	wantEq(t, "DBSIZE after FLUSHDB", n, int64(0))
	check(t, "SET", rdb.Set(ctx, "d", 1, 0).Err())
	check(t, "FLUSHALL ASYNC", rdb.FlushAllAsync(ctx).Err())
	n, err = rdb.DBSize(ctx).Result()
	check(t, "DBSIZE", err)
	wantEq(t, "DBSIZE after FLUSHALL", n, int64(0))
	wantErr(t, "FLUSHDB bogus", rdb.Do(ctx, "FLUSHDB", "NOW").Err(), "ERR syntax error")
	// The followers converge on the empty cache.
	for _, n := range c.nodes {
		waitFor(t, n.ID()+" empty", func() bool { return n.FSM().Stats().Keys == 0 })
	}
}
