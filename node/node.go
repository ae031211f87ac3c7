// Package node is one raftcache cluster member: it owns the Raft instance,
// its log and stable store (stores.go), the file snapshot store and the cache FSM,
// and offers the operations the fronts (HTTP, and later others) need:
// replicated writes, reads at a chosen consistency, and membership.
//
// node knows nothing about HTTP. It reports failures as the sentinel errors
// below, and the fronts map them to their protocol.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
)

// Errors returned by Node. Each says whether the request took effect, which
// is what a caller needs to decide about retrying.
var (
	// ErrNotLeader: this node is not the leader; nothing was done. Send the
	// request to Leader() instead.
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader: the cluster has no leader able to serve right now (an
	// election is running, or a new leader has not yet committed an entry
	// of its term); nothing was done. Retry shortly.
	ErrNoLeader = errors.New("no leader available")
	// ErrUnknownOutcome: the write was proposed but its fate is unknown
	// (leadership lost or deadline passed while it was in flight). It may
	// still commit. Do not blindly retry a non-idempotent write.
	ErrUnknownOutcome = errors.New("write outcome unknown")
	// ErrUnavailable: the request was not applied because Raft could not
	// take it in time or is shutting down. Safe to retry.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrIndexTimeout: a read waiting for the local state to reach an
	// index gave up at its deadline.
	ErrIndexTimeout = errors.New("timed out waiting for index")
	// ErrTooStale: this follower has not heard from a leader within the
	// caller's max staleness.
	ErrTooStale = errors.New("follower too stale")
	// ErrUnknownMember: no member has that id.
	ErrUnknownMember = errors.New("unknown member")
	// ErrClosed: the node has been closed.
	ErrClosed = errors.New("node closed")
	// ErrInvalid: a request that cannot make sense in the cluster's state
	// (a leadership transfer to itself or to a non-voter).
	ErrInvalid = errors.New("invalid request")
	// ErrTooMany: a batch with more operations than one entry may hold.
	ErrTooMany = errors.New("too many operations")
	// ErrTooLarge: a value that can never fit under the memory limit.
	ErrTooLarge = errors.New("value can never fit under max memory")
	// ErrOOM: the cache is over MaxMemory and its policy (noeviction, or
	// a volatile policy with no key that has an expiry) evicts nothing: a
	// write that may grow memory is refused. Nothing was done.
	ErrOOM = errors.New("command not allowed when used memory > 'maxmemory'.")
	// ErrKeyTooLarge: a key longer than MaxKeySize.
	ErrKeyTooLarge = errors.New("key too large")
	// ErrValueTooLarge: an argument larger than Config.MaxValueSize.
	ErrValueTooLarge = errors.New("value too large")
	// ErrFeatureLevel: the cluster's feature level is too low for the
	// request (an entry type not every member knows yet), or a joining
	// member's binary is older than the cluster's level. Nothing was done.
	ErrFeatureLevel = errors.New("feature level too low")
	// ErrNoState: Open refused an empty data directory (Config.NeedState).
	ErrNoState = errors.New("this data directory holds no Raft state, and the node may neither form a cluster nor wait to be added")
	// ErrPoisoned: this node met a log entry it cannot apply (written by
	// a newer binary) and stopped; it serves nothing until it runs a
	// binary that knows the entry. Nothing was done.
	ErrPoisoned = errors.New("node stopped at a log entry it cannot apply")
	// ErrWedged: Raft refuses every write on this leader because of a
	// leadership transfer that never ended (transferguard.go); only a
	// restart clears it.
	ErrWedged = errors.New("leader wedged by a leadership transfer that never ended")
	// ErrReplyLost: a retried request (same request id) had been applied,
	// but its reply is no longer held (dropped from the bounded table of
	// kept replies, or the state was restored from a snapshot that kept
	// none). It was applied once and is not applied again; read the keys
	// to learn its effect.
	ErrReplyLost = errors.New("applied once, but its reply is no longer held; read the keys to learn its effect")
)

// Config describes one node. Zero durations and counts take the defaults
// noted on each field.
type Config struct {
	ID       string // unique, stable member id
	RaftAddr string // bind address of the Raft transport
	// RaftAdvertise is the address other members dial (a DNS name or an
	// IP, kept as given and resolved at each dial); default RaftAddr, or
	// this host's name for a wildcard bind (see AdvertiseAddr).
	RaftAdvertise string
	// HTTPAddr and RESPAddr are this node's advertised client API and
	// Redis-protocol addresses, replicated to all members; a wildcard IP
	// is refused (AdvertiseAddr makes one from a bound address).
	HTTPAddr string
	RESPAddr string // "" if it serves no Redis protocol
	DataDir  string // the log store (pebble/, raft.db or wal/) and snapshots/ live here
	// LogStore is LogStorePebble, LogStoreBolt or LogStoreWAL; "" = the
	// one DataDir holds, pebble for a new one (node/stores.go).
	LogStore string
	// WALSegmentSize is the WAL's segment file size in bytes; 0 = 64 MiB.
	WALSegmentSize int
	// PeerTLS, if set, makes the Raft transport mutual TLS (see
	// PeerTLSConfig); otherwise it is plaintext and unauthenticated, and
	// the Raft address must stay on a private interface.
	PeerTLS *tls.Config
	// Bootstrap forms a one-node cluster, with a new cluster id, if
	// DataDir holds no Raft state. Without it a new node waits to be
	// added, or to Form a cluster with others.
	Bootstrap bool
	// NeedState makes Open refuse a DataDir without Raft state
	// (ErrNoState): the CLI sets it for a node on a non-loopback address
	// given neither --bootstrap, --join nor --bootstrap-expect, which
	// neither forms a cluster nor asks to be added; a member started so
	// on a wiped disk would otherwise form a cluster of its own beside
	// the real one and take writes there.
	NeedState bool

	Logger hclog.Logger     // nil discards
	Clock  func() time.Time // nil = time.Now; the leader stamps commands with it

	HeartbeatTimeout time.Duration // default 1s (hashicorp/raft's)
	CommitTimeout    time.Duration // default DefaultCommitTimeout (raftConfig explains)
	// SyncLeaderAppends makes the leader sync each append before it
	// replicates it, as hashicorp/raft does alone; by default a pebble
	// store's leader syncs in parallel with replication (durable.go).
	SyncLeaderAppends bool
	ElectionTimeout   time.Duration // default 1s
	SnapshotThreshold uint64        // entries between snapshots; default 8192
	SnapshotInterval  time.Duration // how often to check the threshold; default 30s
	TrailingLogs      uint64        // entries kept after a snapshot; default 10240
	ApplyTimeout      time.Duration // bound on one write when ctx has none; default 10s
	// CatchUpHold bounds how long a node restarted without a clean stop
	// keeps out of elections while no leader contacts it (catchup.go);
	// default five election timeouts.
	CatchUpHold time.Duration
	// StuckTransferAfter is how long Raft may refuse writes as "leadership
	// transfer in progress" on this leader before the node counts as
	// wedged (transferguard.go); default two election timeouts plus 50s.
	StuckTransferAfter time.Duration
	// MaxMemory bounds the accounted bytes of keys, values and per-entry
	// overhead; above it the leader evicts least recently used keys. 0 =
	// unbounded.
	MaxMemory int64
	// MaxMemoryPolicy is what happens above MaxMemory (Redis's
	// maxmemory-policy): the zero value, noeviction, refuses writes that
	// may grow memory with ErrOOM, so that no queue is ever evicted
	// silently; allkeys-lru is the pure cache's choice (fsm/evict.go).
	MaxMemoryPolicy fsm.EvictPolicy
	// MaxValueSize bounds every argument of a write command (values),
	// checked before proposing and stamped into entries for the engine's
	// own checks; default DefaultMaxValueSize.
	MaxValueSize int64

	// Incarnation is the random id of this node's data directory,
	// replicated in its member record; "" reads it from DataDir (and
	// creates it there on first start).
	Incarnation string
	// FetchLevel asks a member for the feature level of the binary it
	// runs (an old binary that does not know the question is level 1; an
	// error means unknown). The leader raises the cluster's feature level
	// only when every member answered; nil: it never raises it.
	FetchLevel func(ctx context.Context, m Member) (uint32, error)
	// FeatureLevel is the highest feature level this node applies and
	// reports; 0 = fsm.FeatureLevel. A lower one makes it behave as an
	// older binary would (entries of later levels poison it, and it holds
	// the cluster's level down): tests of mixed-version clusters use it.
	FeatureLevel uint32

	// Probe asks a member about itself (GET /v1/node): its level,
	// incarnation, Raft state and applied index. The leader probes every
	// member to raise the feature level, to notice wiped data directories,
	// to promote caught-up learners and to check the quorum before a
	// removal. nil: FetchLevel alone (no promotions, no quorum check).
	Probe func(ctx context.Context, m Member) (NodeInfo, error)
	// AskView asks the member at an HTTP address for its view of the
	// cluster (GET /v1/cluster): whether it leads, and the ids in its
	// configuration. A node that no leader has contacted for a while asks
	// the members it knows: a leader that does not list it means it was
	// removed while it could not hear of it. nil: it never asks.
	AskView func(ctx context.Context, httpAddr string) (PeerView, error)
	// PromoteAfter is how long a learner that asked for a vote must stay
	// caught up (and answer) before the leader promotes it; default 10s.
	PromoteAfter time.Duration
	// PromoteMaxLag is how far behind the leader's commit index a learner
	// may be and count as caught up; default 256 entries.
	PromoteMaxLag uint64
	// ReadyMaxLag is how far behind the leader's commit index a follower
	// may have applied and still be ready (GET /readyz; see ready.go);
	// default 1024 entries.
	ReadyMaxLag uint64

	// The change feed of watch streams (feed.go): events kept for
	// resuming (default DefaultFeedRing), the interval of progress
	// notices (DefaultProgressInterval) and the streams allowed at once
	// (DefaultMaxWatches).
	FeedRing         int
	ProgressInterval time.Duration
	MaxWatches       int

	// For tests: how often the leader asks for levels (0 =
	// defaultLevelInterval), and, while holdRegistration holds true, a
	// node kept unregistered after its record is applied (the window
	// between the two, one registration poll in a real cluster).
	levelInterval    time.Duration
	holdRegistration *atomic.Bool
	// For tests: serve no read fence, as a binary older than it (fence.go).
	noFenceServer bool
	// For tests: called before the leader waits for each append's sync
	// (durable.go); blocking in it holds the leader's copy unsynced, and
	// an error it returns fails the sync.
	leaderSyncHook func() error
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.CatchUpHold <= 0 {
		et := c.ElectionTimeout
		if et <= 0 {
			et = raft.DefaultConfig().ElectionTimeout
		}
		c.CatchUpHold = defaultCatchUpHolds * et
	}
	if c.MaxValueSize <= 0 {
		c.MaxValueSize = DefaultMaxValueSize
	}
	if c.FeatureLevel == 0 || c.FeatureLevel > fsm.FeatureLevel {
		c.FeatureLevel = fsm.FeatureLevel
	}
	if c.PromoteAfter <= 0 {
		c.PromoteAfter = defaultPromoteAfter
	}
	if c.PromoteMaxLag == 0 {
		c.PromoteMaxLag = defaultPromoteMaxLag
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = DefaultCommitTimeout
	}
	if c.FeedRing <= 0 {
		c.FeedRing = DefaultFeedRing
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.MaxWatches <= 0 {
		c.MaxWatches = DefaultMaxWatches
	}
	if c.ReadyMaxLag == 0 {
		c.ReadyMaxLag = defaultReadyMaxLag
	}
	if c.levelInterval == 0 {
		c.levelInterval = defaultLevelInterval
	}
}

func (c *Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.ID)
	rc.Logger = c.Logger.Named("raft")
	// Let the leader take up to MaxAppendEntries concurrent proposals off
	// its queue at once: they are stored with one disk write (one fsync)
	// and shipped to followers in one AppendEntries.
	rc.BatchApplyCh = true
	// Entries already carry up to 1024 coalesced writes each (node/proposer.go);
	// a low count keeps one AppendEntries of 4 MiB values well under the
	// transport's 10 s timeout on a slow link.
	rc.MaxAppendEntries = 32
	// Each replication RPC otherwise emits its metrics twice (per-peer
	// legacy names too); nothing here reads either.
	rc.NoLegacyTelemetry = true
	// A follower learns that an entry committed only with the leader's
	// next AppendEntries: the next write's, or, when writes pause, one
	// sent after CommitTimeout (randomized up to twice it). That delay is
	// what a follower's watch streams, tracking clients and stale reads
	// lag behind an acknowledged write, so it is kept short; the idle
	// cost is one empty AppendEntries per follower per interval.
	rc.CommitTimeout = c.CommitTimeout
	if c.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = c.HeartbeatTimeout
	}
	// The lease only decides when a leader that cannot reach a quorum steps
	// down (reads never rely on it: they confirm leadership each round).
	// Half the heartbeat timeout made leaders on a CPU-starved machine
	// step down for nothing; a full heartbeat timeout, as etcd's election
	// timeout, rides that out.
	rc.LeaderLeaseTimeout = rc.HeartbeatTimeout
	if c.ElectionTimeout > 0 {
		rc.ElectionTimeout = c.ElectionTimeout
	}
	if c.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = c.SnapshotThreshold
	}
	if c.SnapshotInterval > 0 {
		rc.SnapshotInterval = c.SnapshotInterval
	}
	if c.TrailingLogs > 0 {
		rc.TrailingLogs = c.TrailingLogs
	}
	return rc
}

// Node is a running cluster member. Its methods are safe for concurrent use.
type Node struct {
	cfg    Config
	logger hclog.Logger

	fsm       *fsm.FSM
	raft      *raft.Raft
	store     raftStore
	logs      raft.LogStore // store behind a cache, used for index gap checks
	transport *raft.NetworkTransport
	stream    *tcpStream

	reads    *readIndex
	contact  contactState // a former leader's contact (contact.go)
	fence    *fence       // a strong read's leadership round (fence.go)
	fenceSrv *fenceServer // answers other leaders' rounds
	proposer *proposer
	wstats   *writeStats // the write path's histograms (writestats.go)
	hub      *Hub        // the change fan-out to local subscribers (hub.go)
	notify   <-chan bool // Raft's leadership change notifications

	// readyTerm is the term in which this node, as leader, has applied an
	// entry of its own (a barrier). Strong reads are served only while the
	// current term equals it.
	readyTerm atomic.Uint64
	// leaderCommit is the leader's commit index as last announced to this
	// node, for readiness (ready.go).
	leaderCommit leaderCommit
	// memBounds: the members' memory bounds, as the leader last heard them.
	memBounds memBounds

	// joinMu orders joins against raising the cluster level (checkLevels).
	joinMu    sync.Mutex
	levels    levels        // members' levels as last asked, on the leader
	founders  founderCredit // founders' formation-reported levels (founders.go)
	formed    formedList    // the founders list this process formed with (formation.go)
	levelKick chan struct{} // capacity 1: check the levels now

	track   *tracker // the leader's memory of the members (membership.go)
	removal latch    // set once this node was removed from the cluster
	wedge   latch    // set once a stuck leadership transfer wedged it (transferguard.go)
	// transferRefused: when Raft last refused an Apply as "leadership
	// transfer in progress" (Unix ns; transferguard.go).
	transferRefused atomic.Int64
	transfers       transfers     // leadership transfers this node started (transferguard.go)
	registered      atomic.Bool   // the cluster registered this data directory: it may vote (votegate.go)
	leadRefusals    atomic.Uint64 // transfers to this node it refused, not registered yet (votegate.go)
	existing        bool          // Raft state existed when the node started
	catchingUp      atomic.Bool   // restarted without a clean stop, not caught up: no vote (catchup.go)
	intact          atomic.Bool   // never held, or caught up since: a clean stop may say so (catchup.go)
	heldRefusals    atomic.Uint64 // votes and pre-votes refused while catching up (catchup.go)
	// bootstrapped: this node bootstrapped its data directory (votegate.go).
	bootstrapped  atomic.Bool
	foreignWarned atomic.Bool
	gateRaft      atomic.Pointer[raft.Raft] // n.raft, for the transport's goroutine
	dlogs         *durableLogs              // nil: the leader syncs each append before replicating it (durable.go)
	// heartbeat and election are the Raft timeouts once registered.
	heartbeat, election time.Duration
	transportDone       chan struct{}
	feed                *feed // watch streams' change events (feed.go)

	versions  sync.Map               // member id -> build, from the leader's probes
	clusterID atomic.Pointer[string] // DataDir/cluster-id (clusterid.go)
	lock      *os.File               // DataDir/lock, held while the node runs
	cidMu     sync.Mutex

	blocks *blocker // the leader's blocked clients (blocking.go)

	closeOnce sync.Once
	closing   chan struct{}
	wg        sync.WaitGroup
}

// New opens (or creates) the node's data directory and starts Raft. It
// returns once Raft runs; the node may not know a leader yet.
func New(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if cfg.ID == "" || cfg.RaftAddr == "" || cfg.DataDir == "" {
		return nil, fmt.Errorf("node: ID, RaftAddr and DataDir are required")
	}
	for _, a := range []string{cfg.HTTPAddr, cfg.RESPAddr} {
		if a != "" {
			if err := CheckAdvertisable(a); err != nil {
				return nil, fmt.Errorf("node: %w", err)
			}
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	_, statErr := os.Stat(filepath.Join(cfg.DataDir, incarnationFile))
	newIncarnation := errors.Is(statErr, os.ErrNotExist)
	if cfg.Incarnation == "" {
		inc, err := loadIncarnation(cfg.DataDir)
		if err != nil {
			lock.Close()
			return nil, fmt.Errorf("node: incarnation: %w", err)
		}
		cfg.Incarnation = inc
	}
	n := &Node{
		cfg:           cfg,
		logger:        cfg.Logger,
		fsm:           fsm.NewAtLevel(cfg.Logger.Named("fsm"), cfg.FeatureLevel),
		closing:       make(chan struct{}),
		levelKick:     make(chan struct{}, 1),
		track:         newTracker(),
		removal:       newLatch(),
		wedge:         newLatch(),
		transportDone: make(chan struct{}),
		feed:          newFeed(cfg.FeedRing, cfg.MaxWatches),
		lock:          lock,
		wstats:        newWriteStats(),
	}
	n.blocks = newBlocker(n)
	n.fsm.OnChange(n.blocks.changed)
	n.fsm.OnChange(n.feed.apply)
	cid, err := ReadClusterID(cfg.DataDir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("node: cluster id: %w", err)
	}
	n.clusterID.Store(&cid)
	n.hub = newHub(n.fsm.AppliedIndex)
	n.fsm.OnChange(n.hub.feed)
	n.fence, n.fenceSrv = newFence(n), newFenceServer(n)
	if err := n.open(newIncarnation); err != nil {
		if n.raft != nil {
			// A refusal after Raft started (the bootstrap checks): stop
			// it before its stores close under it. Closing first releases
			// a state machine waiting for a sync (durable.go).
			close(n.closing)
			_ = n.raft.Shutdown().Error()
		}
		n.closeStores(false)
		return nil, err
	}
	n.reads = newReadIndex(n)
	n.proposer = newProposer(n)
	obs := make(chan raft.Observation, 64)
	n.raft.RegisterObserver(raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		switch d := o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		case raft.RaftState:
			n.noteRaftState(d) // here, on Raft's goroutine: contact.go
		}
		return false
	}))
	if n.raft.State() == raft.Leader { // led before the observer was there
		n.noteRaftState(raft.Leader)
	}
	n.wg.Add(16)
	go n.blocks.run()
	go n.progressLoop()
	go func() { defer n.wg.Done(); n.hub.Run(n.closing) }()
	go n.watchHeartbeats(obs)
	go n.proposer.run()
	go n.watchLeadership()
	go n.reads.run()
	go n.housekeeping()
	go n.watchPoison()
	go n.levelLoop()
	go n.watchRegistration()
	go n.watchRemoval()
	go n.writePeers()
	go n.watchTransfer()
	go n.keepWatermark()
	go n.watchCatchUp()
	return n, nil
}

func (n *Node) open(newIncarnation bool) error {
	var err error
	so := storeOptions{walSegmentSize: n.cfg.WALSegmentSize, maxMemory: n.cfg.MaxMemory, logger: n.logger}
	if n.store, err = openStore(n.cfg.LogStore, n.cfg.DataDir, so); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.cfg.LogStore, _ = DetectLogStore(n.cfg.DataDir) // the kind opened
	// Appends are timed to their sync: by durableLogs for the leader's
	// appends that overlap replication, by timedLogs otherwise.
	var logs raft.LogStore = timedLogs{n.store, n.wstats}
	if a, ok := n.store.(asyncStore); ok && !n.cfg.SyncLeaderAppends {
		// What a crash left in the WAL unsynced is replayed as the log:
		// sync it, so the durable index can start at its end.
		if err := a.Sync(); err != nil {
			return fmt.Errorf("node: sync the log store: %w", err)
		}
		last, err := n.store.LastIndex()
		if err != nil {
			return fmt.Errorf("node: last log index: %w", err)
		}
		n.dlogs = newDurableLogs(a, n.leading, last, n.wstats, n.syncFailed, n.cfg.leaderSyncHook)
		logs = n.dlogs
	}
	n.logs, err = raft.NewLogCache(1024, logs)
	if err != nil {
		return err
	}
	// Entries up to here are replayed after a restart: their messages
	// were delivered before it.
	if n.hub.floor, err = n.logs.LastIndex(); err != nil {
		return fmt.Errorf("node: last log index: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.cfg.DataDir, 2, n.logger.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("node: snapshot store: %w", err)
	}
	// A store that lost what it had synced must not run (watermark.go).
	if err := checkWatermark(n.cfg.DataDir, n.cfg.LogStore, n.store, n.store, snaps); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	// Known before the stream accepts a connection: whether this node may
	// take the cluster id of a leader that dials it (clusterid.go).
	existing, err := raft.HasExistingState(n.logs, n.store, snaps)
	if err != nil {
		return fmt.Errorf("node: inspect state: %w", err)
	}
	n.existing = existing
	if n.cfg.NeedState && !existing {
		return fmt.Errorf("node: %w", ErrNoState)
	}
	// A start after anything but a clean stop votes only once caught up
	// (catchup.go).
	clean, err := readCleanStop(n.cfg.DataDir, n.store)
	if err != nil {
		return fmt.Errorf("node: clean-stop record: %w", err)
	}
	n.catchingUp.Store(existing && !clean)
	n.intact.Store(!n.catchingUp.Load())
	stream, err := newTCPStream(n.cfg.RaftAddr, n.cfg.RaftAdvertise, n.cfg.PeerTLS,
		func() (string, string) { return n.ClusterID(), n.cfg.ID }, n.adoptFromPeer, n.logger.Named("stream"))
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if !n.cfg.noFenceServer {
		stream.fence = n.fenceSrv.serve
	}
	n.stream = stream
	n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 5,
		Timeout: transportTimeout,
		Logger:  n.logger.Named("transport"),
	})
	n.cfg.RaftAddr = string(n.transport.LocalAddr())

	rc := n.cfg.raftConfig()
	n.heartbeat, n.election = rc.HeartbeatTimeout, rc.ElectionTimeout
	notify := make(chan bool, 16)
	rc.NotifyCh = notify
	n.notify = notify

	switch {
	case n.readRegistered():
		n.registered.Store(true)
	case n.cfg.Bootstrap && !existing, existing && newIncarnation:
		// A new cluster's first member; a data directory from before
		// incarnations.
		n.writeRegistered()
		n.registered.Store(true)
	default:
		rc.HeartbeatTimeout, rc.ElectionTimeout = unregisteredTimeout, unregisteredTimeout
	}
	if n.catchingUp.Load() {
		rc.HeartbeatTimeout, rc.ElectionTimeout = unregisteredTimeout, unregisteredTimeout
	}
	if err := dropCleanStop(n.cfg.DataDir); err != nil {
		return fmt.Errorf("node: clean-stop record: %w", err)
	}
	var rfsm raft.FSM = n.fsm
	if n.dlogs != nil {
		rfsm = durableFSM{FSM: n.fsm, n: n}
	}
	n.raft, err = raft.NewRaft(rc, rfsm, n.logs, n.store, snaps, newGateTransport(n, n.transport))
	if err == nil {
		n.gateRaft.Store(n.raft)
	}
	if err != nil {
		if clean {
			// NewRaft writes no log entry: the record still holds.
			if rerr := recordCleanStop(n.cfg.DataDir, n.store); rerr != nil {
				n.logger.Warn("restoring the clean-stop record", "error", rerr)
			}
		}
		return fmt.Errorf("node: start raft: %w", err)
	}
	if n.cfg.Bootstrap && !existing && n.ClusterID() != "" {
		return fmt.Errorf("node: will not bootstrap: this data directory joined cluster %s but holds no Raft state; start the node with --join", n.ClusterID())
	}
	if n.cfg.Bootstrap && !existing {
		cid := NewClusterID()
		n.logger.Info("bootstrapping a new cluster", "id", n.cfg.ID, "raft_addr", n.cfg.RaftAddr, "cluster_id", cid)
		if cur, err := n.claimClusterID(cid); errors.Is(err, ErrOtherCluster) {
			return fmt.Errorf("node: will not bootstrap: a leader of cluster %s contacted this node as it started; start the node with --join", cur)
		} else if err != nil {
			return err
		}
		err := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.ID), Address: raft.ServerAddress(n.cfg.RaftAddr),
		}}}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("node: bootstrap: %w", err)
		}
		if err == nil {
			if err := os.WriteFile(filepath.Join(n.cfg.DataDir, bootstrappedFile), []byte(n.cfg.Incarnation+"\n"), 0o644); err != nil {
				return fmt.Errorf("node: bootstrap marker: %w", err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(n.cfg.DataDir, bootstrappedFile)); err == nil {
		n.bootstrapped.Store(true)
	}
	return nil
}

// Close stops Raft and releases the stores. A leader does not hand over
// leadership here; the caller may call TransferLeadership first.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		close(n.closing)
		n.fence.close()
		if n.raft != nil {
			err = n.raft.Shutdown().Error()
		}
		n.fenceSrv.close()
		n.wg.Wait()
		n.closeStores(err == nil && n.raft != nil)
	})
	return err
}

// closeStores releases the transport and the stores; clean records the
// log's end for the next start (catchup.go), once nothing can append.
func (n *Node) closeStores(clean bool) {
	if n.transport != nil {
		close(n.transportDone)
		n.transport.Close()
		// Raft handles heartbeats in the transport's connection goroutines,
		// which Close does not wait for; one that passed Raft's shutdown
		// check just before may still write the stable store. Give it a
		// moment, or it panics on a closed store.
		time.Sleep(50 * time.Millisecond)
	}
	if n.dlogs != nil {
		n.dlogs.close()
	}
	if n.store != nil {
		if clean {
			if err := n.writeCleanStop(); err != nil {
				n.logger.Warn("recording a clean stop", "error", err)
			}
		}
		n.store.Close()
	}
	if n.lock != nil {
		n.lock.Close()
	}
}

// ID returns the member id.
func (n *Node) ID() string { return n.cfg.ID }

// RaftAddr returns the Raft address other members dial.
func (n *Node) RaftAddr() string { return n.cfg.RaftAddr }

// RESPAddr returns the Redis-protocol address this node advertises, or "".
func (n *Node) RESPAddr() string { return n.cfg.RESPAddr }

// HTTPAddr returns the client API address this node advertises.
func (n *Node) HTTPAddr() string { return n.cfg.HTTPAddr }

// MaxMemoryPolicy is the configured eviction policy.
func (n *Node) MaxMemoryPolicy() fsm.EvictPolicy { return n.cfg.MaxMemoryPolicy }

// FSM exposes the local cache for stale reads and statistics.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// now is the leader's clock for stamping commands. It never goes below the
// latest leader time already in the log, so a leader whose clock is behind
// its predecessor's cannot move replicated time backwards.
func (n *Node) now() int64 {
	t := n.cfg.Clock().UnixNano()
	if c := n.fsm.Clock(); c > t {
		return c
	}
	return t
}
