package embedded_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/natsse/natsse/embedded"
)

func TestMain(m *testing.M) {
	// No ignores: nats-server and nats.go stop every goroutine they start once
	// Shutdown and Close have returned.
	goleak.VerifyTestMain(m)
}

// start starts a server for the test and shuts it down when the test ends.
func start(t *testing.T, opts embedded.Options) *embedded.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := embedded.Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// connect connects in-process and closes the connection when the test ends.
func connect(t *testing.T, s *embedded.Server) *nats.Conn {
	t.Helper()
	nc, err := s.Connect(nats.Name(t.Name()))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// dialTCP connects over the server's TCP listener.
func dialTCP(t *testing.T, s *embedded.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("nats.Connect(%q): %v", s.ClientURL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func newJetStream(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return js
}

func createStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	_, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name:     "EVENTS",
		Subjects: []string{"events.>"},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
}

func publish(t *testing.T, js jetstream.JetStream, subject string, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if _, err := js.Publish(t.Context(), subject, []byte(p)); err != nil {
			t.Fatalf("Publish(%s, %q): %v", subject, p, err)
		}
	}
}

// readAll reads the n first messages of stream EVENTS with an ordered consumer.
func readAll(t *testing.T, js jetstream.JetStream, n int) []string {
	t.Helper()
	cons, err := js.OrderedConsumer(t.Context(), "EVENTS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("OrderedConsumer: %v", err)
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	var got []string
	for msg := range batch.Messages() {
		got = append(got, msg.Subject()+" "+string(msg.Data()))
	}
	if err := batch.Error(); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return got
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func TestTCPPublishInProcessRead(t *testing.T) {
	s := start(t, embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})

	url := s.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") {
		t.Fatalf("ClientURL() = %q, want nats://127.0.0.1:<real port>", url)
	}
	if got, want := s.NATS().Addr().String(), strings.TrimPrefix(url, "nats://"); got != want {
		t.Errorf("listener address %q, ClientURL host:port %q", got, want)
	}

	pub := newJetStream(t, dialTCP(t, s))
	createStream(t, pub)
	publish(t, pub, "events.demo", "hello", "world")

	got := readAll(t, newJetStream(t, connect(t, s)), 2)
	want := []string{"events.demo hello", "events.demo world"}
	if !equal(got, want) {
		t.Errorf("read back %q, want %q", got, want)
	}
}

// TestCredentials: with a user and password, or a token, a TCP client without
// them (or with wrong ones) is refused, one with them publishes, and the
// process's own in-process connection (Connect) authenticates by itself.
func TestCredentials(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  embedded.Options
		right nats.Option
		wrong nats.Option
	}{
		{"user and password", embedded.Options{User: "alice", Password: "s3cret-pw"},
			nats.UserInfo("alice", "s3cret-pw"), nats.UserInfo("alice", "guess")},
		{"token", embedded.Options{Token: "t0ken-value"},
			nats.Token("t0ken-value"), nats.Token("guess")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.StoreDir, opts.Listen = t.TempDir(), "127.0.0.1:0"
			s := start(t, opts)
			if url := s.ClientURL(); strings.Contains(url, "@") {
				t.Errorf("ClientURL() = %q carries credentials", url)
			}

			for what, o := range map[string][]nats.Option{"no credentials": nil, "wrong credentials": {tc.wrong}} {
				nc, err := nats.Connect(s.ClientURL(), o...)
				if err == nil {
					nc.Close()
					t.Errorf("TCP connect with %s succeeded, want it refused", what)
				} else if !errors.Is(err, nats.ErrAuthorization) {
					t.Errorf("TCP connect with %s: %v, want %v", what, err, nats.ErrAuthorization)
				}
			}

			pubConn, err := nats.Connect(s.ClientURL(), tc.right)
			if err != nil {
				t.Fatalf("TCP connect with the credentials: %v", err)
			}
			t.Cleanup(pubConn.Close)
			pub := newJetStream(t, pubConn)
			createStream(t, pub)
			publish(t, pub, "events.demo", "hello")

			got := readAll(t, newJetStream(t, connect(t, s)), 1)
			if want := []string{"events.demo hello"}; !equal(got, want) {
				t.Errorf("read back in-process %q, want %q", got, want)
			}
		})
	}
}

func TestInProcessOnly(t *testing.T) {
	for _, listen := range []string{"-", ""} {
		t.Run("listen="+listen, func(t *testing.T) {
			s := start(t, embedded.Options{StoreDir: t.TempDir(), Listen: listen})
			if got := s.ClientURL(); got != "" {
				t.Errorf("ClientURL() = %q, want empty", got)
			}
			if addr := s.NATS().Addr(); addr != nil {
				t.Errorf("TCP listener on %v, want none", addr)
			}
			js := newJetStream(t, connect(t, s))
			createStream(t, js)
			publish(t, js, "events.a.b", "x")
			if got, want := readAll(t, js, 1), []string{"events.a.b x"}; !equal(got, want) {
				t.Errorf("read back %q, want %q", got, want)
			}
		})
	}
}

func TestDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	first := start(t, embedded.Options{StoreDir: dir})
	nc := connect(t, first)
	js := newJetStream(t, nc)
	createStream(t, js)
	publish(t, js, "events.kept", "1", "2", "3")
	nc.Close()
	first.Shutdown()

	second := start(t, embedded.Options{StoreDir: dir})
	js = newJetStream(t, connect(t, second))
	stream, err := js.Stream(t.Context(), "EVENTS")
	if err != nil {
		t.Fatalf("Stream after restart: %v", err)
	}
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if got, want := info.State.Msgs, uint64(3); got != want {
		t.Errorf("messages after restart %d, want %d", got, want)
	}
	got := readAll(t, js, 3)
	want := []string{"events.kept 1", "events.kept 2", "events.kept 3"}
	if !equal(got, want) {
		t.Errorf("read back %q, want %q", got, want)
	}
}

func TestShutdownTwice(t *testing.T) {
	s := start(t, embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	s.Shutdown()
	s.Shutdown() // and once more from t.Cleanup
	if s.NATS().Running() {
		t.Error("server still running after Shutdown")
	}
}

func TestServerName(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"", "natsse"},
		{"edge-1", "edge-1"},
	} {
		s := start(t, embedded.Options{StoreDir: t.TempDir(), ServerName: tc.name})
		if got := s.NATS().Name(); got != tc.want {
			t.Errorf("ServerName %q: got name %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestStartFails(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		ctx  context.Context
		opts embedded.Options
	}{
		{"no store dir", t.Context(), embedded.Options{}},
		{"bad listen address", t.Context(), embedded.Options{StoreDir: t.TempDir(), Listen: "localhost"}},
		{"bad port", t.Context(), embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:http"}},
		{"port in use", t.Context(), embedded.Options{StoreDir: t.TempDir(), Listen: busy.Addr().String()}},
		{"store dir is a file", t.Context(), embedded.Options{StoreDir: file}},
		{"user without password", t.Context(), embedded.Options{StoreDir: t.TempDir(), User: "alice"}},
		{"password without user", t.Context(), embedded.Options{StoreDir: t.TempDir(), Password: "pw"}},
		{"user and token", t.Context(), embedded.Options{StoreDir: t.TempDir(), User: "alice", Password: "pw", Token: "tok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(tc.ctx, 10*time.Second)
			defer cancel()
			s, err := embedded.Start(ctx, tc.opts)
			if err == nil {
				s.Shutdown()
				t.Fatal("Start succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "embedded: ") {
				t.Errorf("error %q, want the package prefix", err)
			}
		})
	}
	// goleak in TestMain checks that a failed Start left nothing running.
}

func TestStartCanceledWrapsContextError(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := embedded.Start(ctx, embedded.Options{StoreDir: t.TempDir()})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a canceled context: %v, want context.Canceled", err)
	}
}

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
	return nil
}

func TestLogger(t *testing.T) {
	rec := &recorder{}
	s := start(t, embedded.Options{StoreDir: t.TempDir(), Logger: slog.New(rec)})
	s.Shutdown()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var started bool
	for _, r := range rec.records {
		if r.Message == "Starting nats-server" {
			started = true
			if r.Level != slog.LevelDebug {
				t.Errorf("notice %q logged at %v, want DEBUG", r.Message, r.Level)
			}
		}
	}
	if !started {
		t.Errorf("got %d log records without \"Starting nats-server\"", len(rec.records))
	}
}
