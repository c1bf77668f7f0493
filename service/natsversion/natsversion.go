// Package natsversion declares, in one place, which nats-server releases
// natsse supports and what its features need, and compares versions. A
// feature the connected server cannot do is refused with a clear answer;
// nothing misbehaves silently (docs/production.md, "NATS versions").
package natsversion

import (
	"strconv"
	"strings"
)

const (
	// Oldest is the oldest nats-server natsse supports: ordered consumers
	// with several filter subjects came with 2.10.
	Oldest = "2.10.0"
	// NamedCursors is what named cursors (?durable=) need: they move a
	// consumer's position with ResetConsumerToSequence, new in 2.14. Older
	// servers stalled, then replayed from the start.
	NamedCursors = "2.14.0"
)

// AtLeast reports whether version (as a server reports it: "2.10.27",
// "v2.15.0-beta.1") is min or later. A version that does not parse is not.
func AtLeast(version, min string) bool {
	v, ok := parse(version)
	m, okMin := parse(min)
	if !ok || !okMin {
		return false
	}
	for i := range v {
		if v[i] != m[i] {
			return v[i] > m[i]
		}
	}
	return true
}

func parse(s string) ([3]int, bool) {
	var out [3]int
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}
