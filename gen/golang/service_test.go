package golang_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/gen/golang"
)

// TestGeneratedService generates the shop's model with its service
// surface as a module of its own, fills in one rule (decidePlaceOrder),
// runs buf, builds the module's main and serves it: a REST call of a
// routed command is dispatched to its aggregate and answers with the
// order's ID and version, and a command whose rule is still a stub
// answers with the message naming it.
func TestGeneratedService(t *testing.T) {
	if testing.Short() && os.Getenv("MUNINN_CI") == "" {
		t.Skip("runs buf and builds a module (-short)")
	}
	m := parseFile(t, filepath.Join(shopDir, "eventmodel.yaml"))
	dir := t.TempDir()
	opts := golang.Options{Module: "example.com/gen", Replace: repoRoot, Service: true}
	if _, err := golang.Generate(m, dir, opts); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"api/order/v1/order.proto", "order/server_gen.go", "serve_gen.go", "main.go", "buf.gen.yaml",
		"third_party/google/api/annotations.proto", "readmodels/readmodels_gen.go", "readmodels/rules.go", "policies/policies_gen.go",
		"readmodels/queries_gen.go", "api/order/v1/openapi_gen.go", "api/payment/v1/payment.proto"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("not generated: %v", err)
		}
	}
	rulesFile := filepath.Join(dir, "order", "rules.go")
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	stub := `return nil, notWritten("Order.PlaceOrder", "decidePlaceOrder")`
	if !strings.Contains(string(rules), stub) {
		t.Fatalf("order/rules.go has no stub of decidePlaceOrder:\n%s", rules)
	}
	rules = []byte(strings.Replace(string(rules), stub, `return []Event{Placed{CustomerID: cmd.CustomerID, Items: cmd.Items, PaymentMethod: cmd.PaymentMethod}}, nil`, 1))
	if err := os.WriteFile(rulesFile, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	// Two read model rules, so that the queries have rows to answer with.
	fillRule(t, filepath.Join(dir, "readmodels", "rules.go"), "projectOrderDetailsOrderPlaced",
		`return t.Put(tx, rec.Key, OrderDetails{OrderID: rec.Key, CustomerID: e.CustomerID, Status: "PLACED", Items: e.Items, TotalCents: e.TotalCents, PaymentMethod: e.PaymentMethod, Version: int64(rec.Version)})`)
	fillRule(t, filepath.Join(dir, "readmodels", "rules.go"), "projectCustomerOrdersOrderPlaced",
		`return t.Put(tx, rec.Key, CustomerOrders{CustomerID: e.CustomerID, OrderID: rec.Key, Status: "PLACED"})`)
	if err := os.WriteFile(filepath.Join(dir, "queries_grpc_test.go"), []byte(grpcQueriesTest), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := golang.RunBuf(ctx, dir); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "shop")
	for _, args := range [][]string{{"vet", "./..."}, {"build", "-o", bin, "."}} {
		if out, err := goCmd(t, dir, args...); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	srv := exec.CommandContext(ctx, bin, "--data", t.TempDir(), "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stderr = io.Discard
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
	}()
	// The server prints its addresses once both listen.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no line from the server: %v", err)
	}
	addrs, base, ok := strings.Cut(strings.TrimSpace(line), " and REST on ")
	grpcAddr, found := strings.CutPrefix(addrs, "serving gRPC on ")
	if !ok || !found {
		t.Fatalf("server said %q", line)
	}

	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		return resp.StatusCode, v
	}
	code, v := post("/v1/orders", `{"customer_id": "ada", "items": [{"sku": "sku-1", "quantity": 2, "unit_price_cents": 1250}], "payment_method": "card"}`)
	if code != http.StatusOK || v["order_id"] == "" || v["version"] != "1" {
		t.Errorf("POST /v1/orders = %d %v, want 200 with an order_id and version 1", code, v)
	}
	first, _ := v["order_id"].(string)
	_, v = post("/v1/orders", `{"customer_id": "ada", "items": [{"sku": "sku-2", "quantity": 1, "unit_price_cents": 300}], "payment_method": "card"}`)
	pos, _ := v["position"].(string)
	if pos == "" {
		t.Fatalf("POST /v1/orders answered no position: %v", v)
	}
	checkQueries(t, base, first, pos)
	checkOpenAPI(t, base)
	// The same queries over gRPC, from a test of the generated module
	// (which has the generated client).
	t.Setenv("GEN_GRPC_ADDR", grpcAddr)
	t.Setenv("GEN_ORDER_ID", first)
	t.Setenv("GEN_POSITION", pos)
	if out, err := goCmd(t, dir, "test", "-count=1", "-v", "-run", "TestQueriesOverGRPC", "."); err != nil || !strings.Contains(out, "--- PASS: TestQueriesOverGRPC") {
		t.Errorf("the queries over gRPC: %v\n%s", err, out)
	}
	code, v = post("/v1/orders/o-1:cancel", `{"reason": "changed my mind"}`)
	msg, _ := v["message"].(string)
	if code == http.StatusOK || !strings.Contains(msg, "rule Order.CancelOrder is not written yet: fill in decideCancelOrder in rules.go") {
		t.Errorf("POST /v1/orders/o-1:cancel = %d %v, want the rule's message", code, v)
	}
}

// fillRule replaces the body of the stub fn in a rules file with body.
func fillRule(t *testing.T, file, fn, body string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	i := strings.Index(src, "func "+fn+"(")
	if i < 0 {
		t.Fatalf("%s has no %s", file, fn)
	}
	open := i + strings.Index(src[i:], "{\n")
	end := open + strings.Index(src[open:], "\n}\n")
	src = src[:open] + "{\n\t" + body + src[end:]
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkQueries calls the generated query routes over REST: an order's
// details, a customer's orders a page at a time, and their errors.
func checkQueries(t *testing.T, base, orderID, pos string) {
	t.Helper()
	get := func(path string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, v
	}
	at := "min_position=" + url.QueryEscape(pos)
	code, v := get("/v1/orders/" + orderID + "?" + at)
	if code != http.StatusOK || v["order_id"] != orderID || v["customer_id"] != "ada" || v["status"] != "PLACED" {
		t.Errorf("GET /v1/orders/%s = %d %v, want the order's details", orderID, code, v)
	}
	if code, v = get("/v1/orders/no-such-order?" + at); code != http.StatusNotFound {
		t.Errorf("GET /v1/orders/no-such-order = %d %v, want 404", code, v)
	}
	code, v = get("/v1/customers/ada/orders?page_size=1&" + at)
	rows, _ := v["orders"].([]any)
	next, _ := v["next_page_token"].(string)
	if code != http.StatusOK || len(rows) != 1 || next == "" {
		t.Fatalf("GET /v1/customers/ada/orders?page_size=1 = %d %v, want one row and a next page", code, v)
	}
	code, v = get("/v1/customers/ada/orders?page_size=1&page_token=" + url.QueryEscape(next))
	rows2, _ := v["orders"].([]any)
	if code != http.StatusOK || len(rows2) != 1 || fmt.Sprint(rows2[0]) == fmt.Sprint(rows[0]) {
		t.Errorf("the second page of ada's orders = %d %v, want the other order (the first page: %v)", code, v, rows)
	}
	if code, v = get("/v1/customers/ada/orders?page_token=not-a-token"); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(v["message"]), "page_token") {
		t.Errorf("GET with a bad page token = %d %v, want 400 naming page_token", code, v)
	}
	if code, v = get("/v1/customers/ada/orders?page_size=5000"); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(v["message"]), "page_size") {
		t.Errorf("GET with page_size 5000 = %d %v, want 400 naming page_size", code, v)
	}
	if code, v = get("/v1/customers/bob/orders?" + at); code != http.StatusOK || len(v["orders"].([]any)) != 0 {
		t.Errorf("GET /v1/customers/bob/orders = %d %v, want no rows", code, v)
	}
	// The revenue is a custom read model (kept by a stream app in the
	// shop): the generated main sets no source for it.
	if code, v = get("/v1/revenue"); code != http.StatusNotImplemented || !strings.Contains(fmt.Sprint(v["message"]), "set ReadModels.Revenue") {
		t.Errorf("GET /v1/revenue = %d %v, want 501 asking for the custom read model's source", code, v)
	}
}

// grpcQueriesTest is a test written into the generated module: it calls
// the generated query RPCs over gRPC, at the server of GEN_GRPC_ADDR.
const grpcQueriesTest = `package main

import (
	"os"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	orderv1 "example.com/gen/api/order/v1"
)

func TestQueriesOverGRPC(t *testing.T) {
	addr := os.Getenv("GEN_GRPC_ADDR")
	if addr == "" {
		t.Skip("GEN_GRPC_ADDR is not set")
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := orderv1.NewOrderQueryServiceClient(conn)
	id, pos := os.Getenv("GEN_ORDER_ID"), os.Getenv("GEN_POSITION")
	o, err := c.GetOrderDetails(t.Context(), &orderv1.GetOrderDetailsRequest{OrderId: id, MinPosition: pos})
	if err != nil || o.GetCustomerId() != "ada" || len(o.GetItems()) != 1 || o.GetItems()[0].GetSku() != "sku-1" {
		t.Errorf("GetOrderDetails(%s) = %v, %v", id, o, err)
	}
	if _, err := c.GetOrderDetails(t.Context(), &orderv1.GetOrderDetailsRequest{OrderId: "nope", MinPosition: pos}); status.Code(err) != codes.NotFound {
		t.Errorf("GetOrderDetails(nope) = %v, want NotFound", err)
	}
	if _, err := c.GetOrderDetails(t.Context(), &orderv1.GetOrderDetailsRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetOrderDetails() = %v, want InvalidArgument", err)
	}
	page, err := c.ListCustomerOrders(t.Context(), &orderv1.ListCustomerOrdersRequest{CustomerId: "ada", MinPosition: pos})
	if err != nil || len(page.GetOrders()) != 2 || page.GetNextPageToken() != "" {
		t.Errorf("ListCustomerOrders(ada) = %v, %v, want both orders on one page", page, err)
	}
	if _, err := c.ListCustomerOrders(t.Context(), &orderv1.ListCustomerOrdersRequest{CustomerId: "ada", PageToken: "bad"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ListCustomerOrders with a bad token = %v, want InvalidArgument", err)
	}
}
`

// checkOpenAPI checks the generated main serves the OpenAPI v2 document
// of the commands and the queries at /openapi.json.
func checkOpenAPI(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Get(base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Swagger string                               `json:"swagger"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.json = %d, %v", resp.StatusCode, err)
	}
	for path, op := range map[string]string{"/v1/orders": "post", "/v1/orders/{order_id}": "get", "/v1/orders/{order_id}:cancel": "post",
		"/v1/customers/{customer_id}/orders": "get", "/v1/revenue": "get"} {
		if doc.Paths[path][op] == nil {
			t.Errorf("/openapi.json (swagger %q) has no %s %s: %v", doc.Swagger, op, path, doc.Paths)
		}
	}
}
