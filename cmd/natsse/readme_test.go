package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

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
