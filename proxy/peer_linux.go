//go:build linux

package proxy

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerClosed reports whether the client closed its side of conn, without
// consuming any bytes it may have sent (MSG_PEEK).
func peerClosed(conn net.Conn) bool {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var buf [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = n == 0 && err == nil || (err != nil && err != unix.EAGAIN && err != unix.EWOULDBLOCK && err != unix.EINTR)
		return true
	})
	return closed
}
