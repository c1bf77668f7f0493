package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/natsse/natsse/service"
)

// TestEnvDefaultsAreServiceDefaults: every variable of a service setting
// defaults (envDefault) to what service.Defaults() says, so that the
// service owns the defaults and natsse -h, docs/configuration.md's table (below) and
// the library cannot disagree.
func TestEnvDefaultsAreServiceDefaults(t *testing.T) {
	c, err := loadConfig(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	got, want := serviceConfig(c, nil), service.Defaults()
	if got.JWT, err = c.jwtConfig(); err != nil {
		t.Fatal(err)
	}
	if len(got.JWT.Secret) == 0 {
		got.JWT.Secret = nil
	}
	// 0 is the open-file limit less NATSSE_RESERVED_FILES, which Defaults
	// computes; whether natsse creates the stream depends on the mode.
	if got.MaxStreams == 0 && got.MaxConnections == 0 {
		got.MaxStreams, got.MaxConnections = want.MaxStreams, want.MaxConnections
	}
	got.StreamCreate = want.StreamCreate
	// So do the page and who may publish (both on in embedded mode).
	got.UI, got.Publish = want.UI, want.Publish
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		if g, w := gv.Field(i).Interface(), wv.Field(i).Interface(); !reflect.DeepEqual(g, w) {
			t.Errorf("service setting %s: the variable's default gives %v, service.Defaults() %v", gv.Type().Field(i).Name, g, w)
		}
	}
}

// TestConfigurationListsEverySetting: every environment variable natsse
// reads has a row in the configuration table of docs/configuration.md, with
// the default natsse uses, and every row there is a setting natsse reads, so
// the table cannot fall behind the code.
func TestConfigurationListsEverySetting(t *testing.T) {
	data, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // variable -> its table row
	for _, line := range strings.Split(string(data), "\n") {
		if name, ok := strings.CutPrefix(line, "| `"); ok {
			if name, _, ok := strings.Cut(name, "`"); ok {
				rows[name] = line
			}
		}
	}
	settings := map[string]bool{}
	typ := reflect.TypeOf(config{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("env")
		if name == "" {
			continue
		}
		settings[name] = true
		row, ok := rows[name]
		if !ok {
			t.Errorf("%s has no row in the configuration table of docs/configuration.md", name)
			continue
		}
		if def := f.Tag.Get("envDefault"); def != "" && !strings.Contains(row, "`"+def+"`") {
			t.Errorf("docs/configuration.md: the row of %s does not show its default `%s`: %s", name, def, row)
		}
	}
	for name := range rows {
		if !settings[name] {
			t.Errorf("docs/configuration.md has a row for %s, which natsse does not read", name)
		}
	}
}

// docFiles are the README and every page of docs/, relative to this package.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"../../README.md"}, files...)
}

var (
	fence   = regexp.MustCompile("(?ms)^\\s*```.*?^\\s*```")
	mdLink  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
)

// anchors returns the GitHub anchors of the headings of a Markdown file.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(fence.ReplaceAllString(string(data), ""), -1) {
		var slug strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(m[1])) {
			switch {
			case r == ' ':
				slug.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127 && r != '…' && r != '—' && r != '–':
				slug.WriteRune(r)
			}
		}
		out[slug.String()] = true
	}
	return out
}

// TestDocsLinks: every relative link of the README and docs/ leads to a file
// that exists and, with a #fragment, to one of its headings, so moving a
// section cannot leave a dead link behind.
func TestDocsLinks(t *testing.T) {
	for _, file := range docFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := fence.ReplaceAllString(string(data), "")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(target, "#")
			dest := file
			if path != "" {
				dest = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link %s: %v", file, target, err)
					continue
				}
			}
			if frag != "" && !anchors(t, dest)[frag] {
				t.Errorf("%s: link %s: %s has no heading with the anchor #%s", file, target, dest, frag)
			}
		}
	}
}

// TestProtocolHeadings: docs/protocol.md begins with these sections, in this
// order, under these names: the code's comments cite them.
func TestProtocolHeadings(t *testing.T) {
	data, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Paths and subjects", "The stream", "Heartbeats", "Resuming", "Reset",
		"Named cursors", "Errors", "The soft refusal", "Access control", "Operations"}
	var got []string
	for _, m := range regexp.MustCompile(`(?m)^## (.+)$`).FindAllStringSubmatch(fence.ReplaceAllString(string(data), ""), -1) {
		got = append(got, m[1])
	}
	if len(got) < len(want) || !reflect.DeepEqual(got[:len(want)], want) {
		t.Errorf("docs/protocol.md's ## headings:\ngot  %q\nwant %q first", got, want)
	}
}
