package testcluster

import (
	"log"
	"os"
	"sync"
	"testing"
)

// Standalone is a testing.TB for code that has no test (an Example
// function): Fatal and Fatalf log and exit, logs are discarded, TempDir
// makes directories and Cleanup functions run (last first) on Close, which
// also removes the directories. Only the methods this package, testlog
// and testcerts call are implemented; the others panic.
type Standalone struct {
	testing.TB // nil: a method not implemented below panics

	mu       sync.Mutex
	cleanups []func()
}

// NewStandalone returns a Standalone; call Close when done.
func NewStandalone() *Standalone { return &Standalone{} }

func (*Standalone) Helper()                   {}
func (*Standalone) Name() string              { return "standalone" }
func (*Standalone) Log(...any)                {}
func (*Standalone) Logf(string, ...any)       {}
func (*Standalone) Error(args ...any)         { log.Print(args...) }
func (*Standalone) Errorf(f string, a ...any) { log.Printf(f, a...) }
func (*Standalone) Fatal(args ...any)         { log.Fatal(args...) }
func (*Standalone) Fatalf(f string, a ...any) { log.Fatalf(f, a...) }

// TempDir makes a new directory, removed by Close.
func (s *Standalone) TempDir() string {
	dir, err := os.MkdirTemp("", "raftcache-standalone-")
	if err != nil {
		log.Fatal(err)
	}
	s.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Cleanup registers f to run on Close.
func (s *Standalone) Cleanup(f func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

// Close runs the cleanups, last registered first.
func (s *Standalone) Close() {
	s.mu.Lock()
	fs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
