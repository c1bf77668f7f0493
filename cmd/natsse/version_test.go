package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// buildNatsse builds ./ with the go build flags args into a temporary
// directory and returns what `natsse --version` prints.
func buildNatsse(t *testing.T, env []string, args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "natsse")
	ctx, cancel := context.WithTimeout(t.Context(), patience())
	defer cancel()
	build := exec.CommandContext(ctx, "go", append(append([]string{"build"}, args...), "-o", bin, ".")...)
	build.Env = append(build.Environ(), env...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("natsse --version: %v\n%s", err, out)
	}
	return string(out)
}

// TestVersionLdflags: the version and revision given with -ldflags -X, as the
// Taskfile and the Dockerfile pass them, are what --version prints.
func TestVersionLdflags(t *testing.T) {
	got := buildNatsse(t, nil, "-ldflags", "-X main.version=v9.8.7-3-gabcdef0-dirty -X main.revision=abcdef0123456789abcdef0123456789abcdef01")
	want := "natsse v9.8.7-3-gabcdef0-dirty, revision abcdef0123456789abcdef0123456789abcdef01, " + runtime.Version() + "\n"
	if got != want {
		t.Errorf("natsse --version:\ngot  %q\nwant %q", got, want)
	}
}

// TestVersionWithoutVCS: a build without VCS information (-buildvcs=false, as
// GOFLAGS sets on some machines, or a Docker context without .git) and no
// -ldflags still answers, with the fallback.
func TestVersionWithoutVCS(t *testing.T) {
	got := buildNatsse(t, nil, "-buildvcs=false")
	want := "natsse (devel), unknown revision, " + runtime.Version() + "\n"
	if got != want {
		t.Errorf("natsse --version:\ngot  %q\nwant %q", got, want)
	}
}

// TestVersionPlainBuild: a plain `go build`, whatever GOFLAGS says, prints a
// version and either the commit or "unknown revision".
func TestVersionPlainBuild(t *testing.T) {
	got := buildNatsse(t, nil)
	re := regexp.MustCompile(`^natsse \S+, (revision [0-9a-f]{40}(-dirty)?|unknown revision), ` + regexp.QuoteMeta(runtime.Version()) + "\n$")
	if !re.MatchString(got) {
		t.Errorf("natsse --version: got %q, want it to match %s", got, re)
	}
}

// TestVersionFromVCS: built with -buildvcs=true in a git checkout, --version
// names the checked-out commit (with -dirty when files are changed).
func TestVersionFromVCS(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout (or no git): %v", err)
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("git rev-parse --show-toplevel: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !fi.IsDir() {
		t.Skip("a git worktree (.git is a file): go build records no VCS information there")
	}
	got := buildNatsse(t, []string{"GOFLAGS="}, "-buildvcs=true")
	if !strings.Contains(got, ", revision "+strings.TrimSpace(string(head))) {
		t.Errorf("natsse --version: got %q, want revision %s", got, strings.TrimSpace(string(head)))
	}
}

// TestReadyLineVersion: the startup line names the version and revision that
// --version prints.
func TestReadyLineVersion(t *testing.T) {
	out, err := runNatsse(t, nil, "--version")
	if err != nil {
		t.Fatalf("natsse --version: %v\n%s", err, out)
	}
	p := startNatsse(t)
	rev := "revision " + p.revision
	if p.revision == "unknown revision" {
		rev = p.revision
	}
	want := "natsse " + p.version + ", " + rev + ", " + runtime.Version() + "\n"
	if p.version == "" || p.revision == "" || out != want {
		t.Errorf("ready line: version %q revision %q; natsse --version printed %q, want %q", p.version, p.revision, out, want)
	}
}
