package main

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/natsse/natsse/service"
)

// TestEnvDefaultsAreServiceDefaults: every variable of a service setting
// defaults (envDefault) to what service.Defaults() says, so that the
// service owns the defaults and natsse -h, the README's table (below) and
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
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		if g, w := gv.Field(i).Interface(), wv.Field(i).Interface(); !reflect.DeepEqual(g, w) {
			t.Errorf("service setting %s: the variable's default gives %v, service.Defaults() %v", gv.Type().Field(i).Name, g, w)
		}
	}
}

// TestREADMEListsEverySetting: every environment variable natsse reads has
// a row in the README's configuration table, with the default natsse uses,
// so the table cannot fall behind the code.
func TestREADMEListsEverySetting(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
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
	typ := reflect.TypeOf(config{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("env")
		if name == "" {
			continue
		}
		row, ok := rows[name]
		if !ok {
			t.Errorf("%s has no row in the README's configuration table", name)
			continue
		}
		if def := f.Tag.Get("envDefault"); def != "" && !strings.Contains(row, "`"+def+"`") {
			t.Errorf("README row of %s does not show its default `%s`: %s", name, def, row)
		}
	}
}
