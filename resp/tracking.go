package resp

import (
	"slices"
	"strconv"
	"strings"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// Client tracking (CLIENT TRACKING), for client-side caches. The node the
// client is connected to pushes the invalidations, follower or leader: a
// key read is registered in its hub with the index of the state it was
// read from (the view's, the entry's for reads inside a transaction, and
// for reads relayed to the leader this node's applied index before the
// relay, which is lower: a spurious invalidation costs a refetch, a
// missed one a stale cache), and any change applied above that index
// invalidates it. A flush, or a snapshot installed over the state,
// invalidates everything (a null key list).

// trackState is a connection's CLIENT TRACKING mode as it gave it.
type trackState struct {
	bcast, optin, optout, noloop bool
	redirect                     int64 // 0: none
	prefixes                     []string
}

// cmdClientTracking is CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p]...
// [BCAST] [OPTIN] [OPTOUT] [NOLOOP].
func cmdClientTracking(s *Server, cl *client, args [][]byte) {
	w := &cl.w
	if len(args) < 3 {
		w.fail(wrongArgs("client|tracking"))
		return
	}
	on := false
	switch lower(args[2]) {
	case "on":
		on = true
	case "off":
	default:
		w.error("ERR syntax error")
		return
	}
	var t trackState
	for i := 3; i < len(args); i++ {
		switch opt := lower(args[i]); {
		case opt == "redirect" && i+1 < len(args):
			id, err := strconv.ParseInt(string(args[i+1]), 10, 64)
			if err != nil {
				w.error("ERR value is not an integer or out of range")
				return
			}
			t.redirect = id
			i++
		case opt == "prefix" && i+1 < len(args):
			t.prefixes = append(t.prefixes, string(args[i+1]))
			i++
		case opt == "bcast":
			t.bcast = true
		case opt == "optin":
			t.optin = true
		case opt == "optout":
			t.optout = true
		case opt == "noloop":
			t.noloop = true
		default:
			w.error("ERR syntax error")
			return
		}
	}
	if !on {
		cl.track, cl.caching = nil, 0
		cl.sub.Track(nil)
		w.ok()
		return
	}
	switch {
	case len(t.prefixes) > 0 && !t.bcast:
		w.error("ERR PREFIX option requires BCAST mode to be enabled")
		return
	case t.optin && t.optout:
		w.error("ERR You can't specify both OPTIN mode and OPTOUT mode")
		return
	case t.bcast && (t.optin || t.optout):
		w.error("ERR OPTIN and OPTOUT are not compatible with BCAST")
		return
	case cl.track != nil && cl.track.bcast != t.bcast:
		w.error("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.")
		return
	case cl.track != nil && (cl.track.optin && t.optout || cl.track.optout && t.optin):
		// From OPTIN straight to OPTOUT or back; to or from the default
		// mode is allowed, as in Redis.
		w.error("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.")
		return
	}
	if t.bcast {
		var had []string // the prefixes tracked already; "" for every key
		if cl.track != nil {
			had = cl.track.prefixes
			if len(had) == 0 {
				had = []string{""}
			}
		}
		if msg := prefixOverlap(had, t.prefixes); msg != "" {
			w.error(msg)
			return
		}
		if cl.track != nil {
			// On again in BCAST mode: Redis adds the prefixes to those
			// it has (none stands for every key).
			t.prefixes = mergePrefixes(cl.track.prefixes, t.prefixes)
		}
	}
	// NOLOOP is kept (TRACKINGINFO reports it) but not passed on: it
	// hides nothing (node.TrackOptions).
	opts := &node.TrackOptions{BCAST: t.bcast, Prefixes: t.prefixes}
	if t.redirect != 0 && t.redirect != cl.id {
		target, ok := s.node.Hub().Lookup(t.redirect)
		if !ok {
			w.error("ERR The client ID you want redirect to does not exist")
			return
		}
		opts.Redirect = target
	}
	if t.bcast && len(t.prefixes) == 0 {
		opts.Prefixes = nil
	}
	cl.track, cl.caching = &t, 0
	cl.sub.Track(opts)
	w.ok()
}

// cmdClientCaching is CLIENT CACHING YES|NO: whether the next command's
// reads are tracked (OPTIN, OPTOUT).
func cmdClientCaching(s *Server, cl *client, args [][]byte) {
	w := &cl.w
	if len(args) != 3 {
		w.fail(wrongArgs("client|caching"))
		return
	}
	t := cl.track
	if t == nil || !t.optin && !t.optout {
		w.error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled")
		return
	}
	switch lower(args[2]) {
	case "yes":
		if !t.optin {
			w.error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
			return
		}
		cl.caching = 1
	case "no":
		if !t.optout {
			w.error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
			return
		}
		cl.caching = -1
	default:
		w.error("ERR syntax error")
		return
	}
	cl.cachingFresh = true
	w.ok()
}

func cmdClientGetRedir(s *Server, cl *client) {
	switch {
	case cl.track == nil:
		cl.w.int(-1)
	default:
		cl.w.int(cl.track.redirect)
	}
}

func cmdClientTrackingInfo(s *Server, cl *client) {
	w := &cl.w
	t := cl.track
	var flags []string
	redirect := int64(-1)
	var prefixes []string
	if t == nil {
		flags = []string{"off"}
	} else {
		flags = []string{"on"}
		redirect = t.redirect
		prefixes = t.prefixes
		for _, f := range []struct {
			on   bool
			name string
		}{{t.bcast, "bcast"}, {t.optin, "optin"}, {t.optout, "optout"}, {cl.caching > 0, "caching-yes"}, {cl.caching < 0, "caching-no"}, {t.noloop, "noloop"}} {
			if f.on {
				flags = append(flags, f.name)
			}
		}
		if t.redirect != 0 {
			if _, ok := s.node.Hub().Lookup(t.redirect); !ok {
				flags = append(flags, "broken_redirect")
			}
		}
	}
	w.mapHeader(3)
	w.bulkString("flags")
	w.setHeader(len(flags))
	for _, f := range flags {
		w.bulkString(f)
	}
	w.bulkString("redirect")
	w.int(redirect)
	w.bulkString("prefixes")
	w.array(len(prefixes))
	for _, p := range prefixes {
		w.bulkString(p)
	}
}

// wantTrack says whether the reads of the command being queued or run
// now are tracked (default mode: always; OPTIN: after CLIENT CACHING YES;
// OPTOUT: unless CLIENT CACHING NO; BCAST tracks no reads).
func (cl *client) wantTrack() bool {
	t := cl.track
	switch {
	case t == nil || t.bcast:
		return false
	case t.optin:
		return cl.caching > 0
	case t.optout:
		return cl.caching >= 0
	}
	return true
}

// trackKeys registers the keys of a tracked read answered from index.
func (cl *client) trackKeys(it *item, index uint64) {
	if cl.track != nil && cl.track.bcast && it.kind == kindRead {
		cl.sub.NoteBroadcastRead() // no keys to register: a flush covers it
		return
	}
	if !it.track {
		return
	}
	if spec := fsm.Lookup(it.args[0]); spec != nil {
		if keys := spec.Keys(it.args); len(keys) > 0 {
			cl.sub.TrackKeys(keys, index)
		}
	}
}

// invalidateOwn reports the keys of the write it (or of the writes
// inside it, a transaction) that cl tracks, right after its reply
// (node.Sub.InvalidateOwn).
func (cl *client) invalidateOwn(it *item) {
	if cl.track == nil {
		return
	}
	for _, q := range append([]*item{it}, it.txn...) {
		if q.kind != kindWrite {
			continue
		}
		spec := fsm.Lookup(q.args[0])
		switch {
		case spec == nil:
		case spec.Flags&fsm.FlagAdmin != 0: // the whole keyspace (FLUSHDB)
			cl.sub.InvalidateOwnAll()
		default:
			if keys := spec.Keys(q.args); len(keys) > 0 {
				cl.sub.InvalidateOwn(keys)
			}
		}
	}
}

// prefixOverlap is Redis's error for BCAST prefixes of one client that
// overlap (one starts with the other): a new one against those it had
// (in their sorted order, as Redis walks its tree), then the new ones
// against each other; "" if none do.
func prefixOverlap(had, added []string) string {
	had = slices.Sorted(slices.Values(had))
	overlap := func(a, b string) bool { return strings.HasPrefix(a, b) || strings.HasPrefix(b, a) }
	for i, p := range added {
		for _, h := range had {
			if overlap(p, h) {
				return "ERR Prefix '" + p + "' overlaps with an existing prefix '" + h + "'. Prefixes for a single client must not overlap."
			}
		}
		for _, q := range added[i+1:] {
			if overlap(p, q) {
				return "ERR Prefix '" + p + "' overlaps with another provided prefix '" + q + "'. Prefixes for a single client must not overlap."
			}
		}
	}
	return ""
}

// mergePrefixes is the BCAST prefixes of tracking turned on again: old
// and added, each once; none (every key) if either is none.
func mergePrefixes(old, added []string) []string {
	if len(old) == 0 || len(added) == 0 {
		return nil
	}
	out := append([]string(nil), old...)
	for _, p := range added {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
