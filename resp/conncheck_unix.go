//go:build linux || darwin || freebsd || netbsd || openbsd

package resp

import (
	"errors"
	"net"
	"syscall"
)

// connAlive reports whether an idle connection is still open, without
// blocking or consuming anything: a non-blocking peek finds nothing to
// read on a healthy idle connection (EAGAIN), and end-of-file (or bytes,
// which an idle relay connection must not have) on one the peer closed.
// (A read with a deadline in the past would not do: Go returns the
// timeout without asking the kernel.)
func connAlive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK)
		return true // never wait for readiness
	})
	return err == nil && alive
}
