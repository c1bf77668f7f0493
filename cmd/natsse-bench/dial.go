package main

import (
	"fmt"
	"net"
	"syscall"
	"time"
)

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT from linux/in.h (not in
// package syscall): with it, binding a source address defers the choice of the
// port to connect, which then only needs the 4-tuple to be unique.
const ipBindAddressNoPort = 24

// spreadDialer dials loopback targets from source addresses 127.0.0.1 ..
// 127.0.0.<sources> in turn: one source address has only ~28,000 ephemeral
// ports towards one server port, so 19,000 connections per process and several
// processes would otherwise run out of ports.
type spreadDialer struct {
	sources  int
	loopback bool
	timeout  time.Duration
	rcvBuf   int // SO_RCVBUF before connecting (so the window is sized by it); 0: the system's
}

func newSpreadDialer(host string, sources int, timeout time.Duration) (*spreadDialer, error) {
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("resolve %q: %v", host, err)
	}
	if sources < 1 || sources > 254 {
		return nil, fmt.Errorf("sources must be 1..254, got %d", sources)
	}
	return &spreadDialer{sources: sources, loopback: ips[0].IsLoopback() && ips[0].To4() != nil, timeout: timeout}, nil
}

// dial connects client i to addr.
func (d *spreadDialer) dial(i int, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	if d.loopback {
		nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%d.sources))}
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
				if serr == nil && d.rcvBuf > 0 {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, d.rcvBuf)
				}
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return nd.Dial("tcp4", addr)
}
