package service

import (
	"sync/atomic"
	"time"
)

// watchExpiry ends ss after a final flush once its token is no longer
// accepted (exp plus the leeway: a reconnect with it then gets 401, so the
// client does not loop on a token natsse still takes). expired reports
// whether that is why ss ended; stop ends the watch.
func watchExpiry(ss *sseStream) (expired func() bool, stop func()) {
	if ss.grant.End.IsZero() {
		return func() bool { return false }, func() {}
	}
	var fired atomic.Bool
	t := time.AfterFunc(time.Until(ss.grant.End), func() {
		fired.Store(true)
		ss.sub.Close()
	})
	return fired.Load, func() { t.Stop() }
}
