package shop_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/muninn-es/muninn/examples/shop"
)

// TestREST drives every route of OrderService through the gateway over
// real HTTP, with snake_case JSON names.
func TestREST(t *testing.T) {
	f := start(t)
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{UseProtoNames: true},
	}))
	if err := shop.RegisterGateway(t.Context(), mux, conn); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(mux)
	t.Cleanup(web.Close)

	call := func(method, path, body string, wantCode int) map[string]any {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, web.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantCode {
			t.Errorf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, wantCode)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
		return m
	}
	placed := call("POST", "/v1/orders", `{"customer_id": "Zoë", "items": [{"sku": "sku-1", "quantity": 2, "unit_price_cents": 1250}], "payment_method": "card_timeout"}`, 200)
	id, _ := placed["order_id"].(string)
	if id == "" || placed["position"] == "" || placed["version"] != "1" {
		t.Fatalf("POST /v1/orders: %v", placed)
	}
	got := call("GET", "/v1/orders/"+id+"?min_position="+url.QueryEscape(placed["position"].(string)), "", 200)
	if got["status"] != "PLACED" || got["customer_id"] != "Zoë" || got["total_cents"] != "2500" {
		t.Errorf("GET /v1/orders/%s: %v", id, got)
	}
	items, _ := got["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["unit_price_cents"] != "1250" {
		t.Errorf("items: %v", got["items"])
	}
	call("POST", "/v1/orders/"+id+":cancel", ``, 200)
	v, err := f.shop.Settled(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	got = call("GET", "/v1/orders/"+id, "", 200)
	if got["status"] != "CANCELLED" || got["cancel_reason"] != "cancelled by customer" || v.Status != "CANCELLED" {
		t.Errorf("cancelled order: %v", got)
	}
	list := call("GET", "/v1/customers/"+url.PathEscape("Zoë")+"/orders?page_size=1", "", 200)
	if orders, _ := list["orders"].([]any); len(orders) != 1 {
		t.Errorf("customer's orders: %v", list)
	}
	call("GET", "/v1/revenue", "", 200)
	call("GET", "/v1/orders/nope", "", http.StatusNotFound)
	bad := call("POST", "/v1/orders", `{"customer_id": "a", "items": [{"sku": "s", "quantity": -1}], "payment_method": "card"}`, http.StatusBadRequest)
	if !strings.Contains(bad["message"].(string), "items[0].quantity") {
		t.Errorf("negative quantity: %v", bad)
	}
	call("GET", "/v1/customers/"+url.PathEscape("..")+"/orders", "", http.StatusBadRequest)
}
