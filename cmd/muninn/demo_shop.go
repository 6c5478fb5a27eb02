package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	muninnv1 "github.com/muninn-es/muninn/api/muninn/v1"
)

// The shop demo: `muninn serve` in-process on a temporary directory, and a
// client that talks to it only over HTTP, through the REST gateway, the way
// any other program would.

// demoTimeScale runs the shop's clock 600 times faster than real time, so
// that the 15-minute payment deadline of a card that never answers passes
// in 1.5 s.
const demoTimeScale = 600

// demoOrder is one order the demo places.
type demoOrder struct {
	customer, method string
	items            []demoItem
}

// demoOrders are the orders the shop demo places (and the UI's browser test):
// cards that pay, that are declined and that never answer.
var demoOrders = []demoOrder{
	{"ada", "card", []demoItem{{"sku-book", 2, 1250}}},
	{"ada", "card", []demoItem{{"sku-pen", 10, 199}, {"sku-ink", 1, 650}}},
	{"grace", "card", []demoItem{{"sku-lamp", 1, 4900}}},
	{"grace", "card_declined", []demoItem{{"sku-desk", 1, 25900}}},
	{"linus", "card", []demoItem{{"sku-mug", 4, 850}}},
	{"linus", "card_timeout", []demoItem{{"sku-chair", 1, 13900}}},
	{"barbara", "card", []demoItem{{"sku-book", 1, 1250}}},
	{"barbara", "card", []demoItem{{"sku-cable", 3, 999}}},
	{"edsger", "card_declined", []demoItem{{"sku-pen", 1, 199}}},
	{"edsger", "card", []demoItem{{"sku-notebook", 5, 300}}},
	{"margaret", "card_timeout", []demoItem{{"sku-rocket", 1, 99900}}},
	{"margaret", "card", []demoItem{{"sku-mug", 2, 850}}},
}

type demoItem struct {
	SKU            string `json:"sku"`
	Quantity       int64  `json:"quantity,string"`
	UnitPriceCents int64  `json:"unit_price_cents,string"`
}

// orderJSON is an order as GET /v1/orders/{order_id} returns it (proto
// JSON: 64-bit integers are strings).
type orderJSON struct {
	OrderID      string     `json:"order_id"`
	CustomerID   string     `json:"customer_id"`
	Status       string     `json:"status"`
	TotalCents   int64      `json:"total_cents,string"`
	Items        []demoItem `json:"items"`
	Method       string     `json:"payment_method"`
	CancelReason string     `json:"cancel_reason"`
	Version      uint64     `json:"version,string"`
}

// shopClient calls the shop's REST API.
type shopClient struct {
	base string
	http *http.Client
}

// call sends a JSON request and decodes the JSON answer into out (if not
// nil). A status other than 200 is an error carrying the body's message.
func (c *shopClient) call(ctx context.Context, method, path string, body any, headers map[string]string, out any) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := c.send(ctx, method, path, rd, headers)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(b, &e)
		return resp.Header, &httpError{status: resp.StatusCode, message: e.Message}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

// send sends a request with a JSON body (rd, or none if nil) and headers.
func (c *shopClient) send(ctx context.Context, method, path string, rd io.Reader, headers map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return c.http.Do(req)
}

// httpError is an answer other than 200 OK.
type httpError struct {
	status  int
	message string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.status, http.StatusText(e.status), e.message)
}

// runShopDemo serves the shop from a temporary directory and drives it
// over HTTP, narrating to w.
func runShopDemo(ctx context.Context, w io.Writer) error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "muninn-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	addrs := make(chan [2]string, 1)
	served := make(chan error, 1)
	go func() {
		served <- runServe(ctx, serveConfig{
			Data: dir, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			PaymentTimeout: 15 * time.Minute, TimeScale: demoTimeScale,
			Started: func(g, h string) { addrs <- [2]string{g, h} },
		})
	}()
	var httpAddr, grpcAddr string
	select {
	case a := <-addrs:
		grpcAddr, httpAddr = a[0], a[1]
	case err := <-served:
		return fmt.Errorf("demo: the server did not start: %w", err)
	}
	out := &errWriter{w: w}
	p := func(format string, args ...any) { fmt.Fprintf(out, format, args...) }
	p("Muninn demo: the example shop (Order, Payment, Shipping and the checkout saga)\n")
	p("served from %s: gRPC on %s, REST on http://%s\n", dir, grpcAddr, httpAddr)
	p("Every call below is real HTTP through the gateway; the shop's clock runs %dx fast,\n", demoTimeScale)
	p("so a payment that never answers hits its 15-minute deadline in 1.5 s.\n")

	c := &shopClient{base: "http://" + httpAddr, http: &http.Client{Timeout: 10 * time.Second}}
	orders := demoOrders

	p("\nPOST /v1/orders, a dozen times (each with an Idempotency-Key and an X-Correlation-ID):\n")
	ids := make([]string, len(orders))
	corr := make([]string, len(orders))
	for i, o := range orders {
		corr[i] = fmt.Sprintf("demo-checkout-%02d", i+1)
		var placed struct {
			OrderID  string `json:"order_id"`
			Version  uint64 `json:"version,string"`
			Position string `json:"position"`
		}
		h, err := c.call(ctx, "POST", "/v1/orders",
			map[string]any{"customer_id": o.customer, "items": o.items, "payment_method": o.method},
			map[string]string{"Idempotency-Key": fmt.Sprintf("demo-place-%02d", i+1), "X-Correlation-ID": corr[i]}, &placed)
		if err != nil {
			return fmt.Errorf("demo: place order %d: %w", i+1, err)
		}
		ids[i] = placed.OrderID
		p("  %-8s %-13s -> 200 order %s  version %d  Muninn-Position %s\n", o.customer, o.method, placed.OrderID, placed.Version, h.Get("Muninn-Position"))
	}

	// A retried command: the same Idempotency-Key returns the first result.
	var again struct {
		OrderID string `json:"order_id"`
	}
	if _, err := c.call(ctx, "POST", "/v1/orders",
		map[string]any{"customer_id": orders[0].customer, "items": orders[0].items, "payment_method": orders[0].method},
		map[string]string{"Idempotency-Key": "demo-place-01"}, &again); err != nil {
		return fmt.Errorf("demo: retry order 1: %w", err)
	}
	p("\nThe first POST again, same Idempotency-Key -> 200 order %s (the first result; nothing appended)\n", again.OrderID)
	if again.OrderID != ids[0] {
		return fmt.Errorf("demo: the retried order came back as %s, not %s", again.OrderID, ids[0])
	}

	// Bad input is a 400 that names the field.
	p("\nBad input is a 400 naming the field:\n")
	for _, bad := range []struct{ label, body string }{
		{"quantity 0", `{"customer_id": "ada", "items": [{"sku": "sku-book", "quantity": 0, "unit_price_cents": 1250}], "payment_method": "card"}`},
		{"an empty cart", `{"customer_id": "ada", "items": [], "payment_method": "card"}`},
		{"payment by cheque", `{"customer_id": "ada", "items": [{"sku": "sku-book", "quantity": 1, "unit_price_cents": 1250}], "payment_method": "cheque"}`},
		{"malformed JSON", `{"customer_id": "ada", "items": [`},
	} {
		status, msg, err := rawPost(ctx, c, "/v1/orders", bad.body)
		if err != nil {
			return err
		}
		p("  %-18s -> %d %s\n", bad.label, status, msg)
	}

	// Wait for every workflow to end: poll each order until it is completed
	// or cancelled (a client could also pass the position of a later write
	// as min_position).
	views := make([]orderJSON, len(ids))
	for i, id := range ids {
		v, err := awaitSettled(ctx, c, id, 15*time.Second)
		if err != nil {
			return err
		}
		views[i] = v
	}
	p("\nGET /v1/orders/{order_id} once every checkout has ended:\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  ORDER\tCUSTOMER\tPAYMENT\tSTATUS\tTOTAL\tVERSION\tREASON\n")
	counts := map[string]int{}
	for _, v := range views {
		counts[v.Status]++
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%s\n", v.OrderID, v.CustomerID, v.Method, v.Status, cents(v.TotalCents), v.Version, v.CancelReason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	p("  %d completed, %d cancelled\n", counts["COMPLETED"], counts["CANCELLED"])

	var list struct {
		Orders []orderJSON `json:"orders"`
	}
	if _, err := c.call(ctx, "GET", "/v1/customers/grace/orders", nil, nil, &list); err != nil {
		return fmt.Errorf("demo: list grace's orders: %w", err)
	}
	p("\nGET /v1/customers/grace/orders: %d orders:", len(list.Orders))
	for _, o := range list.Orders {
		p(" %s (%s)", o.OrderID, o.Status)
	}
	p("\n")

	var rev struct {
		Hours []struct {
			HourStart    string `json:"hour_start"`
			Orders       int64  `json:"orders,string"`
			RevenueCents int64  `json:"revenue_cents,string"`
		} `json:"hours"`
	}
	if _, err := c.call(ctx, "GET", "/v1/revenue", nil, nil, &rev); err != nil {
		return fmt.Errorf("demo: revenue: %w", err)
	}
	p("\nGET /v1/revenue (a tumbling one-hour window over captured payments):\n")
	var revOrders, revCents int64
	for _, h := range rev.Hours {
		p("  %s  %d orders  %s\n", h.HourStart, h.Orders, cents(h.RevenueCents))
		revOrders, revCents = revOrders+h.Orders, revCents+h.RevenueCents
	}
	p("  in all: %d orders  %s\n", revOrders, cents(revCents))

	if err := demoLineage(ctx, c, out, corr[0]); err != nil {
		return err
	}

	cancel()
	if err := <-served; err != nil {
		return fmt.Errorf("demo: the server: %w", err)
	}
	p("\nThe server stopped gracefully. Done in %.1f s.\n", time.Since(start).Seconds())
	return out.err
}

// rawPost posts body as it is and returns the status and the error
// message of the answer.
func rawPost(ctx context.Context, c *shopClient, path, body string) (int, string, error) {
	resp, err := c.send(ctx, "POST", path, strings.NewReader(body), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var e struct {
		Message string `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		return resp.StatusCode, "", fmt.Errorf("demo: POST %s: the %d answer is not JSON: %w", path, resp.StatusCode, err)
	}
	return resp.StatusCode, e.Message, nil
}

// awaitSettled polls an order until its checkout has ended (COMPLETED or
// CANCELLED), for at most d.
func awaitSettled(ctx context.Context, c *shopClient, id string, d time.Duration) (orderJSON, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var v orderJSON
		_, err := c.call(ctx, "GET", "/v1/orders/"+id, nil, nil, &v)
		var he *httpError
		switch {
		case err == nil && (v.Status == "COMPLETED" || v.Status == "CANCELLED"):
			return v, nil
		case err != nil && !(errors.As(err, &he) && he.status == http.StatusNotFound):
			return v, fmt.Errorf("demo: order %s: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("demo: order %s still %q after %s: %w", id, v.Status, d, ctx.Err())
		case <-tick.C:
		}
	}
}

// cents prints an amount of cents as euros.
func cents(c int64) string { return fmt.Sprintf("€%d.%02d", c/100, c%100) }

// demoLineage prints the lineage of one checkout: every command and event
// its correlation ID caused, as a tree by causation, from the framework's
// TraceService over REST (GET /v1/traces/{correlation_id}).
func demoLineage(ctx context.Context, c *shopClient, out io.Writer, correlationID string) error {
	var raw json.RawMessage
	if _, err := c.call(ctx, "GET", "/v1/traces/"+correlationID, nil, nil, &raw); err != nil {
		return fmt.Errorf("demo: trace %s: %w", correlationID, err)
	}
	var tr muninnv1.TraceResponse
	if err := protojson.Unmarshal(raw, &tr); err != nil {
		return fmt.Errorf("demo: trace %s: %w", correlationID, err)
	}
	fmt.Fprintf(out, "\nGET /v1/traces/%s: the lineage of the first order, by causation:\n", correlationID)
	return writeTrace(out, &tr)
}
