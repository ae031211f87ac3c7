package resp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/redcon"

	"github.com/raftcache/raftcache/auth"
	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// Pub/sub on the Redis port. PUBLISH is an engine write: it goes through
// the log and every node delivers it from its own hub (node/hub.go) to its
// own subscribers, so a subscriber may connect to any node. PUBLISH
// answers the subscribers of the node it was sent to, as Redis Cluster
// does. A follower relays a PUBLISH to the leader as RAFTCACHE.PUBLISH
// with a request id of its own making, so that it can send it again after
// losing the leader mid-request without the message being delivered
// twice.
//
// A connection that subscribes (or turns tracking on, or is the REDIRECT
// target of one that did) leaves redcon's loop (Detach) for one of ours
// (serveDetached), which writes its replies and its pushes in one order
// from one goroutine. A REDIRECT target idle in redcon's loop is woken to
// leave it by its first push (wake.go). Its pushes wait in its hub queue;
// past the queue's bound the hub drops it and the connection is closed,
// as Redis does past client-output-buffer-limit pubsub. Such connections
// have no idle deadline.

const (
	relayPublishCmd = "RAFTCACHE.PUBLISH" // reqid publish|spublish channel message [attempt (level 4)[:after (level 5, resends)]]
	// invalidateChannel is where RESP2 clients receive invalidations
	// (CLIENT TRACKING ... REDIRECT).
	invalidateChannel = "__redis__:invalidate"
)

var relayPublishName = strings.ToLower(relayPublishCmd)

// pubsubCmds are the commands of RESP2's subscribed mode, besides PING,
// QUIT and RESET.
var pubsubCmds = map[string]bool{"subscribe": true, "unsubscribe": true, "psubscribe": true, "punsubscribe": true,
	"ssubscribe": true, "sunsubscribe": true}

func initPubSubCommands() {
	for _, c := range []*command{
		{name: "subscribe", arity: -2, flags: []string{"pubsub", "stale"}, conn: cmdSubscribe(node.Channel, "subscribe")},
		{name: "psubscribe", arity: -2, flags: []string{"pubsub", "stale"}, conn: cmdSubscribe(node.Pattern, "psubscribe")},
		{name: "ssubscribe", arity: -2, flags: []string{"pubsub", "stale"}, conn: cmdSubscribe(node.Shard, "ssubscribe")},
		{name: "unsubscribe", arity: -1, flags: []string{"pubsub", "stale"}, conn: cmdUnsubscribe(node.Channel, "unsubscribe")},
		{name: "punsubscribe", arity: -1, flags: []string{"pubsub", "stale"}, conn: cmdUnsubscribe(node.Pattern, "punsubscribe")},
		{name: "sunsubscribe", arity: -1, flags: []string{"pubsub", "stale"}, conn: cmdUnsubscribe(node.Shard, "sunsubscribe")},
		{name: "pubsub", arity: -2, flags: []string{"pubsub", "stale"}, conn: cmdPubSub},
		{name: relayPublishName, arity: -5, flags: []string{"fast"}, conn: cmdRelayPublish},
	} {
		c.kind = kindConn
		commands[c.name] = c
	}
}

func isPublish(name string) bool { return name == "publish" || name == "spublish" }

// pushHeader starts a push of n elements: a push frame in RESP3, an array
// in RESP2.
func (w *writer) pushHeader(n int) {
	if w.proto == 3 {
		w.b = append(w.b, '>')
		w.b = strconv.AppendInt(w.b, int64(n), 10)
		w.b = append(w.b, '\r', '\n')
		return
	}
	w.array(n)
}

func cmdSubscribe(kind node.SubKind, verb string) func(*Server, *client, [][]byte) {
	return func(s *Server, cl *client, args [][]byte) {
		for _, ch := range args[1:] {
			if len(ch) > node.MaxKeySize {
				cl.w.fail(&node.LimitError{Err: node.ErrKeyTooLarge, Limit: node.MaxKeySize, Size: int64(len(ch))})
				return
			}
		}
		for _, ch := range args[1:] {
			n := cl.sub.Subscribe(kind, string(ch))
			cl.w.pushHeader(3)
			cl.w.bulkString(verb)
			cl.w.bulk(ch)
			cl.w.int(int64(n))
		}
	}
}

func cmdUnsubscribe(kind node.SubKind, verb string) func(*Server, *client, [][]byte) {
	return func(s *Server, cl *client, args [][]byte) {
		var names []string
		for _, a := range args[1:] {
			names = append(names, string(a))
		}
		if len(args) == 1 {
			names = cl.sub.Subscriptions(kind)
		}
		if len(names) == 0 {
			cl.w.pushHeader(3)
			cl.w.bulkString(verb)
			cl.w.null()
			cl.w.int(int64(cl.sub.Count(kind)))
			return
		}
		for _, name := range names {
			n := cl.sub.Unsubscribe(kind, name)
			cl.w.pushHeader(3)
			cl.w.bulkString(verb)
			cl.w.bulkString(name)
			cl.w.int(int64(n))
		}
	}
}

// cmdPubSub is PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB:
// this node's subscribers, as in Redis Cluster.
func cmdPubSub(s *Server, cl *client, args [][]byte) {
	h, w := s.node.Hub(), &cl.w
	sub := lower(args[1])
	switch {
	case (sub == "channels" || sub == "shardchannels") && len(args) <= 3:
		kind := node.Channel
		if sub == "shardchannels" {
			kind = node.Shard
		}
		pattern := ""
		if len(args) == 3 {
			pattern = string(args[2])
		}
		chs := h.Channels(kind, pattern)
		w.array(len(chs))
		for _, ch := range chs {
			w.bulkString(ch)
		}
	case sub == "numsub" || sub == "shardnumsub":
		kind := node.Channel
		if sub == "shardnumsub" {
			kind = node.Shard
		}
		w.mapHeader(len(args) - 2)
		for _, ch := range args[2:] {
			w.bulk(ch)
			w.int(int64(h.NumSub(kind, string(ch))))
		}
	case sub == "numpat" && len(args) == 2:
		w.int(int64(h.NumPat()))
	case sub == "channels" || sub == "numpat" || sub == "shardchannels":
		w.fail(wrongArgs("pubsub|" + sub))
	default:
		w.error("ERR unknown subcommand '" + printable(args[1]) + "'. Try PUBSUB HELP.")
	}
}

// newPubID is a request id for a relayed PUBLISH: unique across members
// and restarts.
func newPubID() []byte {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return []byte("pub:" + hex.EncodeToString(b[:]))
}

// relayPublishFrame relays a PUBLISH under id; attempt (from level 4,
// when every member reads it; 0 below) counts the sends, and a resend
// carries after (from level 5), as RAFTCACHE.ONCE's does (once.go), so
// that a resend whose id was evicted is refused rather than delivered
// twice.
func relayPublishFrame(id []byte, args [][]byte, attempt int, after uint64) []byte {
	n := 5
	if attempt > 0 {
		n = 6
	}
	b := redcon.AppendArray(nil, n)
	b = redcon.AppendBulkString(b, relayPublishCmd)
	b = redcon.AppendBulk(b, id)
	b = redcon.AppendBulkString(b, strings.ToLower(string(args[0])))
	b = redcon.AppendBulk(b, args[1])
	b = redcon.AppendBulk(b, args[2])
	if attempt > 0 {
		b = redcon.AppendBulkString(b, attemptField(attempt, after))
	}
	return b
}

// cmdRelayPublish runs a follower's PUBLISH under its request id: a
// repeated id is answered without publishing again.
func cmdRelayPublish(s *Server, cl *client, args [][]byte) {
	if !cl.forwarded {
		cl.w.error("ERR " + relayPublishCmd + " is for relays between members")
		return
	}
	name := lower(args[2])
	attempt, after, ok := 1, uint64(0), len(args) == 5
	if len(args) == 6 {
		attempt, after, ok = parseAttempt(args[5])
	}
	if !ok || !isPublish(name) || len(args[1]) > 0 && !fsm.ValidRequestID(args[1]) {
		cl.w.error("ERR syntax error")
		return
	}
	ctx, cancel := s.context()
	defer cancel()
	relayed := &item{reqID: args[1], sent: attempt - 1, after: after}
	res, err := s.node.Exec(ctx, relayed.unit([][][]byte{{[]byte(name), args[3], args[4]}}, nil))
	if err == nil {
		err = s.unitFailure(&res[0])
	}
	switch {
	case err != nil:
		cl.w.fail(err)
	case len(res[0].Replies) == 0:
		cl.w.fail(res[0].Err)
	default:
		s.publishReply(cl, name, args[3], res[0].Replies[0])
	}
}

// publishReply answers a PUBLISH that was applied with this node's
// subscribers of its channel.
func (s *Server) publishReply(cl *client, name string, channel []byte, rep fsm.Reply) {
	if rep.IsError() {
		cl.w.reply(rep)
		return
	}
	cl.w.int(int64(s.node.Hub().Receivers(string(channel), name == "spublish")))
}

// subscribedMode says whether cl may run only the pub/sub commands
// (RESP2 with a subscription), and answers the refusal if name is not one.
func (s *Server) refuseSubscribed(cl *client, it *item) bool {
	if cl.w.proto == 3 || !cl.sub.Subscribed() {
		return false
	}
	switch {
	case pubsubCmds[it.name] || it.name == "quit" || it.name == "reset":
		return false
	case it.name == "ping" && len(it.args) <= 2:
		cl.w.array(2)
		cl.w.bulkString("pong")
		if len(it.args) == 2 {
			cl.w.bulk(it.args[1])
		} else {
			cl.w.bulkString("")
		}
		return true
	}
	cl.w.error("ERR Can't execute '" + printable([]byte(it.name)) +
		"': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
	return true
}

// writeEvent encodes one hub event for the connection.
func (cl *client) writeEvent(e *node.Event) { cl.writeEventTo(&cl.w, e) }

// writeEventTo encodes one hub event for the connection into w.
func (cl *client) writeEventTo(w *writer, e *node.Event) {
	switch e.Kind {
	case node.EventMessage:
		switch {
		case e.Pattern != "":
			w.pushHeader(4)
			w.bulkString("pmessage")
			w.bulkString(e.Pattern)
		case e.Shard:
			w.pushHeader(3)
			w.bulkString("smessage")
		default:
			w.pushHeader(3)
			w.bulkString("message")
		}
		w.bulkString(e.Channel)
		w.bulk(e.Data)
	case node.EventInvalidate:
		if w.proto == 3 {
			w.pushHeader(2)
			w.bulkString("invalidate")
		} else {
			if !cl.sub.Has(node.Channel, invalidateChannel) {
				return // a RESP2 target that does not listen: Redis drops them too
			}
			w.array(3)
			w.bulkString("message")
			w.bulkString(invalidateChannel)
		}
		if e.Keys == nil {
			w.null()
			return
		}
		w.array(len(e.Keys))
		for _, k := range e.Keys {
			w.bulkString(k)
		}
	case node.EventRedirBroken:
		if w.proto == 3 && cl.track != nil {
			w.pushHeader(2)
			w.bulkString("tracking-redir-broken")
			w.int(cl.track.redirect)
		}
	}
}

// needsDetach says whether the connection must leave redcon's loop: it
// has pushes to receive.
func (cl *client) needsDetach() bool {
	return cl.track != nil || cl.sub.Subscribed() || cl.sub.Pending()
}

// serveDetached serves a connection taken out of redcon's loop: commands
// as they come (a pipeline is what arrived together), and the hub's
// pushes, written by this goroutine alone, each after the replies before
// it.
func (s *Server) serveDetached(dc redcon.DetachedConn, cl *client) {
	cmds := make(chan redcon.Command, 64)
	quit := make(chan struct{})
	go func() {
		defer close(cmds)
		for {
			c, err := dc.ReadCommand()
			if err != nil {
				return
			}
			select {
			case cmds <- c:
			case <-quit:
				return
			}
		}
	}()
	go func() {
		select {
		case <-cl.sub.Done(): // dropped: cut it now, even if a write to it is blocked
			if cl.sub.Err() != nil {
				s.logger.Debug("closing a subscriber that does not keep up", "client", cl.id, "addr", cl.addr)
				dc.NetConn().Close()
			}
		case <-quit:
		}
	}()
	defer func() {
		close(quit)
		dc.NetConn().Close()
		cl.sub.Close()
		s.mu.Lock()
		delete(s.clients, cl)
		s.mu.Unlock()
	}()
	if dc.Flush() != nil { // the replies of the pipeline that detached it
		return
	}
	var evs []node.Event
	for {
		select {
		case c, ok := <-cmds:
			if !ok {
				return
			}
			batch := []redcon.Command{c}
		more:
			for len(batch) < maxRunOps {
				select {
				case c, ok := <-cmds:
					if !ok {
						break more
					}
					batch = append(batch, c)
				default:
					break more
				}
			}
			s.busy.Add(1)
			if s.draining.Load() {
				s.busy.Add(-1)
				return
			}
			s.process(cl, batch) // its replies stay in cl.w.b, before the pushes
			s.busy.Add(-1)
		case <-cl.sub.Ready():
		case <-cl.sub.Done():
			return
		}
		if s.cfg.Auth != nil && cl.sub.Pending() && s.authorize(cl, "subscribe", commands["subscribe"], kindConn) != "" {
			// Its token was revoked (or lost the read role) since it
			// subscribed: it hears nothing more.
			return
		}
		evs = cl.sub.Take(evs[:0])
		for i := range evs {
			cl.writeEvent(&evs[i])
			evs[i] = node.Event{}
			if len(cl.w.b) >= spillBytes {
				dc.WriteRaw(cl.w.b)
				cl.w.reset()
				if dc.Flush() != nil {
					return
				}
			}
		}
		dc.WriteRaw(cl.w.b)
		cl.w.reset()
		if err := dc.Flush(); err != nil || cl.quit || cl.w.broken {
			return
		}
	}
}

// cmdConfigSet is CONFIG SET notify-keyspace-events flags: replicated
// state (an entry through the log), so it holds on every node. No other
// parameter can be set: they are node flags.
func cmdConfigSet(s *Server, cl *client, args [][]byte) {
	w := &cl.w
	if len(args) != 4 {
		w.fail(wrongArgs("config|set"))
		return
	}
	if lower(args[2]) != "notify-keyspace-events" {
		w.error("ERR CONFIG SET is not supported by raftcache for '" + printable(args[2]) + "': only notify-keyspace-events can be set; the other settings are node flags")
		return
	}
	if s.cfg.Auth != nil && cl.principal.Role < auth.RoleWrite {
		w.error("NOPERM User " + cl.principal.Name + " has no permissions to run CONFIG SET (role " + cl.principal.Role.String() + ", needs write)")
		return
	}
	flags, ok := fsm.ParseNotifyFlags(string(args[3]))
	if !ok {
		w.error("ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
		return
	}
	if !cl.forwarded && !s.node.IsLeader() {
		raw := redcon.AppendArray(nil, len(args))
		for _, a := range args {
			raw = redcon.AppendBulk(raw, a)
		}
		s.relayItems(cl, []*item{{raw: raw, args: args, name: "config"}}, 0)
		if bytes.HasSuffix(cl.w.b, []byte("+OK\r\n")) {
			// The next CONFIG GET here should see it.
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LeaderWait)
			defer cancel()
			for s.node.LocalView().NotifyFlags() != flags && sleepCtx(ctx, 5*time.Millisecond) {
			}
		}
		return
	}
	ctx, cancel := s.context()
	defer cancel()
	res, err := s.node.Exec(ctx, fsm.Unit{Cmds: [][][]byte{fsm.RCNotify(string(args[3]))}})
	if err != nil {
		w.fail(err)
		return
	}
	w.reply(res[0].Replies[0])
}
