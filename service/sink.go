package service

import (
	"bytes"
	"net"
	"net/http"
	"sync"
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
	// peerClosed reports, without waiting, whether the client has closed
	// its side (only a taken-over connection can tell).
	peerClosed() bool
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
func (s *httpSink) peerClosed() bool        { return false }

// connSink owns a hijacked HTTP/1.1 connection and writes each batch with
// one writev of the shared frames, without copying them. Taking the
// connection over frees net/http's buffers and its background reader: an
// idle stream then costs little more than its goroutine.
type connSink struct {
	conn    net.Conn
	bufs    *net.Buffers // the batch being built; from batchPool, nil between flushes
	unwatch func()       // stops the hangup watch; before the connection closes
}

// batchPool holds the iovec slices of batches being written: a connection
// holds one only between its first write and its flush, so idle streams
// cost nothing for it and a burst of events does not grow a slice per
// connection (which showed as GC work in the S1 profile, BENCHMARKS.md).
var batchPool = sync.Pool{New: func() any { return new(net.Buffers) }}

// maxPooledBufs keeps slices grown by a very large batch out of the pool.
const maxPooledBufs = 4096

func (s *connSink) setDeadline(t time.Time) { _ = s.conn.SetWriteDeadline(t) }
func (s *connSink) abort()                  { _ = s.conn.Close() }
func (s *connSink) done() {
	if s.unwatch != nil {
		s.unwatch()
	}
	_ = s.conn.Close()
}

func (s *connSink) write(b []byte) error {
	if s.bufs == nil {
		s.bufs = batchPool.Get().(*net.Buffers)
	}
	*s.bufs = append(*s.bufs, b)
	return nil
}

// copyPool holds the buffers that batches of many small frames are copied
// into: the kernel copies an iovec at a time, so for frames of a few hundred
// bytes one contiguous write is cheaper than a writev of hundreds of iovecs.
var copyPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// Batches of more than copyMinFrames frames and at most copyMaxBytes bytes are
// copied into one buffer and written with write(2); others go out as writev.
const (
	copyMinFrames = 8
	copyMaxBytes  = 1 << 20
)

func (s *connSink) flush() error {
	if s.bufs == nil {
		return nil
	}
	bufs := s.bufs
	s.bufs = nil
	var err error
	if n := batchBytes(*bufs); len(*bufs) > copyMinFrames && n <= copyMaxBytes {
		bp := copyPool.Get().(*[]byte)
		b := (*bp)[:0]
		for _, f := range *bufs {
			b = append(b, f...)
		}
		_, err = s.conn.Write(b)
		*bp = b[:0]
		copyPool.Put(bp)
	} else {
		b := *bufs // WriteTo consumes its receiver; keep the slice itself
		_, err = b.WriteTo(s.conn)
	}
	if cap(*bufs) <= maxPooledBufs {
		clear(*bufs)
		*bufs = (*bufs)[:0]
		batchPool.Put(bufs)
	}
	return err
}

func batchBytes(bufs net.Buffers) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
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
	out := &connSink{conn: conn}
	_ = out.write(head.Bytes())
	return out, nil
}
