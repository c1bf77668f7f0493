// Command natsse-cluster starts the production shape of compose.yaml as
// plain processes on loopback, for machines without Docker: three clustered
// nats-servers with JetStream (built from the nats-server module natsse
// depends on), two natsse replicas in connected mode with an R3 stream, and
// HAProxy in front reading the same haproxy.cfg as compose.
//
//	natsse-cluster up [-dir .cluster] [-offset 0] [-compose compose.yaml]
//	natsse-cluster down [-dir .cluster]
//
// up returns once every process is healthy and leaves them running; their
// pid files and logs are in -dir, which down reads to stop exactly those.
// Run it from the repository root (task cluster does).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "up":
		err = up(args)
	case "down":
		err = down(args)
	case "-h", "-help", "--help", "help":
		usage(os.Stdout)
		return
	default:
		usage(os.Stderr)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsse-cluster:", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  natsse-cluster up [-dir .cluster] [-offset 0] [-compose compose.yaml] [-wait 2m]
      start compose.yaml's services as processes on 127.0.0.1 and wait until they are healthy
  natsse-cluster down [-dir .cluster]
      stop the processes up started (SIGTERM, then SIGKILL after 20s)
`)
}

func up(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dir := fs.String("dir", ".cluster", "state directory: binaries, NATS data, logs, pid files")
	offset := fs.Int("offset", 0, "added to every port (nats1 4222, HAProxy 8080, ...)")
	composePath := fs.String("compose", "compose.yaml", "the compose file whose shape is started")
	wait := fs.Duration("wait", 2*time.Minute, "longest wait for a process to be healthy")
	_ = fs.Parse(args)

	state, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if running := runningPids(state); len(running) > 0 {
		return fmt.Errorf("%s already runs %s: natsse-cluster down -dir %s first", state, strings.Join(running, ", "), *dir)
	}
	c, err := readCompose(*composePath)
	if err != nil {
		return err
	}
	bin, err := build(filepath.Join(state, "bin"))
	if err != nil {
		return err
	}
	pl := loopback{offset: *offset}
	procs, err := shape(c, pl, bin, state)
	if err != nil {
		return err
	}
	for _, dir := range []string{"run", "log", "data"} {
		if err := os.MkdirAll(filepath.Join(state, dir), 0o755); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *wait)
	defer cancel()
	exited := map[string]chan struct{}{}
	health := map[string]string{}
	for i, p := range procs {
		for _, dep := range p.after {
			if err := awaitHealthy(ctx, dep, health[dep], exited[dep], filepath.Join(state, "log", dep+".log")); err != nil {
				_ = stopAll(state)
				return err
			}
		}
		cmd, err := startDetached(p, state, i)
		if err != nil {
			_ = stopAll(state)
			return fmt.Errorf("%s: %w", p.name, err)
		}
		fmt.Printf("%-8s pid %d: %s\n", p.name, cmd.Process.Pid, strings.Join(p.argv, " "))
		ch := make(chan struct{})
		go func() { _ = cmd.Wait(); close(ch) }()
		exited[p.name], health[p.name] = ch, p.health
	}
	for _, p := range procs {
		if err := awaitHealthy(ctx, p.name, p.health, exited[p.name], filepath.Join(state, "log", p.name+".log")); err != nil {
			_ = stopAll(state)
			return err
		}
	}
	lb := ""
	for _, p := range procs {
		if p.kind == "haproxy" {
			lb = strings.TrimSuffix(p.health, "/readyz")
		}
	}
	fmt.Printf(`
the cluster is up (logs in %[1]s/log; natsse-cluster down -dir %[2]s stops it):
  nats pub -s nats://%[3]s events.demo hello
  curl -N %[4]s/events/demo
`, state, *dir, pl.probe("nats1", natsClientPort), lb)
	return nil
}

// build compiles nats-server from the module natsse requires (so the
// version is go.mod's) and natsse, and finds HAProxy.
func build(dir string) (binaries, error) {
	bin := binaries{nats: filepath.Join(dir, "nats-server"), natsse: filepath.Join(dir, "natsse")}
	for path, pkg := range map[string]string{bin.nats: "github.com/nats-io/nats-server/v2", bin.natsse: "github.com/natsse/natsse/cmd/natsse"} {
		out, err := exec.Command("go", "build", "-o", path, pkg).CombinedOutput()
		if err != nil {
			return bin, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	var err error
	bin.haproxy, err = findHAProxy()
	return bin, err
}

// findHAProxy looks in PATH, then in /usr/sbin (where Debian puts it, often
// outside a user's PATH).
func findHAProxy() (string, error) {
	if path, err := exec.LookPath("haproxy"); err == nil {
		return path, nil
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy", nil
	}
	return "", errors.New("haproxy not found: apt-get install haproxy")
}

// cleanEnv is this process's environment without NATS and natsse settings,
// which would override the shape's.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "NATSSE_") {
			env = append(env, kv)
		}
	}
	return env
}

// startDetached starts p in a session of its own, so that it outlives up,
// with its output in log/<name>.log and its pid file in run/.
func startDetached(p proc, state string, order int) (*exec.Cmd, error) {
	logf, err := os.OpenFile(filepath.Join(state, "log", p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(cleanEnv(), p.env...)
	cmd.Dir = state
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	start, err := startTime(cmd.Process.Pid)
	if err == nil {
		pidFile := filepath.Join(state, "run", fmt.Sprintf("%d-%s.pid", order, p.name))
		err = os.WriteFile(pidFile, fmt.Appendf(nil, "%d %d\n", cmd.Process.Pid, start), 0o644)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	return cmd, nil
}

// awaitHealthy polls url until it answers 200, the process exits, or ctx ends.
func awaitHealthy(ctx context.Context, name, url string, exited <-chan struct{}, logFile string) error {
	if url == "" {
		return nil
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited; see %s", name, logFile)
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy (%s) in time; see %s", name, url, logFile)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func down(args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	dir := fs.String("dir", ".cluster", "state directory of natsse-cluster up")
	_ = fs.Parse(args)
	state, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	return stopAll(state)
}

// pidFile is a process up started: its pid and its start time, which tell
// it from a later process that got the same pid.
type pidFile struct {
	path       string
	name       string
	pid        int
	start      uint64
	alive      bool
	orderIndex int
}

func readPidFiles(state string) []pidFile {
	paths, _ := filepath.Glob(filepath.Join(state, "run", "*.pid"))
	var out []pidFile
	for _, path := range paths {
		base := strings.TrimSuffix(filepath.Base(path), ".pid")
		order, name, _ := strings.Cut(base, "-")
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		f := pidFile{path: path, name: name}
		f.orderIndex, _ = strconv.Atoi(order)
		if _, err := fmt.Sscan(string(data), &f.pid, &f.start); err != nil {
			continue
		}
		now, err := startTime(f.pid)
		f.alive = err == nil && now == f.start
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b pidFile) int { return a.orderIndex - b.orderIndex })
	return out
}

func runningPids(state string) []string {
	var out []string
	for _, f := range readPidFiles(state) {
		if f.alive {
			out = append(out, f.name)
		}
	}
	return out
}

// stopAll stops what up started, the last started first: SIGTERM (natsse
// drains its streams), SIGKILL after 20s. A pid that now belongs to
// another process is left alone.
func stopAll(state string) error {
	files := readPidFiles(state)
	slices.Reverse(files)
	var errs []error
	for _, f := range files {
		if f.alive {
			if err := stop(f); err != nil {
				errs = append(errs, fmt.Errorf("%s (pid %d): %w", f.name, f.pid, err))
				continue
			}
			fmt.Printf("%-8s pid %d stopped\n", f.name, f.pid)
		}
		_ = os.Remove(f.path)
	}
	return errors.Join(errs...)
}

func stop(f pidFile) error {
	gone := func() bool {
		now, err := startTime(f.pid)
		return err != nil || now != f.start
	}
	if err := syscall.Kill(f.pid, syscall.SIGTERM); err != nil {
		return err
	}
	for range 200 { // 20s
		if gone() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Kill(f.pid, syscall.SIGKILL); err != nil {
		return err
	}
	for range 50 {
		if gone() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("still running after SIGKILL")
}

// startTime is the process's start time in clock ticks since boot (field
// 22 of /proc/<pid>/stat); an error if there is no such process or it is a
// zombie, which is as good as gone.
func startTime(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: count from the last ')'.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0, fmt.Errorf("pid %d is a zombie", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}
