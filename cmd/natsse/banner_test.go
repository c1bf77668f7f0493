package main_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestBinaryBannerHints: the ready line's examples are built from the
// settings (base path, subjects), and they work: the HTTP publish example
// stores an event (201), the page link serves the page. With the page and
// publishing off, it offers neither.
func TestBinaryBannerHints(t *testing.T) {
	p := startNatsse(t, "NATSSE_BASE_PATH=/gw", "NATSSE_STREAM_SUBJECTS=shop.orders.>")
	base := "http://" + p.httpAddr + "/gw"
	for _, c := range []struct{ what, got, want string }{
		{"subscribe", p.ready.Subscribe, "curl -N " + base + "/shop/orders/demo"},
		{"publish_http", p.ready.PublishHTTP, "curl -X POST -d hello " + base + "/shop/orders/demo"},
		{"page", p.ready.Page, base + "/?subject=shop.orders.demo"},
		{"publish", p.publish, "nats --server " + p.natsURL + " pub shop.orders.demo hello"},
	} {
		if c.got != c.want {
			t.Errorf("the ready line's %s: got %q, want %q", c.what, c.got, c.want)
		}
	}
	resp, err := http.Post(base+"/shop/orders/demo", "", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || string(body) != `{"stream":"EVENTS","seq":1,"duplicate":false}`+"\n" {
		t.Errorf("the publish example: %d %q, want 201 with seq 1", resp.StatusCode, body)
	}
	resp, err = http.Get(p.ready.Page)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("the page link: %d %q, want the page", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	off := startNatsse(t, "NATSSE_UI=false", "NATSSE_PUBLISH=off")
	if off.ready.Page != "" || off.ready.PublishHTTP != "" {
		t.Errorf("with the page and publishing off, the ready line offers page %q and publish_http %q", off.ready.Page, off.ready.PublishHTTP)
	}
}
