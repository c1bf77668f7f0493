// Package refusal is how natsse says no to a request: a Problem, an
// RFC 9457 problem detail with a status and a detail that says what to
// change, or the soft refusal (ErrSoft), for a condition that passes by
// itself (a retry line on an open stream, so EventSource comes back later,
// perhaps to another replica; docs/protocol.md, "The soft refusal").
//
// Every check of a request returns an error; the HTTP front door maps it:
// a *Problem is written as it is, anything else is answered softly.
package refusal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// ErrSoft is the soft refusal: the request may succeed later, unchanged.
var ErrSoft = errors.New("refusal: not now; retry later")

// Problem is an RFC 9457 problem detail: the answer to a request natsse
// will not serve (docs/protocol.md, "Errors").
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Allow lists the methods that work where a 405 was answered ("" is
	// GET): publishing adds POST on subject paths (docs/protocol.md,
	// "Publishing over HTTP").
	Allow string `json:"-"`
}

// New returns a problem with the status and a formatted detail.
func New(status int, format string, args ...any) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: fmt.Sprintf(format, args...)}
}

func (p *Problem) Error() string { return p.Detail }

// Write answers with the problem as application/problem+json.
func (p *Problem) Write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", "Bearer")
	}
	if p.Status == http.StatusMethodNotAllowed {
		allow := p.Allow
		if allow == "" {
			allow = "GET"
		}
		h.Set("Allow", allow)
	}
	w.WriteHeader(p.Status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p)
}
