package resp_test

import (
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftcache/raftcache/resp"
)

// Pub/sub across a real three-node cluster: messages published on any
// node reach subscribers of every node, once, in order.
func TestPubSubAcrossNodes(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	followers := c.Followers(leader)
	ctx := ctxT(t)

	sub2 := client(t, followers[0].RESPAddr(), 2).Subscribe(ctx, "news")
	if _, err := sub2.Receive(ctx); err != nil { // the confirmation
		t.Fatal(err)
	}
	sub3 := client(t, followers[1].RESPAddr(), 3).PSubscribe(ctx, "ne*")
	if _, err := sub3.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	pub := client(t, leader.RESPAddr(), 2)
	pubF := client(t, followers[0].RESPAddr(), 2)

	// The reply counts the subscribers of the node asked.
	if n, err := pub.Publish(ctx, "news", "m1").Result(); err != nil || n != 0 {
		t.Fatalf("publish on the leader: %d %v", n, err)
	}
	if n, err := pubF.Publish(ctx, "news", "m2").Result(); err != nil || n != 1 {
		t.Fatalf("publish relayed by a follower: %d %v", n, err)
	}
	// Inside MULTI: once per subscriber, in order with the rest.
	tx := pub.TxPipeline()
	tx.Publish(ctx, "news", "m3")
	tx.Set(ctx, "k", "v", 0)
	tx.Publish(ctx, "news", "m4")
	if _, err := tx.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := pub.SPublish(ctx, "news", "shard").Result(); err != nil || n != 0 {
		t.Fatalf("spublish: %d %v", n, err)
	}
	pub.Publish(ctx, "other", "x")
	pub.Publish(ctx, "news", "m5")

	want := "m1 m2 m3 m4 m5"
	for _, s := range []*redis.PubSub{sub2, sub3} {
		var got []string
		for len(got) < 5 {
			m, err := s.ReceiveMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, m.Payload)
		}
		if strings.Join(got, " ") != want {
			t.Fatalf("received %v, want %s", got, want)
		}
	}
	// Nothing more: no duplicates (the shard message goes to SSUBSCRIBE only).
	pub.Publish(ctx, "news", "last")
	for _, s := range []*redis.PubSub{sub2, sub3} {
		if m, err := s.ReceiveMessage(ctx); err != nil || m.Payload != "last" {
			t.Fatalf("after the five: %v %v", m, err)
		}
	}

	// The figures of INFO and /metrics.
	if st := followers[0].Hub().Stats(); st.Subscribers != 1 || st.Channels != 1 || st.Delivered < 6 || st.Published < 7 {
		t.Fatalf("follower hub stats %+v", st)
	}
	if info, err := client(t, followers[1].RESPAddr(), 2).Info(ctx, "stats").Result(); err != nil ||
		!strings.Contains(info, "pubsub_patterns:1\r\n") || !strings.Contains(info, "pubsub_messages_delivered:6\r\n") {
		t.Fatalf("INFO stats: %v\n%s", err, info)
	}

	// PUBSUB answers for the node asked.
	f0 := client(t, followers[0].RESPAddr(), 2)
	if n, err := f0.PubSubNumSub(ctx, "news", "none").Result(); err != nil || n["news"] != 1 || n["none"] != 0 {
		t.Fatalf("numsub %v %v", n, err)
	}
	if chs, err := f0.PubSubChannels(ctx, "n*").Result(); err != nil || len(chs) != 1 || chs[0] != "news" {
		t.Fatalf("channels %v %v", chs, err)
	}
	f1 := client(t, followers[1].RESPAddr(), 2)
	if n, err := f1.PubSubNumPat(ctx).Result(); err != nil || n != 1 {
		t.Fatalf("numpat %d %v", n, err)
	}
	if n, err := pub.PubSubNumSub(ctx, "news").Result(); err != nil || n["news"] != 0 {
		t.Fatalf("leader numsub %v %v", n, err)
	}
}

// The wire format of subscribed mode (RESP2) and of push frames (RESP3),
// as redis-server writes them.
func TestPubSubWire(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	f := c.Followers(leader)[0]
	pub := client(t, leader.RESPAddr(), 2)
	ctx := ctxT(t)

	r2 := dialRaw(t, f.RESPAddr())
	r2.send(cmd("SUBSCRIBE", "a", "b"))
	r2.expect("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n")
	r2.send(cmd("GET", "x") + cmd("PING") + cmd("PSUBSCRIBE", "c*") + cmd("SSUBSCRIBE", "s"))
	r2.expect("-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n" +
		"*2\r\n$4\r\npong\r\n$0\r\n\r\n*3\r\n$10\r\npsubscribe\r\n$2\r\nc*\r\n:3\r\n*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n")

	r3 := dialRaw(t, f.RESPAddr())
	r3.hello3()
	r3.send(cmd("SUBSCRIBE", "a") + cmd("GET", "x"))
	r3.expect(">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n_\r\n")

	waitFor(t, "subscriptions on the follower", func() bool {
		n, _ := pub.Publish(ctx, "warmup", "").Result()
		return n == 0 && f.Node.Hub().Stats().Subscribers == 2
	})
	pub.Publish(ctx, "a", "hello")
	pub.Publish(ctx, "cx", "pat")
	pub.SPublish(ctx, "s", "sh")
	r2.expect("*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhello\r\n*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\ncx\r\n$3\r\npat\r\n" +
		"*3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$2\r\nsh\r\n")
	r3.expect(">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhello\r\n")

	r2.send(cmd("UNSUBSCRIBE") + cmd("PUNSUBSCRIBE") + cmd("SUNSUBSCRIBE") + cmd("UNSUBSCRIBE") + cmd("GET", "x"))
	r2.expect("*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n" +
		"*3\r\n$12\r\npunsubscribe\r\n$2\r\nc*\r\n:0\r\n*3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n" +
		"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n$-1\r\n")

	// Inside MULTI, SUBSCRIBE is refused.
	r3.send(cmd("MULTI") + cmd("SUBSCRIBE", "z") + cmd("EXEC"))
	r3.expect("+OK\r\n-ERR SUBSCRIBE inside MULTI is not supported by raftcache\r\n" +
		"-EXECABORT Transaction discarded because of previous errors.\r\n")
}

// Keyspace notifications: the flags are replicated (set through one
// follower, they hold on the other), and events come from every node.
func TestKeyspaceNotifications(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	fs := c.Followers(leader)
	ctx := ctxT(t)
	f0, f1 := client(t, fs[0].RESPAddr(), 2), client(t, fs[1].RESPAddr(), 2)
	if err := f0.ConfigSet(ctx, "notify-keyspace-events", "Q").Err(); err == nil || !strings.Contains(err.Error(), "Invalid event class") {
		t.Fatalf("bad flags: %v", err)
	}
	if err := f0.ConfigSet(ctx, "notify-keyspace-events", "KEA").Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := f0.ConfigGet(ctx, "notify-keyspace-events").Result(); err != nil || v["notify-keyspace-events"] != "AKE" {
		t.Fatalf("config get %v %v", v, err)
	}
	waitFor(t, "the flags on the other follower", func() bool {
		v, _ := f1.ConfigGet(ctx, "notify-keyspace-events").Result()
		return v["notify-keyspace-events"] == "AKE"
	})
	ks := f1.PSubscribe(ctx, "__key*@0__:*")
	if _, err := ks.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	pub := client(t, leader.RESPAddr(), 2)
	pub.Set(ctx, "k", "1", time.Hour)
	pub.Del(ctx, "k")
	var got []string
	for len(got) < 6 {
		m, err := ks.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Channel+"="+m.Payload)
	}
	want := "__keyspace@0__:k=set __keyevent@0__:set=k __keyspace@0__:k=expire __keyevent@0__:expire=k __keyspace@0__:k=del __keyevent@0__:del=k"
	if strings.Join(got, " ") != want {
		t.Fatalf("events\n%v\nwant\n%s", got, want)
	}
}

// hello3 switches the connection to RESP3 and reads HELLO's reply.
func (c *rawConn) hello3() {
	c.t.Helper()
	c.send(cmd("HELLO", "3"))
	for c.expectPrefix("") != "*0\r\n" { // the last field: modules, an empty array
	}
}

// A subscriber that does not read is disconnected once its pushes pass
// the bound; a subscriber that reads goes on.
func TestSlowSubscriberDropped(t *testing.T) {
	c := startCluster(t, resp.Config{Limits: resp.Limits{MaxPushBytes: 256 << 10}})
	leader := c.leader(t)
	f := c.Followers(leader)[0]
	ctx := ctxT(t)
	slow := dialRaw(t, f.RESPAddr())
	slow.send(cmd("SUBSCRIBE", "c"))
	slow.expect("*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n")
	good := client(t, f.RESPAddr(), 3).Subscribe(ctx, "c")
	if _, err := good.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	var received atomic.Int64
	go func() {
		for range good.Channel(redis.WithChannelSize(1 << 12)) {
			received.Add(1)
		}
	}()
	pub := client(t, leader.RESPAddr(), 2)
	payload := strings.Repeat("x", 64<<10)
	sent := int64(0)
	waitFor(t, "the slow subscriber dropped", func() bool {
		// A slow machine may lose the leader meanwhile: count the
		// acknowledged messages only (the others may arrive too). The
		// next message waits until the reading subscriber has the last
		// one, so only the one that never reads can pass the bound.
		if pub.Publish(ctx, "c", payload).Err() == nil {
			sent++
		}
		deadline := time.Now().Add(5 * time.Second)
		for received.Load() < sent && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		return f.Hub().Stats().Dropped > 0
	})
	if d := f.Hub().Stats().Dropped; d != 1 {
		t.Fatalf("%d subscribers dropped", d)
	}
	waitFor(t, "every message to the subscriber that reads", func() bool { return received.Load() >= sent })
	_ = slow.nc.SetReadDeadline(time.Now().Add(deadline))
	if n, err := io.Copy(io.Discard, slow.rd); err != nil {
		t.Fatalf("the slow connection was not closed: %v (%d bytes read)", err, n)
	}
}
