package golang_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/gen/golang"
	"github.com/muninn-es/muninn/gen/model"
)

// shopDir is examples/shop, which is generated from its eventmodel.yaml.
const shopDir = "../../examples/shop"

// shopImportPath is the import path of examples/shop, which its generated
// checkout saga imports the contexts under.
const shopImportPath = "github.com/muninn-es/muninn/examples/shop"

// shopOptions are the options of go generate ./examples/shop
// (examples/shop/generate.go: gen go --service --no-main): the service
// surface, without a main, in the repository's module.
var shopOptions = golang.Options{ImportPath: shopImportPath, Service: true, NoMain: true}

func parseFile(t *testing.T, file string) *model.Model {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Parse(file, data)
	if err != nil {
		t.Fatal(err)
	}
	if ps := model.Validate(m); len(ps) > 0 {
		t.Fatalf("%s is not valid:\n%v", file, ps)
	}
	return m
}

// TestShopInSync regenerates examples/shop from its model into a
// temporary directory and compares every generated file with the one
// committed: a model or generator change without `go generate
// ./examples/shop` fails here.
func TestShopInSync(t *testing.T) {
	m := parseFile(t, filepath.Join(shopDir, "eventmodel.yaml"))
	dir := t.TempDir()
	rep, err := golang.Generate(m, dir, shopOptions)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Written) == 0 {
		t.Fatal("nothing generated")
	}
	for _, f := range rep.Written {
		want, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(shopDir, f))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./examples/shop)", f, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("examples/shop/%s differs from what examples/shop/eventmodel.yaml generates: run go generate ./examples/shop", f)
		}
	}
	// Every hand-written file the generator would create exists in the
	// shop: its rules are written.
	for _, f := range rep.Created {
		if _, err := os.Stat(filepath.Join(shopDir, f)); err != nil {
			t.Errorf("examples/shop/%s: %v", f, err)
		}
	}
}

// TestShopRulesKept generates over a copy of a shop context and checks
// that its hand-written rules are left alone.
func TestShopRulesKept(t *testing.T) {
	m := parseFile(t, filepath.Join(shopDir, "eventmodel.yaml"))
	dir := t.TempDir()
	rules := []byte("package order\n\n// hand-written\n")
	if err := os.MkdirAll(filepath.Join(dir, "order"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "order", "rules.go"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	hooks := []byte("package checkout\n\n// hand-written\n")
	if err := os.MkdirAll(filepath.Join(dir, "checkout"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "checkout", "hooks.go"), hooks, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := golang.Generate(m, dir, golang.Options{ImportPath: shopImportPath})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "order", "rules.go"))
	if !bytes.Equal(got, rules) {
		t.Errorf("rules.go was overwritten:\n%s", got)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "checkout", "hooks.go")); !bytes.Equal(got, hooks) {
		t.Errorf("checkout/hooks.go was overwritten:\n%s", got)
	}
	kept := map[string]bool{}
	for _, f := range rep.Kept {
		kept[f] = true
	}
	for _, f := range []string{filepath.Join("order", "rules.go"), filepath.Join("checkout", "hooks.go")} {
		if !kept[f] {
			t.Errorf("report %+v does not list %s as kept", rep, f)
		}
	}
}

// TestUserFileInTheWay: a file of a generated file's name that the
// generator did not write is an error, and nothing is written.
func TestUserFileInTheWay(t *testing.T) {
	m := parseFile(t, filepath.Join(shopDir, "eventmodel.yaml"))
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "payment"), 0o755); err != nil {
		t.Fatal(err)
	}
	mine := []byte("package payment\n\n// mine\n")
	if err := os.WriteFile(filepath.Join(dir, "payment", "payment_gen.go"), mine, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := golang.Generate(m, dir, golang.Options{ImportPath: shopImportPath})
	if !errors.Is(err, golang.ErrNotGenerated) {
		t.Fatalf("Generate = %v, want ErrNotGenerated", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "payment", "payment_gen.go")); !bytes.Equal(got, mine) {
		t.Errorf("the user's file was overwritten")
	}
	if _, err := os.Stat(filepath.Join(dir, "order")); !os.IsNotExist(err) {
		t.Errorf("order/ was written although Generate failed: %v", err)
	}
}

// TestBadModels: what the generator cannot get past is an error naming
// the element and its line, never a panic or code that does not compile.
func TestBadModels(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"type named like a command", `
name: x
contexts:
  - name: Order
    types:
      - name: PlaceOrder
        fields: {a: string}
    aggregates:
      - name: Order
        id: order_id
        commands:
          - name: PlaceOrder
            emits: [Placed]
        events:
          - name: Placed
`, "eventmodel.yaml:12: command PlaceOrder: its Go name PlaceOrder is also type PlaceOrder"},
		{"fields alike in Go", `
name: x
contexts:
  - name: Order
    aggregates:
      - name: Order
        id: order_id
        commands:
          - name: PlaceOrder
            fields: {customer_id: string, customerID: string}
            emits: [Placed]
        events:
          - name: Placed
`, "fields customer_id and customerID are both CustomerID in Go"},
		{"context that is a keyword", `
name: x
contexts:
  - name: Type
    aggregates:
      - name: Order
        id: order_id
        commands:
          - name: PlaceOrder
            emits: [Placed]
        events:
          - name: Placed
`, "its Go package would be type"},
		{"unknown field in a scenario", `
name: x
contexts:
  - name: Order
    aggregates:
      - name: Order
        id: order_id
        commands:
          - name: PlaceOrder
            emits: [Placed]
        events:
          - name: Placed
        scenarios:
          - name: s
            when: {PlaceOrder: {nope: 1}}
            then: [{Placed: {}}]
`, `scenario "s": command PlaceOrder: PlaceOrder has no field "nope"`},
		{"route on an unknown field", `
name: x
contexts:
  - name: Order
    aggregates:
      - name: Order
        id: order_id
        commands:
          - name: PlaceOrder
            emits: [Placed]
            http: "POST /v1/{shop}/orders"
        events:
          - name: Placed
`, "{shop} is neither the aggregate's ID (order_id) nor a string field of PlaceOrder"},
		{"saga mapping an unknown field", `
name: x
contexts:
  - name: Order
    aggregates:
      - name: Order
        id: order_id
        commands:
          - name: PlaceOrder
            fields: {customer_id: string}
            emits: [Placed]
        events:
          - name: Placed
            fields: {customer_id: string}
sagas:
  - name: Welcome
    correlate_by: customer_id
    starts_on: Order.Placed
    reacts_to:
      - on: Order.Placed
        then: [Order.PlaceOrder]
        map: {customer_id: nope}
    ends_on: [Order.Placed]
`, "saga Welcome: map customer_id: nope is no field of Placed"},
		{"saga on an event without its correlation field", `
name: x
contexts:
  - name: Order
    aggregates:
      - name: Order
        id: order_id
        commands:
          - name: PlaceOrder
            emits: [Placed]
        events:
          - name: Placed
sagas:
  - name: Welcome
    correlate_by: customer_id
    starts_on: Order.Placed
    ends_on: [Order.Placed]
`, "saga Welcome: event Placed has no string field customer_id to correlate by"},
		{"saga named like a context", `
name: x
contexts:
  - name: Order
    aggregates:
      - name: Order
        id: order_id
        commands:
          - name: PlaceOrder
            emits: [Placed]
        events:
          - name: Placed
sagas:
  - name: Order
    correlate_by: order_id
    starts_on: Order.Placed
    ends_on: [Order.Placed]
`, "saga Order: its package order is also context Order's"},
		{"query route on a field that is not the key", `
name: x
contexts:
  - name: Order
    aggregates:
      - name: Order
        id: order_id
        commands:
          - name: PlaceOrder
            emits: [Placed]
        events:
          - name: Placed
    read_models:
      - name: Details
        key: order_id
        fields: {order_id: string, shop: string}
        from: [Placed]
        http: "GET /v1/{shop}/orders/{order_id}"
`, "read model Details: route GET /v1/{shop}/orders/{order_id}: {shop} is not the read model's key (order_id)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := model.Parse("eventmodel.yaml", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			_, err = golang.Generate(m, t.TempDir(), golang.Options{ImportPath: shopImportPath, Module: "example.com/x", Service: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Generate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
