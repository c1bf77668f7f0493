package main_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// readme returns README.md.
func readme(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// find returns the submatches of re in text, or fails the test with what.
func find(t *testing.T, text, what string, re *regexp.Regexp) []string {
	t.Helper()
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("README.md: no %s (%s)", what, re)
	}
	return m
}

// TestREADMEFirstHour follows the README's first hour against the binary:
// the two commands are there as written, and what its curl prints after its
// nats pub -J is, byte for byte, what natsse streams (the nats CLI is used
// when it is on PATH, and must then print the stored sequence).
func TestREADMEFirstHour(t *testing.T) {
	text := readme(t)
	shell := strings.Join(regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllString(text, -1), "")
	for _, cmd := range []string{"go run ./cmd/natsse", "go test ./...", "curl -N localhost:8080/events/demo"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(cmd) + `\s*(#.*)?$`).MatchString(shell) {
			t.Errorf("README.md: no sh block has the line %q", cmd)
		}
	}
	pub := find(t, shell, "nats pub -J line", regexp.MustCompile(`(?m)^nats pub -J (\S+) '([^']*)'$`))
	path := find(t, shell, "curl line", regexp.MustCompile(`(?m)^curl -N localhost:8080(/\S+)$`))[1]
	want := find(t, text, "output block after <!-- TestREADMEFirstHour -->", regexp.MustCompile("(?s)<!-- TestREADMEFirstHour[^\n]*\n```\n(.*?)```"))[1]
	if !strings.Contains(text, "Stored in Stream: EVENTS Sequence: 1") {
		t.Error("README.md does not quote what nats pub -J prints")
	}

	p := startNatsse(t, "NATSSE_RETRY=2s") // the default, which the README shows
	ctx, cancel := context.WithTimeout(t.Context(), patience())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.httpAddr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	checkStreamHeaders(t, resp)

	if nats, err := exec.LookPath("nats"); err == nil {
		out, err := exec.CommandContext(ctx, nats, "--server", p.natsURL, "pub", "-J", pub[1], pub[2]).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Stored in Stream: EVENTS Sequence: 1") {
			t.Errorf("nats pub -J %s %s: %v\n%s\nwant it to print Stored in Stream: EVENTS Sequence: 1", pub[1], pub[2], err, out)
		}
	} else {
		ack, err := jetStream(t, p.natsURL).Publish(ctx, pub[1], []byte(pub[2]))
		if err != nil || ack.Stream != "EVENTS" || ack.Sequence != 1 {
			t.Fatalf("publish %s: %+v %v, want stream EVENTS sequence 1", pub[1], ack, err)
		}
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatalf("reading the stream: %v (got %q)", err, got)
	}
	if string(got) != want {
		t.Errorf("curl's output:\ngot  %q\nwant %q (README.md)", got, want)
	}

	// The HTTP publish: its answer as the README shows it, and the event
	// the first curl prints next.
	post := find(t, shell, "curl -X POST line", regexp.MustCompile(`(?m)^curl -X POST -H 'SSE-Event: (\S+)' -d (\S+) localhost:8080(/\S+)$`))
	answer := find(t, text, "answer block after the curl -X POST", regexp.MustCompile("(?s)<!-- TestREADMEFirstHour checks this answer[^\n]*\n```\n(.*?)```"))[1]
	preq, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.httpAddr+post[3], strings.NewReader(post[2]))
	preq.Header.Set("SSE-Event", post[1])
	presp, err := http.DefaultClient.Do(preq)
	if err != nil {
		t.Fatalf("POST %s: %v", post[3], err)
	}
	body, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if string(body) != answer {
		t.Errorf("the answer to curl -X POST:\ngot  %q\nwant %q (README.md)", body, answer)
	}
	wantEvent := "id: 2\nevent: " + post[1] + "\ndata: " + post[2] + "\n\n"
	if !strings.Contains(text, "`id: 2`, `event: "+post[1]+"`, `data: "+post[2]+"`") {
		t.Errorf("README.md does not say what the first curl prints after the POST (id: 2, event: %s, data: %s)", post[1], post[2])
	}
	got = make([]byte, len(wantEvent))
	if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != wantEvent {
		t.Errorf("the first curl after the POST: got %q (%v), want %q", got, err, wantEvent)
	}
}

// TestREADMEBrowserSnippet runs the README's browser snippet as written in
// headless Chromium, on the page of natsse's origin the README names, and
// checks that it logs the opened stream and the published event.
func TestREADMEBrowserSnippet(t *testing.T) {
	chromium := findChromium(t)
	text := readme(t)
	snippet := find(t, text, "js block after <!-- TestREADMEBrowserSnippet -->", regexp.MustCompile("(?s)<!-- TestREADMEBrowserSnippet[^\n]*\n```js\n(.*?)```"))[1]
	if n := strings.Count(snippet, "\n"); n > 5 {
		t.Errorf("README.md: the browser snippet has %d lines, want at most five", n)
	}
	page := find(t, text, "page to open", regexp.MustCompile("open `http://localhost:8080(/\\S*)`"))[1]
	pub := find(t, text, "nats pub -J line", regexp.MustCompile(`(?m)^nats pub -J (\S+) '([^']*)'$`))

	p := startNatsse(t)
	js := jetStream(t, p.natsURL)
	ctx := startBrowser(t, chromium)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+p.httpAddr+page)); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	// The console, as a developer reads it.
	const console = `(() => {
		window.logged = [];
		const log = console.log;
		console.log = (...a) => {
			window.logged.push(a.map(x => typeof x === "object" ? JSON.stringify(x) : String(x)).join(" "));
			log(...a);
		};
	})()`
	for _, script := range []string{console, snippet} {
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](script)); err != nil {
			t.Fatalf("evaluate %q: %v", script, err)
		}
	}
	waitLogged := func(line string) {
		t.Helper()
		deadline := time.Now().Add(patience())
		for {
			logged, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.logged`))
			if err != nil {
				t.Fatalf("read the console: %v", err)
			}
			if slices.Contains(logged, line) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the console never showed %q; it shows %q", line, logged)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLogged("open")
	ack, err := js.Publish(ctx, pub[1], []byte(pub[2]))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitLogged("id " + strconv.FormatUint(ack.Sequence, 10) + " " + pub[2])
}
