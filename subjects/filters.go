package subjects

// Filters returns patterns without those inside others, for a JetStream
// consumer's filter subjects. JetStream refuses overlapping filters, so
// when overlaps remain the answer is nil (no filter) and the caller matches
// each message itself (MatchAny).
func Filters(patterns []string) []string {
	var out []string
	for i, p := range patterns {
		inside := false
		for j, q := range patterns {
			if i != j && Inside(p, q) && (!Inside(q, p) || j < i) {
				inside = true
				break
			}
		}
		if !inside {
			out = append(out, p)
		}
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if Overlap(out[i], out[j]) {
				return nil
			}
		}
	}
	return out
}

// MatchAny reports whether subject matches one of patterns.
func MatchAny(patterns []string, subject string) bool {
	for _, p := range patterns {
		// Equal strings first: most requests are for one literal subject,
		// and catching up from the ring asks this for every frame it scans.
		if p == subject || Match(p, subject) {
			return true
		}
	}
	return false
}
