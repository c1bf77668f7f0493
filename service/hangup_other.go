//go:build !linux

package service

import "net"

// hangups is Linux-only; elsewhere a stream notices a closed client on its
// next write (a heartbeat at the latest).
type hangups struct{}

func newHangups() *hangups                              { return nil }
func (h *hangups) add(net.Conn, func()) (remove func()) { return func() {} }
func (h *hangups) close()                               {}
