package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveInProcess runs the shop server of `muninn serve` on dir, on free
// loopback ports, until the test ends; it returns the gRPC and HTTP
// addresses and a function that stops it.
func serveInProcess(t *testing.T, dir string) (grpcAddr, httpAddr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, serveConfig{Data: dir, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			PaymentTimeout: 15 * time.Minute, TimeScale: 600,
			Started: func(g, h string) { addrs <- [2]string{g, h} }})
	}()
	var a [2]string
	select {
	case a = <-addrs:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	t.Cleanup(stop)
	return a[0], a[1], stop
}

func TestOperatorCommands(t *testing.T) {
	dir := t.TempDir()
	grpcAddr, httpAddr, stop := serveInProcess(t, dir)
	c := &shopClient{base: "http://" + httpAddr, http: &http.Client{Timeout: 10 * time.Second}}
	ctx := context.Background()
	var placed struct {
		OrderID string `json:"order_id"`
	}
	if _, err := c.call(ctx, "POST", "/v1/orders",
		map[string]any{"customer_id": "ada", "items": []demoItem{{"sku-1", 2, 1250}}, "payment_method": "card"},
		map[string]string{"X-Correlation-ID": "ops-corr-1"}, &placed); err != nil {
		t.Fatal(err)
	}
	if _, err := awaitSettled(ctx, c, placed.OrderID, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) string {
		t.Helper()
		stdout, stderr, err := execute(t, args...)
		if err != nil {
			t.Fatalf("muninn %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return stdout
	}
	srv := []string{"--server", grpcAddr}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"topics"}, []string{"TOPIC", "shop.orders", "shop.payments"}},
		{[]string{"groups"}, []string{"GROUP", "projection.shop-order-details.1", "saga.shop-checkout"}},
		{[]string{"groups", "saga.shop-checkout"}, []string{"COMMITTED", "shop.orders"}},
		{[]string{"projections"}, []string{"shop-order-details", "live"}},
		{[]string{"sagas"}, []string{"shop-checkout"}},
		{[]string{"sagas", "shop-checkout"}, []string{placed.OrderID, "completed", "ops-corr-1"}},
		{[]string{"trace", "ops-corr-1"}, []string{"correlation ops-corr-1", "shop.order.placed", "shop.payment.captured", "shop.order.completed"}},
		{[]string{"tail", "shop.orders", "--from", "beginning"}, []string{"shop.order.placed", "shop.order.completed", "corr=ops-corr-1"}},
		{[]string{"dlq", "list", "shop-order-details"}, []string{"POSITION"}},
	} {
		out := run(append(c.args, srv...)...)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("muninn %s lacks %q:\n%s", strings.Join(c.args, " "), w, out)
			}
		}
	}
	// --json: one JSON object per line.
	out := run(append([]string{"topics", "--json"}, srv...)...)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["name"] == nil {
			t.Errorf("topics --json line %q: %v", line, err)
		}
	}
	// Errors name what was wrong.
	if _, _, err := execute(t, append([]string{"trace", ""}, srv...)...); err == nil || !strings.Contains(err.Error(), "correlation_id") {
		t.Errorf("trace of an empty ID: %v", err)
	}
	if _, _, err := execute(t, append([]string{"tail", "no-such-topic"}, srv...)...); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("tail of a missing topic: %v", err)
	}
	// --data is refused while the server holds the directory.
	if _, _, err := execute(t, "topics", "--data", dir); err == nil || !strings.Contains(err.Error(), "in use by a running server") {
		t.Errorf("topics --data on a served directory: %v", err)
	}
	stop()

	// Directly on the directory once the server has stopped.
	out = run("topics", "--data", dir)
	if !strings.Contains(out, "shop.orders") {
		t.Errorf("topics --data:\n%s", out)
	}
	out = run("rebuild", "shop-order-details", "--data", dir, "--json")
	if !strings.Contains(out, `"finished":true`) {
		t.Errorf("rebuild --json does not end finished:\n%s", out)
	}
	out = run("sagas", "shop-checkout", "--data", dir, "--status", "completed")
	if !strings.Contains(out, placed.OrderID) {
		t.Errorf("sagas --data --status completed lacks %s:\n%s", placed.OrderID, out)
	}
	// No server at all: the error says what to do.
	if _, _, err := execute(t, "topics", "--server", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "muninn serve") {
		t.Errorf("topics without a server: %v", err)
	}
}
