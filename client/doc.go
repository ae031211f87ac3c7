// Package client is the Go client for a raftcache cluster. It hides the
// cluster: callers name a key, and the Client finds the leader, follows
// redirects, fails over, retries, and never applies a write twice.
//
//	c, err := client.New(client.Config{Endpoints: []string{"http://127.0.0.1:8001"}})
//	if err != nil { ... }
//	defer c.Close()
//	_, err = c.Set(ctx, "greeting", []byte("hello"), client.WithTTL(time.Minute))
//	item, err := c.Get(ctx, "greeting")
//	n, err := c.Incr(ctx, "visits", 1)
//
// # Members and the leader
//
// The Client starts from Config.Endpoints; one reachable member is enough.
// It learns the others from GET /v1/cluster: in the background on its first
// call, when its view is older than Config.RefreshInterval (30s), and after
// failures (at most once a second). No call waits for a refresh, except one
// that is redirected to a host the client does not know (below).
//
// Writes and strong reads go to the last known leader. A follower answers
// them with 307 and the leader's address; the Client follows such
// redirects itself (at most MaxRedirects hops per attempt), re-sending the
// method, path, query, body and every header, Config.Header included (Go's
// http.Client would drop Authorization when the host changes), and
// remembers the leader for the next calls. Bodies over 64 KiB are sent with
// "Expect: 100-continue", so a follower's redirect costs no upload. It
// follows a redirect only to a known member: if the Location names an
// unknown host, it refreshes the membership once and, if the host is still
// unknown (or the Location changes the path), fails the call with
// ErrRedirectRefused. So credentials never leave the cluster.
//
// # Failures and retries
//
// Each attempt is bounded by Config.AttemptTimeout (5s). When a member
// refuses the connection, does not answer in time, resets the connection,
// or answers 503 (certainly not applied: no leader, shutting down,
// overloaded) or 504 (unknown outcome, or a read that could not catch up),
// the call is retried on another member after a jittered exponential
// backoff (25ms doubling to 1s; the servers' Retry-After of 1s is not
// waited for in full, so failovers stay fast), until it gets an answer or
// its context ends. A member that failed at the transport level
// is skipped for a while (250ms doubling to 4s). Calls whose context has no
// deadline get Config.Timeout (10s).
//
// # Writes are applied at most once
//
// Retrying a write whose first attempt may have been applied is only safe
// if applying it twice is harmless. So:
//
//   - Incr, Batch, and every write with WithCAS carry an Idempotency-Key: a
//     fresh random key per logical call, the same on every retry of that
//     call. The server's state machine remembers each key with the result
//     of its first application and answers a repeat with that result (and
//     the header Idempotent-Replayed: true) instead of applying it again.
//     An increment is therefore counted once, and a CAS write retried after
//     it succeeded reports success rather than a conflict with itself.
//   - Plain Set, Delete, SetTTL, ClearTTL, DeletePrefix and AddMember are
//     idempotent (applying them twice leaves the same state), so they are
//     retried as they are, without a key, sparing the server's table.
//     WithIdempotencyKey adds a caller-chosen key to any write.
//
// The deduplication window is limited: the server remembers a key for 5
// minutes of leader time and at most 200,000 keys in total (the oldest are
// forgotten first). The Client stops retrying a keyed write KeyedRetryLimit
// (4 minutes) after its first attempt. Under a sustained rate of more than
// about 650 keyed writes per second across all clients, keys are forgotten
// sooner than 5 minutes. A retry after a lost answer tells the server the
// highest Raft index the Client had seen before the call, if it saw it
// within 30 s (Raftcache-Resend), so one arriving after its key was forgotten is
// answered ErrUnknownOutcome, not applied again (cluster feature level 5
// on; docs/api.md, "Idempotency keys").
//
// Transport failures, 503s and 504s are never returned while the context
// lasts; answers that settle the call (success, 404, a CAS conflict, 400,
// ...) are returned at once. Only if the context ends before any attempt
// gets such an answer does the caller see ErrUnknownOutcome (wrapping the
// context's error) if some attempt of a write may have been applied, or
// otherwise the last error (e.g. ErrNoLeader after 503s), wrapped with the
// context's error.
//
// # Near cache
//
// With Config.NearCache set, Get without options answers from a cache in
// this process when it can: a hit costs no request. A watch stream (GET
// /v1/watch) on one member drops keys as they change; a client's own
// writes drop their keys at once; everything is dropped when the stream
// breaks or stays silent for NearCache.MaxSilence. A hit is therefore never
// older than a documented bound after a newer write was acknowledged, and
// never older than the client's own last write (docs/consistency.md, "Near
// caches"). NearCacheStats reports hits, misses and invalidations. Get with
// any option (WithConsistency, ...) bypasses the cache.
//
// # Errors
//
// Server errors are *Error values carrying the HTTP status and the
// server's code; test them with errors.Is against ErrNotFound,
// ErrCASConflict, ErrNotInteger, ErrOverflow, ErrTooLarge, ErrNoLeader,
// ErrOverloaded, ErrUnknownOutcome, ErrBadRequest, ErrUnauthorized,
// ErrForbidden and ErrUnknownMember, which match through any wrapping. A failed WithCAS
// condition is a *CASConflictError (use errors.As) carrying the key's
// CurrentVersion (0: absent). A redirect the client will not follow is a
// *RedirectError matching ErrRedirectRefused. A failed TLS handshake
// matches ErrTLS.
//
// # TLS and tokens
//
// For a cluster on HTTPS (members started with --tls-cert), give https://
// endpoints and Config.TLS, like etcd's clientv3.Config.TLS or go-redis's
// Options.TLSConfig: RootCAs trusts the members' CA, Certificates presents
// a client certificate to members that require one (--tls-client-ca).
// TLSConfigFromFiles builds it from the PEM files the raftcache command
// line takes as --cacert, --cert and --key:
//
//	tlsConfig, err := client.TLSConfigFromFiles("ca.pem", "app.pem", "app-key.pem")
//	c, err := client.New(client.Config{
//		Endpoints: []string{"https://10.0.0.1:8001"},
//		TLS:       tlsConfig,
//		Token:     os.Getenv("RAFTCACHE_TOKEN"), // a cluster with --token-file
//	})
//
// The same configuration and token are used for every member, given,
// learned or reached through a redirect; the token is re-attached on every
// hop. With TLS set, plaintext endpoints are refused. A handshake failure
// (an untrusted server certificate, a refused client certificate) is a
// configuration error: the call fails with ErrTLS, without waiting for its
// timeout, once as many attempts as there are known members have failed
// so. Missing or unknown tokens give ErrUnauthorized, a role too weak for
// the call ErrForbidden.
//
// # Consistency
//
// Reads are strong (linearizable, served by the leader) by default. Per
// call, WithConsistency(Stale) reads the local state of any member (spread
// round robin), WithMaxStale(d) does so only from a member that heard from
// the leader within d, and WithMinIndex(i) from a member that has applied
// Raft index i. Writes return their index (WriteResult.Index) and reads the
// index of the state they saw (Item.Index, from X-Raft-Index).
//
// A Session does the index bookkeeping: c.Session() returns a *Session
// whose reads are stale reads sent round robin to all members with
// min_index = the highest index the session has written or read, so it
// reads its own writes, never goes back in time, and its reads still
// scale with the number of members.
package client
