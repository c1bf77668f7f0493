package service

import (
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultNATSPing is how often natsse pings its NATS server by default.
// nats.go's own default (2 minutes) leaves a half-dead link (no FIN, no
// RST: a cable pulled, a partition) unnoticed for minutes, with every
// stream open and silent.
const DefaultNATSPing = 2 * time.Second

// MaxPingsOut is how many pings may go unanswered: at the next one the
// connection counts as dead and nats.go reconnects to another server of its
// pool. So a dead link is noticed within (MaxPingsOut+1) pings.
const MaxPingsOut = 2

// ConnOptions are the options natsse's NATS connection needs on top of the
// caller's (reconnecting forever, credentials): pings every ping, so that
// a dead link is noticed in seconds.
func ConnOptions(ping time.Duration) []nats.Option {
	return []nats.Option{nats.PingInterval(ping), nats.MaxPingsOutstanding(MaxPingsOut)}
}
