package service_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/natsse/natsse/service"
)

// metricName finds the series names in a PromQL query or a doc.
var metricName = regexp.MustCompile(`\b(?:natsse|process|go)_[a-z0-9_]+\b`)

// TestDashboardAndAlertsUseExposedMetrics: every series that the Grafana
// dashboard (deploy/grafana/natsse.json) queries, and every natsse series
// the operations guide's alerts name, is one natsse exposes.
func TestDashboardAndAlertsUseExposedMetrics(t *testing.T) {
	e := start(t, service.Config{})
	exposed := map[string]bool{}
	for _, line := range strings.Split(e.scrape(), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, kind, _ := strings.Cut(rest, " ")
			exposed[name] = true
			if kind == "histogram" {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					exposed[name+suffix] = true
				}
			}
		}
	}

	data, err := os.ReadFile("../deploy/grafana/natsse.json")
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct{ List []struct{ Query any } }
	}
	if err := json.Unmarshal(data, &dashboard); err != nil {
		t.Fatalf("deploy/grafana/natsse.json: %v", err)
	}
	queries := 0
	for _, p := range dashboard.Panels {
		for _, target := range p.Targets {
			queries++
			for _, name := range metricName.FindAllString(target.Expr, -1) {
				if !exposed[name] {
					t.Errorf("dashboard panel %q queries %s, which natsse does not expose", p.Title, name)
				}
			}
		}
	}
	if queries < 10 {
		t.Errorf("the dashboard has %d queries; want a dashboard", queries)
	}

	ops, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, alerts, _ := strings.Cut(string(ops), "## What to alert on")
	for _, name := range metricName.FindAllString(alerts, -1) {
		if strings.HasPrefix(name, "natsse_") && !exposed[name] {
			t.Errorf("docs/operations.md alerts on %s, which natsse does not expose", name)
		}
	}
}
