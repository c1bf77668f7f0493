// Package subjects turns URL paths into NATS subjects and back, and matches
// subjects against wildcard patterns, so that every subject natsse accepts is
// exactly one path and every path either names exactly one subject or is
// rejected with an error that says what to change.
//
// A subject is a sequence of tokens joined with ".". A token is non-empty
// UTF-8 without ".", "/", white space or control characters; "*" (one token)
// and ">" (one or more trailing tokens, only last) are the wildcards, and are
// never part of a longer token.
package subjects

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every validation error, so callers can map any of
// them to 400 with errors.Is. The error's text (not ErrInvalid's) is one
// sentence that says what to change, fit for a problem detail.
var ErrInvalid = errors.New("subjects: invalid subject")

// invalidError carries a client-facing sentence and unwraps to ErrInvalid;
// the sentence is the whole Error text so that it can be sent as is.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// The wildcard tokens.
const (
	pwc = "*" // partial wildcard: exactly one token
	fwc = ">" // full wildcard: one or more trailing tokens
)

// flaw is why a string cannot be a subject token; noFlaw means it can.
type flaw int

const (
	noFlaw flaw = iota
	flawEmpty
	flawUTF8
	flawDot
	flawSlash
	flawSpace
	flawControl
	flawWildcardInside
	flawFWCNotLast
)

// tokenFlaw checks one token; last says whether ">" is allowed here.
func tokenFlaw(tok string, last bool) flaw {
	switch tok {
	case "":
		return flawEmpty
	case pwc:
		return noFlaw
	case fwc:
		if last {
			return noFlaw
		}
		return flawFWCNotLast
	}
	if !utf8.ValidString(tok) {
		return flawUTF8
	}
	var wildcard bool
	for _, r := range tok {
		switch {
		case r == '.':
			return flawDot
		case r == '/':
			return flawSlash
		case unicode.IsSpace(r):
			return flawSpace
		case unicode.IsControl(r):
			return flawControl
		case r == '*' || r == '>':
			wildcard = true
		}
	}
	if wildcard {
		return flawWildcardInside
	}
	return noFlaw
}

// reason is the flaw as the middle of a sentence, after the token's name.
func (f flaw) reason() string {
	switch f {
	case flawEmpty:
		return "is empty"
	case flawUTF8:
		return "is not valid UTF-8"
	case flawDot:
		return `contains "."`
	case flawSlash:
		return `contains "/"`
	case flawSpace:
		return "contains white space"
	case flawControl:
		return "contains a control character"
	case flawWildcardInside:
		return `uses "*" or ">" inside a token`
	case flawFWCNotLast:
		return `is the ">" wildcard before the end`
	}
	return "is valid"
}

// charFix is the advice for a flaw in a token's characters.
func (f flaw) charFix() string {
	switch f {
	case flawUTF8:
		return "subject tokens must be UTF-8"
	case flawSpace:
		return "subject tokens cannot contain white space"
	case flawControl:
		return "subject tokens cannot contain control characters"
	}
	return `subject tokens cannot contain "/"`
}

// ValidatePattern checks a NATS subject given as text, as in the query
// parameter subject=: wildcards are allowed ("*" as a token, ">" as the last
// token). The error wraps ErrInvalid and names the token to change.
func ValidatePattern(s string) error {
	if s == "" {
		return invalidf(`the subject is empty; name one, e.g. "orders.created"`)
	}
	n := 0
	for rest := s; ; {
		tok, after, more := strings.Cut(rest, ".")
		n++
		if f := tokenFlaw(tok, !more); f != noFlaw {
			return subjectError(s, n, tok, f)
		}
		if !more {
			return nil
		}
		rest = after
	}
}

// subjectError words a token flaw of a dot-separated subject.
func subjectError(s string, n int, tok string, f flaw) error {
	var fix string
	switch f {
	case flawEmpty:
		fix = `remove the leading, trailing or doubled "."`
	case flawWildcardInside:
		fix = `"*" and ">" are wildcards only as whole tokens`
	case flawFWCNotLast:
		fix = `">" is allowed only as the last token; use "*" for a single token`
	default:
		fix = f.charFix()
	}
	if f == flawEmpty {
		return invalidf("subject %q: token %d is empty; %s", s, n, fix)
	}
	return invalidf("subject %q: token %d %q %s; %s", s, n, tok, f.reason(), fix)
}

// IsLiteral reports whether s has no wildcard tokens, i.e. names one subject
// rather than a set of them. It does not validate s.
func IsLiteral(s string) bool {
	for rest := s; ; {
		tok, after, more := strings.Cut(rest, ".")
		if tok == pwc || tok == fwc {
			return false
		}
		if !more {
			return true
		}
		rest = after
	}
}
