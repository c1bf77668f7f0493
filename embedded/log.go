package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// logAdapter implements nats-server's server.Logger on top of a *slog.Logger. It
// also keeps the first fatal error: nats-server reports failures such as a busy
// port through Fatalf (its own logger would exit the process), and Start turns
// that into an error instead.
type logAdapter struct {
	log   *slog.Logger // nil: discard
	debug bool         // the logger wants debug lines, so ask nats-server for them

	mu    sync.Mutex
	fatal error
	werr  error // the first critical write error of the store
}

func newLogAdapter(log *slog.Logger) *logAdapter {
	a := &logAdapter{log: log}
	a.debug = log != nil && log.Enabled(context.Background(), slog.LevelDebug)
	return a
}

// fatalErr returns the first fatal error logged, if any.
func (a *logAdapter) fatalErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fatal
}

func (a *logAdapter) Noticef(format string, v ...any) { a.logf(slog.LevelDebug, format, v) }
func (a *logAdapter) Debugf(format string, v ...any)  { a.logf(slog.LevelDebug, format, v) }
func (a *logAdapter) Tracef(format string, v ...any)  { a.logf(slog.LevelDebug, format, v) }
func (a *logAdapter) Warnf(format string, v ...any)   { a.logf(slog.LevelWarn, format, v) }
func (a *logAdapter) Errorf(format string, v ...any) {
	// nats-server tells of a store that stopped writing only in its log.
	if strings.Contains(format, "Critical write error") {
		a.mu.Lock()
		if a.werr == nil {
			a.werr = fmt.Errorf("JetStream cannot store: %s; restart natsse once the cause is gone", fmt.Sprintf(format, v...))
		}
		a.mu.Unlock()
	}
	a.logf(slog.LevelError, format, v)
}

// writeErr returns the first critical write error logged, if any.
func (a *logAdapter) writeErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.werr
}

func (a *logAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.mu.Lock()
	if a.fatal == nil {
		a.fatal = fmt.Errorf("embedded: nats-server: %s", msg)
	}
	a.mu.Unlock()
	if a.log != nil {
		a.log.Error(msg)
	}
}

// logf formats only when the line will be written.
func (a *logAdapter) logf(level slog.Level, format string, v []any) {
	if a.log == nil || !a.log.Enabled(context.Background(), level) {
		return
	}
	a.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}
