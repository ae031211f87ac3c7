package resp_test

import (
	"crypto/tls"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftcache/raftcache/internal/testcerts"
	"github.com/raftcache/raftcache/internal/testtokens"
	"github.com/raftcache/raftcache/resp"
)

const (
	readTok  = "read-token-0123456789"
	writeTok = "write-token-0123456789"
	adminTok = "admin-token-0123456789"
	// elevTok is a write token on n1 and n2 but only a read token on n3:
	// a relay that used the follower's judgement (or its own rights)
	// instead of the caller's would let it write through n3's leader.
	elevTok = "elevated-on-followers-0123"
)

// expectPrefix reads one line and checks how it starts.
func (c *rawConn) expectPrefix(prefix string) string {
	c.t.Helper()
	line, err := c.rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, prefix) {
		c.t.Fatalf("got %q (%v), want a line starting %q", line, err, prefix)
	}
	return line
}

func TestAuthRolesOnTheWire(t *testing.T) {
	toks, path := testtokens.File(t, "read "+readTok+" dash", "write "+writeTok+" app", "admin "+adminTok)
	c := startCluster(t, resp.Config{Auth: toks})
	for _, n := range []*testNode{c.leader(t), c.follower(t)} {
		t.Run(n.ID(), func(t *testing.T) {
			k := n.ID() + ":k"
			r := dialRaw(t, n.RESPAddr())
			for _, before := range []string{cmd("PING"), cmd("GET", k), cmd("SET", k, "v"), cmd("NOSUCH"),
				cmd("RAFTCACHE.FORWARDED", "x"), cmd("CLIENT", "LIST")} {
				r.send(before)
				r.expect("-NOAUTH Authentication required.\r\n")
			}
			r.send(cmd("HELLO", "3"))
			r.expectPrefix("-NOAUTH HELLO must be called with the client already authenticated")
			r.send(cmd("AUTH", "wrong-token-0123456789"))
			r.expect("-WRONGPASS invalid username-password pair or user is disabled.\r\n")
			r.send(cmd("HELLO", "3", "AUTH", "default", "wrong-token-0123456789"))
			r.expect("-WRONGPASS invalid username-password pair or user is disabled.\r\n")
			r.send(cmd("GET", k))
			r.expect("-NOAUTH Authentication required.\r\n")

			r.send(cmd("AUTH", readTok) + cmd("GET", k) + cmd("PING"))
			r.expect("+OK\r\n$-1\r\n+PONG\r\n")
			r.send(cmd("SET", k, "v"))
			r.expectPrefix("-NOPERM User dash has no permissions to run the 'set' command")
			r.send(cmd("MULTI") + cmd("INCR", k) + cmd("EXEC"))
			r.expect("+OK\r\n")
			r.expectPrefix("-NOPERM")
			r.expect("-EXECABORT Transaction discarded because of previous errors.\r\n")

			r.send(cmd("AUTH", "default", writeTok) + cmd("SET", k, "v") + cmd("GET", k))
			r.expect("+OK\r\n+OK\r\n$1\r\nv\r\n")
			r.send(cmd("RESET") + cmd("GET", k))
			r.expect("+RESET\r\n-NOAUTH Authentication required.\r\n")
			r.send(cmd("HELLO", "2", "AUTH", "default", writeTok, "SETNAME", "w"))
			r.expectPrefix("*14\r\n")
		})
	}

	// go-redis with a URL, as an app would configure it.
	opt, err := redis.ParseURL("redis://:" + writeTok + "@" + c.follower(t).RESPAddr() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Set(ctxT(t), "url", "ok", time.Minute).Err(); err != nil {
		t.Fatalf("SET through a follower with a write token: %v", err)
	}
	ro := redis.NewClient(&redis.Options{Addr: c.follower(t).RESPAddr(), Password: readTok})
	defer ro.Close()
	if got, err := ro.Get(ctxT(t), "url").Result(); err != nil || got != "ok" {
		t.Fatalf("GET with a read token = %q, %v", got, err)
	}
	if err := ro.Set(ctxT(t), "url", "no", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("SET with a read token: %v, want NOPERM", err)
	}
	bad := redis.NewClient(&redis.Options{Addr: c.leader(t).RESPAddr(), Password: "not-a-token-0123456789", MaxRetries: -1})
	defer bad.Close()
	if err := bad.Ping(ctxT(t)).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("PING with an unknown token: %v, want WRONGPASS", err)
	}

	// A token removed from the file stops working on connections that
	// authenticated with it, at the next command after the reload.
	r := dialRaw(t, c.leader(t).RESPAddr())
	r.send(cmd("AUTH", adminTok) + cmd("PING"))
	r.expect("+OK\r\n+PONG\r\n")
	if err := os.WriteFile(path, []byte("write "+writeTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := toks.Reload(); err != nil {
		t.Fatal(err)
	}
	r.send(cmd("PING"))
	r.expect("-NOAUTH Authentication required.\r\n")
}

// TestRelayCarriesCallerIdentity: a follower relays with the caller's
// token, so the leader judges the caller, not the follower.
func TestRelayCarriesCallerIdentity(t *testing.T) {
	lenient, _ := testtokens.File(t, "write "+writeTok, "write "+elevTok)
	strict, _ := testtokens.File(t, "write "+writeTok, "read "+elevTok)
	c := startClusterWith(t, func(id string) resp.Config {
		if id == "n1" {
			return resp.Config{Auth: strict}
		}
		return resp.Config{Auth: lenient}
	})
	if l := c.leader(t); l.ID() != "n1" { // the test needs n1 (strict) to lead
		if err := l.TransferLeadership("n1"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "n1 to lead again", func() bool { return c.leader(t).ID() == "n1" })
	}
	r := dialRaw(t, c.follower(t).RESPAddr())
	r.send(cmd("AUTH", elevTok) + cmd("GET", "relayed"))
	r.expect("+OK\r\n$-1\r\n")
	r.send(cmd("SET", "relayed", "v"))
	r.expectPrefix("-NOPERM")
	r.send(cmd("AUTH", writeTok) + cmd("SET", "relayed", "v"))
	r.expect("+OK\r\n+OK\r\n")
}

func TestTLSAndClientCertificates(t *testing.T) {
	serverCA, clientCA, rogue := testcerts.NewCA(t, "servers"), testcerts.NewCA(t, "clients"), testcerts.NewCA(t, "rogue")
	toks, _ := testtokens.File(t, "write "+writeTok)
	c := startClusterWith(t, func(id string) resp.Config {
		return resp.Config{Auth: toks, TLS: serverCA.ServerConfig(t, clientCA),
			ForwardTLS: serverCA.ClientConfig(t, clientCA)}
	})
	for _, n := range []*testNode{c.leader(t), c.follower(t)} {
		rdb := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), Password: writeTok, TLSConfig: serverCA.ClientConfig(t, clientCA)})
		defer rdb.Close()
		if err := rdb.Set(ctxT(t), "tls:"+n.ID(), "v", 0).Err(); err != nil {
			t.Fatalf("SET over TLS on %s: %v", n.ID(), err)
		}
		if got, err := rdb.Get(ctxT(t), "tls:"+n.ID()).Result(); err != nil || got != "v" {
			t.Fatalf("GET over TLS on %s = %q, %v", n.ID(), got, err)
		}
	}
	addr := c.leader(t).RESPAddr()
	for name, cfg := range map[string]*tls.Config{
		"no client certificate":              serverCA.ClientConfig(t, nil),
		"a client certificate of a rogue CA": serverCA.ClientConfig(t, rogue),
	} {
		rdb := redis.NewClient(&redis.Options{Addr: addr, Password: writeTok, TLSConfig: cfg, MaxRetries: -1})
		if err := rdb.Ping(ctxT(t)).Err(); err == nil {
			t.Errorf("%s: PING succeeded", name)
		}
		rdb.Close()
	}
	// Plaintext on a TLS port: the handshake fails and the connection closes.
	r := dialRaw(t, addr)
	r.send(cmd("PING"))
	if line, err := r.rd.ReadString('\n'); err == nil || strings.Contains(line, "PONG") {
		t.Fatalf("plaintext PING on the TLS port answered %q, %v", line, err)
	}
}

func TestAuthTimeoutClosesIdleUnauthenticated(t *testing.T) {
	toks, _ := testtokens.File(t, "write "+writeTok)
	n := startNode(t, "n1", true, resp.Config{Auth: toks, Limits: resp.Limits{AuthTimeout: 300 * time.Millisecond}})
	waitFor(t, "n1 to lead", func() bool { return serves(n) })
	idle := dialRaw(t, n.RESPAddr())
	authed := dialRaw(t, n.RESPAddr())
	authed.send(cmd("AUTH", writeTok))
	authed.expect("+OK\r\n")
	start := time.Now()
	if _, err := idle.rd.ReadByte(); err == nil {
		t.Fatal("an unauthenticated connection received data")
	}
	if waited := time.Since(start); waited > deadline/2 {
		t.Fatalf("the unauthenticated connection was cut after %v", waited)
	}
	// The authenticated one, accepted at the same time, is past the same
	// deadline and still served.
	authed.send(cmd("PING"))
	authed.expect("+PONG\r\n")
}
