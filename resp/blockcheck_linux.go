package resp

import (
	"net"
	"syscall"
	"unsafe"
)

// peerGone reports whether the peer closed (or reset) a connection that
// is not being read: the kernel's TCP state, which pending bytes (a
// pipelined command, a TLS close_notify) do not hide, unlike a peek.
func peerGone(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var state byte
	var serr syscall.Errno
	err = raw.Control(func(fd uintptr) {
		var info [256]byte // struct tcp_info; its first byte is tcpi_state
		size := uint32(len(info))
		_, _, serr = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
		state = info[0]
	})
	if err != nil {
		return true
	}
	if serr != 0 {
		return false
	}
	const tcpEstablished = 1
	return state != tcpEstablished
}
