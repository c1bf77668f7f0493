package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
)

// pageRow is a row of the page's table, as the page recorded it.
type pageRow struct {
	Kind    string `json:"kind"`
	ID      string `json:"id"`
	Subject string `json:"subject"`
	Type    string `json:"type"`
	Data    string `json:"data"`
}

// TestBrowserPage opens the page at / in headless Chromium, as the banner
// links it (already subscribed to events.ui.>), and checks that an event
// published through NATS, with an SSE-Event type the page cannot know in
// advance, and one published with the page's own form both appear as rows
// with their id (the stored sequence), subject, type and data. It writes a
// screenshot to $NATSSE_ARTIFACTS_DIR (else the test's temporary directory).
func TestBrowserPage(t *testing.T) {
	chromium := findChromium(t)
	p := startNatsse(t, "NATSSE_STREAM_SUBJECTS=events.ui.>")
	if want := "http://" + p.httpAddr + "/?subject=" + url.QueryEscape("events.ui.demo"); p.ready.Page != want {
		t.Errorf("the ready line's page: got %q, want %q", p.ready.Page, want)
	}
	js := jetStream(t, p.natsURL)
	ctx := startBrowser(t, chromium, chromedp.WindowSize(1280, 720))
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+p.httpAddr+"/?subject="+url.QueryEscape("events.ui.>"))); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	waitUI(t, ctx, "the page to subscribe", `window.natsseUI.state === "open"`)

	// A type made up now: the page cannot listen for it by name.
	kind := "invoice.paid-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
	m := nats.NewMsg("events.ui.nats")
	m.Header.Set("SSE-Event", kind)
	m.Data = []byte(`{"via":"nats"}`)
	pctx, cancel := context.WithTimeout(t.Context(), patience())
	defer cancel()
	ack, err := js.PublishMsg(pctx, m)
	if err != nil {
		t.Fatal(err)
	}

	// The form: its subject followed the subscribed pattern (events.ui.demo).
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("ptype"), "form.sent"),
		chromedp.SetValue(chromedp.ID("pbody"), "hello from the form"),
		chromedp.Click(chromedp.ID("publish")),
	); err != nil {
		t.Fatalf("publish with the form: %v", err)
	}
	waitUI(t, ctx, "the form's publish to be stored", `window.natsseUI.published.length === 1`)
	formSeq, err := chromedp.Run(ctx, chromedp.Evaluate[uint64](`window.natsseUI.published[0]`))
	if err != nil {
		t.Fatal(err)
	}
	waitUI(t, ctx, "both rows", `window.natsseUI.rows.filter(r => r.kind === "event").length >= 2`)
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]pageRow](`window.natsseUI.rows.filter(r => r.kind === "event")`))
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if len(rows) > 0 {
		_ = json.Compact(&compact, []byte(rows[0].Data))
	}
	want := []pageRow{
		{Kind: "event", ID: strconv.FormatUint(ack.Sequence, 10), Subject: "events.ui.nats", Type: kind, Data: `{"via":"nats"}`},
		{Kind: "event", ID: strconv.FormatUint(formSeq, 10), Subject: "events.ui.demo", Type: "form.sent", Data: "hello from the form"},
	}
	if len(rows) != 2 || rows[0].ID != want[0].ID || rows[0].Subject != want[0].Subject || rows[0].Type != want[0].Type ||
		compact.String() != want[0].Data || rows[1] != want[1] {
		t.Errorf("the page's rows:\ngot  %+v\nwant %+v", rows, want)
	}
	// What a person sees: the table's cells.
	cells, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](
		`[...document.querySelectorAll("#rows tr")].map(tr => [...tr.cells].map(td => td.textContent))`))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !hasRow(cells, w.ID, w.Subject, w.Type) {
			t.Errorf("the table shows no row with id %s, subject %s, type %s: %q", w.ID, w.Subject, w.Type, cells)
		}
	}

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("NATSSE_ARTIFACTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "TestBrowserPage.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// hasRow reports whether a row of the table shows id, subject and type.
func hasRow(cells [][]string, id, subject, typ string) bool {
	for _, r := range cells {
		if len(r) >= 4 && r[1] == id && r[2] == subject && r[3] == typ {
			return true
		}
	}
	return false
}

// waitUI polls the page until cond (JavaScript) holds.
func waitUI(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(patience())
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.natsseUI) + " " + document.getElementById("pubnote").textContent`))
			t.Fatalf("waiting for %s: not within %v; the page: %s", what, patience(), state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
