package main

import (
	"bytes"
	"strconv"
)

// Payloads are ASCII so that they pass through every SSE layer unchanged and
// can be read in a terminal:
//
//	<run> <global-counter> <subject-counter> <publish-unix-nanos> xxxx...
//
// padded with 'x' to the requested size. The run id keeps messages of an
// earlier run apart; the global counter is what clients account on; the
// publish time gives the latency.

// appendPayload appends one payload of at least size bytes to b.
func appendPayload(b []byte, run string, global, subjCounter uint64, nanos int64, size int) []byte {
	start := len(b)
	if run == "" {
		run = "-"
	}
	b = append(b, run...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, global, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, subjCounter, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, nanos, 10)
	b = append(b, ' ')
	for len(b)-start < size {
		b = append(b, 'x')
	}
	return b
}

// payload is a parsed payload; run aliases the input.
type payload struct {
	run         []byte
	global      uint64
	subjCounter uint64
	nanos       int64
}

// parsePayload reads a payload without allocating.
func parsePayload(b []byte) (p payload, ok bool) {
	var f [4][]byte
	for i := range f {
		j := bytes.IndexByte(b, ' ')
		if j < 0 {
			if i < 3 {
				return p, false
			}
			j = len(b)
		}
		f[i], b = b[:j], b[min(j+1, len(b)):]
	}
	var ok1, ok2, ok3 bool
	p.run = f[0]
	p.global, ok1 = atou(f[1])
	p.subjCounter, ok2 = atou(f[2])
	var n uint64
	n, ok3 = atou(f[3])
	p.nanos = int64(n)
	return p, ok1 && ok2 && ok3
}

// atou parses a non-empty decimal without allocating.
func atou(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
