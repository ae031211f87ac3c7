package resp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/redcon"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// redisVersion is the Redis version raftcache answers as (HELLO, INFO):
// the command set and replies follow Redis 7.0.
const redisVersion = "7.0.0"

// initConnCommands adds the commands answered from connection state and
// server information.
func initConnCommands() {
	for _, c := range []*command{
		{name: "quit", arity: -1, flags: []string{"fast", "stale"}, conn: cmdQuit},
		{name: "reset", arity: 1, flags: []string{"fast", "stale"}, conn: cmdReset},
		{name: "hello", arity: -1, flags: []string{"fast", "stale"}, conn: cmdHello},
		{name: "auth", arity: -2, flags: []string{"fast", "stale"}, conn: cmdAuth},
		{name: "client", arity: -2, flags: []string{"stale"}, conn: cmdClient},
		{name: "select", arity: 2, flags: []string{"fast", "stale"}, conn: cmdSelect},
		{name: "readonly", arity: 1, flags: []string{"fast", "stale"}, conn: cmdReadonly(true)},
		{name: "readwrite", arity: 1, flags: []string{"fast", "stale"}, conn: cmdReadonly(false)},
		{name: "command", arity: -1, flags: []string{"stale"}, conn: cmdCommand},
		{name: "info", arity: -1, flags: []string{"stale"}, conn: cmdInfo},
		{name: "config", arity: -2, flags: []string{"stale"}, conn: cmdConfig},
		{name: "multi", arity: 1, flags: []string{"fast"}, conn: cmdMulti},
		{name: "exec", arity: 1, flags: []string{}, conn: cmdExec},
		{name: "discard", arity: 1, flags: []string{"fast"}, conn: cmdDiscard},
		{name: "watch", arity: -2, flags: []string{"fast"}, conn: cmdWatch},
		{name: "unwatch", arity: 1, flags: []string{"fast"}, conn: cmdUnwatch},
		{name: forwardedName, arity: 2, flags: []string{"fast"}, conn: cmdForwarded},
		{name: blockName, arity: -5, flags: []string{"blocking"}, conn: cmdBlock},
		{name: txIDName, arity: 3, flags: []string{"fast"}, conn: cmdTxID},
	} {
		c.kind = kindConn
		commands[c.name] = c
	}
	for _, name := range []string{"eval", "evalsha", "eval_ro", "evalsha_ro", "script", "function", "fcall", "fcall_ro"} {
		commands[name].flags = append(commands[name].flags, "noscript")
	}
	commands[watchAtName] = &command{name: watchAtName, arity: -5, kind: kindConn, flags: []string{"fast"}, conn: cmdWatchAt}
	initPubSubCommands()
}

var forwardedName = strings.ToLower(forwardedCmd)

func cmdQuit(s *Server, cl *client, args [][]byte) {
	cl.w.ok()
	cl.quit = true
}

func cmdReset(s *Server, cl *client, args [][]byte) {
	for _, k := range []node.SubKind{node.Channel, node.Pattern, node.Shard} {
		for _, name := range cl.sub.Subscriptions(k) {
			cl.sub.Unsubscribe(k, name)
		}
	}
	cl.sub.Track(nil)
	cl.track, cl.caching = nil, 0
	cl.watch = nil
	cl.tx, cl.readonly, cl.w.proto = nil, false, 2
	cl.setName("")
	s.logout(cl)
	cl.w.status("RESET")
}

// cmdHello is HELLO [protover [AUTH user pass] [SETNAME name]]. raftcache
// speaks RESP2 and RESP3. Without a token file AUTH is accepted as the
// Redis default user (no password) accepts it; with one it must carry a
// token (auth.go).
func cmdHello(s *Server, cl *client, args [][]byte) {
	if len(args) > 1 && !helloAuth(s, cl, args) {
		return
	}
	if len(args) == 1 && s.cfg.Auth != nil && !cl.authed {
		cl.w.error(msgNoAuth)
		return
	}
	proto := cl.w.proto
	name, setName := "", false
	if len(args) > 1 {
		v, err := strconv.Atoi(string(args[1]))
		if err != nil {
			cl.w.error("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 && v != 3 {
			cl.w.error("NOPROTO unsupported protocol version")
			return
		}
		proto = v
		for i := 2; i < len(args); i++ {
			switch opt := lower(args[i]); {
			case opt == "auth" && i+2 < len(args):
				i += 2
			case opt == "setname" && i+1 < len(args):
				name, setName = string(args[i+1]), true
				if !validClientName(name) {
					cl.w.error(msgClientName)
					return
				}
				i++
			default:
				cl.w.error("ERR Syntax error in HELLO option '" + printable(args[i]) + "'")
				return
			}
		}
	}
	cl.w.proto = proto
	if setName {
		cl.setName(name)
	}
	w := &cl.w
	w.mapHeader(7)
	w.bulkString("server")
	w.bulkString("redis")
	w.bulkString("version")
	w.bulkString(redisVersion)
	w.bulkString("proto")
	w.int(int64(proto))
	w.bulkString("id")
	w.int(cl.id)
	w.bulkString("mode")
	w.bulkString("standalone")
	w.bulkString("role")
	w.bulkString(s.role())
	w.bulkString("modules")
	w.array(0)
}

const msgClientName = "ERR Client names cannot contain spaces, newlines or special characters."

// setName names the connection (CLIENT SETNAME, HELLO SETNAME), also for
// other connections' CLIENT LIST.
func (cl *client) setName(name string) {
	cl.name = name
	cl.sharedName.Store(&name)
}

func validClientName(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] < '!' || name[i] > '~' {
			return false
		}
	}
	return true
}

func cmdClient(s *Server, cl *client, args [][]byte) {
	sub := lower(args[1])
	w := &cl.w
	switch {
	case sub == "id" && len(args) == 2:
		w.int(cl.id)
	case sub == "setname" && len(args) == 3:
		if !validClientName(string(args[2])) {
			w.error(msgClientName)
			return
		}
		cl.setName(string(args[2]))
		w.ok()
	case sub == "getname" && len(args) == 2:
		w.value([]byte(cl.name), cl.name != "")
	case sub == "setinfo" && len(args) == 4:
		switch lower(args[2]) {
		case "lib-name":
			cl.libName = string(args[3])
		case "lib-ver":
			cl.libVer = string(args[3])
		default:
			w.error("ERR Unrecognized option '" + printable(args[2]) + "'")
			return
		}
		w.ok()
	case sub == "info" && len(args) == 2:
		w.bulkString(s.clientLine(cl, cl))
	case sub == "list" && len(args) == 2:
		s.mu.Lock()
		all := make([]*client, 0, len(s.clients))
		for c := range s.clients {
			all = append(all, c)
		}
		s.mu.Unlock()
		sort.Slice(all, func(i, j int) bool { return all[i].id < all[j].id })
		var b strings.Builder
		for _, c := range all {
			b.WriteString(s.clientLine(c, cl))
		}
		w.bulkString(b.String())
	case (sub == "no-evict" || sub == "no-touch") && len(args) == 3:
		w.ok()
	case sub == "tracking":
		cmdClientTracking(s, cl, args)
	case sub == "caching":
		cmdClientCaching(s, cl, args)
	case sub == "getredir" && len(args) == 2:
		cmdClientGetRedir(s, cl)
	case sub == "trackinginfo" && len(args) == 2:
		cmdClientTrackingInfo(s, cl)
	case sub == "id" || sub == "setname" || sub == "getname" || sub == "setinfo" || sub == "info" || sub == "list" ||
		sub == "getredir" || sub == "trackinginfo":
		w.fail(wrongArgs("client|" + sub))
	default:
		w.error("ERR unknown subcommand '" + printable(args[1]) + "'. Try CLIENT HELP.")
	}
}

// clientLine is one line of CLIENT INFO / CLIENT LIST. Other connections'
// fields are read without their lock: they are informational.
func (s *Server) clientLine(c, self *client) string {
	if c != self {
		name := ""
		if p := c.sharedName.Load(); p != nil {
			name = *p
		}
		return fmt.Sprintf("id=%d addr=%s name=%s age=%d db=0 resp=? cmd=?\n", c.id, c.addr, name, int(time.Since(c.created).Seconds()))
	}
	multi := -1
	if c.tx != nil {
		multi = len(c.tx.items)
	}
	ro := 0
	if c.readonly {
		ro = 1
	}
	return fmt.Sprintf("id=%d addr=%s name=%s age=%d db=0 multi=%d cmd=%s lib-name=%s lib-ver=%s resp=%d readonly=%d\n",
		c.id, c.addr, c.name, int(time.Since(c.created).Seconds()), multi, c.lastCmd, c.libName, c.libVer, c.w.proto, ro)
}

func cmdSelect(s *Server, cl *client, args [][]byte) {
	n, ok := fsm.ParseInt(args[1])
	switch {
	case !ok:
		cl.w.error("ERR value is not an integer or out of range")
	case n != 0:
		cl.w.error("ERR DB index is out of range (raftcache has one database, 0)")
	default:
		cl.w.ok()
	}
}

func cmdReadonly(on bool) func(*Server, *client, [][]byte) {
	return func(s *Server, cl *client, args [][]byte) {
		cl.readonly = on
		cl.w.ok()
	}
}

// connStateCmds change or tell the state of the connection they are sent
// on (QUIT and RESET are not queued: they run at once, as in Redis). A
// follower relays a transaction that writes (or reads, without READONLY)
// to the leader on a relay connection that carries other clients'
// commands too: there they would act on that connection (its protocol,
// login, tracking, READONLY) or answer with its id. So a follower refuses
// such a transaction at EXEC, and the leader refuses them inside a relayed
// transaction; a transaction the follower answers itself runs them on the
// client's own connection.
var connStateCmds = map[string]bool{"auth": true, "client": true, "hello": true,
	"readonly": true, "readwrite": true}

func cmdForwarded(s *Server, cl *client, args [][]byte) {
	if cl.detached || cl.track != nil || cl.sub.Subscribed() {
		// Not a relay: relays send it before anything else (AUTH aside).
		cl.w.error("ERR " + forwardedCmd + " must come before SUBSCRIBE and CLIENT TRACKING")
		return
	}
	cl.forwarded = true
	if cl.limits != nil {
		// The relay reads this reply before it sends a command: every
		// command of the connection is scanned with the room (limits.go).
		cl.limits.relay.Store(true)
	}
	// A relay connection carries other clients' replies: a push written
	// into it (another client's CLIENT TRACKING ... REDIRECT naming its
	// id, which CLIENT LIST shows) would be taken by the follower for the
	// next relayed reply. Its place in the hub is replaced by one without
	// an id, which REDIRECT cannot name; a redirect made to the old one
	// before this command (ids are easy to guess) reaches a closed one.
	old := cl.sub
	cl.sub = s.node.Hub().NewSub(0, int(s.cfg.Limits.MaxPushBytes))
	old.Close()
	cl.w.ok()
}

// --- COMMAND ---------------------------------------------------------------

func cmdCommand(s *Server, cl *client, args [][]byte) {
	w := &cl.w
	names := make([]string, 0, len(commands))
	for n := range commands {
		if n != forwardedName {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(args) == 1 {
		w.array(len(names))
		for _, n := range names {
			commandInfo(w, commands[n])
		}
		return
	}
	switch sub := lower(args[1]); sub {
	case "count":
		w.int(int64(len(names)))
	case "list":
		w.array(len(names))
		for _, n := range names {
			w.bulkString(n)
		}
	case "info":
		w.array(len(args) - 2)
		for _, a := range args[2:] {
			if c, ok := commands[lower(a)]; ok && c.name != forwardedName {
				commandInfo(w, c)
			} else {
				w.null()
			}
		}
	case "docs":
		w.mapHeader(0)
	default:
		w.error("ERR unknown subcommand '" + printable(args[1]) + "'. Try COMMAND HELP.")
	}
}

// commandInfo is one COMMAND entry in Redis 7's shape.
func commandInfo(w *writer, c *command) {
	w.array(10)
	w.bulkString(c.name)
	w.int(int64(c.arity))
	w.array(len(c.flags))
	for _, f := range c.flags {
		w.status(f)
	}
	w.int(int64(c.keys[0]))
	w.int(int64(c.keys[1]))
	w.int(int64(c.keys[2]))
	for range 4 { // ACL categories, tips, key specs, subcommands
		w.array(0)
	}
}

// --- CONFIG ----------------------------------------------------------------

func cmdConfig(s *Server, cl *client, args [][]byte) {
	w := &cl.w
	if lower(args[1]) == "set" {
		cmdConfigSet(s, cl, args)
		return
	}
	if lower(args[1]) != "get" {
		w.error("ERR CONFIG " + strings.ToUpper(printable(args[1])) + " is not supported by raftcache: its settings are raftcache node flags")
		return
	}
	if len(args) < 3 {
		w.fail(wrongArgs("config|get"))
		return
	}
	policy := s.node.MaxMemoryPolicy().String()
	params := [][2]string{
		{"appendfsync", "always"}, // every write is in a quorum's fsynced Raft log before the reply
		{"appendonly", "yes"},
		{"databases", "1"},
		{"maxmemory", strconv.FormatInt(s.node.MaxMemory(), 10)},
		{"maxmemory-policy", policy},
		{"notify-keyspace-events", fsm.NotifyFlagsString(s.node.LocalView().NotifyFlags())},
		{"proto-max-bulk-len", strconv.FormatInt(s.node.MaxValueSize(), 10)},
		{"save", ""},
	}
	var out [][2]string
	for _, p := range params {
		for _, pat := range args[2:] {
			if fsm.GlobMatch([]byte(strings.ToLower(string(pat))), []byte(p[0])) {
				out = append(out, p)
				break
			}
		}
	}
	w.mapHeader(len(out))
	for _, p := range out {
		w.bulkString(p[0])
		w.bulkString(p[1])
	}
}

// --- INFO ------------------------------------------------------------------

func (s *Server) role() string {
	if s.node.IsLeader() {
		return "master"
	}
	return "replica"
}

func cmdInfo(s *Server, cl *client, args [][]byte) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[lower(a)] = true
	}
	all := len(want) == 0 || want["all"] || want["everything"] || want["default"]
	var b strings.Builder
	section := func(name string, lines func(add func(k string, v any))) {
		if !all && !want[strings.ToLower(name)] {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		lines(func(k string, v any) { fmt.Fprintf(&b, "%s:%v\r\n", k, v) })
	}
	view := s.node.LocalView() // one state for every figure
	st := view.Stats()
	status := s.node.Status()
	section("Server", func(add func(string, any)) {
		add("redis_version", redisVersion)
		add("raftcache_version", s.cfg.Version)
		b := node.BuildInfo()
		add("raftcache_git_sha1", b.ShortRevision())
		add("raftcache_feature_level", b.FeatureLevel)
		add("redis_mode", "standalone")
		add("os", runtime.GOOS)
		add("arch_bits", strconv.IntSize)
		add("process_id", os.Getpid())
		add("run_id", s.node.ID())
		add("tcp_port", s.port())
		up := time.Since(s.started)
		add("uptime_in_seconds", int64(up.Seconds()))
		add("uptime_in_days", int64(up.Hours()/24))
	})
	section("Clients", func(add func(string, any)) {
		s.mu.Lock()
		n := len(s.clients)
		s.mu.Unlock()
		add("connected_clients", n)
		add("maxclients", s.cfg.Limits.MaxClients)
		add("tracking_clients", s.node.Hub().Stats().TrackingClients)
		add("blocked_clients", s.blocked.Load())
	})
	section("Memory", func(add func(string, any)) {
		add("used_memory", st.Bytes)
		add("used_memory_human", humanBytes(st.Bytes))
		add("maxmemory", s.node.MaxMemory())
		add("maxmemory_human", humanBytes(s.node.MaxMemory()))
		add("maxmemory_policy", s.node.MaxMemoryPolicy().String())
		// Not Redis's: the request-id table (exactly-once retries), outside
		// used_memory and maxmemory.
		add("raftcache_request_ids", st.RequestIDs)
		add("raftcache_request_ids_memory", st.RequestIDBytes)
	})
	section("Stats", func(add func(string, any)) {
		add("total_connections_received", s.connsTotal.Load())
		add("total_commands_processed", s.cmdsTotal.Load())
		add("rejected_connections", s.rejected.Load())
		add("total_auth_failures", s.authFailures.Load())
		add("expired_keys", st.Expirations)
		add("evicted_keys", st.Evictions)
		add("keyspace_hits", st.Hits)
		add("keyspace_misses", st.Misses)
		hs := s.node.Hub().Stats()
		add("pubsub_channels", hs.Channels)
		add("pubsub_patterns", hs.Patterns)
		add("pubsub_subscribers", hs.Subscribers)
		add("pubsub_messages_published", hs.Published)
		add("pubsub_messages_delivered", hs.Delivered)
		add("pubsub_slow_subscribers_dropped", hs.Dropped)
		add("tracking_invalidations_sent", hs.Invalidations)
		add("raftcache_relayed_writes_resent", s.resent.Load())
		add("raftcache_resends_refused", s.refusedResends.Load())
		rs := s.node.ReadStats()
		add("strong_read_rounds", rs.Rounds)
		add("strong_reads", rs.Reads)
	})
	section("Replication", func(add func(string, any)) {
		members, _ := s.node.Members()
		if s.node.IsLeader() {
			add("role", "master")
			var replicas []string
			for _, m := range members {
				if m.ID == s.node.ID() {
					continue
				}
				host, port := "", "0"
				if h, p, err := net.SplitHostPort(m.RESPAddr); err == nil {
					host, port = h, p
				} else if h, _, err := net.SplitHostPort(m.RaftAddr); err == nil {
					host = h
				}
				replicas = append(replicas, fmt.Sprintf("ip=%s,port=%s,state=online,offset=%d,lag=0,id=%s", host, port, status.CommitIndex, m.ID))
			}
			add("connected_slaves", len(replicas))
			for i, r := range replicas {
				add("slave"+strconv.Itoa(i), r)
			}
		} else {
			add("role", "slave")
			host, port, link := "", "0", "down"
			if status.HasLeader {
				link = "up"
				if h, p, err := net.SplitHostPort(status.Leader.RESPAddr); err == nil {
					host, port = h, p
				}
			}
			add("master_host", host)
			add("master_port", port)
			add("master_link_status", link)
			add("master_last_io_seconds_ago", int64(status.LastContact.Seconds()))
			add("master_sync_in_progress", 0)
			add("slave_repl_offset", status.AppliedIndex)
			add("slave_read_only", 1)
			add("connected_slaves", 0)
		}
		add("master_repl_offset", status.AppliedIndex)
	})
	section("Raft", func(add func(string, any)) {
		add("raft_node_id", s.node.ID())
		add("raft_state", status.State)
		add("raft_term", status.Term)
		add("raft_commit_index", status.CommitIndex)
		add("raft_applied_index", status.AppliedIndex)
		add("raft_leader_id", status.Leader.ID)
		members, _ := s.node.Members()
		add("raft_members", len(members))
	})
	section("Keyspace", func(add func(string, any)) {
		if st.Keys > 0 {
			add("db0", "keys="+strconv.Itoa(st.Keys)+",expires="+strconv.Itoa(view.Expires())+",avg_ttl=0")
		}
	})
	cl.w.bulkString(b.String())
}

func (s *Server) port() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return "0"
	}
	_, p, _ := net.SplitHostPort(s.ln.Addr().String())
	return p
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + "G"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + "M"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 2, 64) + "K"
	}
	return strconv.FormatInt(n, 10) + "B"
}

// --- transactions ----------------------------------------------------------

func cmdMulti(s *Server, cl *client, args [][]byte) {
	if cl.tx != nil {
		cl.w.error("ERR MULTI calls can not be nested")
		return
	}
	cl.tx = &txState{track: cl.wantTrack()}
	cl.w.ok()
}

func cmdDiscard(s *Server, cl *client, args [][]byte) {
	if cl.tx == nil {
		cl.w.error("ERR DISCARD without MULTI")
		return
	}
	cl.tx, cl.watch = nil, nil
	cl.w.ok()
}

// cmdWatch records what this node's state shows of the keys. Any later
// read on the connection is answered from a state at least as new (a
// strong read on the leader, this node's state after READONLY, the
// leader's for a follower's relayed reads), so a change the reads could
// have missed is always after the watch; EXEC carries the watch in its
// unit and the state machine judges it at the EXEC entry. A second WATCH
// adds keys and keeps the first one's point (older: safe).
func cmdWatch(s *Server, cl *client, args [][]byte) {
	if cl.tx != nil {
		cl.w.error("ERR WATCH inside MULTI is not allowed")
		return
	}
	for _, k := range args[1:] {
		if len(k) > node.MaxKeySize {
			cl.w.fail(&node.LimitError{Err: node.ErrKeyTooLarge, Limit: node.MaxKeySize, Size: int64(len(k))})
			return
		}
	}
	if cl.watch != nil && len(cl.watch.Keys)+len(args)-1 > maxWatchKeys {
		cl.w.error("ERR too many watched keys (at most " + strconv.Itoa(maxWatchKeys) + ")")
		return
	}
	w := s.node.LocalView().Watch(args[1:])
	if cl.watch != nil {
		cl.watch.Keys = append(cl.watch.Keys, w.Keys...)
	} else {
		cl.watch = w
	}
	cl.w.ok()
}

// maxWatchKeys bounds one connection's watched keys.
const maxWatchKeys = 4096

func cmdUnwatch(s *Server, cl *client, args [][]byte) {
	cl.watch = nil
	cl.w.ok()
}

// watchAtCmd carries a relayed transaction's watch to the leader, inside
// MULTI (a leader that does not know it answers EXECABORT rather than run
// the transaction unwatched): RAFTCACHE.WATCHAT index version now key...
const watchAtCmd = "RAFTCACHE.WATCHAT"

var watchAtName = strings.ToLower(watchAtCmd)

func watchAtFrame(w *fsm.Watch) []byte {
	b := redcon.AppendArray(nil, 4+len(w.Keys))
	b = redcon.AppendBulkString(b, watchAtCmd)
	b = redcon.AppendBulkString(b, strconv.FormatUint(w.Index, 10))
	b = redcon.AppendBulkString(b, strconv.FormatUint(w.Version, 10))
	b = redcon.AppendBulkString(b, strconv.FormatInt(w.Now, 10))
	for _, k := range w.Keys {
		b = redcon.AppendBulk(b, k)
	}
	return b
}

func cmdWatchAt(s *Server, cl *client, args [][]byte) {
	if !cl.forwarded || cl.tx == nil {
		cl.w.error("ERR " + watchAtCmd + " is for relays between members, inside MULTI")
		return
	}
	idx, err1 := strconv.ParseUint(string(args[1]), 10, 64)
	ver, err2 := strconv.ParseUint(string(args[2]), 10, 64)
	now, err3 := strconv.ParseInt(string(args[3]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		cl.tx.dirty = true
		cl.w.error("ERR syntax error")
		return
	}
	cl.tx.watch = &fsm.Watch{Index: idx, Version: ver, Now: now, Keys: args[4:]}
	cl.w.ok()
}

func cmdExec(s *Server, cl *client, args [][]byte) {
	tx := cl.tx
	if tx == nil {
		cl.w.error("ERR EXEC without MULTI")
		return
	}
	watch := cl.watch
	if tx.watch != nil {
		watch = tx.watch
	}
	cl.tx, cl.watch = nil, nil
	if tx.dirty {
		cl.w.error("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	for _, it := range tx.items { // again: the token file may have been reloaded since they were queued
		if msg := s.authorize(cl, it.name, it.cmd, it.kind); msg != "" {
			cl.w.error("EXECABORT Transaction discarded: " + msg)
			return
		}
	}
	s.execTx(cl, &item{txn: tx.items, watch: watch, reqID: tx.reqID, sent: tx.sent, after: tx.after}, 0)
}

// execTx runs a transaction as Redis does: its commands in order, with no
// other client's command between them, each seeing the effects of those
// before it; a command that fails at run time (INCR on a non-number)
// fails alone. A transaction that writes is one unit of one Raft entry,
// its reads answered inside the entry; a read-only one is answered from
// one view without an entry. On a follower the whole transaction is
// relayed to the leader (unless it only reads and the connection is
// READONLY). Connection commands queued in it (CLIENT SETNAME, SELECT...)
// run at EXEC, in their place among the replies.
//
// tx carries the queued commands (txn), the watch, and the request id of
// a transaction a follower relayed (once.go), or a follower's own for one
// it relays (none yet: relayTx makes one).
func (s *Server) execTx(cl *client, tx *item, depth int) {
	items := tx.txn
	var engine [][][]byte
	writes, reads := false, false
	for _, it := range items {
		if it.kind != kindConn {
			engine = append(engine, it.args)
		}
		writes = writes || it.kind == kindWrite
		reads = reads || it.kind == kindRead
	}
	// A watch is a read: judged on this node's state as it stands, a
	// follower that has not applied a change of a watched key would let
	// a transaction of PINGs pass that the leader stops.
	reads = reads || tx.watch != nil
	if (writes || reads && !cl.readonly) && !cl.forwarded && !s.node.IsLeader() {
		for _, it := range items {
			if connStateCmds[it.name] {
				cl.w.error("EXECABORT Transaction discarded: " + strings.ToUpper(it.name) + " is not supported in a transaction a follower relays to the leader; send it before MULTI")
				return
			}
		}
		s.relayTx(cl, tx, depth)
		return
	}
	ctx, cancel := s.context()
	defer cancel()
	var replies []fsm.Reply
	var index uint64 // the state the reads were answered from
	switch {
	case writes:
		res, err := s.node.Exec(ctx, tx.unit(engine, tx.watch))
		if err != nil {
			s.txFailed(cl, tx, depth, err)
			return
		}
		if err := s.unitFailure(&res[0]); err != nil {
			cl.w.fail(err)
			return
		}
		// The watch stopped it. A retry's answer restored from a snapshot
		// holds ErrWatch as a plain error: a duplicate with an error and no
		// replies can be nothing else, for a transaction's unit is plain.
		if errors.Is(res[0].Err, fsm.ErrWatch) || res[0].Duplicate && res[0].Err != nil && len(res[0].Replies) == 0 {
			cl.w.reply(fsm.Reply{Kind: fsm.KindNullArray})
			return
		}
		// The reads saw the state partway through the entry: what comes
		// after them in it (the transaction's own later writes, other
		// clients' units packed after it) must invalidate them, so they
		// are registered just below the entry.
		replies, index = res[0].Replies, res[0].Index-1
	default:
		v := s.node.LocalView()
		if reads {
			var err error
			if v, err = s.view(ctx, cl); err != nil {
				s.txFailed(cl, tx, depth, err)
				return
			}
		}
		if tx.watch != nil && v.WatchBroken(tx.watch) {
			cl.w.reply(fsm.Reply{Kind: fsm.KindNullArray})
			return
		}
		for _, args := range engine {
			replies = append(replies, v.Exec(args))
		}
		index = v.Index()
	}
	cl.w.array(len(items))
	for _, it := range items {
		if it.kind == kindConn {
			if cl.forwarded && connStateCmds[it.name] {
				cl.w.error("ERR " + strings.ToUpper(it.name) + " cannot run in a transaction relayed by a follower")
			} else {
				it.cmd.conn(s, cl, it.args)
			}
			continue
		}
		if isPublish(it.name) {
			s.publishReply(cl, it.name, it.args[1], replies[0])
		} else {
			cl.w.reply(replies[0])
		}
		cl.trackKeys(it, index)
		cl.invalidateOwn(it)
		replies = replies[1:]
	}
}

func (s *Server) txFailed(cl *client, tx *item, depth int, err error) {
	if canRelay(cl, err, depth) {
		s.relayTx(cl, tx, depth+1)
		return
	}
	cl.failAttempted(tx, err)
}

// relayTx sends the transaction to the leader as one item: MULTI, the
// queued commands and EXEC on one connection, answered with the leader's
// EXEC reply. A transaction that writes goes under a request id
// (once.go): its own if it has one already, else a new one.
func (s *Server) relayTx(cl *client, tx *item, depth int) {
	if tx.reqID == nil && tx.write() && s.relayIDs() {
		s.stampRelay(tx)
	}
	s.relayItems(cl, []*item{tx}, depth)
}

func command1(name string) []byte {
	return []byte("*1\r\n$" + strconv.Itoa(len(name)) + "\r\n" + name + "\r\n")
}
