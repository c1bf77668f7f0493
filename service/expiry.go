package service

import (
	"strconv"
	"sync/atomic"
	"time"
)

// expiredEvent tells the page that its token expired: it opens a new
// EventSource with a fresh token and lastEventId. There is no id line, so
// the client's position stays at the last event it got.
func expiredEvent(exp time.Time) []byte {
	return []byte("event: expired\ndata: {\"exp\":" + strconv.FormatInt(exp.Unix(), 10) + "}\n\n")
}

// watchExpiry ends st after a final flush once its token is no longer
// accepted (exp plus the leeway: a reconnect with it then gets 401, so the
// client does not loop on a token natsse still takes). expired reports
// whether that is why st ended; stop ends the watch.
func (s *Server) watchExpiry(st *stream) (expired func() bool, stop func()) {
	if st.auth == nil || st.auth.Expires.IsZero() {
		return func() bool { return false }, func() {}
	}
	var fired atomic.Bool
	t := time.AfterFunc(time.Until(st.auth.Expires.Add(s.cfg.JWT.Leeway)), func() {
		fired.Store(true)
		st.sub.close()
	})
	return fired.Load, func() { t.Stop() }
}
