package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/internal/testcerts"
	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/transport"
)

// startExampleNode runs a real one-node cluster in this process (Raft on
// loopback, bolt files in a temporary directory, the HTTP API on an
// httptest server) and returns its URL once it serves, and a function
// that stops it.
func startExampleNode() (url string, stop func()) {
	tb := testcluster.NewStandalone()
	n := testcluster.Start(tb, 1, testcluster.Options{HTTP: &transport.Config{}}).Leader(tb)
	return n.URL, tb.Close
}

// startExampleTLSNode is startExampleNode on HTTPS, with certificates of
// a throw-away CA: it returns the node's https:// URL and the files of the
// CA and of a client certificate, as an operator would hand them out.
func startExampleTLSNode() (url, caFile, certFile, keyFile string, stop func()) {
	tb := testcluster.NewStandalone()
	ca := testcerts.NewCA(tb, "example CA")
	certFile, keyFile, caFile = ca.WriteFiles(tb, tb.TempDir(), "app")
	n := testcluster.Start(tb, 1, testcluster.Options{
		HTTP: &transport.Config{},
		TLS:  ca.ServerConfig(tb, ca), // as raftcache node --tls-cert ... --tls-client-ca ...
	}).Leader(tb)
	return n.URL, caFile, certFile, keyFile, tb.Close
}

// A cluster on HTTPS with a private CA, requiring client certificates:
// the client trusts the CA and presents its certificate to every member,
// including those it is redirected to. Add Config.Token when the cluster
// also requires tokens.
func ExampleTLSConfigFromFiles() {
	url, caFile, certFile, keyFile, stop := startExampleTLSNode()
	defer stop()

	tlsConfig, err := client.TLSConfigFromFiles(caFile, certFile, keyFile)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.Config{Endpoints: []string{url}, TLS: tlsConfig})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := c.Set(ctx, "greeting", []byte("hello over TLS")); err != nil {
		log.Fatal(err)
	}
	item, err := c.Get(ctx, "greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", item.Value)

	// Without the CA, the client does not trust the members: the call
	// fails at once, and nothing was sent.
	insecure, err := client.New(client.Config{Endpoints: []string{url}, TLS: &tls.Config{}})
	if err != nil {
		log.Fatal(err)
	}
	defer insecure.Close()
	_, err = insecure.Get(ctx, "greeting")
	fmt.Println("untrusted:", errors.Is(err, client.ErrTLS))
	// Output:
	// hello over TLS
	// untrusted: true
}

func Example() {
	url, stop := startExampleNode()
	defer stop()

	c, err := client.New(client.Config{Endpoints: []string{url}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := c.Set(ctx, "greeting", []byte("hello"), client.WithTTL(time.Hour)); err != nil {
		log.Fatal(err)
	}
	item, err := c.Get(ctx, "greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, expires: %t\n", item.Value, !item.ExpiresAt.IsZero())

	_, err = c.Get(ctx, "nobody")
	fmt.Println("missing key:", errors.Is(err, client.ErrNotFound))
	// Output:
	// hello, expires: true
	// missing key: true
}

func ExampleClient_Incr() {
	url, stop := startExampleNode()
	defer stop()
	c, err := client.New(client.Config{Endpoints: []string{url}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Each Incr carries its own Idempotency-Key: a retry after a timeout
	// or a leader crash is answered, not counted again.
	for i := 0; i < 3; i++ {
		n, err := c.Incr(ctx, "visits", 10)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(n)
	}
	c.Set(ctx, "name", []byte("ada"))
	_, err = c.Incr(ctx, "name", 1)
	fmt.Println("not an integer:", errors.Is(err, client.ErrNotInteger))
	// Output:
	// 10
	// 20
	// 30
	// not an integer: true
}

func ExampleWithCAS() {
	url, stop := startExampleNode()
	defer stop()
	c, err := client.New(client.Config{Endpoints: []string{url}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Version 0: create only if absent.
	first, err := c.Set(ctx, "config", []byte("v1"), client.WithCAS(0))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Set(ctx, "config", []byte("again"), client.WithCAS(0))
	fmt.Println("already exists:", errors.Is(err, client.ErrCASConflict))

	// Update only the version we read.
	if _, err := c.Set(ctx, "config", []byte("v2"), client.WithCAS(first.Version)); err != nil {
		log.Fatal(err)
	}
	_, err = c.Set(ctx, "config", []byte("v3"), client.WithCAS(first.Version))
	var conflict *client.CASConflictError
	if errors.As(err, &conflict) {
		fmt.Println("stale version; current is newer:", conflict.CurrentVersion > first.Version)
	}
	item, _ := c.Get(ctx, "config")
	fmt.Printf("%s\n", item.Value)
	// Output:
	// already exists: true
	// stale version; current is newer: true
	// v2
}

func ExampleClient_Session() {
	url, stop := startExampleNode()
	defer stop()
	c, err := client.New(client.Config{Endpoints: []string{url}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A session's reads go to any member (stale reads spread over the
	// cluster) but wait until that member has applied the session's writes.
	s := c.Session()
	w, err := s.Set(ctx, "cart:42", []byte("3 items"))
	if err != nil {
		log.Fatal(err)
	}
	item, err := s.Get(ctx, "cart:42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, read at or after the write: %t\n", item.Value, item.Index >= w.Index)
	// Output:
	// 3 items, read at or after the write: true
}

func ExampleClient_Batch() {
	url, stop := startExampleNode()
	defer stop()
	c, err := client.New(client.Config{Endpoints: []string{url}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	res, err := c.Batch(ctx, []client.BatchOp{
		client.SetOp("a", []byte("1")),
		client.SetOp("b", []byte("2"), client.WithTTL(time.Minute)),
		client.IncrOp("hits", 5),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("hits:", res.Results[2].Value)

	// Atomic by default: the failed condition of op 1 undoes op 0.
	_, err = c.Batch(ctx, []client.BatchOp{
		client.DeleteOp("a"),
		client.SetOp("b", []byte("x"), client.WithCAS(0)),
	})
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println("conflict:", errors.Is(err, client.ErrCASConflict), "failed op:", e.FailedOp)
	}

	got, err := c.GetMany(ctx, []string{"a", "b", "c"})
	if err != nil {
		log.Fatal(err)
	}
	for _, it := range got.Items {
		fmt.Printf("%s found=%t %s\n", it.Key, it.Found, it.Value)
	}
	// Output:
	// hits: 5
	// conflict: true failed op: 1
	// a found=true 1
	// b found=true 2
	// c found=false
}

func ExampleClient_Keys() {
	url, stop := startExampleNode()
	defer stop()
	c, err := client.New(client.Config{Endpoints: []string{url}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, k := range []string{"user:1", "user:2", "user:3", "user:\xff", "other"} {
		if _, err := c.Set(ctx, k, []byte("x")); err != nil {
			log.Fatal(err)
		}
	}
	// Page through the listing two keys at a time. Keys are bytes: the
	// client decodes the server's base64 for keys that are not UTF-8.
	for cursor := ""; ; {
		page, err := c.Keys(ctx, "user:", client.WithLimit(2), client.WithCursor(cursor))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%q\n", page.Keys)
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	res, err := c.DeletePrefix(ctx, "user:")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deleted:", res.Deleted)
	// Output:
	// ["user:1" "user:2"]
	// ["user:3" "user:\xff"]
	// deleted: 4
}
