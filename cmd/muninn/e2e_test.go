package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	orderv1 "github.com/muninn-es/muninn/examples/shop/api/order/v1"
)

// mainEnv makes the test binary run the muninn command itself (TestMain),
// so that the end-to-end test starts `muninn serve` as a real subprocess
// without building another binary.
const mainEnv = "MUNINN_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		os.Args = append([]string{"muninn"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// server is a `muninn serve` subprocess.
type server struct {
	cmd        *exec.Cmd
	grpc, http string
	stderr     *bytes.Buffer
	exited     chan struct{}
}

var serveLine = regexp.MustCompile(`^muninn serve: gRPC on (\S+), HTTP on http://(\S+) `)

// startServe starts `muninn serve` on dir, on free loopback ports, and
// waits until it is ready (GET /readyz answers 200).
func startServe(t *testing.T, dir string) *server {
	t.Helper()
	return startServeWith(t, "--data", dir)
}

// startServeWith is startServe with the store's flags given (--data DIR,
// or --postgres URL and its flags).
func startServeWith(t *testing.T, storeArgs ...string) *server {
	t.Helper()
	args := append([]string{"serve"}, storeArgs...)
	cmd := exec.Command(os.Args[0], append(args, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--time-scale", "600")...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		_ = cmd.Wait()
		t.Fatalf("muninn serve printed nothing; stderr:\n%s", s.stderr)
	}
	m := serveLine.FindStringSubmatch(lines.Text())
	if m == nil {
		_ = cmd.Process.Kill()
		t.Fatalf("muninn serve printed %q, not its addresses", lines.Text())
	}
	s.grpc, s.http = m[1], m[2]
	go func() {
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("muninn serve not ready: %v; stderr:\n%s", err, s.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// kill ends the server with SIGKILL and waits for it to be gone.
func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("muninn serve ended with %v, not SIGKILL; stderr:\n%s", s.cmd.ProcessState, s.stderr)
	}
}

// rest is an HTTP client that fails the test on any 5xx answer.
type rest struct {
	t    *testing.T
	base string
	c    *http.Client
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r *rest) do(method, path, body string, headers ...string) answer {
	r.t.Helper()
	req, err := http.NewRequest(method, r.base+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := r.c.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	if a.status >= 500 {
		r.t.Errorf("%s %s -> %d (a 5xx): %s", method, path, a.status, b)
	}
	return a
}

func orderJSONBody(customer, method string, qty int) string {
	b, err := json.Marshal(map[string]any{"customer_id": customer, "payment_method": method,
		"items": []map[string]any{{"sku": "sku-1", "quantity": qty, "unit_price_cents": 1250}}})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestServeEndToEnd drives `muninn serve` over REST and gRPC, kills it with
// SIGKILL in the middle of checkouts, starts it again on the same
// directory, and checks that every accepted order ends right, that no read
// model counts anything twice, and that no request got a 5xx.
func TestServeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts muninn serve twice")
	}
	dir := t.TempDir()
	srv := startServe(t, dir)
	r := &rest{t: t, base: "http://" + srv.http, c: &http.Client{Timeout: 30 * time.Second}}

	// Bad input: a clear 4xx naming what was wrong, never a 5xx.
	huge := strings.Repeat("x", 10<<20)
	for _, c := range []struct {
		name, method, path, body string
		want                     int
		mention                  string
	}{
		{"malformed JSON", "POST", "/v1/orders", `{"customer_id": "ada", "items": [`, 400, ""},
		{"wrong type", "POST", "/v1/orders", `{"customer_id": 7, "items": [], "payment_method": "card"}`, 400, "customer"},
		{"wrong item type", "POST", "/v1/orders", `{"customer_id": "ada", "items": "many", "payment_method": "card"}`, 400, `\"many\"`},
		{"unknown field", "POST", "/v1/orders", `{"customer_id": "ada", "colour": "red", "items": [], "payment_method": "card"}`, 400, "colour"},
		{"negative quantity", "POST", "/v1/orders", orderJSONBody("ada", "card", -2), 400, "quantity"},
		{"zero quantity", "POST", "/v1/orders", orderJSONBody("ada", "card", 0), 400, "quantity"},
		{"huge quantity", "POST", "/v1/orders", orderJSONBody("ada", "card", 1<<62), 400, "quantity"},
		{"empty cart", "POST", "/v1/orders", `{"customer_id": "ada", "items": [], "payment_method": "card"}`, 400, "items"},
		{"unknown payment method", "POST", "/v1/orders", orderJSONBody("ada", "cheque", 1), 400, "payment_method"},
		{"missing customer", "POST", "/v1/orders", orderJSONBody("", "card", 1), 400, "customer_id"},
		{"10 MB body", "POST", "/v1/orders", `{"customer_id": "` + huge + `"}`, 413, ""},
		{"path traversal customer", "POST", "/v1/orders", orderJSONBody("../../etc/passwd", "card", 1), 400, "customer_id"},
		{"control characters", "POST", "/v1/orders", orderJSONBody("ada\u0000\n", "card", 1), 400, "customer_id"},
		{"unknown order", "GET", "/v1/orders/ord-does-not-exist", "", 404, ""},
		{"traversal order ID", "GET", "/v1/orders/..%2F..%2Fetc%2Fpasswd", "", 400, "order_id"},
		{"traversal order ID in a segment", "GET", "/v1/orders/..", "", 404, ""},
		{"bad min_position", "GET", "/v1/revenue?min_position=nowhere", "", 400, "min_position"},
		{"bad If-Match", "POST", "/v1/orders/ord-x:cancel", `{}`, 400, "expected-version"},
	} {
		var headers []string
		if c.name == "bad If-Match" {
			headers = []string{"If-Match", "not-a-version"}
		}
		a := r.do(c.method, c.path, c.body, headers...)
		if a.status != c.want && !(c.want == 413 && a.status == 400) {
			t.Errorf("%s: %s %s -> %d, want %d: %.300s", c.name, c.method, c.path, a.status, c.want, a.raw)
		}
		// The body's message, or its field violations, name what was wrong.
		if msg, _ := a.body["message"].(string); msg == "" || !strings.Contains(a.raw, c.mention) {
			t.Errorf("%s: the error %s does not name %q", c.name, a.raw, c.mention)
		}
	}

	// A unicode customer ID is a customer like any other.
	if a := r.do("POST", "/v1/orders", orderJSONBody("Zoë-東京", "card", 1)); a.status != 200 {
		t.Errorf("unicode customer -> %d: %s", a.status, a.raw)
	}

	// Duplicate idempotency keys in parallel: one order, the same answer.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			a := r.do("POST", "/v1/orders", orderJSONBody("dup", "card", 1), "Idempotency-Key", "e2e-dup-1")
			if a.status == 200 {
				ids[i], _ = a.body["order_id"].(string)
			} else {
				t.Errorf("duplicate key %d -> %d: %s", i, a.status, a.raw)
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("parallel duplicates of one Idempotency-Key returned orders %v, want one", ids)
		}
	}

	// gRPC: a retried idempotent command returns its first result.
	conn, err := grpc.NewClient(srv.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := orderv1.NewOrderServiceClient(conn)
	queries := orderv1.NewOrderQueryServiceClient(conn)
	ctx := context.Background()
	place := &orderv1.PlaceOrderRequest{CustomerId: "grpc-ada", PaymentMethod: "card",
		Items: []*orderv1.Item{{Sku: "sku-2", Quantity: 3, UnitPriceCents: 500}}}
	mctx := metadata.AppendToOutgoingContext(ctx, "idempotency-key", "e2e-grpc-1")
	var hdr metadata.MD
	first, err := client.PlaceOrder(mctx, place, grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if len(hdr.Get("muninn-position")) != 1 {
		t.Errorf("PlaceOrder header has no muninn-position: %v", hdr)
	}
	again, err := client.PlaceOrder(mctx, place)
	if err != nil || again.GetOrderId() != first.GetOrderId() {
		t.Errorf("retried PlaceOrder = %v, %v; want order %s", again, err, first.GetOrderId())
	}
	if _, err := queries.GetOrderDetails(ctx, &orderv1.GetOrderDetailsRequest{OrderId: "ord-missing"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetOrder of a missing order: %v, want NotFound", err)
	}
	if _, err := client.PlaceOrder(ctx, &orderv1.PlaceOrderRequest{CustomerId: "x", PaymentMethod: "card"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("PlaceOrder with no items: %v, want InvalidArgument", err)
	}
	// Read your writes over gRPC: min_position from the header.
	got, err := queries.GetOrderDetails(ctx, &orderv1.GetOrderDetailsRequest{OrderId: first.GetOrderId(), MinPosition: hdr.Get("muninn-position")[0]})
	if err != nil || got.GetCustomerId() != "grpc-ada" {
		t.Errorf("GetOrder with min_position = %v, %v", got, err)
	}

	// Orders whose checkouts are in flight when the server is killed.
	methods := []string{"card", "card", "card_declined", "card_timeout"}
	accepted := map[string]string{} // order ID -> payment method
	customers := map[string]int{}
	for i := range 40 {
		m := methods[i%len(methods)]
		cust := fmt.Sprintf("cust-%d", i%5)
		a := r.do("POST", "/v1/orders", orderJSONBody(cust, m, 1+i%3), "Idempotency-Key", fmt.Sprintf("e2e-order-%d", i))
		if a.status != 200 {
			t.Fatalf("order %d -> %d: %s", i, a.status, a.raw)
		}
		accepted[a.body["order_id"].(string)] = m
		customers[cust]++
	}
	srv.kill(t)

	srv = startServe(t, dir)
	r.base = "http://" + srv.http
	// A retry after the restart is still the first result.
	if a := r.do("POST", "/v1/orders", orderJSONBody("cust-0", "card", 1), "Idempotency-Key", "e2e-order-0"); a.status != 200 || accepted[fmt.Sprint(a.body["order_id"])] == "" {
		t.Errorf("retry after restart -> %d %v, want an order placed before", a.status, a.body["order_id"])
	}
	completed, revenue := 0, int64(0)
	deadline := time.Now().Add(60 * time.Second)
	for id, m := range accepted {
		var a answer
		for {
			a = r.do("GET", "/v1/orders/"+id, "")
			st, _ := a.body["status"].(string)
			if a.status == 200 && (st == "COMPLETED" || st == "CANCELLED") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s (%s) never ended: %d %s\nstderr:\n%s", id, m, a.status, a.raw, srv.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		st, reason := a.body["status"].(string), fmt.Sprint(a.body["cancel_reason"])
		switch m {
		case "card":
			if st != "COMPLETED" {
				t.Errorf("order %s paid by card ended %s (%s)", id, st, reason)
			}
			completed++
			var total int64
			fmt.Sscan(fmt.Sprint(a.body["total_cents"]), &total)
			revenue += total
		case "card_declined":
			if st != "CANCELLED" || !strings.Contains(reason, "declined") {
				t.Errorf("order %s with a declined card ended %s (%q)", id, st, reason)
			}
		case "card_timeout":
			if st != "CANCELLED" || !strings.Contains(reason, "not answered") {
				t.Errorf("order %s with an unanswered card ended %s (%q)", id, st, reason)
			}
		}
	}

	// Cancelling a completed (shipped) order is a precondition failure, and
	// a write with a stale If-Match a conflict.
	for id, m := range accepted {
		if m != "card" {
			continue
		}
		if a := r.do("POST", "/v1/orders/"+id+":cancel", `{"reason": "too late"}`); a.status != http.StatusPreconditionFailed {
			t.Errorf("cancel of completed order %s -> %d, want 412: %s", id, a.status, a.raw)
		}
		if a := r.do("POST", "/v1/orders/"+id+":cancel", `{}`, "If-Match", `"1"`); a.status != http.StatusConflict {
			t.Errorf("cancel of order %s with a stale If-Match -> %d, want 409: %s", id, a.status, a.raw)
		}
		break
	}

	// No read model counts anything twice: each customer's orders once, and
	// revenue = the orders captured before the kill (the unicode, duplicate
	// and gRPC orders were captured too).
	for cust, n := range customers {
		a := r.do("GET", "/v1/customers/"+cust+"/orders?page_size=100", "")
		list, _ := a.body["orders"].([]any)
		if len(list) != n {
			t.Errorf("%s has %d orders in the read model, placed %d", cust, len(list), n)
		}
	}
	// Revenue is a stream processor: wait until it has counted every
	// captured order, then check it counted none twice.
	want := completed + 3
	wantCents := revenue + 1250 + 1250 + 1500
	for {
		a := r.do("GET", "/v1/revenue", "")
		hours, _ := a.body["hours"].([]any)
		n, cents := 0, int64(0)
		for _, h := range hours {
			var o, c int
			fmt.Sscan(fmt.Sprint(h.(map[string]any)["orders"]), &o)
			fmt.Sscan(fmt.Sprint(h.(map[string]any)["revenue_cents"]), &c)
			n, cents = n+o, cents+int64(c)
		}
		if n > want || (n == want && cents != wantCents) {
			t.Fatalf("revenue counts %d orders, %d cents; captured %d orders, %d cents", n, cents, want, wantCents)
		}
		if n == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revenue counts %d orders, want %d", n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
