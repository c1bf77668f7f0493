package service

import (
	"context"
	"errors"
	"os"
)

// endReason labels why a stream ended, for natsse_streams_ended_total: a
// rising write_timeout count means clients that stop reading (or a server
// that cannot keep up with them).
func endReason(err error) string {
	var we writeError
	switch {
	case err == nil || errors.Is(err, errStopped):
		return "stopped"
	case errors.Is(err, errReplayBusy):
		return "replay_busy"
	case errors.Is(err, context.Canceled):
		return "client_closed"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "write_timeout"
	case errors.As(err, &we):
		return "write_error"
	default:
		return "other"
	}
}
