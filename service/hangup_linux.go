package service

import (
	"net"
	"sync"
	"syscall"
)

// hangups notices clients that closed taken-over connections. One epoll
// instance watches them all for EPOLLRDHUP, instead of a reading goroutine
// and buffer per stream, which would cost more than the rest of an idle
// stream together.
type hangups struct {
	epfd  int
	mu    sync.Mutex
	next  uint64
	watch map[uint64]func()
	stop  chan struct{}
	done  chan struct{}
}

// hangupPoll bounds how long closing the watcher waits for epoll_wait.
const hangupPollMillis = 250

func newHangups() *hangups {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil // streams then notice a closed client on their next write
	}
	h := &hangups{epfd: fd, watch: map[uint64]func(){}, stop: make(chan struct{}), done: make(chan struct{})}
	go h.run()
	return h
}

// add calls onHangup once the peer of conn closes its side. The returned
// function stops watching; call it before closing conn.
func (h *hangups) add(conn net.Conn, onHangup func()) (remove func()) {
	sc, ok := conn.(syscall.Conn)
	if h == nil || !ok {
		return func() {}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	h.mu.Lock()
	h.next++
	token := h.next
	h.watch[token] = onHangup
	h.mu.Unlock()
	// The token, not the fd, identifies the stream: an fd number is reused
	// as soon as it is closed, a token never is.
	ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | 1<<31 /* EPOLLET */, Fd: int32(token), Pad: int32(token >> 32)}
	_ = raw.Control(func(fd uintptr) { _ = syscall.EpollCtl(h.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev) })
	return func() {
		_ = raw.Control(func(fd uintptr) { _ = syscall.EpollCtl(h.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) })
		h.mu.Lock()
		delete(h.watch, token)
		h.mu.Unlock()
	}
}

func (h *hangups) run() {
	defer close(h.done)
	events := make([]syscall.EpollEvent, 128)
	for {
		select {
		case <-h.stop:
			return
		default:
		}
		n, err := syscall.EpollWait(h.epfd, events, hangupPollMillis)
		if err != nil && err != syscall.EINTR {
			return
		}
		for _, ev := range events[:max(n, 0)] {
			token := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			h.mu.Lock()
			onHangup := h.watch[token]
			delete(h.watch, token)
			h.mu.Unlock()
			if onHangup != nil {
				onHangup()
			}
		}
	}
}

// close stops the watcher and waits for it.
func (h *hangups) close() {
	if h == nil {
		return
	}
	close(h.stop)
	<-h.done
	_ = syscall.Close(h.epfd)
}
