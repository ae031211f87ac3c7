package resp_test

import (
	"testing"

	"github.com/raftcache/raftcache/resp"
)

// TestRelayedRepliesKeepRESP3Types: a RESP3 client on a follower gets the
// same reply, byte for byte, as on the leader, for relayed reads whose
// RESP3 types differ from RESP2's (a map for HGETALL, doubles for scores,
// a set for SMEMBERS) and for a relayed blocking pop. A relay that read
// RESP2 from the leader and patched only nulls answered HGETALL with a
// flat array: redis-py with protocol=3 would hand out a list, not a dict.
func TestRelayedRepliesKeepRESP3Types(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	setup := dialRaw(t, leader.RESPAddr())
	setup.send(cmd("HSET", "h", "a", "1", "b", "2") + cmd("ZADD", "z", "1.5", "m", "2", "n") + cmd("SADD", "s", "x"))
	setup.expect(":2\r\n:2\r\n:1\r\n")

	reads := cmd("HGETALL", "h") + cmd("ZSCORE", "z", "m") + cmd("ZRANGE", "z", "0", "-1", "WITHSCORES") +
		cmd("SMEMBERS", "s") + cmd("HGET", "h", "nope") + cmd("ZPOPMIN", "z") + cmd("BZPOPMIN", "z", "1")
	want := "%2\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n" + // HGETALL: a map
		",1.5\r\n" + // ZSCORE: a double
		"*2\r\n*2\r\n$1\r\nm\r\n,1.5\r\n*2\r\n$1\r\nn\r\n,2\r\n" + // WITHSCORES: pairs
		"~1\r\n$1\r\nx\r\n" + // SMEMBERS: a set
		"_\r\n" + // a null
		"*2\r\n$1\r\nm\r\n,1.5\r\n" + // ZPOPMIN (relayed write): member and double
		"*3\r\n$1\r\nz\r\n$1\r\nn\r\n,2\r\n" // BZPOPMIN (relayed blocking pop): key, member, double

	// Each follower, then the leader itself, whose bytes are Redis's
	// (cluster-test's differential test compares it with redis-server).
	for i, n := range append(c.Followers(leader), leader) {
		if i > 0 { // the pops took z's members
			setup.send(cmd("ZADD", "z", "1.5", "m", "2", "n"))
			setup.expect(":2\r\n")
		}
		r := dialRaw(t, n.RESPAddr())
		r.hello3()
		r.send(reads)
		r.expect(want)
	}
}
