package subjects

import "strings"

// These functions walk both strings token by token with strings.Cut, so they
// allocate nothing. They check structure only (non-empty tokens, ">" last,
// no wildcard in a literal subject) and answer false for anything malformed;
// token characters are ValidatePattern's and FromPath's business.

// Match reports whether the literal subject matches pattern, with NATS
// semantics: "*" matches one token, a last ">" one or more trailing tokens.
// A subject that holds a wildcard token matches nothing.
func Match(pattern, subject string) bool {
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		st, srest, smore := strings.Cut(subject, ".")
		switch {
		case pt == "" || st == "" || st == pwc || st == fwc:
			return false
		case pt == fwc:
			return !pmore && (!smore || literalSubject(srest))
		case pt != pwc && pt != st:
			return false
		case pmore != smore:
			return false
		case !pmore:
			return true
		}
		pattern, subject = prest, srest
	}
}

// Inside reports whether every subject matched by pattern inner is also
// matched by pattern outer; it is how a requested subject is checked against
// the patterns a token allows ("a.*" is inside "a.>", "a.>" is not inside
// "a.*").
func Inside(inner, outer string) bool {
	if !wellFormed(inner) || !wellFormed(outer) {
		return false
	}
	for {
		it, irest, imore := strings.Cut(inner, ".")
		ot, orest, omore := strings.Cut(outer, ".")
		switch {
		case ot == fwc:
			return true // inner has at least one token left here
		case it == fwc:
			return false // inner reaches any length, outer does not
		case ot == pwc:
		case it != ot:
			return false // includes inner "*" against an outer literal
		}
		if imore != omore {
			return false
		}
		if !imore {
			return true
		}
		inner, outer = irest, orest
	}
}

// InsideAny reports whether pattern lies inside at least one of allowed.
func InsideAny(pattern string, allowed []string) bool {
	for _, a := range allowed {
		if Inside(pattern, a) {
			return true
		}
	}
	return false
}

// AllInside reports whether every requested pattern lies inside one of the
// allowed patterns, and if not, the first that does not (for the 403 detail).
// Each pattern must fit one allowed pattern on its own: "a.>" is refused by
// "a.*" and "a.*.>" together, although the two cover it, as access rules are
// read one pattern at a time.
func AllInside(requested, allowed []string) (outside string, ok bool) {
	for _, p := range requested {
		if !InsideAny(p, allowed) {
			return p, false
		}
	}
	return "", true
}

// Overlap reports whether some literal subject is matched by both patterns,
// e.g. to tell whether a subscription can receive anything from a stream.
func Overlap(a, b string) bool {
	if !wellFormed(a) || !wellFormed(b) {
		return false
	}
	for {
		at, arest, amore := strings.Cut(a, ".")
		bt, brest, bmore := strings.Cut(b, ".")
		if at == fwc || bt == fwc {
			return true // both have a token here; ">" absorbs the rest
		}
		if at != pwc && bt != pwc && at != bt {
			return false
		}
		if amore != bmore {
			return false
		}
		if !amore {
			return true
		}
		a, b = arest, brest
	}
}

// wellFormed reports whether p has no empty token and ">" only last.
func wellFormed(p string) bool {
	for {
		tok, rest, more := strings.Cut(p, ".")
		if tok == "" || (tok == fwc && more) {
			return false
		}
		if !more {
			return true
		}
		p = rest
	}
}

// literalSubject reports whether s has no empty and no wildcard token.
func literalSubject(s string) bool {
	for {
		tok, rest, more := strings.Cut(s, ".")
		if tok == "" || tok == pwc || tok == fwc {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}
