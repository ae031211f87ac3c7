package node

import "sync"

// latch is an end a node reaches once and does not leave (removed from
// the cluster, wedged by a Raft bug): why it ended, and a channel closed
// when it did, for `raftcache node` to exit on.
type latch struct {
	once sync.Once
	ch   chan struct{}
	mu   sync.Mutex
	why  error
}

func newLatch() latch { return latch{ch: make(chan struct{})} }

// set records why and closes the channel, the first time only; it says
// whether this call did.
func (l *latch) set(why error) bool {
	first := false
	l.once.Do(func() {
		l.mu.Lock()
		l.why = why
		l.mu.Unlock()
		close(l.ch)
		first = true
	})
	return first
}

// done is closed once the latch is set.
func (l *latch) done() <-chan struct{} { return l.ch }

// err is nil until the latch is set, then why.
func (l *latch) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.why
}
