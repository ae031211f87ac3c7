// Package testlog sends a component's logs to its test's t.Log, so a
// failing test shows what the nodes were doing and a passing one stays
// quiet. It is shared by every package's in-process tests.
package testlog

import (
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// writer forwards log lines to t.Log until the test ends. Lines from
// goroutines that outlive the test (Raft shutting down) are dropped:
// t.Log after the end of a test panics.
type writer struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// New returns a logger named name that writes lines at level and above to
// t.Log. Call it before starting what logs, so that its cleanup is
// registered first and therefore runs after that thing's Close.
func New(t testing.TB, name string, level hclog.Level) hclog.Logger {
	w := &writer{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: w, Level: level})
}

// Buffer collects log lines written from several goroutines, for a test
// that looks for a line.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
