package main

import (
	"os"
	"testing"
)

// TestReadProcSelf: the tool can read its own process, and burning CPU shows.
func TestReadProcSelf(t *testing.T) {
	a, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if a.RSS < 1<<20 || a.Threads < 1 || a.FDs < 3 {
		t.Fatalf("implausible sample %+v", a)
	}
	x := 0
	for i := range 200_000_000 {
		x ^= i
	}
	b, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := delta(a, b); d.CPU <= 0 || x == 1 {
		t.Errorf("no CPU time measured: %+v", d)
	}
}
