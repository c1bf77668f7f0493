package embedded

import (
	"errors"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// Healthy reports why JetStream cannot serve or store right now, nil when it
// can: nats-server's own health check with JetStream details, and the first
// critical write error of its store. nats-server keeps such an error and
// refuses every later write until it restarts (seen after the process ran
// out of open files), while its health check still says ok.
func (s *Server) Healthy() error {
	if err := s.logs.writeErr(); err != nil {
		return err
	}
	h := s.ns.Healthz(&server.HealthzOptions{Details: true})
	if h.Status == "ok" {
		return nil
	}
	var why []string
	for _, e := range h.Errors {
		why = append(why, e.Error)
	}
	if len(why) == 0 {
		why = append(why, h.Error)
	}
	return errors.New("embedded NATS unhealthy: " + strings.Join(why, "; "))
}
