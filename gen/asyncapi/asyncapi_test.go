package asyncapi

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/muninn-es/muninn/gen/model"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func shop(t *testing.T) *model.Model {
	t.Helper()
	data, err := os.ReadFile("../model/testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Parse("shop.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// resolve follows a local JSON reference "#/a/b" in doc.
func resolve(doc map[string]any, ref string) (any, bool) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, false
	}
	var cur any = doc
	for _, part := range strings.Split(ref[2:], "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// refs calls fn with every $ref in v.
func refs(v any, fn func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				fn(s)
			}
			refs(x, fn)
		}
	case []any:
		for _, x := range v {
			refs(x, fn)
		}
	}
}

func TestShopAsyncAPI(t *testing.T) {
	d, err := Build(shop(t), "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteYAML(&buf, d); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/shop.asyncapi.yaml"
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if buf.String() != string(want) {
		t.Errorf("the document differs from %s (go test -update rewrites it):\n%s", golden, buf.String())
	}

	var doc map[string]any
	if err := yaml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["asyncapi"] != "3.0.0" {
		t.Errorf("asyncapi = %v", doc["asyncapi"])
	}
	channels := doc["channels"].(map[string]any)
	if len(channels) != 3 {
		t.Errorf("channels = %v, want Order, Payment and Shipping", channels)
	}
	if a := channels["Order"].(map[string]any)["address"]; a != "shop.orders" {
		t.Errorf("Order's address = %v", a)
	}
	if _, ok := channels["Payment"].(map[string]any)["messages"].(map[string]any)["PaymentRequested"]; ok {
		t.Error("an internal event is in the document")
	}
	ops := doc["operations"].(map[string]any)
	if len(ops) != 9 {
		t.Errorf("%d operations, want one per public event (9)", len(ops))
	}
	for name, op := range ops {
		if op.(map[string]any)["action"] != "send" {
			t.Errorf("operation %s is not a send", name)
		}
	}
	refs(doc, func(ref string) {
		if _, ok := resolve(doc, ref); !ok {
			t.Errorf("$ref %q does not resolve", ref)
		}
	})
	placed, _ := resolve(doc, "#/components/schemas/Order.OrderPlaced")
	props := placed.(map[string]any)["properties"].(map[string]any)
	if props["order_id"].(map[string]any)["type"] != "string" ||
		props["total_cents"].(map[string]any)["format"] != "int64" ||
		props["items"].(map[string]any)["items"].(map[string]any)["$ref"] != "#/components/schemas/Order.LineItem" {
		t.Errorf("OrderPlaced's payload = %v", props)
	}
	msg, _ := resolve(doc, "#/components/messages/Order.OrderPlaced")
	if msg.(map[string]any)["x-schema-version"] != 1 {
		t.Errorf("message = %v", msg)
	}

	// JSON says the same.
	buf.Reset()
	if err := WriteJSON(&buf, d); err != nil {
		t.Fatal(err)
	}
	var fromJSON map[string]any
	if err := json.Unmarshal(buf.Bytes(), &fromJSON); err != nil {
		t.Fatal(err)
	}
	js := buf.String()
	if len(fromJSON["channels"].(map[string]any)) != 3 || strings.Index(js, `"customer_id"`) < strings.Index(js, `"order_id"`) {
		t.Error("the JSON document lacks channels or has the fields out of order")
	}
}

func TestOneContext(t *testing.T) {
	m := shop(t)
	d, err := Build(m, "Payment")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Channels) != 1 || d.Channels["Payment"] == nil || len(d.Operations) != 3 {
		t.Errorf("channels %v, %d operations", d.Channels, len(d.Operations))
	}
	if _, err := Build(m, "Nope"); err == nil || !strings.Contains(err.Error(), `no context "Nope"`) {
		t.Errorf("unknown context: %v", err)
	}
	for _, c := range m.Contexts {
		for _, a := range c.Aggregates {
			for _, e := range a.Events {
				e.Public = false
			}
		}
	}
	if _, err := Build(m, ""); err == nil || !strings.Contains(err.Error(), "no public events") {
		t.Errorf("no public events: %v", err)
	}
}
