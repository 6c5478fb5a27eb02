package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestServeTraceStdout runs `muninn serve --trace stdout`, places an order
// over REST with a traceparent, and reads stdout until the PlaceOrder
// dispatch's span is there, in the request's trace.
func TestServeTraceStdout(t *testing.T) {
	cmd := exec.Command(os.Args[0], "serve", "--data", t.TempDir(), "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--trace", "stdout")
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 1<<20), 16<<20)
	if !lines.Scan() {
		t.Fatalf("muninn serve printed nothing; stderr:\n%s", stderr.String())
	}
	m := serveLine.FindStringSubmatch(lines.Text())
	if m == nil {
		t.Fatalf("muninn serve printed %q, not its addresses", lines.Text())
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, err := http.NewRequestWithContext(t.Context(), "POST", "http://"+m[2]+"/v1/orders",
		strings.NewReader(`{"customer_id": "ada", "items": [{"sku": "sku-1", "quantity": 1, "unit_price_cents": 100}], "payment_method": "card"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/orders: %s", resp.Status)
	}
	for lines.Scan() {
		var span struct {
			Name        string
			SpanContext struct{ TraceID string }
		}
		if json.Unmarshal(lines.Bytes(), &span) != nil {
			continue
		}
		if strings.HasPrefix(span.Name, "muninn.dispatch shop.orders") {
			if span.SpanContext.TraceID != traceID {
				t.Fatalf("dispatch span in trace %s, want the request's %s", span.SpanContext.TraceID, traceID)
			}
			return
		}
	}
	t.Fatalf("stdout ended without the dispatch span (%v); stderr:\n%s", lines.Err(), stderr.String())
}

func TestNewTracingRefusesUnknownExporter(t *testing.T) {
	if _, _, err := newTracing("otlp", nil); err == nil || !strings.Contains(err.Error(), `"otlp"`) {
		t.Fatalf("want an error naming the exporter, got %v", err)
	}
	tp, c, err := newTracing("", nil)
	if err != nil || tp != nil || c.Close() != nil {
		t.Fatalf("off: %v %v %v", tp, c, err)
	}
}
