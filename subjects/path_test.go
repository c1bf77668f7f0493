package subjects

import (
	"errors"
	"strings"
	"testing"
)

func TestFromPath(t *testing.T) {
	tests := []struct {
		path, want string
	}{
		{"/events/orders/eu/created", "events.orders.eu.created"},
		{"/a", "a"},
		{"/events/orders/*/created", "events.orders.*.created"},
		{"/events/orders/%2A/created", "events.orders.*.created"},
		{"/events/orders/%2a", "events.orders.*"},
		{"/events/orders/>", "events.orders.>"},
		{"/events/orders/%3E", "events.orders.>"},
		{"/events/orders/%3e", "events.orders.>"},
		{"/*", "*"},
		{"/>", ">"},
		{"/*/*/>", "*.*.>"},
		{"/events/caf%C3%A9", "events.café"},
		{"/events/café", "events.café"},
		{"/events/%E2%9C%93/x", "events.✓.x"},
		{"/events/a+b", "events.a+b"},
		{"/events/a%2Bb", "events.a+b"},
		{"/events/%25", "events.%"},
		{"/events/a%25zz", "events.a%zz"},
		{"/events/a-b_c~d:e@f", "events.a-b_c~d:e@f"},
		{"/metrics/x", "metrics.x"},
		{"/events/%26%3D%3F", "events.&=?"},
		{"/events/" + strings.Repeat("a", 1000), "events." + strings.Repeat("a", 1000)},
		{"/" + strings.Repeat("t/", 99) + "t", strings.Repeat("t.", 99) + "t"},
	}
	for _, tt := range tests {
		got, err := FromPath(tt.path)
		if err != nil || got != tt.want {
			t.Errorf("FromPath(%q) = %q, %v; want %q, nil", tt.path, got, err, tt.want)
		}
	}
}

func TestFromPathRejects(t *testing.T) {
	tests := []struct {
		path   string
		detail string // a substring of the error text
	}{
		{"", "names no subject"},
		{"/", "names no subject"},
		{"events/x", `does not start with "/"`},
		{"//", "segment 1 is empty"},
		{"//a", "segment 1 is empty"},
		{"/a//b", "segment 2 is empty"},
		{"/a/b/", "segment 3 is empty"},
		{"/a/b//", "segment 3 is empty"},
		{"/a/../b", `segment 2 ".." contains "."`},
		{"/a/./b", `segment 2 "." contains "."`},
		{"/..", `segment 1 ".." contains "."`},
		{"/a/%2E%2E/b", `segment 2 ".." (from "%2E%2E") contains "."`},
		{"/a/%2E", `contains "."`},
		{"/a/a.b", `path segment 2 "a.b" contains "."; each path segment must be one subject token (use / between tokens)`},
		{"/a/b%2Fc", `segment 2 "b/c" (from "b%2Fc") contains "/"`},
		{"/a/%2F", `contains "/"`},
		{"/a/%2f/b", `contains "/"`},
		{"/a/%zz", `segment 2 "%zz" has an invalid percent-escape`},
		{"/a/%", "invalid percent-escape"},
		{"/a/%4", "invalid percent-escape"},
		{"/a/b%", "invalid percent-escape"},
		{"/a/b c", "white space"},
		{"/a/b%20c", "white space"},
		{"/a/%09", "white space"},
		{"/a/%0A", "white space"},
		{"/a/%C2%A0", "white space"},    // U+00A0 no-break space
		{"/a/%E3%80%80", "white space"}, // U+3000 ideographic space
		{"/a/%00", "control character"},
		{"/a/%7F", "control character"},    // DEL
		{"/a/%C2%85x", "white space"},      // U+0085 NEL is space and control
		{"/a/%C2%80", "control character"}, // U+0080, C1
		{"/a/%C2%9F", "control character"}, // U+009F, C1
		{"/a/%FF", "not valid UTF-8"},
		{"/a/%C3", "not valid UTF-8"},
		{"/a/%ED%A0%80", "not valid UTF-8"}, // surrogate
		{"/a/b*", `"b*" uses "*" or ">" inside a token`},
		{"/a/*b", "inside a token"},
		{"/a/%2Ab", "inside a token"},
		{"/a/b>", "inside a token"},
		{"/a/>b", "inside a token"},
		{"/a/**", "inside a token"},
		{"/a/>>", "inside a token"},
		{"/a/%3E%3E", "inside a token"},
		{"/a/>/b", `segment 2 ">" is the ">" wildcard before the end; ">" is allowed only as the last segment`},
		{"/a/%3E/b", `segment 2 ">" (from "%3E") is the ">" wildcard before the end`},
		{"/>/>", "before the end"},
	}
	for _, tt := range tests {
		got, err := FromPath(tt.path)
		if err == nil {
			t.Errorf("FromPath(%q) = %q, nil; want an error", tt.path, got)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("FromPath(%q) error %v does not wrap ErrInvalid", tt.path, err)
		}
		if !strings.Contains(err.Error(), tt.detail) {
			t.Errorf("FromPath(%q) error = %q; want it to contain %q", tt.path, err, tt.detail)
		}
		if strings.Contains(err.Error(), ErrInvalid.Error()) {
			t.Errorf("FromPath(%q) error = %q; want a client-facing sentence without the sentinel text", tt.path, err)
		}
	}
}

func TestToPath(t *testing.T) {
	tests := []struct {
		subject, want string
	}{
		{"events.orders.eu.created", "/events/orders/eu/created"},
		{"events.*.created", "/events/*/created"},
		{"events.>", "/events/>"},
		{"events.café", "/events/caf%C3%A9"},
		{"events.%", "/events/%25"},
		{"events.a?b;c,d", "/events/a%3Fb%3Bc%2Cd"},
		{"events.a#b", "/events/a%23b"},
		{">", "/>"},
	}
	for _, tt := range tests {
		if got := ToPath(tt.subject); got != tt.want {
			t.Errorf("ToPath(%q) = %q; want %q", tt.subject, got, tt.want)
		}
		if got, err := FromPath(tt.want); err != nil || got != tt.subject {
			t.Errorf("FromPath(%q) = %q, %v; want %q, nil", tt.want, got, err, tt.subject)
		}
	}
}

func TestValidatePattern(t *testing.T) {
	valid := []string{"a", "a.b", "a.*", "a.>", "*", ">", "*.*.>", "events.café", "a+b.c-d", "a%2Fb"}
	for _, s := range valid {
		if err := ValidatePattern(s); err != nil {
			t.Errorf("ValidatePattern(%q) = %v; want nil", s, err)
		}
	}
	invalid := []struct {
		s, detail string
	}{
		{"", "the subject is empty"},
		{".", "token 1 is empty"},
		{".a", "token 1 is empty"},
		{"a.", "token 2 is empty"},
		{"a..b", "token 2 is empty"},
		{"a.>.b", `token 2 ">" is the ">" wildcard before the end`},
		{">.>", "before the end"},
		{"a.b*", `token 2 "b*" uses "*" or ">" inside a token`},
		{"a.>b", "inside a token"},
		{"a.b c", "white space"},
		{"a.b\tc", "white space"},
		{"a.b\x00", "control character"},
		{"a.b\x7f", "control character"},
		{"a.b\u0080", "control character"},
		{"a.b/c", `contains "/"`},
		{"a.\xff", "not valid UTF-8"},
	}
	for _, tt := range invalid {
		err := ValidatePattern(tt.s)
		if err == nil {
			t.Errorf("ValidatePattern(%q) = nil; want an error", tt.s)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidatePattern(%q) error %v does not wrap ErrInvalid", tt.s, err)
		}
		if !strings.Contains(err.Error(), tt.detail) {
			t.Errorf("ValidatePattern(%q) error = %q; want it to contain %q", tt.s, err, tt.detail)
		}
	}
}

func TestIsLiteral(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"a.b", true},
		{"a", true},
		{"a*.b>", true},
		{"*", false},
		{">", false},
		{"a.*.b", false},
		{"a.>", false},
	}
	for _, tt := range tests {
		if got := IsLiteral(tt.s); got != tt.want {
			t.Errorf("IsLiteral(%q) = %v; want %v", tt.s, got, tt.want)
		}
	}
}
