// Package resp is raftcache's Redis protocol front: Redis clients
// (redis-py, go-redis, redis-cli, redis-benchmark) use the cache
// unchanged. The protocol is parsed and written by tidwall/redcon; every
// command is a call on a node.Node, as in the HTTP front (transport), and
// node and fsm errors are mapped to RESP errors by one table (errors.go).
//
// Every write goes through Raft. A follower relays writes, and reads
// unless the connection sent READONLY, to the leader itself over a few
// shared, pipelined connections (forward.go, relay_shared.go), so a client that knows one address reaches
// the whole cluster. Pipelined commands are answered together: a run of
// consecutive writes becomes one Raft entry, and a run of reads shares one
// leadership confirmation. The supported commands and their semantics are
// in docs/api.md ("Redis protocol").
package resp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tidwall/redcon"

	"github.com/raftcache/raftcache/auth"
	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/internal/deadline"
	"github.com/raftcache/raftcache/node"
)

// Limits and defaults.
const (
	maxRunOps   = 1024    // writes of one pipeline packed into one entry
	maxRunBytes = 1 << 20 // bytes of keys and values packed into one entry
)

// Config configures the Redis front.
type Config struct {
	Logger hclog.Logger // nil discards
	// Timeout bounds how long one command (or one pipelined run of
	// commands) waits for Raft; default 10s.
	Timeout time.Duration
	// LeaderWait is how long a command waits for a leader to be known (an
	// election, a new leader's first entry) before answering TRYAGAIN;
	// default 2s.
	LeaderWait time.Duration
	// ForwardIdle is the number of idle dedicated connections a follower
	// keeps to the leader for relaying blocked commands; default 64.
	ForwardIdle int
	// RelayConns is the number of shared, pipelined connections a
	// follower keeps to the leader (per token) for relayed commands;
	// default 2 (relay_shared.go).
	RelayConns int
	// Version is reported by INFO and HELLO as raftcache_version.
	Version string

	// Auth, if set, requires AUTH (or HELLO ... AUTH) with a token of the
	// token file before any other command, and a role per command: read
	// for reads, write for writes (docs/security.md).
	Auth *auth.Tokens
	// TLS, if set, makes the port TLS-only (with client certificates if
	// it requires them).
	TLS *tls.Config
	// ForwardTLS is the client side of relay connections to the leader's
	// Redis port; set it when the members serve TLS.
	ForwardTLS *tls.Config
	// Limits against hostile or broken clients; zero values take the
	// defaults in limits.go.
	Limits Limits
}

// Node is what the Redis front asks of the cluster member it serves:
// *node.Node, or a fake in tests of parsing, framing and the error table.
type Node interface {
	ID() string
	IsLeader() bool
	Leader() (node.Member, bool)
	Members() ([]node.Member, error)
	Status() node.Status
	ReadStats() node.ReadStats
	MaxMemory() int64
	MaxMemoryPolicy() fsm.EvictPolicy
	MaxValueSize() int64
	// CheckCommand refuses a command over the node's limits or unknown
	// to the engine, before it is queued or proposed.
	CheckCommand(args [][]byte) error
	// View pins one state after the consistency gate; LocalView pins
	// the node's current state without one.
	View(ctx context.Context, opt node.ReadOptions) (*fsm.View, error)
	LocalView() *fsm.View
	// Exec runs units of commands through the log.
	Exec(ctx context.Context, units ...fsm.Unit) ([]fsm.Result, error)
	WaitForLeader(ctx context.Context) error
	// WaitScript waits until this node's state holds a script (a SCRIPT
	// LOAD relayed to the leader, before the EVALSHA that follows).
	WaitScript(ctx context.Context, sha string) error
	// Hub is the node's change fan-out: pub/sub and tracking.
	Hub() *node.Hub
	// Block runs a blocking command for a client on the leader
	// (blocking.go); BlockingStats and CountLostPop keep its counts.
	Block(ctx context.Context, reqID []byte, args [][]byte) (fsm.Reply, error)
	BlockingStats() node.BlockingStats
	CountLostPop()
	// ClusterLevel is the cluster's feature level: from
	// fsm.LevelReplyBudget on, relayed writes carry request ids (once.go).
	ClusterLevel() uint32
	// AppliedIndex is the last log index this node's state applied.
	AppliedIndex() uint64
}

// Server serves the Redis protocol for one node.
type Server struct {
	node        Node
	cfg         Config
	logger      hclog.Logger
	fwd         *forwarder
	deadlines   deadline.Shared // command deadlines, one shared context per 100 ms step
	reqIDs      *reqIDs         // request ids of blocked commands
	relayReqIDs *reqIDs         // request ids of relayed writes (once.go)
	started     time.Time

	ln     *drainListener
	served chan struct{}

	draining atomic.Bool
	busy     atomic.Int64 // handlers running
	nextID   atomic.Int64

	connsTotal   atomic.Uint64
	rejected     atomic.Uint64 // connections refused at MaxClients
	authFailures atomic.Uint64
	cmdsTotal    atomic.Uint64
	blocked      atomic.Int64 // this server's clients blocked now (not relays)
	// resent counts relayed writes sent to the leader again under their
	// request id (this node a follower); refusedResends the resends this
	// node, as leader, refused because their id may have been forgotten
	// (INFO stats: how often exactly-once fell back to UNKNOWN).
	resent, refusedResends atomic.Uint64

	// wakeSecret and wakeCmd wake a connection in redcon's loop (wake.go).
	wakeSecret, wakeCmd []byte

	mu      sync.Mutex
	clients map[*client]struct{}
}

// client is one connection's state.
type client struct {
	id      int64
	addr    string
	created time.Time
	name    string
	// sharedName is name for other connections' CLIENT LIST (rq reads
	// its workers' names from it); set with setName.
	sharedName atomic.Pointer[string]
	libName    string
	libVer     string
	readonly   bool // READONLY: reads are served from this node's state, however stale
	forwarded  bool // a relay connection from another member: never forward again
	authed     bool // AUTH succeeded (or no token file)
	principal  auth.Principal
	token      string // the token it authenticated with, passed on when relaying
	gen        uint64 // token file generation principal was looked up in
	limits     *limitConn
	quit       bool
	tx         *txState   // inside MULTI
	watch      *fsm.Watch // WATCH: what the connection's view saw of the watched keys
	w          writer
	lastCmd    string
	// sub is the connection's place in the node's hub: its channels, its
	// tracked keys, its queue of pushes (pubsub.go, tracking.go).
	sub      *node.Sub
	detached bool        // served by serveDetached, no longer by redcon's loop
	netConn  net.Conn    // to close a detached connection at shutdown
	track    *trackState // CLIENT TRACKING ON, as given
	caching  int8        // CLIENT CACHING YES (1) / NO (-1) for the next command
	// cachingFresh: caching was set by the command just run.
	cachingFresh bool
}

type txState struct {
	track bool // its reads are tracked (CLIENT CACHING before MULTI)
	items []*item
	dirty bool       // a command failed to queue: EXEC answers EXECABORT
	watch *fsm.Watch // a relayed transaction's watch (watchAtCmd)
	reqID []byte     // a relayed transaction's request id (txIDCmd)
	sent  int        // and its attempts before this one
	after uint64     // and the index its first attempt applies above
}

// New builds the Redis front for n. Serve starts it.
func New(n Node, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.LeaderWait <= 0 {
		cfg.LeaderWait = 2 * time.Second
	}
	if cfg.ForwardIdle <= 0 {
		cfg.ForwardIdle = 64
	}
	if cfg.RelayConns <= 0 {
		cfg.RelayConns = defaultRelayConns
	}
	cfg.Limits.setDefaults(n.MaxValueSize())
	secret, wake := newWake()
	return &Server{
		wakeSecret:  secret,
		wakeCmd:     wake,
		node:        n,
		cfg:         cfg,
		logger:      cfg.Logger,
		fwd:         newForwarder(n.ID(), cfg.Timeout+5*time.Second, cfg.ForwardIdle, cfg.RelayConns, cfg.ForwardTLS, int(cfg.Limits.MaxRelayReply)),
		started:     time.Now(),
		reqIDs:      newReqIDs("blk"),
		relayReqIDs: newReqIDs("rly"),
		served:      make(chan struct{}),
		clients:     map[*client]struct{}{},
	}
}

// Serve accepts connections on ln until Shutdown or Close. It returns nil
// after a shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.draining.Load() { // Shutdown came first
		s.mu.Unlock()
		ln.Close()
		close(s.served)
		return nil
	}
	needAuth := s.cfg.Auth != nil
	s.ln = newDrainListener(ln, func(c net.Conn) net.Conn {
		return newLimitConn(c, s.cfg.TLS, &s.cfg.Limits, needAuth)
	})
	rs := redcon.NewServer(ln.Addr().String(), s.handle, s.accept, s.closed)
	s.mu.Unlock()
	defer close(s.served)
	stop := make(chan struct{})
	defer close(stop)
	go s.followLeader(stop)
	return rs.Serve(s.ln)
}

// followLeader tells the forwarder of each change of leader as this node
// learns it (forwarder.followLocked), so relayed calls waiting on a former
// leader are sent again to the new one at once, not after their deadline.
func (s *Server) followLeader(stop <-chan struct{}) {
	t := time.NewTicker(blockPoll)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if s.node.IsLeader() {
			s.fwd.follow("")
		} else if m, ok := s.node.Leader(); ok && m.ID != s.node.ID() && m.RESPAddr != "" {
			s.fwd.follow(m.RESPAddr)
		}
	}
}

// Shutdown stops accepting connections, lets the commands being served
// finish (until ctx ends), then closes every connection. Clients see their
// connection closed between replies and reconnect elsewhere.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return nil
	}
	ln.stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for s.busy.Load() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		}
	}
	ln.release()
	s.mu.Lock()
	for cl := range s.clients { // redcon no longer knows the detached ones
		if cl.netConn != nil {
			cl.netConn.Close()
		}
	}
	s.mu.Unlock()
	select {
	case <-s.served:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.fwd.close()
	return err
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Shutdown(ctx)
	return nil
}

func (s *Server) accept(conn redcon.Conn) bool {
	if s.draining.Load() {
		return false
	}
	lc, _ := conn.NetConn().(*limitConn)
	s.mu.Lock()
	full := len(s.clients) >= s.cfg.Limits.MaxClients
	s.mu.Unlock()
	if full {
		s.rejected.Add(1)
		if lc != nil && s.cfg.TLS == nil { // under TLS a reply would need a handshake here
			_ = lc.raw.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = lc.raw.Write([]byte("-ERR max number of clients reached\r\n"))
		}
		return false
	}
	cl := &client{id: s.nextID.Add(1), addr: conn.RemoteAddr(), created: time.Now(), w: writer{proto: 2},
		authed: s.cfg.Auth == nil, limits: lc}
	if lc != nil {
		cl.w.out = lc
	}
	cl.sub = s.node.Hub().NewSub(cl.id, int(s.cfg.Limits.MaxPushBytes))
	if lc != nil {
		lc.wakeCmd = s.wakeCmd
		cl.sub.SetWake(lc.poke)
	}
	conn.SetContext(cl)
	s.connsTotal.Add(1)
	s.mu.Lock()
	s.clients[cl] = struct{}{}
	s.mu.Unlock()
	return true
}

func (s *Server) closed(conn redcon.Conn, err error) {
	if cl, ok := conn.Context().(*client); ok && !cl.detached {
		cl.sub.Close()
		s.mu.Lock()
		delete(s.clients, cl)
		s.mu.Unlock()
	}
}

// handle is called by redcon with the first command of what one read
// delivered; the rest of that pipeline is taken at once, so the commands
// are answered together and redcon flushes one write.
func (s *Server) handle(conn redcon.Conn, cmd redcon.Command) {
	s.busy.Add(1)
	defer s.busy.Add(-1)
	if s.draining.Load() {
		conn.Close()
		return
	}
	cl := conn.Context().(*client)
	cmds := append([]redcon.Command{cmd}, conn.ReadPipeline()...)
	s.process(cl, cmds)
	conn.WriteRaw(cl.w.b)
	if cap(cl.w.b) > 1<<20 {
		cl.w.b = nil
	} else {
		cl.w.b = cl.w.b[:0]
	}
	if cl.quit || cl.w.broken {
		conn.Close()
		return
	}
	if !cl.needsDetach() {
		if cl.limits != nil && !cl.forwarded {
			cl.limits.arm(cl.sub.Pending)
		}
		return
	}
	cl.detached = true
	if cl.limits != nil {
		cl.limits.leaveLoop()
	}
	dc := conn.Detach()
	s.mu.Lock()
	cl.netConn = dc.NetConn()
	s.mu.Unlock()
	go s.serveDetached(dc, cl)
}

// item is one parsed command, or (txn set) a transaction to relay whole.
type item struct {
	raw   []byte
	name  string
	cmd   *command
	kind  kind // cmd's kind, or kindRead for a script that cannot write
	args  [][]byte
	txn   []*item    // a MULTI ... EXEC relayed as one: its queued commands
	watch *fsm.Watch // and its watch
	track bool       // a read whose keys the connection tracks
	// reqID is the request id a relayed write (a PUBLISH: pubsub.go; any
	// other write or a transaction: once.go) is sent under, so that it can
	// be sent again; on the leader, the id it was relayed with.
	reqID []byte
	sent  int // times sent under reqID and left without a reply
	// after (cluster level 5 on) is this follower's applied index when
	// reqID was made: the first attempt can only apply above it, which
	// lets the leader judge a resend by the log (fsm.Unit.After); 0 none.
	after uint64
	// counted: a PUBLISH's relay frame carries its attempt count (the
	// cluster was at level 4 when the id was made).
	counted bool
	// loaded: a relayed SCRIPT LOAD the leader answered with its sha,
	// which this node then waits to apply (awaitScripts).
	loaded bool
}

// write says whether the item may change keys: when its outcome is
// unknown, the client must be told so.
func (it *item) write() bool {
	if it.reqID != nil && it.txn == nil && isPublish(it.name) {
		return false // a message, not a key; its id makes it safe to send again
	}
	for _, q := range it.txn {
		if q.kind == kindWrite {
			return true
		}
	}
	return it.cmd != nil && it.kind == kindWrite
}

// unit is the state machine's unit for the item's commands: under its
// request id, if any, marked a resend after a lost reply, and then with
// the index its first attempt applies above (fsm.Unit.After).
func (it *item) unit(cmds [][][]byte, watch *fsm.Watch) fsm.Unit {
	u := fsm.Unit{Cmds: cmds, Watch: watch, ReqID: it.reqID, Resend: it.sent > 0 && it.reqID != nil}
	if u.Resend {
		u.After = it.after
	}
	return u
}

// resendable says whether the item may be sent to the leader again after
// its reply was lost: it changes nothing, or its request id makes a second
// attempt answer the first one's replies.
func (it *item) resendable() bool { return it.reqID != nil || !it.effect() }

// effect says whether running the item changes anything: a write, a
// PUBLISH (a message delivered) or a relayed CONFIG SET (which, sent
// again without an id, could undo a later one of another client).
func (it *item) effect() bool {
	return it.write() || it.txn == nil && (isPublish(it.name) || it.name == "config")
}

// mayHaveRun says whether the item may have been carried out on the
// leader: it has an effect and an attempt sent it.
func (it *item) mayHaveRun() bool { return it.effect() && it.sent > 0 }

// frames are the raw commands that relay the item: a transaction is
// MULTI, its commands and EXEC, whose reply alone is the client's.
func (it *item) frames() [][]byte {
	switch {
	case it.txn != nil:
	case it.reqID == nil:
		return [][]byte{it.raw}
	case isPublish(it.name):
		attempt := 0 // below level 4: the frame without the count
		if it.counted {
			attempt = it.sent + 1
		}
		return [][]byte{relayPublishFrame(it.reqID, it.args, attempt, it.after)}
	default:
		return [][]byte{onceFrame(it.reqID, it.sent+1, it.after, it.args)}
	}
	f := [][]byte{command1("MULTI")}
	if it.watch != nil {
		f = append(f, watchAtFrame(it.watch))
	}
	if it.reqID != nil {
		f = append(f, txIDFrame(it.reqID, it.sent+1, it.after))
	}
	for _, q := range it.txn {
		f = append(f, q.raw)
	}
	return append(f, command1("EXEC"))
}

// process answers a pipeline in order. Consecutive commands of one kind
// are gathered into a run: writes into one Raft entry, reads onto one
// view, relayed commands into one round trip to the leader.
func (s *Server) process(cl *client, cmds []redcon.Command) {
	r := runner{s: s, cl: cl}
	for _, c := range cmds {
		if cl.quit {
			break
		}
		if s.isWake(c.Args) {
			continue // not the client's: no reply, no state
		}
		s.cmdsTotal.Add(1)
		it := &item{raw: c.Raw, args: c.Args, name: commandName(c.Args[0])}
		if it.name == onceName {
			if msg := unwrapOnce(cl, it); msg != "" {
				r.flush()
				if cl.tx != nil {
					cl.tx.dirty = true
				}
				cl.w.error(msg)
				continue
			}
		}
		it.cmd = commands[it.name]
		it.kind = s.kindOf(it)
		cl.lastCmd = it.name
		if cl.cachingFresh { // CLIENT CACHING holds for the next command only
			cl.cachingFresh = false
		} else {
			cl.caching = 0
		}
		if msg := s.authorize(cl, it.name, it.cmd, it.kind); msg != "" {
			r.flush()
			if cl.tx != nil && !txControl[it.name] {
				cl.tx.dirty = true
			}
			cl.w.error(msg)
			continue
		}
		if cl.tx == nil && s.refuseSubscribed(cl, it) {
			r.flush()
			continue
		}
		if it.kind == kindRead {
			it.track = cl.wantTrack()
			if cl.tx != nil {
				it.track = cl.tx.track
			}
		}
		if cl.tx != nil && !txControl[it.name] {
			r.flush()
			s.queue(cl, it)
			continue
		}
		if err := s.check(it); err != nil {
			r.flush()
			cl.w.fail(err)
			continue
		}
		switch {
		case it.cmd.blocking:
			r.flush()
			s.block(cl, it, nil)
			cl.invalidateOwn(it)
		case it.kind == kindConn:
			r.flush()
			it.cmd.conn(s, cl, it.args)
		case it.kind == kindLocal:
			r.flush()
			cl.w.reply(s.node.LocalView().Exec(it.args))
		default:
			r.add(it)
		}
	}
	r.flush()
}

// kindOf is how an item runs: its command's kind, except that a script
// that cannot write (EVAL of a no-writes script, EVALSHA of one cached
// here; SCRIPT EXISTS) runs as a read.
func (s *Server) kindOf(it *item) kind {
	if it.cmd == nil {
		return kindConn
	}
	if it.cmd.kind == kindWrite && scriptCmds[it.name] && !fsm.Writes(it.args, s.node.LocalView()) {
		return kindRead
	}
	return it.cmd.kind
}

var scriptCmds = map[string]bool{"eval": true, "evalsha": true, "script": true}

// check refuses what the command table and the node's limits refuse,
// before anything runs: an unknown command, a wrong arity, a key or value
// over a limit.
func (s *Server) check(it *item) error {
	if it.cmd == nil {
		return replyError(fsm.UnknownCommandText(it.args))
	}
	if !it.cmd.arityOK(len(it.args)) {
		return wrongArgs(it.name)
	}
	if it.cmd.kind == kindConn {
		return nil
	}
	return s.node.CheckCommand(it.args)
}

// relayOnly says whether name is one of the relay's own commands, which
// a follower sends on a relay connection and never inside a transaction.
func relayOnly(name string) bool {
	switch name {
	case blockName, relayPublishName, onceName, forwardedName:
		return true
	}
	return false
}

// queue adds a command to the open transaction; a command refused here
// makes EXEC answer EXECABORT, as in Redis.
func (s *Server) queue(cl *client, it *item) {
	if pubsubCmds[it.name] {
		cl.tx.dirty = true
		cl.w.error("ERR " + strings.ToUpper(it.name) + " inside MULTI is not supported by raftcache")
		return
	}
	if relayOnly(it.name) {
		// The relay's own commands (a blocked pop's RAFTCACHE.BLOCK, a
		// relayed PUBLISH) run on a relay connection only, never queued:
		// run by a relayed EXEC they would block, or publish on, the
		// connection the follower shares among its clients.
		cl.tx.dirty = true
		cl.w.error("ERR " + strings.ToUpper(it.name) + " inside MULTI is not allowed")
		return
	}
	if err := s.check(it); err != nil {
		cl.tx.dirty = true
		cl.w.fail(err)
		return
	}
	cl.tx.items = append(cl.tx.items, it)
	cl.w.status("QUEUED")
}

// runner gathers a run of commands that are executed together.
type runner struct {
	s     *Server
	cl    *client
	kind  runKind
	items []*item
	size  int
	depth int // > 0 when re-running relayed commands locally
}

type runKind uint8

const (
	runNone   runKind = iota
	runWrite          // writes: one Raft entry, a unit per command
	runRead           // reads: one view
	runRemote         // relayed to the leader in one round trip
)

func (r *runner) add(it *item) {
	s, cl := r.s, r.cl
	kind := runRead
	switch {
	case r.depth == 0 && !cl.forwarded && !s.node.IsLeader() && (it.kind == kindWrite || !cl.readonly):
		kind = runRemote
	case it.kind == kindWrite:
		kind = runWrite
	}
	if kind == runRemote && it.reqID == nil {
		switch {
		case isPublish(it.name):
			it.reqID, it.counted, it.after = newPubID(), s.relayIDs(), s.relayAfter()
		case it.kind == kindWrite && s.relayIDs():
			s.stampRelay(it)
		}
	}
	size := 0
	for _, a := range it.args {
		size += len(a)
	}
	if r.kind != kind || (kind == runWrite && len(r.items) > 0 && (len(r.items) >= maxRunOps || r.size+size > maxRunBytes)) {
		r.flush()
	}
	r.kind = kind
	r.items = append(r.items, it)
	r.size += size
}

func (r *runner) flush() {
	if len(r.items) > 0 {
		switch r.kind {
		case runWrite:
			r.s.runWrites(r.cl, r.items, r.depth)
		case runRead:
			r.s.runReads(r.cl, r.items, r.depth)
		case runRemote:
			r.s.relayItems(r.cl, r.items, r.depth)
			r.s.awaitScripts(r.items)
		}
	}
	r.kind, r.items, r.size = runNone, nil, 0
}

// awaitScripts waits, after SCRIPT LOADs were relayed to the leader,
// until this node has applied them: redis-py answers NOSCRIPT with
// SCRIPT LOAD and then EVALSHA, which a READONLY connection may run
// here. A load that does not arrive in time leaves the reply as it is
// (EVALSHA then answers NOSCRIPT, and the client loads again). A load
// the leader refused (a script that does not compile) is never applied:
// its error is answered at once.
func (s *Server) awaitScripts(items []*item) {
	for _, it := range items {
		if it.loaded {
			ctx, cancel := s.context()
			_ = s.node.WaitScript(ctx, fsm.ScriptSHA(it.args[2]))
			cancel()
		}
	}
}

// runLocal runs relayed items on this node, which has meanwhile become
// the leader.
func (s *Server) runLocal(cl *client, items []*item, depth int) {
	r := runner{s: s, cl: cl, depth: depth}
	for _, it := range items {
		if it.txn != nil {
			r.flush()
			s.execTx(cl, it, depth)
			continue
		}
		r.add(it)
	}
	r.flush()
}

// canRelay says whether a command that failed with ErrNotLeader (nothing
// applied) may be sent on to the leader.
func canRelay(cl *client, err error, depth int) bool {
	return errors.Is(err, node.ErrNotLeader) && !cl.forwarded && depth < 2
}

// context bounds one command (or run) by Config.Timeout. Commands share
// deadline contexts in 100 ms buckets (internal/deadline): a timer per GET was
// about 5% of a busy leader's CPU.
func (s *Server) context() (context.Context, context.CancelFunc) {
	return s.deadlines.Context(s.cfg.Timeout), func() {}
}

// runWrites proposes a run of writes: each command is a unit of its own
// (a failure is that command's alone), all in one entry, in order, shared
// with other clients' writes.
func (s *Server) runWrites(cl *client, items []*item, depth int) {
	ctx, cancel := s.context()
	defer cancel()
	units := make([]fsm.Unit, len(items))
	for i, it := range items {
		units[i] = it.unit([][][]byte{it.args}, nil)
	}
	results, err := s.node.Exec(ctx, units...)
	if err != nil {
		if canRelay(cl, err, depth) {
			s.relayItems(cl, items, depth+1)
			return
		}
		for _, it := range items {
			cl.failAttempted(it, err)
		}
		return
	}
	for i, res := range results {
		if err := s.unitFailure(&res); err != nil {
			cl.w.fail(err)
			continue
		}
		if isPublish(items[i].name) {
			s.publishReply(cl, items[i].name, items[i].args[1], res.Replies[0])
			continue
		}
		cl.w.reply(res.Replies[0])
		cl.invalidateOwn(items[i])
	}
}

// runReads answers a run of reads from one view: after one shared
// leadership round on the leader (strong), or at once (READONLY).
func (s *Server) runReads(cl *client, items []*item, depth int) {
	ctx, cancel := s.context()
	defer cancel()
	v, err := s.view(ctx, cl)
	if err != nil {
		if canRelay(cl, err, depth) && !cl.readonly {
			s.relayItems(cl, items, depth+1)
			return
		}
		for range items {
			cl.w.fail(err)
		}
		return
	}
	for _, it := range items {
		cl.w.reply(v.Exec(it.args))
		cl.trackKeys(it, v.Index())
	}
}

// view pins the state the client's reads are answered from, riding out
// the moment after an election when the new leader has not yet applied an
// entry of its term.
func (s *Server) view(ctx context.Context, cl *client) (*fsm.View, error) {
	opt := node.ReadOptions{Consistency: node.Strong}
	if cl.readonly {
		opt.Consistency = node.Stale
	}
	v, err := s.node.View(ctx, opt)
	if err == nil || !errors.Is(err, node.ErrNoLeader) {
		return v, err
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.LeaderWait)
	defer cancel()
	if s.node.WaitForLeader(wctx) != nil {
		return nil, err
	}
	return s.node.View(ctx, opt)
}

// leaderAddr returns the leader's Redis-protocol address, waiting up to
// LeaderWait for one to be known; self is true when this node leads.
func (s *Server) leaderAddr(ctx context.Context) (addr string, self bool, err error) {
	m, self, err := s.leaderMember(ctx)
	return m.RESPAddr, self, err
}

// leaderMember is leaderAddr's leader, whole (its id too, read with the
// address in one look).
func (s *Server) leaderMember(ctx context.Context) (leader node.Member, self bool, err error) {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.LeaderWait)
	defer cancel()
	if s.node.WaitForLeader(wctx) != nil {
		return node.Member{}, false, replyError(msgNoLeader)
	}
	if s.node.IsLeader() {
		return node.Member{}, true, nil
	}
	m, ok := s.node.Leader()
	switch {
	case !ok || m.ID == s.node.ID():
		return node.Member{}, false, replyError(msgNoLeader)
	case m.RESPAddr == "":
		return node.Member{}, false, replyError("TRYAGAIN the leader " + m.ID + " has no Redis-protocol address registered yet (does it run with --resp-addr?)")
	}
	return m, false, nil
}

// relayItems sends a run of commands (or a transaction, as one item) to
// the leader and copies its replies, or runs them here if this node has
// become the leader. This is the front's one relay loop. When the leader
// cannot be reached and what is left unanswered is safe to send again
// (nothing was sent, only reads are left, or writes under request ids:
// once.go), it tries again, with the leader as this node then knows it,
// for up to LeaderWait (the command timeout with request ids): a client
// of a follower rides out the leader's crash and the election.
func (s *Server) relayItems(cl *client, items []*item, depth int) {
	ctx, cancel := s.context()
	defer cancel()
	retryUntil := time.Now().Add(s.cfg.LeaderWait)
	if withIDs(items) {
		// Safe to send again, and worth it: ride out a leader's crash.
		retryUntil = time.Now().Add(s.cfg.Timeout)
	}
	// Tracked reads answered by the leader are registered at this node's
	// index before the relay: lower than the leader's, so never late.
	base := s.node.LocalView().Index()
	sent := false // items were sent, and their replies lost
	for {
		addr, self, err := s.leaderAddr(ctx)
		if err == nil && self {
			if depth < 2 {
				s.runLocal(cl, items, depth+1)
				return
			}
			err = replyError(msgNoLeader)
		}
		if err != nil {
			if (sent || withIDs(items)) && time.Now().Before(retryUntil) && sleepCtx(ctx, 50*time.Millisecond) {
				continue // an election outlasting LeaderWait: writes under ids wait it out
			}
			for _, it := range items {
				cl.failAttempted(it, err) // sent once (here or at an earlier depth): UNKNOWN for a write
			}
			return
		}
		var raws [][]byte
		var last []bool   // the frame whose reply is the client's
		var owner []*item // the item of each frame
		for _, it := range items {
			f := it.frames()
			raws = append(raws, f...)
			for i := range f {
				last = append(last, i == len(f)-1)
				owner = append(owner, it)
			}
		}
		pass := func(i int, reply []byte, err error) {
			it := owner[i]
			if err != nil { // too large: the leader ran it and answered
				cl.w.fail(relayError(err, it.write()))
				return
			}
			if refused(reply) && it.mayHaveRun() {
				// This attempt was refused, an earlier one may have run.
				cl.w.fail(unknownOutcome("the leader answered " + firstLine(reply) + " to a resend"))
				return
			}
			if it.reqID != nil && it.txn == nil && isPublish(it.name) && len(reply) > 0 && reply[0] == ':' {
				cl.w.int(int64(s.node.Hub().Receivers(string(it.args[1]), it.name == "spublish")))
			} else {
				cl.appendRelayed(reply)
			}
			it.loaded = it.name == "script" && len(reply) > 0 && reply[0] == '$' && len(it.args) == 3 &&
				strings.EqualFold(string(it.args[1]), "load")
			cl.trackKeys(it, base)
			for _, q := range it.txn {
				cl.trackKeys(q, base)
			}
			cl.invalidateOwn(it)
		}
		// A write under a request id that the leader answered TRYAGAIN or
		// UNKNOWN is sent again (once.go), with what follows it, unless a
		// later write of the run may have been carried out: sending the
		// first one again would apply it after the later one, out of the
		// client's order. So once one is met, the replies after it are
		// held until the run is over, and then either dropped (all is
		// sent again) or passed on after it.
		type held struct {
			i     int
			reply []byte
			err   error
		}
		var hold []held // hold[0]: the reply that stopped the run
		n, err := s.fwd.relay(poolKey{addr, cl.token, cl.w.proto}, raws, func(i int, reply []byte, err error) {
			if !last[i] {
				return
			}
			if len(hold) > 0 {
				hold = append(hold, held{i, bytes.Clone(reply), err})
				return
			}
			it := owner[i]
			if err == nil && it.reqID != nil && retryableReply(it, reply) && allResendable(items[slices.Index(items, it):]) {
				hold = append(hold, held{i, bytes.Clone(reply), nil})
				return
			}
			pass(i, reply, err)
		})
		if len(hold) > 0 {
			// Resend only when no later write can have run: all of the
			// run's replies came, and each later write was refused
			// (TRYAGAIN: not applied). An UNKNOWN, a reply, or no reply
			// may mean it ran.
			resend := err == nil
			for _, h := range hold[1:] {
				if it := owner[h.i]; it.write() && (h.err != nil || !refused(h.reply)) {
					resend = false
				}
			}
			if resend {
				n, err = hold[0].i, fmt.Errorf("the leader answered %s", firstLine(hold[0].reply))
			} else {
				for _, h := range hold {
					pass(h.i, h.reply, h.err)
				}
			}
		}
		done := 0 // items whose reply was passed on
		for i := 0; i < n; i++ {
			if last[i] {
				done++
			}
		}
		items = items[done:]
		if len(items) == 0 {
			return
		}
		s.logger.Debug("relay to the leader failed", "leader", addr, "error", err)
		if !errors.Is(err, errNotSent) {
			sent = true
			for _, it := range items {
				it.sent++ // may have been applied: the next attempt is a resend
			}
		}
		if (errors.Is(err, errNotSent) || allResendable(items)) && time.Now().Before(retryUntil) && sleepCtx(ctx, 50*time.Millisecond) {
			for _, it := range items {
				if it.reqID != nil && it.sent > 0 {
					s.resent.Add(1)
				}
			}
			continue
		}
		for _, it := range items {
			// An attempt before this one may have sent it, even when this
			// one could not (errNotSent): only never sent is "not applied".
			cl.w.fail(relayError(err, it.mayHaveRun()))
		}
		return
	}
}

// withIDs says whether every item is safe to send again and one of them
// carries a request id: a write worth seeing through a leader's crash.
func withIDs(items []*item) bool {
	return allResendable(items) && slices.ContainsFunc(items, func(it *item) bool { return it.reqID != nil })
}

func allResendable(items []*item) bool {
	for _, it := range items {
		if !it.resendable() {
			return false
		}
	}
	return true
}

// failAttempted answers it with err, unless err says "not applied"
// (TRYAGAIN, which go-redis retries by itself) while an earlier attempt,
// relayed to a former leader, may have carried it out: then UNKNOWN.
func (cl *client) failAttempted(it *item, err error) {
	if it.mayHaveRun() && strings.HasPrefix(errorReply(err), "TRYAGAIN") {
		cl.w.fail(unknownOutcome("an earlier attempt may have been applied; now: " + errorReply(err)))
		return
	}
	cl.w.fail(err)
}

// relayError is the answer for a relayed command that got no reply; ran
// says whether it may have been carried out (sent, with an effect): then
// UNKNOWN, never TRYAGAIN, which says "not applied" and which go-redis
// retries by itself.
func relayError(err error, ran bool) error {
	if errors.Is(err, errReplyTooLarge) {
		if ran {
			// The leader ran it and answered: sending it again, as the
			// read's advice says, would apply its writes twice.
			return replyError("ERR applied, but its reply too large to relay through a follower: read what it changed from the leader, or with READONLY; do not send it again")
		}
		return replyError("ERR " + err.Error())
	}
	if !ran {
		return replyError("TRYAGAIN cannot reach the leader: " + err.Error())
	}
	return unknownOutcome("connection to the leader lost: " + err.Error())
}

// unknownOutcome is the UNKNOWN reply, with why.
func unknownOutcome(why string) error { return replyError(msgUnknown + " (" + why + ")") }

// appendRelayed adds a reply relayed from the leader, which wrote it in
// this client's protocol (poolKey).
func (cl *client) appendRelayed(reply []byte) {
	cl.w.b = append(cl.w.b, reply...)
	cl.w.maybeSpill()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// drainListener lets Shutdown stop accepting (the port is closed at once)
// while redcon keeps its connections open until release: redcon closes
// every connection as soon as its Accept fails.
type drainListener struct {
	net.Listener
	wrap                  func(net.Conn) net.Conn
	stopOnce, releaseOnce sync.Once
	stopped               chan struct{}
	released              chan struct{}
}

func newDrainListener(ln net.Listener, wrap func(net.Conn) net.Conn) *drainListener {
	return &drainListener{Listener: ln, wrap: wrap, stopped: make(chan struct{}), released: make(chan struct{})}
}

func (l *drainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		select {
		case <-l.stopped:
			<-l.released
			return nil, net.ErrClosed
		default:
		}
		return c, err
	}
	return l.wrap(c), nil
}

func (l *drainListener) stop() {
	l.stopOnce.Do(func() { close(l.stopped); l.Listener.Close() })
}

func (l *drainListener) release() {
	l.stop()
	l.releaseOnce.Do(func() { close(l.released) })
}

// Close is called by redcon when it stops.
func (l *drainListener) Close() error {
	l.release()
	return nil
}
