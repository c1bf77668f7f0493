package ssetest

import (
	"flag"
	"time"
)

// started is when the test binary started: go test's -timeout counts from
// about then.
var started = time.Now()

// Patience bounds a test's wait for something the server must do. A wait
// ends as soon as the thing happens, so a long bound costs nothing while the
// server is right; it is the time left before go test's -timeout, less half
// a minute to report and clean up, so that no slow or busy machine reaches
// it while the server is right, and a broken one fails with a message
// instead of a panic.
func Patience() time.Duration {
	timeout := 10 * time.Minute // go test's default
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 0 {
			timeout = d
		}
	}
	return max(time.Until(started.Add(timeout))-30*time.Second, 5*time.Second)
}
