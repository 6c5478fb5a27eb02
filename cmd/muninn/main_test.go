package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/internal/bench"
)

// execute runs the muninn command with args and returns its stdout and
// stderr.
func execute(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := runDemo(context.Background(), &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`1. Append events to topic "orders"`,
		"order-1001  order.placed    no stream   -> 2         0      1",
		"order-1001  order.shipped   version 2   -> 2         2      3",
		"consecutive offsets 0..1, versions 1..2",
		"v3 order.shipped",
		"expected version 2, stream is at version 3",
		"as *eventstore.VersionConflictError: Key=order-1001 Expected=version 2 Actual=3",
		"errors.Is(err, eventstore.ErrVersionConflict) = true",
		"partition 1: offsets [0, 2)  2 records", // a snapshot and a tombstone
		"removed 4 record(s)",
		"partition 1: offsets [0, 2)  1 records", // the tombstone, within its grace
		"of which 1 tombstone(s)",
		"partition 1: offsets [0, 2)  0 records  0 bytes",
		`partition 0 offset 2: order-1001 v3 {"status": "shipped"}`,
		"billing-1 handles orders/0@0",
		"orders/0   billing-1  3          3     0",
		"orders/2   billing-1  1          3     2",
		"catch-up: offset 1  order-1004 v2 order.paid",
		"<- received by the subscription",
		"-> version 1, partition 1 offset 0\n",
		"(duplicate: the first result, nothing appended)",
		"req-2 on cart/cart-7: invalid argument: quantity must be positive, got 0",
		"req-3 on cart/cart-8: not found: no open cart",
		"-> version 2, partition 1 offset 1\n",
		"Query carts[cart-7], waiting for cart/1@1: found true, {Customer:ada Items:2}",
		"7. A saga: order fulfillment across Order, Payment, Shipment and Stock",
		"ScheduleShipment order-1       -> ok",
		"-> instance order-1: completed after 4 steps",
		"ReleaseStock sku-42            -> ok\n    CancelOrder order-2            -> ok\n  -> instance order-2: failed after 2 steps",
		`-> instance order-3: running after 1 steps, deadline "payment-timeout" at 11:15`,
		"the workflow gives up:\n    ReleaseStock sku-7             -> ok\n    CancelOrder order-3            -> ok",
		"order-3  failed     steps 2  payment not answered within 15m0s",
		"shipment.scheduled  correlation req-order-1, caused by payment.captured",
		"order.completed     correlation req-order-1, caused by shipment.scheduled",
		"1 deadline fired",
		"Done.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out.String())
	}
}

func TestDemoCommand(t *testing.T) {
	stdout, _, err := execute(t, "demo", "--library")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "received by the subscription") {
		t.Errorf("demo command wrote to the wrong place:\n%s", stdout)
	}
}

func TestBenchJSON(t *testing.T) {
	dir := t.TempDir()
	args := []string{"bench", "--json", "--dir", dir,
		"--duration", "50ms", "--warmup", "10ms", "--streams", "20", "--events-per-stream", "2", "--rounds", "1",
		"--projection-events", "500", "--stream-events", "1000", "--saga-orders", "30"}
	// The pg_* keys are measured only with --postgres: with a server (always
	// in CI, see internal/pgtest), they are checked too.
	pgURL := os.Getenv("MUNINN_PG_URL")
	if pgURL != "" {
		args = append(args, "--postgres", pgURL)
	}
	stdout, stderr, err := execute(t, args...)
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, stderr)
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Errorf("stdout holds more than one JSON value:\n%s", stdout)
	}
	for _, key := range append(bench.Keys(), "cores", "go_version", "goos_goarch", "duration_s", "streams", "events_per_stream", "payload_bytes", "stream_events", "saga_orders") {
		if pgURL == "" && strings.HasPrefix(key, "pg_") {
			continue
		}
		switch v := m[key].(type) {
		case float64:
			if v <= 0 {
				t.Errorf("%s = %v, want > 0", key, v)
			}
		case string:
			if v == "" {
				t.Errorf("%s is empty", key)
			}
		default:
			t.Errorf("key %s missing from %s", key, stdout)
		}
	}
	if m["streams"] != 20.0 || m["duration_s"] != 0.05 || m["saga_orders"] != 30.0 {
		t.Errorf("flags not applied: %s", stdout)
	}
	if !strings.Contains(stderr, "append_durable_64_per_s") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("bench left %d entries in --dir", len(entries))
	}
}

func TestBenchTable(t *testing.T) {
	stdout, _, err := execute(t, "bench", "--dir", t.TempDir(),
		"--duration", "20ms", "--warmup", "0s", "--streams", "5", "--events-per-stream", "1",
		"--projection-events", "100", "--stream-events", "500", "--saga-orders", "10")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MEASUREMENT", "append_durable_16_ratio", "durable appends/s, 16 goroutines", "peak Go heap", "projection_catchup_events_per_s", "saga_steps_per_s"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
}

func TestBenchBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--duration", "-1s", "--rounds", "0"}, []string{"--duration must be positive", "--rounds must be at least 1"}},
		{[]string{"--streams", "0", "--payload-bytes", "-5"}, []string{"--streams must be at least 1", "--payload-bytes must be at least 1"}},
		{[]string{"--payload-bytes", "100000000"}, []string{"PayloadBytes must be between"}},
		{[]string{"--projection-events", "0"}, []string{"--projection-events must be at least 1"}},
		{[]string{"--stream-events", "0"}, []string{"--stream-events must be at least 1"}},
		{[]string{"--saga-orders", "0"}, []string{"--saga-orders must be at least 1"}},
		{[]string{"--duration", "soon"}, []string{`invalid argument "soon" for "--duration"`}},
		{[]string{"extra"}, []string{`unknown command "extra"`}},
	} {
		_, _, err := execute(t, append([]string{"bench"}, tc.args...)...)
		if err == nil {
			t.Errorf("bench %v: no error", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("bench %v: error %q lacks %q", tc.args, err, w)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	stdout, _, err := execute(t, "version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("version --json: %v\n%s", err, stdout)
	}
	if v.Version == "" || !strings.HasPrefix(v.Go, "go") || !strings.Contains(v.Platform, "/") {
		t.Errorf("version --json = %+v", v)
	}
	stdout, _, err = execute(t, "version")
	if err != nil || !strings.HasPrefix(stdout, "muninn "+v.Version) {
		t.Errorf("version = %q, %v", stdout, err)
	}
}

// TestShopDemo runs `muninn demo`: the shop served in-process and driven
// over real HTTP.
func TestShopDemo(t *testing.T) {
	stdout, stderr, err := execute(t, "demo")
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	for _, want := range []string{
		"REST on http://127.0.0.1:",
		"Muninn-Position shop.orders/",
		"same Idempotency-Key -> 200 order ord-",
		"quantity 0         -> 400 ",
		"items[0].quantity",
		"an empty cart      -> 400 ",
		"payment by cheque  -> 400 ",
		"malformed JSON     -> 400 ",
		"payment declined",
		"payment not answered within 15m0s",
		"8 completed, 4 cancelled",
		"GET /v1/customers/grace/orders: 2 orders:",
		"in all: 8 orders  €208.87",
		"the lineage of the first order, by causation:",
		"shop.order.placed",
		"shop.order.completed",
		"The server stopped gracefully.",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", stdout)
	}
}
