package subjects

import (
	"net/url"
	"strconv"
	"strings"
)

// FromPath maps an escaped URL path, as from r.URL.EscapedPath() with its
// leading "/", to the subject it names: "/orders/eu%2A/created" is rejected
// ("eu*" is no token: a wildcard is a whole segment), while
// "/orders/%2A/created" is "orders.*.created".
//
// The path is split on "/" before each segment is percent-decoded, so an
// escaped "%2F" can never create a token boundary; each decoded segment must
// be one valid token. Nothing is cleaned or re-interpreted: "//", a trailing
// "/", "." and ".." segments are errors, as a different path must never
// silently name the same subject. Errors wrap ErrInvalid.
func FromPath(escapedPath string) (string, error) {
	if escapedPath == "" || escapedPath == "/" {
		return "", invalidf(`the path names no subject; write its tokens between "/", e.g. /orders/created`)
	}
	if escapedPath[0] != '/' {
		return "", invalidf(`the path %q does not start with "/"`, escapedPath)
	}
	var b strings.Builder
	b.Grow(len(escapedPath))
	n := 0
	for rest := escapedPath[1:]; ; {
		seg, after, more := strings.Cut(rest, "/")
		n++
		tok, err := pathToken(n, seg, !more)
		if err != nil {
			return "", err
		}
		if n > 1 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
		if !more {
			return b.String(), nil
		}
		rest = after
	}
}

// pathToken decodes and checks segment n of a path.
func pathToken(n int, seg string, last bool) (string, error) {
	if seg == "" {
		return "", invalidf(`path segment %d is empty; remove the doubled or trailing "/"`, n)
	}
	tok, err := url.PathUnescape(seg)
	if err != nil {
		return "", invalidf(`path segment %d %q has an invalid percent-escape; write a literal "%%" as %%25`, n, seg)
	}
	f := tokenFlaw(tok, last)
	if f == noFlaw {
		return tok, nil
	}
	name := strconv.Quote(tok)
	if tok != seg {
		name += " (from " + strconv.Quote(seg) + ")"
	}
	var fix string
	switch f {
	case flawDot, flawSlash:
		fix = "each path segment must be one subject token (use / between tokens)"
	case flawWildcardInside:
		fix = `"*" and ">" are wildcards only as a whole segment`
	case flawFWCNotLast:
		fix = `">" is allowed only as the last segment; use "*" for a single token`
	default:
		fix = f.charFix()
	}
	return "", invalidf("path segment %d %s %s; %s", n, name, f.reason(), fix)
}

// ToPath is the inverse of FromPath: it maps a subject or pattern to an
// escaped path with a leading "/" such that FromPath(ToPath(s)) == s for
// every valid s. Wildcards stay literal "*" and ">" so links stay readable.
func ToPath(subject string) string {
	var b strings.Builder
	b.Grow(len(subject) + 1)
	for rest := subject; ; {
		tok, after, more := strings.Cut(rest, ".")
		b.WriteByte('/')
		if tok == pwc || tok == fwc {
			b.WriteString(tok)
		} else {
			b.WriteString(url.PathEscape(tok))
		}
		if !more {
			return b.String()
		}
		rest = after
	}
}
