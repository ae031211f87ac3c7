package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tcpStream is the Raft stream layer: a TCP listener plus a dialer that
// connects from the node's own bind address. Dialing from the bind address
// (rather than whatever the kernel picks) keeps a node's traffic on the
// interface it was given, and lets a test tell nodes apart by source
// address when it injects network faults between them.
type tcpStream struct {
	ln        net.Listener
	advertise net.Addr
	dialer    net.Dialer
	tls       *tls.Config // nil: plaintext
}

// newTCPStream listens on bind. advertise is the address other members
// dial; empty means the listener's own address, which must then be a
// specific IP. With peerTLS, both directions are mutual TLS: a peer must
// present a certificate signed by the peer CA to send or receive a single
// Raft message (append, vote, snapshot).
func newTCPStream(bind, advertise string, peerTLS *tls.Config) (*tcpStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen on raft address: %w", err)
	}
	s := &tcpStream{ln: ln, advertise: ln.Addr(), tls: peerTLS}
	if peerTLS != nil {
		s.ln = tls.NewListener(ln, peerTLS)
	}
	if advertise != "" {
		if s.advertise, err = net.ResolveTCPAddr("tcp", advertise); err != nil {
			ln.Close()
			return nil, fmt.Errorf("raft advertise address: %w", err)
		}
	}
	adv := s.advertise.(*net.TCPAddr)
	if adv.IP == nil || adv.IP.IsUnspecified() || adv.Port == 0 {
		ln.Close()
		return nil, errors.New("raft address " + s.advertise.String() + " is not advertisable: give a specific IP and port")
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsUnspecified() {
		s.dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return s, nil
}

func (s *tcpStream) Close() error   { return s.ln.Close() }
func (s *tcpStream) Addr() net.Addr { return s.advertise }

// Accept returns the next connection. With TLS the handshake (and so the
// certificate check) runs on the connection's first read, in Raft's
// per-connection goroutine, so a slow or hostile peer cannot stall the
// accept loop; a peer without a valid certificate fails that read and is
// dropped before Raft decodes anything.
func (s *tcpStream) Accept() (net.Conn, error) { return s.ln.Accept() }

func (s *tcpStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := s.dialer
	d.Timeout = timeout
	if s.tls != nil {
		return tls.DialWithDialer(&d, "tcp", string(addr), s.tls)
	}
	return d.Dial("tcp", string(addr))
}
