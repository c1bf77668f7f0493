package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
)

// profile is a CPU profile of one server being fetched while it delivers:
// "profile before optimizing" needs the profile of the very run whose
// figures are quoted.
type profile struct{ done chan struct{} }

// startProfile asks t's /debug/pprof/profile for the expected length of the
// publish plus two seconds, writing <profileDir>/<runID>.pprof.
func startProfile(ctx context.Context, c runConfig, t runTarget, runID string) *profile {
	p := &profile{done: make(chan struct{})}
	if c.profileDir == "" || t.pprof == "" {
		close(p.done)
		return p
	}
	seconds := 3
	if c.profileSeconds > 0 {
		seconds = c.profileSeconds
	} else if c.sc.rate > 0 {
		seconds = int(math.Ceil(float64(c.sc.count)/c.sc.rate)) + 2
	}
	go func() {
		defer close(p.done)
		if err := fetchProfile(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", t.pprof, seconds), filepath.Join(c.profileDir, runID+".pprof")); err != nil {
			fmt.Fprintf(os.Stderr, "profile of %s: %v\n", t.name, err)
		}
	}()
	return p
}

func (p *profile) wait() { <-p.done }

func fetchProfile(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
