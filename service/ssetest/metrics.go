package ssetest

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Metric reads the series name from a Prometheus text scrape: exactly it
// when name has labels, else the sum over its label sets
// (natsse_upstream_events_total has one per stream). ok is false when no
// line names it.
func Metric(scrape io.Reader, name string) (value float64, ok bool) {
	sc := bufio.NewScanner(scrape)
	for sc.Scan() {
		line := sc.Text()
		v, found := strings.CutPrefix(line, name+" ")
		if !found && !strings.Contains(name, "{") && strings.HasPrefix(line, name+"{") {
			_, v, found = strings.Cut(line, "} ")
		}
		if !found {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		value, ok = value+f, true
	}
	return value, ok
}
