package natsversion

import "testing"

func TestAtLeast(t *testing.T) {
	for _, c := range []struct {
		version, min string
		want         bool
	}{
		{"2.14.0", "2.14.0", true},
		{"2.15.3", "2.14.0", true},
		{"2.10.27", "2.14.0", false},
		{"2.9.25", "2.10.0", false},
		{"3.0.0", "2.14.0", true},
		{"2.14.0-beta.2", "2.14.0", true},
		{"v2.11.17", "2.10.0", true},
		{"2.100.0", "2.14.0", true},
		{"", "2.10.0", false},
		{"2.x.0", "2.10.0", false},
	} {
		if got := AtLeast(c.version, c.min); got != c.want {
			t.Errorf("AtLeast(%q, %q) = %v, want %v", c.version, c.min, got, c.want)
		}
	}
}
