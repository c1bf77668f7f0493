package service

import "syscall"

// peerClosed reports whether the client has closed its side of a taken-over
// connection, without waiting: a peek that finds the end of the stream (or a
// reset). A named cursor asks after each flush, so that events written into
// a connection the client had already left do not count as delivered even
// when the hangup watcher has not caught up yet.
func (s *connSink) peerClosed() bool {
	sc, ok := s.conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var buf [1]byte
	_ = raw.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err != nil && err != syscall.EAGAIN && err != syscall.EINTR
	})
	return closed
}
