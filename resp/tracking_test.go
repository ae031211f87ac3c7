package resp_test

import (
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftcache/raftcache/internal/testcerts"
	"github.com/raftcache/raftcache/internal/testtokens"
	"github.com/raftcache/raftcache/resp"
	"github.com/redis/go-redis/v9"
)

// Client tracking on the wire (RESP3 pushes, RESP2 REDIRECT), against the
// leader and a follower: a key read is invalidated when another node
// writes it; BCAST with a prefix; FLUSHDB invalidates everything; reads
// inside MULTI after CLIENT CACHING YES are tracked (rueidis's pattern).
func TestTrackingWire(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	fs := c.Followers(leader)
	ctx := ctxT(t)
	writer := client(t, fs[1].RESPAddr(), 2) // writes go through the other follower

	for _, n := range []*testNode{leader, fs[0]} {
		t.Run(n.ID(), func(t *testing.T) {
			k := n.ID() + ":k"
			r := dialRaw(t, n.RESPAddr())
			r.flushOK = n != leader // a follower may flush its trackers when it cannot vouch
			r.hello3()
			r.send(cmd("CLIENT", "TRACKING", "ON") + cmd("CLIENT", "TRACKINGINFO") + cmd("GET", k))
			r.expect("+OK\r\n%3\r\n$5\r\nflags\r\n~1\r\n$2\r\non\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*0\r\n_\r\n")
			if err := writer.Set(ctx, k, "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
			r.expect(invalidation(k))
			// Not read again: not invalidated again. Read again: it is.
			// (A follower registers a relayed read at its own index,
			// below the leader's: let it catch up first, or the SET
			// would be reported again when it applies it.)
			writer.Set(ctx, k, "2", 0)
			caughtUp(t, n, leader)
			r.send(cmd("GET", k))
			r.expect("$1\r\n2\r\n")
			writer.Incr(ctx, k)
			r.expect(invalidation(k))

			// OPTIN: only after CLIENT CACHING YES, which covers a whole
			// transaction (CLIENT CACHING YES; MULTI; PTTL; GET; EXEC).
			r.send(cmd("CLIENT", "TRACKING", "OFF") + cmd("CLIENT", "TRACKING", "ON", "OPTIN") + cmd("GET", k+"a"))
			r.expect("+OK\r\n+OK\r\n_\r\n")
			caughtUp(t, n, leader)
			r.send(cmd("CLIENT", "CACHING", "YES") + cmd("MULTI") + cmd("PTTL", k+"b") + cmd("GET", k+"b") + cmd("EXEC"))
			r.expect("+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:-2\r\n_\r\n")
			writer.MSet(ctx, k+"a", "x", k+"b", "y")
			kb := k + "b"
			r.expect(invalidation(kb))

			// A flush invalidates everything: a null key list.
			writer.FlushDB(ctx)
			r.expect(">2\r\n$10\r\ninvalidate\r\n_\r\n")

			// BCAST with a prefix: every change under it, read or not.
			p := n.ID() + ":p:"
			r.send(cmd("CLIENT", "TRACKING", "OFF") + cmd("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", p))
			r.expect("+OK\r\n+OK\r\n")
			writer.Set(ctx, n.ID()+":q:1", "x", 0)
			writer.Set(ctx, p+"1", "x", 0)
			r.expect(invalidation(p + "1"))
			r.send(cmd("CLIENT", "TRACKING", "OFF") + cmd("PING"))
			r.expect("+OK\r\n+PONG\r\n")
		})
	}

	// RESP2: invalidations through a REDIRECT connection subscribed to
	// __redis__:invalidate, on a follower.
	target := dialRaw(t, fs[0].RESPAddr())
	target.flushOK = true
	target.send(cmd("CLIENT", "ID"))
	id := strings.TrimSpace(target.expectPrefix(":")[1:])
	target.send(cmd("SUBSCRIBE", "__redis__:invalidate"))
	target.expect("*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n")
	tr := dialRaw(t, fs[0].RESPAddr())
	tr.send(cmd("CLIENT", "TRACKING", "ON", "REDIRECT", "999999") + cmd("CLIENT", "TRACKING", "ON", "REDIRECT", id) +
		cmd("CLIENT", "GETREDIR") + cmd("GET", "r2"))
	tr.expect("-ERR The client ID you want redirect to does not exist\r\n+OK\r\n:" + id + "\r\n$-1\r\n")
	writer.Set(ctx, "r2", "x", 0)
	target.expect("*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$2\r\nr2\r\n")
	writer.FlushAll(ctx)
	target.expect("*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n")
}

// caughtUp waits until n has applied what the leader has.
func caughtUp(t *testing.T, n, leader *testNode) {
	t.Helper()
	want := leader.FSM().AppliedIndex()
	waitFor(t, n.ID()+" catching up", func() bool { return n.FSM().AppliedIndex() >= want })
}

// TestTrackingFlushWhenCutOff: a follower that stops hearing from its
// leader sends its tracking clients the flush-everything invalidation:
// what they cached from it may be older than the staleness bound.
func TestTrackingFlushWhenCutOff(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	fs := c.Followers(leader)
	r := dialRaw(t, fs[0].RESPAddr())
	r.hello3()
	r.send(cmd("CLIENT", "TRACKING", "ON") + cmd("GET", "cut:k"))
	r.expect("+OK\r\n_\r\n")
	// A BCAST tracker registers no keys; it is flushed all the same, and
	// again after each read it makes while the follower stays cut off
	// (READONLY: served from the follower's state, however stale).
	rb := dialRaw(t, fs[0].RESPAddr())
	rb.hello3()
	rb.send(cmd("CLIENT", "TRACKING", "ON", "BCAST") + cmd("READONLY") + cmd("GET", "cut:b"))
	rb.expect("+OK\r\n+OK\r\n_\r\n")
	leader.Stop()
	fs[1].Stop()
	flush := ">2\r\n$10\r\ninvalidate\r\n_\r\n"
	r.expect(flush)
	rb.expect(flush)
	rb.send(cmd("GET", "cut:b"))
	rb.expect("_\r\n")
	rb.expect(flush)
}

// TestTrackingTransactionWrites: a key read inside a transaction that also
// writes is invalidated by what follows the read in the same entry: the
// transaction's own later write of it (as Redis reports it), on the
// leader and relayed by a follower. It was registered at the entry's own
// index, which nothing in that entry is above, and stayed cached stale.
func TestTrackingTransactionWrites(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	for _, n := range []*testNode{leader, c.Followers(leader)[0]} {
		t.Run(n.ID(), func(t *testing.T) {
			k := n.ID() + ":tx"
			r := dialRaw(t, n.RESPAddr())
			r.flushOK = true // a flush push stands for the invalidation
			r.hello3()
			r.send(cmd("CLIENT", "TRACKING", "ON") + cmd("MULTI") + cmd("GET", k) + cmd("INCR", k) + cmd("EXEC"))
			r.expect("+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n_\r\n:1\r\n")
			r.expect(invalidation(k))
		})
	}
}

// TestTrackingPushWhileBlocked: a RESP3 tracking connection blocked in
// BLPOP, on the leader and through a follower, gets the invalidation of
// another client's write of a key it cached at once, as in Redis (it was
// held until the BLPOP returned: stale hits from the client's cache for
// as long as it waited), and then the BLPOP's own reply.
func TestTrackingPushWhileBlocked(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	writer := client(t, leader.RESPAddr(), 2)
	for _, n := range []*testNode{leader, c.Followers(leader)[0]} {
		t.Run(n.ID(), func(t *testing.T) {
			k, q := n.ID()+":blk:k", n.ID()+":blk:q"
			r := dialRaw(t, n.RESPAddr())
			r.flushOK = true // as in TestTrackingOwnWriteFirst
			r.hello3()
			r.send(cmd("CLIENT", "TRACKING", "ON") + cmd("GET", k) + cmd("BLPOP", q, "30"))
			r.expect("+OK\r\n_\r\n")
			blockedOn(t, c, 1)
			if err := writer.Set(ctxT(t), k, "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
			inv := invalidation(k)
			mark := r.flushes
			if f := r.nextFrame(); f != inv && r.flushes == mark {
				t.Fatalf("blocked in BLPOP, after another client's write of %s: got %q, want the invalidation", k, f)
			}
			if err := writer.RPush(ctxT(t), q, "e").Err(); err != nil {
				t.Fatal(err)
			}
			r.expect("*2\r\n$" + strconv.Itoa(len(q)) + "\r\n" + q + "\r\n$1\r\ne\r\n")

			// Another client's change of a key the blocking command
			// names (BLMOVE's destination) is not held for the wait
			// either (only the invalidation of its own pop may wait
			// for its reply, briefly).
			src, dst := n.ID()+":blk:src", n.ID()+":blk:dst"
			if err := writer.RPush(ctxT(t), dst, "x").Err(); err != nil {
				t.Fatal(err)
			}
			caughtUp(t, n, leader)
			r.send(cmd("LRANGE", dst, "0", "-1") + cmd("BLMOVE", src, dst, "LEFT", "RIGHT", "30"))
			r.expect("*1\r\n$1\r\nx\r\n")
			blockedOn(t, c, 1)
			if err := writer.Del(ctxT(t), dst).Err(); err != nil {
				t.Fatal(err)
			}
			dinv := invalidation(dst)
			mark = r.flushes
			if f := r.nextFrame(); f != dinv && r.flushes == mark {
				t.Fatalf("blocked in BLMOVE, after another client's DEL of its destination: got %q, want its invalidation", f)
			}
			if err := writer.RPush(ctxT(t), src, "m").Err(); err != nil {
				t.Fatal(err)
			}
			for { // the move's reply; its own invalidations may come first on a busy machine
				f := r.nextFrame()
				if f == "$1\r\nm\r\n" {
					break
				}
				if !strings.HasPrefix(f, ">2\r\n$10\r\ninvalidate") {
					t.Fatalf("after BLMOVE was served: got %q, want its reply", f)
				}
			}
		})
	}
}

// TestTrackingOwnWriteFirstBcast: in BCAST mode too, a client's own
// write of a key under its prefixes is invalidated before the reply of
// its next command (once skipped: the invalidation came only when the
// node applied the write, on a follower its lag later).
func TestTrackingOwnWriteFirstBcast(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	for _, n := range []*testNode{leader, c.Followers(leader)[0]} {
		t.Run(n.ID(), func(t *testing.T) {
			for i := 0; i < 10; i++ {
				p := n.ID() + ":b" + strconv.Itoa(i) + ":"
				k := p + "x"
				inv := invalidation(k)
				r := dialRaw(t, n.RESPAddr())
				r.flushOK = true // as in TestTrackingOwnWriteFirst
				r.hello3()
				r.send(cmd("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", p) + cmd("GET", k))
				r.expect("+OK\r\n_\r\n")
				mark := r.flushes
				r.send(cmd("SET", k, "1"))
				r.expect("+OK\r\n")
				r.send(cmd("PING"))
				f := r.nextFrame()
				switch {
				case f == inv:
				case r.flushes == mark:
					t.Fatalf("after own SET %s: the next command's reply %q came before the invalidation", k, f)
				}
			}
		})
	}
}

// TestTrackingOwnWriteFirst: a tracking client's own write of a key it
// cached is invalidated before the reply of its next command, as Redis
// does, on the leader and through a follower, which relays the write and
// applies it only later: the client never reads its own write's key from
// its cache stale.
func TestTrackingOwnWriteFirst(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	for _, n := range []*testNode{leader, c.Followers(leader)[0]} {
		t.Run(n.ID(), func(t *testing.T) {
			k := n.ID() + ":own"
			inv := invalidation(k)
			r := dialRaw(t, n.RESPAddr())
			// A node that cannot vouch for its state for a moment (a
			// follower, or a leader applying a tick behind) flushes its
			// trackers: the registration is gone then, and the flush
			// push told the client to drop everything.
			r.flushOK = true
			r.hello3()
			r.send(cmd("CLIENT", "TRACKING", "ON") + cmd("GET", k))
			r.expect("+OK\r\n_\r\n")
			mark := r.flushes
			r.send(cmd("SET", k, "1"))
			r.expect("+OK\r\n")
			r.send(cmd("PING"))
			f := r.nextFrame()
			switch {
			case f == inv:
				f = r.nextFrame()
			case r.flushes == mark:
				t.Fatalf("the next command's reply %q came before the invalidation of the client's own write", f)
			}
			if f != "+PONG\r\n" {
				t.Fatalf("got %q, want +PONG", f)
			}
			// Reported once: the change, applied, finds nothing left to
			// report for this client.
			caughtUp(t, n, leader)
			r.send(cmd("PING"))
			r.expect("+PONG\r\n")

			// A blocking pop is a write of its key too.
			q := n.ID() + ":q"
			qinv := invalidation(q)
			r.send(cmd("RPUSH", q, "a"))
			r.expect(":1\r\n")
			caughtUp(t, n, leader)
			r.send(cmd("LRANGE", q, "0", "-1"))
			r.expect("*1\r\n$1\r\na\r\n")
			mark = r.flushes
			r.send(cmd("BLPOP", q, "0"))
			r.expect("*2\r\n$" + strconv.Itoa(len(q)) + "\r\n" + q + "\r\n$1\r\na\r\n")
			r.send(cmd("PING"))
			if f := r.nextFrame(); f != qinv && r.flushes == mark {
				t.Fatalf("after BLPOP: got %q first, want the invalidation of %s", f, q)
			} else if f == qinv {
				r.expect("+PONG\r\n")
			}

			// So is the client's own flush: everything, at once.
			caughtUp(t, n, leader)
			r.send(cmd("GET", k))
			r.expect("$1\r\n1\r\n")
			mark = r.flushes
			r.send(cmd("FLUSHDB"))
			r.expect("+OK\r\n")
			r.send(cmd("PING"))
			if f := r.nextFrame(); f != "+PONG\r\n" || r.flushes == mark {
				t.Fatalf("after FLUSHDB: got %q with %d flushes, want the flush first", f, r.flushes-mark)
			}
		})
	}
}

// TestTrackingRedirectIdleTarget: a RESP3 connection named as another's
// REDIRECT target gets its invalidations at once while it sends nothing,
// as in Redis, over plaintext and TLS. It waits in redcon's loop until a
// push wakes it (wake.go); afterwards it is served as before, and a client
// that sends the wake command's name without its secret gets the
// unknown-command error.
func TestTrackingRedirectIdleTarget(t *testing.T) {
	serverCA, clientCA := testcerts.NewCA(t, "servers"), testcerts.NewCA(t, "clients")
	dialTLS := func(t *testing.T, addr string) *rawConn {
		nc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, serverCA.ClientConfig(t, clientCA))
		if err != nil {
			t.Fatal(err)
		}
		return newRaw(t, nc)
	}
	for _, tc := range []struct {
		name string
		cfg  resp.Config
		dial func(t *testing.T, addr string) *rawConn
	}{
		{"plaintext", resp.Config{}, func(t *testing.T, addr string) *rawConn { return dialRaw(t, addr) }},
		{"tls", resp.Config{TLS: serverCA.ServerConfig(t, clientCA)}, dialTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, "n1", true, tc.cfg)
			waitFor(t, "n1 to lead", func() bool { return serves(n) })
			target := tc.dial(t, n.RESPAddr())
			target.hello3()
			target.send(cmd("CLIENT", "ID"))
			id := strings.TrimSpace(target.expectPrefix(":")[1:])
			tr := tc.dial(t, n.RESPAddr())
			for i, k := range []string{"idle:a", "idle:b"} {
				tr.send(cmd("CLIENT", "TRACKING", "ON", "REDIRECT", id) + cmd("GET", k))
				tr.expect("+OK\r\n$-1\r\n")
				tr.send(cmd("SET", k, "v"))
				tr.expect("+OK\r\n")
				// The target sends nothing before the push (the second
				// time it has left redcon's loop already).
				target.expect(">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\n" + k + "\r\n")
				if i == 0 {
					target.send(cmd("PING") + cmd("raftcache.wake", "not-the-secret"))
					target.expect("+PONG\r\n")
					target.expectPrefix("-ERR unknown command")
				}
			}
		})
	}
}

// TestTrackingRedirectTargetNotLoggedIn: a connection that has not
// authenticated yet, named as a REDIRECT target (client ids are easy to
// guess), is not woken by the pushes (serveDetached would cut it, as it
// may not read them): it stays connected and logs in as usual.
func TestTrackingRedirectTargetNotLoggedIn(t *testing.T) {
	toks, _ := testtokens.File(t, "write "+writeTok)
	n := startNode(t, "n1", true, resp.Config{Auth: toks})
	waitFor(t, "n1 to lead", func() bool { return serves(n) })
	idle := dialRaw(t, n.RESPAddr())
	tr := dialRaw(t, n.RESPAddr())
	tr.send(cmd("AUTH", writeTok) + cmd("CLIENT", "LIST"))
	tr.expect("+OK\r\n")
	list := tr.readBulk()
	var id string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "addr="+idle.nc.LocalAddr().String()+" ") {
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "id="); ok {
					id = v
				}
			}
		}
	}
	if id == "" {
		t.Fatalf("the idle connection is not in CLIENT LIST:\n%s", list)
	}
	tr.send(cmd("CLIENT", "TRACKING", "ON", "BCAST", "REDIRECT", id) + cmd("SET", "auth:k", "v"))
	tr.expect("+OK\r\n+OK\r\n")
	// A wake would cut it at once; it must still be listed a while later.
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		tr.send(cmd("CLIENT", "LIST"))
		if l := tr.readBulk(); !strings.Contains(l, "id="+id+" ") {
			t.Fatalf("the connection that had not logged in was cut after a push:\n%s", l)
		}
	}
	idle.send(cmd("AUTH", writeTok) + cmd("PING"))
	idle.expect("+OK\r\n+PONG\r\n")
}

// TestTrackingRedirectToRelayRefused: a follower's relay connection to the
// leader carries other clients' replies, in RESP3 for RESP3 clients; a
// client of the leader naming it as its REDIRECT target (its id is in
// CLIENT LIST) would have invalidation pushes written into that stream,
// where the follower would take one for the next relayed reply. Such a
// target is refused as if it did not exist, and relayed replies stay
// right after writes.
func TestTrackingRedirectToRelayRefused(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	f := c.Followers(leader)[0]
	ctx := ctxT(t)
	rc := client(t, f.RESPAddr(), 3) // relays through a RESP3 relay connection
	if err := rc.Set(ctx, "relay:k", "v0", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Get(ctx, "relay:k").Err(); err != nil {
		t.Fatal(err)
	}
	lc := dialRaw(t, leader.RESPAddr())
	lc.send(cmd("CLIENT", "LIST"))
	list := lc.readBulk()
	var relays []string // every connection but lc: the follower's relays
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "addr=") && !strings.Contains(line, "addr="+lc.nc.LocalAddr().String()+" ") {
			for _, fl := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(fl, "id="); ok {
					relays = append(relays, v)
				}
			}
		}
	}
	if len(relays) == 0 {
		t.Fatalf("no relay connection on the leader:\n%s", list)
	}
	for _, id := range relays {
		lc.send(cmd("CLIENT", "TRACKING", "ON", "BCAST", "REDIRECT", id))
		lc.expect("-ERR The client ID you want redirect to does not exist\r\n")
	}
	for i := 1; i <= 20; i++ {
		v := "v" + strconv.Itoa(i)
		lc.send(cmd("SET", "relay:k", v))
		lc.expect("+OK\r\n")
		if got, err := rc.Get(ctx, "relay:k").Result(); err != nil || got != v {
			t.Fatalf("relayed GET after SET %s: %q, %v", v, got, err)
		}
	}

	// Named before it announced itself as a relay (a guessed id): it
	// receives no push after that either.
	early := dialRaw(t, leader.RESPAddr())
	early.send(cmd("CLIENT", "ID"))
	id := strings.TrimSpace(early.expectPrefix(":")[1:])
	lc.send(cmd("CLIENT", "TRACKING", "OFF") + cmd("CLIENT", "TRACKING", "ON", "BCAST", "REDIRECT", id))
	lc.expect("+OK\r\n+OK\r\n")
	early.send(cmd("RAFTCACHE.FORWARDED", f.ID()) + cmd("HELLO", "3"))
	early.expect("+OK\r\n")
	for early.expectPrefix("") != "*0\r\n" { // HELLO's map, to its last field
	}
	// lc's own write is invalidated (queued for its target) before its
	// reply; a push written to early would come before the first PONG or
	// right after it, before the second.
	lc.send(cmd("SET", "relay:k", "early"))
	lc.expect("+OK\r\n")
	for range 2 {
		early.send(cmd("PING"))
		early.expect("+PONG\r\n")
	}
}

// TestRelayedTransactionConnCommands: commands that change or tell the
// state of their connection (CLIENT, HELLO, AUTH, READONLY, READWRITE)
// inside a transaction a follower relays would act on the relay
// connection that carries other clients' replies: a CLIENT TRACKING there
// put invalidation pushes in their stream, a HELLO 3 gave RESP2 clients
// RESP3 replies, CLIENT ID answered the relay's id. A follower refuses
// such a transaction at EXEC; the leader refuses them inside a relayed
// transaction; a transaction the follower answers itself (READONLY reads)
// and the leader's own clients run them as in Redis.
func TestRelayedTransactionConnCommands(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	f := c.Followers(leader)[0]
	ctx := ctxT(t)
	discarded := "-EXECABORT Transaction discarded: "

	r3 := dialRaw(t, f.RESPAddr())
	r3.hello3()
	r3.send(cmd("MULTI") + cmd("CLIENT", "TRACKING", "ON", "BCAST") + cmd("SET", "tx:a", "1") + cmd("EXEC") + cmd("GET", "tx:a"))
	r3.expect("+OK\r\n+QUEUED\r\n+QUEUED\r\n")
	r3.expectPrefix(discarded + "CLIENT is not supported in a transaction a follower relays")
	r3.expect("_\r\n") // nothing ran
	r2 := dialRaw(t, f.RESPAddr())
	r2.send(cmd("MULTI") + cmd("HELLO", "3") + cmd("GET", "tx:a") + cmd("EXEC"))
	r2.expect("+OK\r\n+QUEUED\r\n+QUEUED\r\n")
	r2.expectPrefix(discarded + "HELLO is not supported")
	// Answered by the follower itself: run on the client's own connection.
	r2.send(cmd("CLIENT", "ID"))
	id2 := r2.expectPrefix(":")
	r2.send(cmd("READONLY") + cmd("MULTI") + cmd("CLIENT", "ID") + cmd("GET", "tx:a") + cmd("EXEC"))
	r2.expect("+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n" + id2 + "$-1\r\n")

	// The leader's side, as a relay connection would send it.
	relay := dialRaw(t, leader.RESPAddr())
	relay.send(cmd("RAFTCACHE.FORWARDED", f.ID()) + cmd("MULTI") + cmd("CLIENT", "ID") + cmd("HELLO", "3") +
		cmd("SET", "tx:b", "1") + cmd("EXEC") + cmd("GET", "tx:nope"))
	relay.expect("+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n")
	relay.expectPrefix("-ERR CLIENT cannot run in a transaction relayed by a follower")
	relay.expectPrefix("-ERR HELLO cannot run in a transaction relayed by a follower")
	relay.expect("+OK\r\n$-1\r\n") // still RESP2

	// On the leader itself, as in Redis.
	own := dialRaw(t, leader.RESPAddr())
	own.send(cmd("CLIENT", "ID"))
	id := own.expectPrefix(":")
	own.send(cmd("MULTI") + cmd("CLIENT", "ID") + cmd("SET", "tx:c", "1") + cmd("EXEC"))
	own.expect("+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n" + id + "+OK\r\n")

	// Relayed replies through the follower keep their protocol.
	for _, proto := range []int{2, 3} {
		rc := client(t, f.RESPAddr(), proto)
		if err := rc.Get(ctx, "tx:nope").Err(); err != redis.Nil {
			t.Fatalf("RESP%d relayed GET of a missing key: %v, want redis.Nil", proto, err)
		}
	}
}

// invalidation is the RESP3 push invalidating key.
func invalidation(key string) string {
	return ">2\r\n$10\r\ninvalidate\r\n*1\r\n$" + strconv.Itoa(len(key)) + "\r\n" + key + "\r\n"
}
