package golang_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
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
		"third_party/google/api/annotations.proto", "readmodels/readmodels_gen.go", "readmodels/rules.go", "policies/policies_gen.go"} {
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
	_, base, ok := strings.Cut(strings.TrimSpace(line), "REST on ")
	if !ok {
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
	code, v = post("/v1/orders/o-1:cancel", `{"reason": "changed my mind"}`)
	msg, _ := v["message"].(string)
	if code == http.StatusOK || !strings.Contains(msg, "rule Order.CancelOrder is not written yet: fill in decideCancelOrder in rules.go") {
		t.Errorf("POST /v1/orders/o-1:cancel = %d %v, want the rule's message", code, v)
	}
}
