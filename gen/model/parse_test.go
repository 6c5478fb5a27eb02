package model

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, file string) *Model {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(file, data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestParseSmall(t *testing.T) {
	m := mustParse(t, "testdata/small.yaml")
	if m.Name != "shop" || m.Version != "1.0.0" || len(m.Contexts) != 1 {
		t.Fatalf("model = %+v", m)
	}
	c := m.Context("Order")
	if c == nil || m.Topic(c) != "shop.order" {
		t.Fatalf("context Order missing or topic wrong")
	}
	cmd := c.Command("PlaceOrder")
	if cmd == nil {
		t.Fatal("no PlaceOrder")
	}
	if cmd.Pos.File != "testdata/small.yaml" || cmd.Pos.Line != 17 {
		t.Errorf("PlaceOrder at %v, want testdata/small.yaml:17", cmd.Pos)
	}
	var got []string
	for _, f := range cmd.Fields {
		got = append(got, f.Name+" "+f.Type.String()+map[bool]string{true: "?"}[f.Optional])
	}
	want := "customer_id string|items list<LineItem>|note string?|method enum(card|invoice)"
	if strings.Join(got, "|") != want {
		t.Errorf("fields = %q, want %q", strings.Join(got, "|"), want)
	}
	if d := cmd.Fields.Field("method").Doc; d != "how the customer pays" {
		t.Errorf("method doc = %q", d)
	}
	if cmd.HTTP == nil || cmd.HTTP.Method != "POST" || cmd.HTTP.Path != "/v1/orders" {
		t.Errorf("route = %+v", cmd.HTTP)
	}
	e := c.Event("OrderPlaced")
	if e == nil || !e.Public || e.SchemaVersion() != 2 || e.Fields.Field("items").Type.Elem.Ref != "LineItem" {
		t.Errorf("event = %+v", e)
	}
	a := c.Aggregate("Order")
	s := a.Scenarios[0]
	if s.When.Command != "PlaceOrder" || s.When.Fields["customer_id"] != "c1" || s.Then[0].Event != "OrderPlaced" {
		t.Errorf("scenario = %+v", s)
	}
	if len(c.Hotspots) != 2 || c.Hotspots[0].Text != "What if stock runs out?" || c.Hotspots[1].On != "PlaceOrder" {
		t.Errorf("hotspots = %+v", c.Hotspots)
	}
	saga := m.Sagas[0]
	if saga.Timeout.After != 72*time.Hour || saga.Timeout.Then != "Order.PlaceOrder" {
		t.Errorf("saga timeout = %+v", saga.Timeout)
	}
	ref, err := m.ResolveEvent(nil, saga.StartsOn)
	if err != nil || ref.Event != e || ref.Aggregate != a || ref.Context != c {
		t.Errorf("ResolveEvent(%q) = %+v, %v", saga.StartsOn, ref, err)
	}
	if _, err := m.ResolveCommand(c, "Nope"); err == nil {
		t.Error("ResolveCommand(Nope) found something")
	}
	if len(m.Unresolved) != 1 || m.Unresolved[0].Item != "3458764" {
		t.Errorf("unresolved = %+v", m.Unresolved)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	m := mustParse(t, "testdata/small.yaml")
	out, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Parse("again.yaml", out)
	if err != nil {
		t.Fatalf("Parse(Marshal(m)): %v\n%s", err, out)
	}
	out2, err := Marshal(m2)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(out2) {
		t.Errorf("Marshal is not stable:\n%s\n---\n%s", out, out2)
	}
	if f := m2.Contexts[0].Command("PlaceOrder").Fields.Field("note"); f == nil || !f.Optional {
		t.Errorf("note lost its optional mark:\n%s", out)
	}
}

func TestParseShapeErrors(t *testing.T) {
	src := `name: shop
contexts:
  - name: Order
    aggregats: []
    aggregates:
      - name: Order
        id: order_id
        commands:
          - name: Pay
            emit: [Paid]
            fields:
              amount:
          - "just a string"
`
	_, err := Parse("bad.yaml", []byte(src))
	if err == nil {
		t.Fatal("Parse accepted a bad shape")
	}
	msg := err.Error()
	for _, want := range []string{
		`bad.yaml:4: context: unknown key "aggregats"`,
		`bad.yaml:10: command: unknown key "emit"`,
		`bad.yaml:12: field "amount" has no type`,
		`bad.yaml:13: command: want a mapping`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if _, err := Parse("syntax.yaml", []byte("name: [")); err == nil || !strings.HasPrefix(err.Error(), "syntax.yaml:") {
		t.Errorf("syntax error = %v, want it to start with syntax.yaml:", err)
	}
	if _, err := Parse("empty.yaml", nil); err == nil {
		t.Error("Parse accepted an empty file")
	}
}

func TestParseType(t *testing.T) {
	for in, want := range map[string]string{
		"string": "string", "int": "int", "int64": "int64", "bool": "bool", "decimal": "decimal",
		"timestamp": "timestamp", "enum(a|b|c)": "enum(a|b|c)", "enum( a | b )": "enum(a|b)",
		"list<string>": "list<string>", "[]LineItem": "list<LineItem>", "list<list<int>>": "list<list<int>>",
		"LineItem": "LineItem",
	} {
		typ, err := ParseType(in)
		if err != nil {
			t.Errorf("ParseType(%q): %v", in, err)
			continue
		}
		if typ.String() != want {
			t.Errorf("ParseType(%q) = %s, want %s", in, typ, want)
		}
	}
	for _, in := range []string{"", "float", "list<int", "enum", "enum()", "enum(a|a)", "enum(a-b)", "[]", "lineItem", "Line Item"} {
		if typ, err := ParseType(in); err == nil {
			t.Errorf("ParseType(%q) = %s, want an error", in, typ)
		}
	}
}

func TestShopIsValid(t *testing.T) {
	m := mustParse(t, "testdata/shop.yaml")
	if ps := Validate(m); len(ps) > 0 {
		t.Fatalf("Validate(shop):\n%v", ps)
	}
	if ps := Warnings(m); len(ps) > 0 {
		t.Fatalf("Warnings(shop):\n%v", ps)
	}
}

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	m := mustParse(t, "testdata/bad.yaml")
	ps := Validate(m)
	golden(t, "bad.problems", []byte(ps.Error()+"\n"))
	if ps.Err() == nil {
		t.Fatal("Err() is nil")
	}
	if ws := Warnings(m); len(ws) != 1 || ws[0].String() != `testdata/bad.yaml:115: unresolved item 42: unknown colour "#123456" ("refund?")` {
		t.Errorf("Warnings = %v", ws)
	}
}

// FuzzParse feeds Parse and Validate arbitrary files: a model or an
// error, never a panic or a hang; a parsed model marshals and parses again.
func FuzzParse(f *testing.F) {
	f.Add([]byte(Starter()))
	f.Add([]byte("name: x\ncontexts:\n  - name: A\n    aggregates:\n      - name: B\n        id: b\n        commands: [{name: C, emits: [E], fields: {x: 'list<T>?'}}]\n        events: [{name: E}]\n"))
	f.Add([]byte("name: x\ncontexts: [{name: A, types: [{name: T, fields: {t: T}}]}]\nsagas: [{name: S, timeout: {after: 1h, then: A.C}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		Validate(m)
		Warnings(m)
		out, err := Marshal(m)
		if err != nil {
			t.Fatalf("a parsed model does not marshal: %v", err)
		}
		if _, err := Parse("again.yaml", out); err != nil {
			t.Fatalf("a marshalled model does not parse: %v\n%s", err, out)
		}
	})
}

func TestScenarioThatEmitsNothingRoundTrips(t *testing.T) {
	src := "name: x\ncontexts:\n  - name: A\n    aggregates:\n      - name: B\n        id: b\n        commands: [{name: C, emits: [E]}]\n        events: [{name: E}]\n        scenarios:\n          - {name: idempotent, given: [E], when: C, then: []}\n"
	m, err := Parse("x.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if ps := Validate(m); len(ps) > 0 {
		t.Fatal(ps)
	}
	out, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Parse("again.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	if ps := Validate(m2); len(ps) > 0 || !strings.Contains(string(out), "then: []") {
		t.Errorf("after a round trip: %v\n%s", ps, out)
	}
}
