package service_test

import (
	"flag"
	"time"
)

// testsStarted is when the test binary started: go test's -timeout counts
// from about then.
var testsStarted = time.Now()

// patience bounds every wait for something natsse must do. A wait ends as
// soon as the thing happens, so a long bound costs nothing while natsse is
// right; it is the time left before go test's -timeout, less half a minute
// to report, so that no slow or busy machine reaches it while natsse is
// right, and a broken natsse fails with a message instead of a panic.
func patience() time.Duration {
	timeout := 10 * time.Minute // go test's default
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 0 {
			timeout = d
		}
	}
	return max(time.Until(testsStarted.Add(timeout))-30*time.Second, 5*time.Second)
}
