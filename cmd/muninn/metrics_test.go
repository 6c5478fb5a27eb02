package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/examples/shop"
	orderv1 "github.com/muninn-es/muninn/examples/shop/api/order/v1"
)

// scrape reads url (a /metrics endpoint) in Prometheus' text format: each
// sample's value under its name and labels as printed
// (`name{k="v",...}`).
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		line := lines.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("GET %s: malformed line %q", url, line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("GET %s: line %q: %w", url, line, err)
		}
		out[line[:i]] = v
	}
	return out, lines.Err()
}

// sumOf adds the samples whose name and labels start with prefix.
func sumOf(m map[string]float64, prefix string) float64 {
	var sum float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			sum += v
		}
	}
	return sum
}

// waitMetrics scrapes url until cond holds (30 s at most), and returns the
// samples that met it.
func waitMetrics(t *testing.T, url, what string, cond func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		m, err := scrape(ctx, url)
		if err == nil && cond(m) {
			return m
		}
		select {
		case <-ctx.Done():
			t.Fatalf("metrics never showed %s (last error %v): %v", what, err, m)
		case <-tick.C:
		}
	}
}

// serveShop runs the serve wiring on dir with clk until the test ends and
// returns its HTTP address.
func serveShop(t *testing.T, dir string, clk clock.Clock) (addr string, stop func()) {
	t.Helper()
	return serveShopWith(t, serveConfig{Data: dir, Clock: clk})
}

// serveShopWith is serveShop with cfg (Data, Clock, NoMetrics), on free
// loopback ports.
func serveShopWith(t *testing.T, cfg serveConfig) (addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		cfg.GRPCAddr, cfg.HTTPAddr, cfg.PaymentTimeout, cfg.TimeScale = "127.0.0.1:0", "127.0.0.1:0", 15*time.Minute, 1
		cfg.Started = func(_, h string) { addrs <- h }
		served <- runServe(ctx, cfg)
	}()
	select {
	case addr = <-addrs:
	case err := <-served:
		cancel()
		t.Fatalf("serve did not start: %v", err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	t.Cleanup(stop)
	return addr, stop
}

// TestServeMetrics runs the shop as `muninn serve` wires it, on a manual
// clock, with an order that is paid, one that is declined, one whose
// payment times out, a retried request and a refused cancellation, and
// scrapes /metrics over HTTP: commands by outcome, saga steps, instances
// and deadlines, append and fsync histograms, Pebble's metrics, and the lag,
// zero once caught up. Then, with the runners stopped, it places an order
// offline and scrapes the same setup: the projection's lag is the order's
// records and their age on the clock; served again, it catches up to zero.
func TestServeMetrics(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewManual(time.Now())
	addr, stop := serveShop(t, dir, clk)
	url := "http://" + addr + metricsPath
	ctx := t.Context()
	c := &shopClient{base: "http://" + addr, http: &http.Client{Timeout: 10 * time.Second}}
	place := func(key, method string) string {
		var placed struct {
			OrderID string `json:"order_id"`
		}
		if _, err := c.call(ctx, "POST", "/v1/orders", map[string]any{"customer_id": "ada", "payment_method": method,
			"items": []demoItem{{"sku-book", 1, 1250}}}, map[string]string{"Idempotency-Key": key}, &placed); err != nil {
			t.Fatalf("place %s: %v", key, err)
		}
		return placed.OrderID
	}
	paid, declined, late := place("k-paid", "card"), place("k-declined", "card_declined"), place("k-late", "card_timeout")
	if again := place("k-paid", "card"); again != paid {
		t.Fatalf("the retried order is %s, not %s", again, paid)
	}
	for _, id := range []string{paid, declined} {
		if _, err := awaitSettled(ctx, c, id, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// The late order's checkout waits for its payment deadline: move the
	// clock past it once it is scheduled.
	waitMetrics(t, url, "the payment deadline", func(m map[string]float64) bool {
		return m[`muninn_deadlines_pending{saga="shop-checkout"}`] == 1
	})
	clk.Advance(16 * time.Minute)
	if v, err := awaitSettled(ctx, c, late, 30*time.Second); err != nil || v.Status != "CANCELLED" {
		t.Fatalf("the late order: %+v, %v", v, err)
	}
	// Cancelling a cancelled order is refused: failed_precondition.
	var he *httpError
	if _, err := c.call(ctx, "POST", "/v1/orders/"+declined+":cancel", map[string]any{"reason": "again"}, nil, nil); !errors.As(err, &he) {
		t.Fatalf("cancelling a cancelled order: %v, want a refusal", err)
	}

	// An order reads CANCELLED once CancelOrder is applied, while its
	// checkout may still be compensating (voiding the payment, releasing
	// the stock): wait for every checkout to have ended, too.
	m := waitMetrics(t, url, "no lag, every checkout ended", func(m map[string]float64) bool {
		return sumOf(m, "muninn_consumer_lag_records{") == 0 && m[`muninn_saga_instances{saga="shop-checkout",status="running"}`] == 0 &&
			m[`muninn_saga_instances{saga="shop-checkout",status="compensating"}`] == 0
	})
	const placeOrder = `muninn_commands_total{aggregate="shop.orders",command="order.PlaceOrder",outcome=`
	for k, want := range map[string]float64{
		placeOrder + `"applied"}`:   3,
		placeOrder + `"duplicate"}`: 1,
		`muninn_commands_total{aggregate="shop.orders",command="order.CancelOrder",outcome="failed_precondition"}`: 1,
		`muninn_saga_instances{saga="shop-checkout",status="completed"}`:                                           1,
		`muninn_deadlines_pending{saga="shop-checkout"}`:                                                           0,
		`muninn_consumer_lag_seconds{group="projection.shop-order-details.1",partition="0",topic="shop.orders"}`:   0,
		// The revenue stream app's group, on its source and its repartition topic.
		`muninn_consumer_lag_records{group="shop-revenue",partition="0",topic="shop.payments"}`:                   0,
		`muninn_consumer_lag_records{group="shop-revenue",partition="0",topic="shop-revenue-hourly-repartition"}`: 0,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if n := m[`muninn_saga_instances{saga="shop-checkout",status="failed"}`]; n != 2 {
		t.Errorf("%v failed checkouts, want 2 (declined, timed out)", n)
	}
	for _, k := range []string{
		`muninn_saga_steps_total{saga="shop-checkout"}`,
		`muninn_command_duration_seconds_count{aggregate="shop.orders",command="order.PlaceOrder",outcome="applied"}`,
		`muninn_append_batch_size_count{topic="shop.orders"}`,
		`muninn_fsync_duration_seconds_count`,
		`muninn_pebble_wal_bytes_in_total`,
		`muninn_pebble_disk_usage_bytes`,
	} {
		if m[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, m[k])
		}
	}
	for k := range m {
		if strings.Contains(k, "otel_scope") || strings.HasPrefix(k, "target_info") || strings.HasPrefix(k, "muninn_") && strings.Contains(k, "_seconds_total") {
			t.Errorf("series %s: the exporter changed the names", k)
		}
	}
	stop()

	// The runners stopped, an order placed offline lags the projection.
	sm, err := newServeMetrics(true)
	if err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.Open(dir, sm.storeOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	s, err := shop.New(store, append(sm.shopOptions(), shop.WithClock(clk))...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Server().PlaceOrder(ctx, &orderv1.PlaceOrderRequest{CustomerId: "grace", PaymentMethod: "card",
		Items: []*orderv1.Item{{Sku: "sku-lamp", Quantity: 1, UnitPriceCents: 4900}}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	hs := httptest.NewServer(sm.handler) // on loopback
	m, err = scrape(ctx, hs.URL)
	hs.Close()
	if err != nil {
		t.Fatal(err)
	}
	const projLag = `muninn_consumer_lag_records{group="projection.shop-order-details.1",`
	if sumOf(m, projLag) != 1 || sumOf(m, `muninn_consumer_lag_seconds{group="projection.shop-order-details.1",`) < 60 ||
		m[`muninn_projection_state{projection="shop-order-details",state="idle"}`] != 1 {
		t.Errorf("stopped: lag %v records, %v s, idle %v; want 1 record, at least 60 s, idle", sumOf(m, projLag),
			sumOf(m, `muninn_consumer_lag_seconds{group="projection.shop-order-details.1",`), m[`muninn_projection_state{projection="shop-order-details",state="idle"}`])
	}
	if err := errors.Join(s.Close(), store.Close(), sm.shutdown(ctx)); err != nil {
		t.Fatal(err)
	}

	// Served again, the projection catches up.
	addr, _ = serveShop(t, dir, clk)
	waitMetrics(t, "http://"+addr+metricsPath, "the projection caught up", func(m map[string]float64) bool {
		_, ok := m[projLag+`partition="0",topic="shop.orders"}`]
		return ok && sumOf(m, projLag) == 0 && m[`muninn_projection_state{projection="shop-order-details",state="live"}`] == 1
	})
}

// TestServeMetricsOff: with --metrics=false, /metrics answers 404 saying
// why.
func TestServeMetricsOff(t *testing.T) {
	addr, _ := serveShopWith(t, serveConfig{Data: t.TempDir(), NoMetrics: true})
	resp, err := http.Get("http://" + addr + metricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "--metrics=false") {
		t.Errorf("GET /metrics with metrics off: %s %q, want 404 naming --metrics=false", resp.Status, body)
	}
}
