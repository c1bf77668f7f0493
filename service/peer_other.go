//go:build !linux

package service

// peerClosed is Linux-only; elsewhere the hangup is noticed by the next write.
func (s *connSink) peerClosed() bool { return false }
