package node

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// tcpStream is the Raft stream layer: a TCP listener plus a dialer that
// connects from the node's own bind address. Dialing from the bind address
// (rather than whatever the kernel picks) keeps a node's traffic on the
// interface it was given, and lets a test tell nodes apart by source
// address when it injects network faults between them.
//
// Addresses are dialled as given: a DNS name is resolved on every dial,
// never once at start, so a member that comes back with a new IP under
// the same name is found again.
//
// Every connection of a node with a cluster id starts with a handshake
// (after TLS, if any): the dialler sends its cluster id and member id, the
// acceptor answers whether it accepts, with its own. A mismatch closes the
// connection on both sides, each logging which cluster the other is of.
type tcpStream struct {
	ln        net.Listener
	advertise net.Addr
	dialer    net.Dialer
	tls       *tls.Config // nil: plaintext
	// ident returns this node's cluster id ("" for none: no handshake is
	// sent, and only peers without one are accepted) and member id.
	ident func() (cluster, id string)
	// adopt is called when a peer with a cluster id dials a node without
	// one; it returns the node's cluster id afterwards ("" if it did not
	// take the peer's).
	adopt func(cluster string) string
	// fence serves a read-fence connection (fence.go); nil: none.
	fence  func(net.Conn)
	logger hclog.Logger
	warned sync.Map // peer -> time.Time of the last refusal logged
}

// newTCPStream listens on bind. advertise is the address other members
// dial (a DNS name or an IP, kept as given); empty means the listener's
// own address, with a wildcard host replaced by this host's name. With
// peerTLS, both directions are mutual TLS: a peer must present a
// certificate signed by the peer CA to send or receive a single Raft
// message (append, vote, snapshot).
func newTCPStream(bind, advertise string, peerTLS *tls.Config, ident func() (string, string), adopt func(string) string, logger hclog.Logger) (*tcpStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen on raft address: %w", err)
	}
	adv, err := AdvertiseAddr(ln.Addr().String(), advertise)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("raft address: %w", err)
	}
	if ident == nil {
		ident = func() (string, string) { return "", "" }
	}
	if adopt == nil {
		adopt = func(string) string { return "" }
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &tcpStream{ln: ln, advertise: nameAddr(adv), tls: peerTLS, ident: ident, adopt: adopt, logger: logger}
	if peerTLS != nil {
		s.ln = tls.NewListener(ln, peerTLS)
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsUnspecified() {
		s.dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return s, nil
}

func (s *tcpStream) Close() error   { return s.ln.Close() }
func (s *tcpStream) Addr() net.Addr { return s.advertise }

// Accept returns the next connection. The TLS handshake (and so the
// certificate check) and the cluster handshake run on the connection's
// first read, in Raft's per-connection goroutine, so a slow or hostile
// peer cannot stall the accept loop; a peer without a valid certificate,
// or of another cluster, fails that read and is dropped before Raft
// decodes anything.
func (s *tcpStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &helloConn{Conn: c, s: s}, nil
}

func (s *tcpStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := s.dialer
	d.Timeout = timeout
	var c net.Conn
	var err error
	if s.tls != nil {
		c, err = tls.DialWithDialer(&d, "tcp", string(addr), s.tls)
	} else {
		c, err = d.Dial("tcp", string(addr))
	}
	if err != nil {
		return nil, err
	}
	cluster, id := s.ident()
	if cluster == "" {
		return c, nil
	}
	if err := s.sayHello(c, string(addr), cluster, id, timeout); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// The handshake. hello: helloMagic, then the dialler's cluster id and
// member id; answer: a status byte, then the acceptor's cluster id and
// member id. Strings are uvarint-length-prefixed. Raft's own messages
// start with a type byte below 16, so an acceptor tells a hello from a
// peer without one (a node without a cluster id) by the first byte.
var helloMagic = []byte("RCHI\x01")

const (
	helloOK      byte = 0
	helloRefused byte = 1
	maxHelloStr       = 256
)

func (s *tcpStream) sayHello(c net.Conn, addr, cluster, id string, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	msg := append([]byte(nil), helloMagic...)
	msg = appendStr(appendStr(msg, cluster), id)
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("raft handshake with %s: %w", addr, err)
	}
	r := byteReader{c} // reads exactly the answer, never a byte of Raft's
	status, err := r.ReadByte()
	if err != nil {
		return fmt.Errorf("raft handshake with %s: %w (a peer older than cluster ids closes the connection)", addr, err)
	}
	theirs, err1 := readStr(r)
	peer, err2 := readStr(r)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("raft handshake with %s: %w", addr, err)
	}
	if status != helloOK {
		err := fmt.Errorf("%w: the Raft peer at %s (member %q) is of cluster %q, this node of cluster %q; it refused the connection",
			ErrOtherCluster, addr, peer, theirs, cluster)
		s.warn(addr, "refused by a Raft peer of another cluster (a node of a re-formed or other cluster at an address this cluster lists?): this node does not reach it",
			"peer_addr", addr, "peer", peer, "peer_cluster_id", theirs, "cluster_id", cluster)
		return err
	}
	return nil
}

// warn logs a refusal at error level, once a minute per peer.
func (s *tcpStream) warn(peer, msg string, args ...any) {
	now := time.Now()
	if last, ok := s.warned.Load(peer); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	s.warned.Store(peer, now)
	s.logger.Error(msg, args...)
}

// helloConn is an accepted connection whose first read runs the
// acceptor's side of the handshake.
type helloConn struct {
	net.Conn
	s      *tcpStream
	once   sync.Once
	err    error
	peeked []byte // bytes read while looking for a hello, not yet returned
	fence  bool   // a read-fence connection, not Raft's
}

// Read runs the handshake on the first call. A read-fence connection is
// served right there, on Raft's connection goroutine, and then reads as
// a clean end, so Raft closes it without a word.
func (c *helloConn) Read(p []byte) (int, error) {
	c.once.Do(c.handshake)
	if c.fence {
		c.fence = false
		c.s.fence(c.Conn)
		c.err = io.EOF
	}
	if c.err != nil {
		return 0, c.err
	}
	if len(c.peeked) > 0 {
		n := copy(p, c.peeked)
		c.peeked = c.peeked[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *helloConn) handshake() {
	c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.Conn.SetReadDeadline(time.Time{})
	mine, self := c.s.ident()
	remote := c.Conn.RemoteAddr().String()
	var first [1]byte
	if _, err := io.ReadFull(c.Conn, first[:]); err != nil {
		c.fail(err)
		return
	}
	if first[0] != helloMagic[0] {
		// A peer without a cluster id: a data directory from before
		// cluster ids, in a cluster that has none either.
		if first[0] == fenceOpen && mine == "" && c.s.fence != nil {
			c.fence = true
			return
		}
		if mine != "" {
			c.s.warn(remote, "refused a Raft connection without a cluster id (a node of a cluster formed before cluster ids, or a binary older than them): this node is of a cluster with an id",
				"peer_addr", remote, "cluster_id", mine)
			c.fail(fmt.Errorf("%w: peer %s sent no cluster id", ErrOtherCluster, remote))
			return
		}
		c.peeked = first[:]
		return
	}
	rest := make([]byte, len(helloMagic)-1)
	r := byteReader{c.Conn}
	_, err := io.ReadFull(r, rest)
	if err != nil || string(first[:])+string(rest) != string(helloMagic) {
		c.fail(fmt.Errorf("raft handshake from %s: not a hello (%v)", remote, err))
		return
	}
	theirs, err1 := readStr(r)
	peer, err2 := readStr(r)
	if err := errors.Join(err1, err2); err != nil {
		c.fail(fmt.Errorf("raft handshake from %s: %w", remote, err))
		return
	}
	if mine == "" && theirs != "" {
		mine = c.s.adopt(theirs)
	}
	ok := mine == "" || theirs == mine
	status := helloOK
	if !ok {
		status = helloRefused
	}
	c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Conn.Write(appendStr(appendStr([]byte{status}, mine), self))
	c.Conn.SetWriteDeadline(time.Time{})
	if !ok {
		c.s.warn(peer+"@"+remote, "refused a Raft connection from a node of another cluster (a wiped member restarted with --bootstrap, or a node of another or re-formed cluster dialling this address): empty that node's data directory and start it with --join to move it to this cluster",
			"peer", peer, "peer_addr", remote, "peer_cluster_id", theirs, "cluster_id", mine)
		c.fail(fmt.Errorf("%w: peer %q at %s is of cluster %q, this node of %q", ErrOtherCluster, peer, remote, theirs, mine))
		return
	}
	if err != nil {
		c.fail(err)
		return
	}
	// The first byte after the hello tells a read-fence connection from
	// Raft's. Raft's message mostly follows its hello at once, but a
	// pipeline's first waits for an entry or a commit timeout: no
	// deadline here, as before the fence.
	c.Conn.SetReadDeadline(time.Time{})
	next, err := byteReader{c.Conn}.ReadByte()
	if err != nil {
		c.fail(err)
		return
	}
	if next == fenceOpen && c.s.fence != nil {
		c.fence = true
		return
	}
	c.peeked = []byte{next}
}

func (c *helloConn) fail(err error) {
	c.err = err
	c.Conn.Close()
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// byteReader reads a connection unbuffered, so a handshake never
// consumes a byte that belongs to Raft.
type byteReader struct{ io.Reader }

func (r byteReader) ReadByte() (byte, error) {
	var b [1]byte
	_, err := io.ReadFull(r.Reader, b[:])
	return b[0], err
}

func readStr(r byteReader) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return "", err
	}
	if n > maxHelloStr {
		return "", fmt.Errorf("handshake string of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}
