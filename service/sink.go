package service

import (
	"bytes"
	"net"
	"net/http"
	"time"
)

// sink is where a stream's bytes go. Writes are buffered until flush, so a
// batch of events costs one write to the connection.
type sink interface {
	setDeadline(t time.Time)
	write(b []byte) error
	flush() error
	// abort unblocks a write that waits on a client that stopped reading.
	abort()
	// done ends the response after the last flush.
	done()
}

// httpSink writes through net/http: HTTP/2, and HTTP/1.1 when the
// connection cannot be taken over.
type httpSink struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *httpSink) setDeadline(t time.Time) { _ = s.rc.SetWriteDeadline(t) }
func (s *httpSink) write(b []byte) error    { _, err := s.w.Write(b); return err }
func (s *httpSink) flush() error            { return s.rc.Flush() }
func (s *httpSink) abort()                  { _ = s.rc.SetWriteDeadline(time.Now()) }
func (s *httpSink) done()                   {}

// connSink owns a hijacked HTTP/1.1 connection and writes each batch with
// one writev of the shared frames, without copying them. Taking the
// connection over frees net/http's buffers and its background reader: an
// idle stream then costs little more than its goroutine.
type connSink struct {
	conn    net.Conn
	bufs    net.Buffers
	unwatch func() // stops the hangup watch; before the connection closes
}

// maxKeptBufs bounds the batch slice kept between flushes.
const maxKeptBufs = 64

func (s *connSink) setDeadline(t time.Time) { _ = s.conn.SetWriteDeadline(t) }
func (s *connSink) write(b []byte) error    { s.bufs = append(s.bufs, b); return nil }
func (s *connSink) abort()                  { _ = s.conn.Close() }
func (s *connSink) done() {
	if s.unwatch != nil {
		s.unwatch()
	}
	_ = s.conn.Close()
}

func (s *connSink) flush() error {
	b := s.bufs
	_, err := b.WriteTo(s.conn)
	if cap(s.bufs) > maxKeptBufs {
		s.bufs = nil
	} else {
		clear(s.bufs)
		s.bufs = s.bufs[:0]
	}
	return err
}

// hijack takes over an HTTP/1.x connection and writes the response head
// itself: no chunked encoding, the body ends when the connection closes.
func hijack(w http.ResponseWriter) (*connSink, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	_ = brw // a client that sends more after a stream request is not read
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = w.Header().Write(&head)
	head.WriteString("\r\n")
	return &connSink{conn: conn, bufs: net.Buffers{head.Bytes()}}, nil
}
