package transport

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// metrics is one node's Prometheus registry. It is per Server, not the
// global default registry, so several nodes can live in one test process.
type metrics struct {
	reg      *prometheus.Registry
	duration *prometheus.HistogramVec
	// watch streams open now, and events (and progress notices) written
	// to them, in writes.
	watches     atomic.Int64
	watchEvents atomic.Uint64
}

func (s *Server) newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "raftcache_http_request_duration_seconds",
		Help:    "HTTP request latency by route template, method and status code.",
		Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "code"})
	n := s.node
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	stateDesc := prometheus.NewDesc("raftcache_raft_state", "1 for this node's current Raft state, 0 for the others.", []string{"state"}, nil)
	m.reg.MustRegister(
		m.duration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		cacheCollector{n},
		buildInfo(),
		gauge("raftcache_cache_max_memory_bytes", "The memory bound this node enforces (--max-memory or its default; on the leader the smallest any member reports), 0 if none.", func() float64 { return float64(n.MaxMemory()) }),
		gauge("raftcache_log_store_memory_bytes", "The most memory the Raft log store keeps (pebble's block cache and memtables; 0 for bolt).", func() float64 { return float64(n.StoreMemory()) }),
		gauge("raftcache_raft_term", "Current Raft term.", func() float64 { return float64(n.Status().Term) }),
		gauge("raftcache_raft_commit_index", "Raft commit index known to this node.", func() float64 { return float64(n.Status().CommitIndex) }),
		gauge("raftcache_raft_applied_index", "Raft index applied to this node's cache.", func() float64 { return float64(n.Status().AppliedIndex) }),
		counter("raftcache_strong_read_rounds_total", "Leadership confirmations (read-fence rounds) for strong reads.", func() float64 { return float64(n.ReadStats().Rounds) }),
		counter("raftcache_strong_read_legacy_rounds_total", "Of those, rounds confirmed through Raft heartbeats (VerifyLeader) because a quorum needed a member of an older binary.", func() float64 { return float64(n.ReadStats().LegacyRounds) }),
		counter("raftcache_strong_reads_total", "Strong reads served through those rounds.", func() float64 { return float64(n.ReadStats().Reads) }),
		gauge("raftcache_watch_streams", "Open watch streams (GET /v1/watch) on this node.", func() float64 { return float64(m.watches.Load()) }),
		counter("raftcache_watch_writes_total", "Writes of change events and progress notices to watch streams.", func() float64 { return float64(m.watchEvents.Load()) }),
		gauge("raftcache_blocked_waiters", "Clients blocked in BLPOP, BLMOVE, BZPOPMIN... (held by the leader, relayed ones included).", func() float64 { return float64(n.BlockingStats().Blocked) }),
		counter("raftcache_blocked_pops_served_total", "Blocked clients answered with an element (on the leader).", func() float64 { return float64(n.BlockingStats().Served) }),
		counter("raftcache_blocked_timeouts_total", "Blocked clients answered nil at their timeout (on the leader).", func() float64 { return float64(n.BlockingStats().TimedOut) }),
		counter("raftcache_blocked_pops_lost_total", "Elements popped for a blocked client whose connection closed before the element was written (counted by the node holding the connection): lost, as in Redis.", func() float64 { return float64(n.BlockingStats().Lost) }),
		counter("raftcache_http_overloaded_total", "Requests refused with 503 overloaded by the in-flight bound.", func() float64 { return float64(s.overloaded.Load()) }),
		gauge("raftcache_http_connections_open", "Open HTTP connections (bounded by --max-connections).", func() float64 { return float64(s.conns().Open) }),
		counter("raftcache_http_connections_evicted_total", "Idle or header-sending connections closed to make room under --max-connections.", func() float64 { return float64(s.conns().Evicted) }),
		counter("raftcache_http_connections_refused_total", "Connections refused with 503: every open one was inside a handler.", func() float64 { return float64(s.conns().Refused) }),
		hubCollector{n.Hub()},
		pathCollector{n},
		prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
			cur := n.Status().State
			for _, st := range []string{"Follower", "Candidate", "Leader", "Shutdown"} {
				v := 0.0
				if st == cur {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, v, st)
			}
		}),
	)
	return m
}

// buildInfo is raftcache_build_info: always 1, the binary in its labels
// (as Prometheus' own *_build_info), so a rolling upgrade shows which
// members run which build.
func buildInfo() prometheus.Collector {
	b := node.BuildInfo()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "raftcache_build_info",
		Help: "Always 1; labels: the binary's module version, VCS revision, Go version and feature level.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.ShortRevision(), "goversion": b.GoVersion,
			"feature_level": strconv.FormatUint(uint64(b.FeatureLevel), 10)},
	}, func() float64 { return 1 })
}

// cacheCollector reports the cache's figures from one view of it per
// scrape, so they are of one state.
type cacheCollector struct{ n *node.Node }

var cacheDescs = []struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(*fsm.Stats) float64
}{
	{prometheus.NewDesc("raftcache_cache_hits_total", "Reads that found a live key on this node.", nil, nil),
		prometheus.CounterValue, func(s *fsm.Stats) float64 { return float64(s.Hits) }},
	{prometheus.NewDesc("raftcache_cache_misses_total", "Reads that found no live key on this node.", nil, nil),
		prometheus.CounterValue, func(s *fsm.Stats) float64 { return float64(s.Misses) }},
	{prometheus.NewDesc("raftcache_cache_evictions_total", "Keys evicted under --max-memory (replicated count).", nil, nil),
		prometheus.CounterValue, func(s *fsm.Stats) float64 { return float64(s.Evictions) }},
	{prometheus.NewDesc("raftcache_cache_expired_total", "Keys removed after their TTL (replicated count).", nil, nil),
		prometheus.CounterValue, func(s *fsm.Stats) float64 { return float64(s.Expirations) }},
	{prometheus.NewDesc("raftcache_cache_sets_total", "Keys written (replicated count).", nil, nil),
		prometheus.CounterValue, func(s *fsm.Stats) float64 { return float64(s.Sets) }},
	{prometheus.NewDesc("raftcache_cache_deletes_total", "Live keys deleted (replicated count).", nil, nil),
		prometheus.CounterValue, func(s *fsm.Stats) float64 { return float64(s.Deletes) }},
	{prometheus.NewDesc("raftcache_cache_keys", "Keys stored, expired ones included until removed.", nil, nil),
		prometheus.GaugeValue, func(s *fsm.Stats) float64 { return float64(s.Keys) }},
	{prometheus.NewDesc("raftcache_cache_bytes", "Accounted bytes: keys, values and per-entry overhead.", nil, nil),
		prometheus.GaugeValue, func(s *fsm.Stats) float64 { return float64(s.Bytes) }},
	{prometheus.NewDesc("raftcache_request_ids", "Request ids remembered for exactly-once retries (not in raftcache_cache_keys).", nil, nil),
		prometheus.GaugeValue, func(s *fsm.Stats) float64 { return float64(s.RequestIDs) }},
	{prometheus.NewDesc("raftcache_request_ids_bytes", "Memory the request-id table holds with its kept replies: outside raftcache_cache_bytes and --max-memory; at most about 107 MiB from cluster feature level 5.", nil, nil),
		prometheus.GaugeValue, func(s *fsm.Stats) float64 { return float64(s.RequestIDBytes) }},
}

func (c cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range cacheDescs {
		ch <- d.desc
	}
}

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.LocalView().Stats()
	for _, d := range cacheDescs {
		ch <- prometheus.MustNewConstMetric(d.desc, d.typ, d.value(&st))
	}
}

// pathCollector reports the histograms of the request paths: writes
// (node/writestats.go) and strong reads' leadership rounds (node/read.go).
type pathCollector struct{ n *node.Node }

var (
	logAppendDesc = prometheus.NewDesc("raftcache_log_append_duration_seconds",
		"Appends of entries to the Raft log store, each until it is synced: on a follower before it answers; on a leader with the pebble store while it replicates them (nothing is applied before the sync), with the others before. Every write waits for one on the leader and one on each of enough followers for a quorum (as etcd_disk_wal_fsync_duration_seconds).", nil, nil)
	logAppendErrDesc = prometheus.NewDesc("raftcache_log_append_errors_total",
		"Appends the log store failed.", nil, nil)
	entryDesc = prometheus.NewDesc("raftcache_write_entry_duration_seconds",
		"On the leader: each Raft entry of writes (concurrent writes share one: group commit), from its proposal to its answer (the leader's append, a quorum's, commit and apply).", nil, nil)
	roundDesc = prometheus.NewDesc("raftcache_strong_read_round_duration_seconds",
		"On the leader: each confirmed leadership round of strong reads (a read fence: a request to every voter, answered by a quorum).", nil, nil)
	roundReadsDesc = prometheus.NewDesc("raftcache_strong_read_round_reads",
		"On the leader: the strong reads each confirmed round served.", nil, nil)
	entryWritesDesc = prometheus.NewDesc("raftcache_write_entry_writes",
		"On the leader: the commands each of those entries carried (writes, and the reads of transactions that write).", nil, nil)
)

func (c pathCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- logAppendDesc
	ch <- logAppendErrDesc
	ch <- entryDesc
	ch <- entryWritesDesc
	ch <- roundDesc
	ch <- roundReadsDesc
}

func (c pathCollector) Collect(ch chan<- prometheus.Metric) {
	ws := c.n.WriteStats()
	hist := func(d *prometheus.Desc, h node.Histogram) prometheus.Metric {
		buckets := make(map[float64]uint64, len(h.Bounds))
		for i, b := range h.Bounds {
			buckets[b] = h.Cumulative[i]
		}
		return prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets)
	}
	ch <- hist(logAppendDesc, ws.LogAppends)
	ch <- prometheus.MustNewConstMetric(logAppendErrDesc, prometheus.CounterValue, float64(ws.LogAppendErrors))
	ch <- hist(entryDesc, ws.Entries)
	ch <- hist(entryWritesDesc, ws.EntryWrites)
	rs := c.n.ReadStats()
	ch <- hist(roundDesc, rs.RoundTimes)
	ch <- hist(roundReadsDesc, rs.RoundReads)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// route returns h instrumented as the route template: its latency is
// recorded by route, method and status code. The template's observers are
// resolved once per method and code, not per request through a label
// lookup (which formats the code and hashes three labels).
func (m *metrics) route(template string, h http.Handler) http.Handler {
	rm := &routeMetrics{vec: m.duration, route: template}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := statusWriters.Get().(*statusWriter)
		sw.ResponseWriter, sw.status = w, http.StatusOK
		h.ServeHTTP(sw, r)
		status := sw.status
		// Back to the pool only on a normal return: the handler is done
		// with it (watch streams end before their handler returns).
		sw.ResponseWriter = nil
		statusWriters.Put(sw)
		rm.observer(r.Method, status).Observe(time.Since(start).Seconds())
	})
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

// routeMetrics caches one route's observers by method and status code.
type routeMetrics struct {
	vec   *prometheus.HistogramVec
	route string
	cache atomic.Pointer[map[obsKey]prometheus.Observer] // copied on write
	mu    sync.Mutex
}

type obsKey struct {
	method string
	code   int
}

// maxCachedObservers bounds a route's cache: a route open to every
// method sees whatever methods clients send.
const maxCachedObservers = 64

func (rm *routeMetrics) observer(method string, code int) prometheus.Observer {
	k := obsKey{method, code}
	if c := rm.cache.Load(); c != nil {
		if o, ok := (*c)[k]; ok {
			return o
		}
	}
	o := rm.vec.WithLabelValues(rm.route, method, strconv.Itoa(code))
	rm.mu.Lock()
	defer rm.mu.Unlock()
	old := rm.cache.Load()
	if old != nil && len(*old) >= maxCachedObservers {
		return o
	}
	c := map[obsKey]prometheus.Observer{}
	if old != nil {
		c = maps.Clone(*old)
	}
	c[k] = o
	rm.cache.Store(&c)
	return o
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (watch
// streams flush and set write deadlines through it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// conns is the listener's connection counters, zero if the Server is not
// served through NewHTTPServer.
func (s *Server) conns() ConnStats {
	if f := s.connStats.Load(); f != nil {
		return (*f)()
	}
	return ConnStats{}
}

// hubCollector reports the node's change fan-out (pub/sub, tracking) from
// one Stats call per scrape.
type hubCollector struct{ h *node.Hub }

var hubDescs = []struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(*node.HubStats) float64
}{
	{prometheus.NewDesc("raftcache_pubsub_subscribers", "Connections of this node with at least one pub/sub subscription.", nil, nil),
		prometheus.GaugeValue, func(s *node.HubStats) float64 { return float64(s.Subscribers) }},
	{prometheus.NewDesc("raftcache_pubsub_channels", "Channels (and shard channels) subscribed on this node.", nil, nil),
		prometheus.GaugeValue, func(s *node.HubStats) float64 { return float64(s.Channels) }},
	{prometheus.NewDesc("raftcache_pubsub_patterns", "Patterns subscribed on this node.", nil, nil),
		prometheus.GaugeValue, func(s *node.HubStats) float64 { return float64(s.Patterns) }},
	{prometheus.NewDesc("raftcache_pubsub_messages_published_total", "Messages and keyspace notifications applied by this node (every node counts each).", nil, nil),
		prometheus.CounterValue, func(s *node.HubStats) float64 { return float64(s.Published) }},
	{prometheus.NewDesc("raftcache_pubsub_messages_delivered_total", "Messages queued to this node's subscribers.", nil, nil),
		prometheus.CounterValue, func(s *node.HubStats) float64 { return float64(s.Delivered) }},
	{prometheus.NewDesc("raftcache_pubsub_slow_subscribers_dropped_total", "Subscribers disconnected because their queue passed its bound.", nil, nil),
		prometheus.CounterValue, func(s *node.HubStats) float64 { return float64(s.Dropped) }},
	{prometheus.NewDesc("raftcache_tracking_clients", "Connections of this node with CLIENT TRACKING on.", nil, nil),
		prometheus.GaugeValue, func(s *node.HubStats) float64 { return float64(s.TrackingClients) }},
	{prometheus.NewDesc("raftcache_tracking_invalidations_total", "Invalidation pushes queued by this node.", nil, nil),
		prometheus.CounterValue, func(s *node.HubStats) float64 { return float64(s.Invalidations) }},
}

func (c hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range hubDescs {
		ch <- d.desc
	}
}

func (c hubCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.h.Stats()
	for _, d := range hubDescs {
		ch <- prometheus.MustNewConstMetric(d.desc, d.typ, d.value(&st))
	}
}
