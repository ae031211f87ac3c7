package resp_test

import (
	"os"
	"testing"

	"github.com/raftcache/raftcache/internal/testtokens"
	"github.com/raftcache/raftcache/resp"
)

// Roles on pub/sub: subscribing needs the read role, publishing and
// CONFIG SET the write role (also when a follower relays them); a
// subscriber whose token is revoked hears nothing more.
func TestPubSubRoles(t *testing.T) {
	toks, path := testtokens.File(t, "read "+readTok+" dash", "write "+writeTok+" app")
	c := startCluster(t, resp.Config{Auth: toks})
	f := c.follower(t)
	sub := dialRaw(t, f.RESPAddr())
	sub.send(cmd("SUBSCRIBE", "c"))
	sub.expect("-NOAUTH Authentication required.\r\n")
	sub.send(cmd("AUTH", readTok) + cmd("SUBSCRIBE", "c"))
	sub.expect("+OK\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n")

	r := dialRaw(t, f.RESPAddr())
	r.send(cmd("AUTH", readTok) + cmd("PUBLISH", "c", "x"))
	r.expect("+OK\r\n")
	r.expectPrefix("-NOPERM User dash has no permissions to run the 'publish' command")
	r.send(cmd("CONFIG", "SET", "notify-keyspace-events", "KEA"))
	r.expectPrefix("-NOPERM")
	r.send(cmd("AUTH", writeTok) + cmd("PUBLISH", "c", "hello"))
	r.expect("+OK\r\n:1\r\n")
	sub.expect("*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$5\r\nhello\r\n")

	// The read token revoked: the subscriber is cut at the next message.
	if err := os.WriteFile(path, []byte("write "+writeTok+" app\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := toks.Reload(); err != nil {
		t.Fatal(err)
	}
	r.send(cmd("PUBLISH", "c", "secret"))
	r.expect(":1\r\n")
	sub.expectClosed()
}
