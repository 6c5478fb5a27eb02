package service_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muninn-es/muninn/service"
)

// X-Correlation-ID, else a traceparent's trace ID, becomes the events'
// correlation ID; the idempotency key their causation (the command ID).
func TestCorrelation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if res, body := e.do(t, "POST", "/v1/counters/k1:add", `{"amount":1}`, "X-Correlation-ID", "corr-1", "Idempotency-Key", "cmd-1"); res.StatusCode != 200 {
		t.Fatalf("HTTP %d %s", res.StatusCode, body)
	}
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if res, body := e.do(t, "POST", "/v1/counters/k2:add", `{"amount":1}`, "traceparent", tp); res.StatusCode != 200 {
		t.Fatalf("HTTP %d %s", res.StatusCode, body)
	}
	for key, want := range map[string]string{"k1": "corr-1", "k2": "4bf92f3577b34da6a3ce929d0e0e4736"} {
		n := 0
		for rec, err := range e.store.ReadStream(ctx, "counter", key, 1) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if rec.CorrelationID != want {
				t.Errorf("%s: correlation %q, want %q", key, rec.CorrelationID, want)
			}
			if key == "k1" && rec.CausationID != "cmd-1" {
				t.Errorf("causation %q, want the idempotency key", rec.CausationID)
			}
		}
		if n != 1 {
			t.Errorf("%s: %d events", key, n)
		}
	}
}

// Parallel retries with one Idempotency-Key append once and all answer
// the first result.
func TestParallelDuplicates(t *testing.T) {
	e := newEnv(t)
	const n = 8
	var wg sync.WaitGroup
	results := make([]addJSON, n)
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", e.base+"/v1/counters/p:add", strings.NewReader(`{"amount":3}`))
			req.Header.Set("Idempotency-Key", "same")
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			codes[i] = res.StatusCode
			_ = json.NewDecoder(res.Body).Decode(&results[i])
		})
	}
	wg.Wait()
	firsts := 0
	for i := range n {
		if codes[i] != 200 || results[i].Version != "1" || results[i].Position != results[0].Position {
			t.Fatalf("call %d: %d %+v (first %+v)", i, codes[i], results[i], results[0])
		}
		if !results[i].Duplicate {
			firsts++
		}
	}
	if firsts != 1 {
		t.Fatalf("%d calls applied the command", firsts)
	}
	res, body := e.do(t, "GET", "/v1/counters/p?min_position="+results[0].Position, "")
	if res.StatusCode != 200 || !strings.Contains(body, `"value":"3"`) {
		t.Fatalf("HTTP %d %s", res.StatusCode, body)
	}
}

// Server.Run serves until its context ends, then shuts down cleanly.
func TestServerRun(t *testing.T) {
	srv, err := service.New(service.WithGRPCAddr("127.0.0.1:0"), service.WithHTTPAddr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Started()
	res, err := http.Get("http://" + srv.HTTPAddr() + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Errorf("openapi without documents: %d", res.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err == nil {
		t.Error("a shut down server starts again")
	}
}

// With a drain delay, /readyz says 503 while the listeners still accept;
// the shutdown context ends the delay.
func TestDrainDelay(t *testing.T) {
	srv, err := service.New(service.WithGRPCAddr("127.0.0.1:0"), service.WithHTTPAddr("127.0.0.1:0"),
		service.WithDrainDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.HTTPAddr()
	get := func(path string) (int, string) {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("readyz %d %s", code, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		code, body := get("/readyz")
		if code == 503 && strings.Contains(body, "shutting down") {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("readyz stays %d %s while draining", code, body)
		}
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz %d while draining: the process is up", code)
	}
	cancel()
	<-done // cut short by ctx: its error says so, or nil if nothing was in flight
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("HTTP still serves after shutdown")
	}
}

// WithHandler serves extra routes beside the gateway; a pattern that clashes
// with the server's own routes, a malformed one or a nil handler fails New.
func TestWithHandler(t *testing.T) {
	srv, err := service.New(service.WithGRPCAddr("127.0.0.1:0"), service.WithHTTPAddr("127.0.0.1:0"),
		service.WithHandler("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("up 1\n"))
		})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Started()
	res, err := http.Get("http://" + srv.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "up 1\n" {
		t.Errorf("/metrics: %d %q", res.StatusCode, b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	ok := http.NotFoundHandler()
	for _, c := range []struct {
		pattern string
		h       http.Handler
		want    string
	}{
		{"GET /healthz", ok, `"GET /healthz"`},
		{"BAD PATTERN HERE", ok, `"BAD PATTERN HERE"`},
		{"", ok, "pattern is empty"},
		{"/ui/", nil, `"/ui/" is nil`},
	} {
		_, err := service.New(service.WithHandler(c.pattern, c.h))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("WithHandler(%q): %v, want an error naming %s", c.pattern, err, c.want)
		}
	}
}
