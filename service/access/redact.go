package access

import "net/url"

// RedactURL is raw fit for a log line or a public answer: user info (a
// user and password, or a token in the user's place) becomes "redacted",
// and so does every query value (an api_key=, say); the fragment is
// dropped. A URL that does not parse is not shown at all, since where its
// secrets are cannot be told (docs/security.md, "Secrets in logs").
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for _, vs := range q {
			for i := range vs {
				vs[i] = "redacted"
			}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}
