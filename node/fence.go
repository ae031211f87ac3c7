package node

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// The read fence: the leadership round of a strong read, on a connection
// of its own to each voter.
//
// Why not raft.VerifyLeader. hashicorp/raft counts, for a VerifyLeader,
// the answer to any heartbeat that comes back after the call registered,
// including a heartbeat sent before it: its heartbeat goroutine sends one
// every few milliseconds on a timer, and notifyAll votes every pending
// verification with whatever answer arrives next. An answer written by a
// follower before the reads of a round arrived proves nothing about the
// moment after: a leader paused (SIGSTOP, a long GC, a frozen VM) with
// such an answer in its socket buffer, while the others elected a leader
// and acknowledged a write, can be confirmed by it on waking and serve
// the old value. That is a lease in all but name, and strong reads here
// take none. The fence asks each voter afresh, numbers every request, and
// counts only the answers to this round's request (etcd's ReadIndex
// carries a request context through its heartbeats for the same reason).
//
// What an answer proves. A voter answers with its current term, read
// after the request arrived, so after every read of the round arrived.
// Terms never go down and a node's term is persisted before it votes or
// accepts an entry, so a voter at a term no higher than the leader's has
// not helped elect, or commit for, any later leader by then. The leader
// plus such voters making a majority of its latest configuration, no
// later leader can have acknowledged anything before the round started:
// the commit index the round took covers every acknowledged write. A
// voter answers only once the cluster registered its data directory
// (votegate.go): a wiped disk forgot its votes, and its term proves
// nothing. An answer with a higher term means this node was deposed: the
// round fails at once.
//
// It is also cheaper: a round is a 16-byte request and a 17-byte answer
// per voter, handled by one goroutine on each side, where VerifyLeader
// goes through Raft's leader loop and its heartbeat goroutines, with
// msgpack on both sides.
//
// Mixed versions. A binary older than the fence closes the connection on
// its first byte (an unknown Raft message type; it logs that). A member
// that never opened a fence and does that is taken for such a binary: it
// is asked again only after fenceLegacyRetry, and while a quorum cannot
// be had without it the round falls back to VerifyLeader. A member that
// once answered is never taken for one again (a node shutting down says
// so, and a crash is just unreachable).
//
// A voter that stops answering (stopped, partitioned, overloaded) holds
// no round: a request is 16 bytes written without waiting, a voter whose
// oldest unanswered request is fenceStall old is dropped and dialled
// again after fenceRetry, and the others meanwhile make the quorum.
//
// The wire: the connection goes through the stream layer (TLS and the
// cluster handshake, stream.go), then the dialler sends fenceOpen and the
// member id it expects (a length-prefixed string); the acceptor answers a
// status byte, its own id and its cluster id, which the dialler checks
// against its own (the hello alone lets a node without a cluster id
// accept anyone). Then each request is a sequence number and the
// leader's term (two big-endian uint64), and each answer the same
// sequence number, the voter's term, and 1 if its vote counts (0 if not).

// fenceOpen is the first byte of a fence connection after the cluster
// handshake: above Raft's message types (below 16) and not the first
// byte of a hello.
const fenceOpen byte = 0xFE

const (
	fenceReqLen = 16
	fenceAnsLen = 17
	// fenceClosing: the acceptor is shutting down (not an older binary).
	fenceClosing byte = 2
	// fenceDialTimeout bounds a dial and the opening exchange.
	fenceDialTimeout = 2 * time.Second
	// fenceRetry is how long a peer that could not be reached is left
	// alone: rounds meanwhile go on with the others.
	fenceRetry = 200 * time.Millisecond
	// fenceLegacyRetry is how long a peer that does not speak the fence
	// (an older binary) is left alone.
	fenceLegacyRetry = 10 * time.Second
	// fenceStall is how old a voter's oldest unanswered request may get
	// before its connection is dropped.
	fenceStall = 500 * time.Millisecond
	// fenceWriteTimeout bounds a request's write: with fenceStall, the
	// socket buffer never fills, so this is only a backstop.
	fenceWriteTimeout = 200 * time.Millisecond
)

var (
	// errFenceLegacy: a quorum needs a peer that does not speak the fence.
	errFenceLegacy = errors.New("read fence: a quorum needs a member of an older binary")
	// errFenceDeposed: a voter answered with a later term.
	errFenceDeposed = errors.New("a voter is at a later term")
)

// fence is the leader's side: one connection per voter, kept open.
type fence struct {
	n *Node

	mu     sync.Mutex
	peers  map[raft.ServerID]*fencePeer
	seq    uint64
	round  *fenceRound
	closed bool
}

type fencePeer struct {
	id   raft.ServerID
	addr raft.ServerAddress

	// Guarded by fence.mu.
	conn     net.Conn // nil: not connected
	dialing  bool
	retryAt  time.Time // no dial before
	legacy   bool      // the last open was refused: an older binary
	spoke    bool      // an open succeeded once: not an older binary
	sent     uint64    // the last request's sequence number on conn
	answered uint64    // the last answered one
	sentAt   time.Time // when the oldest unanswered one was sent

	wmu sync.Mutex // one writer at a time on conn
}

// fenceRound is one round: the answers it still needs, and how many of
// its peers may still give one. One round runs at a time (readIndex.run
// is the only caller of confirm).
type fenceRound struct {
	seq, term uint64
	need      int
	waiting   map[*fencePeer]bool // asked, not answered
	legacy    bool                // a voter it needs speaks no fence
	deposed   uint64              // a higher term heard; 0 if none
	done      chan struct{}
	ended     bool
}

func newFence(n *Node) *fence {
	return &fence{n: n, peers: make(map[raft.ServerID]*fencePeer)}
}

// end closes the round once (under f.mu).
func (rd *fenceRound) end() {
	if !rd.ended {
		rd.ended = true
		close(rd.done)
	}
}

// settle ends the round once it has its answers, or can no longer get
// them (under f.mu).
func (rd *fenceRound) settle() {
	if rd.need <= 0 || rd.deposed != 0 || len(rd.waiting) < rd.need {
		rd.end()
	}
}

// confirm runs one round for term and returns nil once a quorum of the
// latest configuration's voters, this node included, answered it with a
// term no higher; within timeout.
func (f *fence) confirm(term uint64, timeout time.Duration) error {
	cfg := f.n.raft.GetConfiguration().Configuration()
	self := raft.ServerID(f.n.cfg.ID)
	voters, selfVoter := 0, false
	var others []raft.Server
	for _, s := range cfg.Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if s.ID == self {
			selfVoter = true
		} else {
			others = append(others, s)
		}
	}
	need := voters/2 + 1
	if selfVoter {
		need--
	}
	if need <= 0 {
		return nil // a cluster of one: this node's own term is the proof
	}

	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	f.seq++
	rd := &fenceRound{seq: f.seq, term: term, need: need, waiting: make(map[*fencePeer]bool, len(others)),
		done: make(chan struct{})}
	f.round = rd
	var send []fenceSend
	now := time.Now()
	for _, s := range others {
		p := f.peer(s)
		if p.conn != nil && p.sent > p.answered && now.Sub(p.sentAt) > fenceStall {
			f.drop(p) // stopped or cut off: the others make the quorum
		}
		switch {
		case p.conn != nil:
			rd.waiting[p] = true
			send = append(send, fenceSend{p, p.conn})
			if p.sent <= p.answered {
				p.sentAt = now
			}
			p.sent = rd.seq
		case p.legacy && now.Before(p.retryAt):
			rd.legacy = true
		case p.dialing:
			rd.waiting[p] = true // asked once connected
		case now.Before(p.retryAt):
			// unreachable a moment ago: not asked this round
		default:
			p.dialing = true
			rd.waiting[p] = true
			go f.dial(p)
		}
	}
	f.forget(others)
	rd.settle()
	f.mu.Unlock()

	t := time.NewTimer(timeout)
	defer t.Stop()
	req := fenceRequest(rd.seq, term)
	for _, s := range send {
		f.send(s.p, s.c, req[:])
	}

	select {
	case <-rd.done:
	case <-t.C:
	case <-f.n.closing:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ended := rd.ended
	rd.end()
	if f.round == rd {
		f.round = nil
	}
	switch {
	case rd.deposed != 0:
		return fmt.Errorf("%w: %w (term %d; this node leads term %d)", ErrNotLeader, errFenceDeposed, rd.deposed, term)
	case rd.need <= 0:
		return nil
	case f.closed:
		return ErrClosed
	case !ended:
		return fmt.Errorf("%w: leadership not confirmed: no quorum of voters answered within %v", ErrNoLeader, timeout)
	case rd.legacy:
		return errFenceLegacy
	default:
		return fmt.Errorf("%w: leadership not confirmed: too few voters reachable", ErrNoLeader)
	}
}

// drop closes p's connection; it is dialled again after fenceRetry
// (under f.mu).
func (f *fence) drop(p *fencePeer) {
	if p.conn != nil {
		closeLater(p.conn)
		p.conn = nil
	}
	p.retryAt = time.Now().Add(fenceRetry)
}

// closeLater closes c on a goroutine of its own: a TLS connection's Close
// writes close_notify and may wait seconds for a peer that reads nothing,
// which must not happen under f.mu.
func closeLater(c net.Conn) { go c.Close() }

// peer returns the peer for server s, replacing one at another address
// (under f.mu).
func (f *fence) peer(s raft.Server) *fencePeer {
	p := f.peers[s.ID]
	if p != nil && p.addr != s.Address {
		if p.conn != nil {
			closeLater(p.conn)
		}
		delete(f.peers, s.ID)
		p = nil
	}
	if p == nil {
		p = &fencePeer{id: s.ID, addr: s.Address}
		f.peers[s.ID] = p
	}
	return p
}

// forget drops the peers that are no longer voters (under f.mu).
func (f *fence) forget(voters []raft.Server) {
	if len(f.peers) == len(voters) {
		return
	}
	keep := make(map[raft.ServerID]bool, len(voters))
	for _, s := range voters {
		keep[s.ID] = true
	}
	for id, p := range f.peers {
		if !keep[id] {
			if p.conn != nil {
				closeLater(p.conn)
			}
			delete(f.peers, id)
		}
	}
}

// fenceSend is a request to write: the peer and the connection it was
// asked on.
type fenceSend struct {
	p *fencePeer
	c net.Conn
}

// fenceRequest encodes a round's request.
func fenceRequest(seq, term uint64) [fenceReqLen]byte {
	var req [fenceReqLen]byte
	binary.BigEndian.PutUint64(req[:8], seq)
	binary.BigEndian.PutUint64(req[8:], term)
	return req
}

// send writes a request to p on c; a failed write drops the connection.
func (f *fence) send(p *fencePeer, c net.Conn, req []byte) {
	p.wmu.Lock()
	c.SetWriteDeadline(time.Now().Add(fenceWriteTimeout))
	_, err := c.Write(req)
	p.wmu.Unlock()
	if err != nil {
		f.lost(p, c)
	}
}

// lost drops p's connection c and takes p out of the round in progress,
// unless p is on a newer connection or dialling one (it is asked there).
func (f *fence) lost(p *fencePeer, c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case p.conn == c:
		f.drop(p)
	case p.conn != nil || p.dialing:
		return
	}
	if rd := f.round; rd != nil && rd.waiting[p] {
		delete(rd.waiting, p)
		rd.settle()
	}
}

// dial connects to p, opens the fence, and asks it the round in progress.
func (f *fence) dial(p *fencePeer) {
	c, legacy, err := f.open(p)
	f.mu.Lock()
	p.dialing = false
	if err != nil || f.closed || f.peers[p.id] != p {
		if c != nil {
			closeLater(c)
		}
		if legacy && p.spoke {
			// It answered before: one such end is forgiven (a crash or a
			// stop at the wrong moment), the next is an older binary (a
			// downgrade).
			p.spoke, legacy = false, false
		}
		p.legacy = legacy
		retry := fenceRetry
		if legacy {
			retry = fenceLegacyRetry
			if err != nil {
				f.n.logger.Warn("read fence: a member does not speak it (an older binary?); strong reads confirm leadership through Raft's heartbeats while a quorum needs it",
					"peer", p.id, "error", err)
			}
		}
		p.retryAt = time.Now().Add(retry)
		if rd := f.round; rd != nil && rd.waiting[p] {
			delete(rd.waiting, p)
			if legacy {
				rd.legacy = true
			}
			rd.settle()
		}
		f.mu.Unlock()
		return
	}
	p.conn, p.legacy, p.spoke = c, false, true
	p.sent, p.answered = 0, 0
	rd := f.round
	ask := rd != nil && !rd.ended && rd.waiting[p]
	if ask {
		p.sent, p.sentAt = rd.seq, time.Now()
	}
	f.mu.Unlock()
	go f.readAnswers(p, c)
	if ask {
		req := fenceRequest(rd.seq, rd.term)
		f.send(p, c, req[:])
	}
}

// open dials p and runs the opening exchange; legacy reports a peer that
// closed the connection on it.
func (f *fence) open(p *fencePeer) (c net.Conn, legacy bool, err error) {
	c, err = f.n.stream.Dial(p.addr, fenceDialTimeout)
	if err != nil {
		return nil, false, err
	}
	c.SetDeadline(time.Now().Add(fenceDialTimeout))
	msg := appendStr([]byte{fenceOpen}, string(p.id))
	if _, err = c.Write(msg); err != nil {
		return c, false, err
	}
	r := byteReader{c}
	status, err := r.ReadByte()
	if err != nil {
		// An older binary takes fenceOpen for an unknown Raft message
		// type and closes the connection (with a reset when the id it
		// did not read is still in its buffer).
		return c, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET), err
	}
	id, err1 := readStr(r)
	cluster, err2 := readStr(r)
	if err := errors.Join(err1, err2); err != nil {
		return c, false, err
	}
	switch {
	case status == fenceClosing:
		return c, false, fmt.Errorf("read fence: member %q at %s is shutting down", p.id, p.addr)
	case status != helloOK || id != string(p.id):
		return c, false, fmt.Errorf("read fence: %s answers as member %q, not %q", p.addr, id, p.id)
	case cluster != f.n.ClusterID():
		return c, false, fmt.Errorf("%w: read fence: member %q at %s is of cluster %q", ErrOtherCluster, id, p.addr, cluster)
	}
	c.SetDeadline(time.Time{})
	return c, false, nil
}

// readAnswers reads p's answers on c until it fails.
func (f *fence) readAnswers(p *fencePeer, c net.Conn) {
	br := bufio.NewReaderSize(c, 256)
	var ans [fenceAnsLen]byte
	for {
		if _, err := io.ReadFull(br, ans[:]); err != nil {
			f.lost(p, c)
			return
		}
		seq := binary.BigEndian.Uint64(ans[:8])
		term := binary.BigEndian.Uint64(ans[8:16])
		counts := ans[16] == 1
		f.mu.Lock()
		if p.conn == c && seq > p.answered {
			// Answering: the stall clock restarts for what is still
			// outstanding (a voter a round behind is slow, not silent).
			p.answered, p.sentAt = seq, time.Now()
		}
		rd := f.round
		// Only this round's request proves anything about this round: an
		// answer to an earlier one was written before its reads arrived.
		if rd != nil && !rd.ended && rd.seq == seq && rd.waiting[p] {
			delete(rd.waiting, p)
			switch {
			case term > rd.term:
				rd.deposed = term
			case counts:
				rd.need--
			}
			rd.settle()
		}
		f.mu.Unlock()
	}
}

// close drops every connection; rounds fail from now on.
func (f *fence) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, p := range f.peers {
		if p.conn != nil {
			closeLater(p.conn)
			p.conn = nil
		}
	}
	if f.round != nil {
		f.round.end()
	}
}

// fenceServer is the voter's side: it answers each request with this
// node's term, on the connection's own goroutine (Raft's, borrowed by the
// stream layer: stream.go).
type fenceServer struct {
	n     *Node
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	shut  bool
}

func newFenceServer(n *Node) *fenceServer {
	return &fenceServer{n: n, conns: make(map[net.Conn]struct{})}
}

// serve runs a fence connection whose fenceOpen byte the stream layer
// read, until it fails or the node closes.
func (s *fenceServer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(fenceDialTimeout))
	want, err := readStr(byteReader{c})
	if err != nil {
		return
	}
	status := helloOK
	if want != s.n.cfg.ID {
		status = helloRefused
	}
	s.mu.Lock()
	if s.shut {
		status = fenceClosing
	} else {
		s.conns[c] = struct{}{}
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
	s.mu.Unlock()
	if _, err := c.Write(appendStr(appendStr([]byte{status}, s.n.cfg.ID), s.n.ClusterID())); err != nil || status != helloOK {
		return
	}
	c.SetDeadline(time.Time{})
	br := bufio.NewReaderSize(c, 256)
	bw := bufio.NewWriterSize(c, 256)
	var req [fenceReqLen]byte
	var ans [fenceAnsLen]byte
	for {
		if _, err := io.ReadFull(br, req[:]); err != nil {
			return
		}
		copy(ans[:8], req[:8])
		var term uint64
		counts := byte(0)
		if r := s.n.gateRaft.Load(); r != nil {
			term = r.CurrentTerm()
			// A wiped or new data directory forgot its votes, and one
			// catching up after an unclean stop may have lost its tail:
			// its term proves nothing until it may vote (votegate.go).
			if s.n.mayVote() {
				counts = 1
			}
		}
		binary.BigEndian.PutUint64(ans[8:16], term)
		ans[16] = counts
		bw.Write(ans[:])
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

// close ends every fence connection this node serves.
func (s *fenceServer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shut = true
	for c := range s.conns {
		c.Close()
	}
}
