package miro

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/gen/model"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func importFile(t *testing.T, path string, opts Options) *model.Model {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Import(f, opts)
	if err != nil {
		t.Fatalf("Import(%s): %v", path, err)
	}
	return m
}

func TestImportShopBoard(t *testing.T) {
	m := importFile(t, "testdata/shop-board.json", Options{Name: "shop"})
	out, err := model.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/shop-board.golden.yaml"
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("the imported model differs from %s (go test -update rewrites it):\n%s", golden, out)
	}

	// The imported model, read back as a file, is valid; only the
	// unresolved items remain for a person.
	back, err := model.Parse(golden, want)
	if err != nil {
		t.Fatal(err)
	}
	if ps := model.Validate(back); len(ps) > 0 {
		t.Errorf("the imported model has problems:\n%v", ps)
	}
	ws := model.Warnings(back)
	for _, want := range []string{
		`unknown colour #3b3b3b`,
		`an event in no frame`,
		`an arrow between two events ("Payment requested" → "Payment captured")`,
		`command ReserveStock is connected to 2 aggregates (Shipment, Stock)`,
		`no command emits event StockReserved`,
	} {
		if !strings.Contains(ws.Error(), want) {
			t.Errorf("the unresolved items lack %q:\n%v", want, ws)
		}
	}
}

func TestColors(t *testing.T) {
	p := newPalette(DefaultColors(), DefaultTolerance)
	for fill, want := range map[string]Kind{
		"orange": Event, "light_blue": Command, "violet": Policy, "green": ReadModel, "light_yellow": Aggregate,
		"yellow": Actor, "pink": External, "red": Hotspot, "gray": Type,
		"#FF9D48": Event, "#fea046": Event, "#ffa500": Event, "#1e90ff": Command, "#b19cd9": Policy, "#fff9b1": Aggregate,
	} {
		if got, why := p.kind(fill); got != want {
			t.Errorf("kind(%q) = %q (%s), want %q", fill, got, why, want)
		}
	}
	for _, fill := range []string{"", "#3b3b3b", "black", "cyan", "teal", "#12345"} {
		if got, why := p.kind(fill); got != "" || why == "" {
			t.Errorf("kind(%q) = %q, %q; want no kind and a reason", fill, got, why)
		}
	}
}

func TestParseColors(t *testing.T) {
	colors, err := ParseColors([]byte("orange: command\n'#123456': event\ngray: ignore\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := newPalette(colors, DefaultTolerance)
	if k, _ := p.kind("#ff9d48"); k != Command {
		t.Errorf("hex of orange = %q, want command", k)
	}
	if k, _ := p.kind("#123457"); k != Event {
		t.Errorf("#123457 = %q, want event", k)
	}
	for _, bad := range []string{"orange: evnt\n", "mauve: event\n", "'#12': event\n", "{}\n", "- a\n"} {
		if _, err := ParseColors([]byte(bad)); err == nil {
			t.Errorf("ParseColors(%q) accepted it", bad)
		}
	}
}

func TestImportWithColors(t *testing.T) {
	// With light_blue as an ignored colour, the commands vanish, and so
	// does what hangs on them: none of it is guessed.
	colors := DefaultColors()
	colors["light_blue"] = Ignore
	m := importFile(t, "testdata/shop-board.json", Options{Name: "shop", Colors: colors})
	for _, c := range m.Contexts {
		if len(c.Aggregates) > 0 || len(c.Policies) > 0 {
			t.Errorf("context %s has aggregates or policies without commands: %+v", c.Name, c)
		}
	}
	if len(m.Unresolved) == 0 {
		t.Error("nothing unresolved")
	}
}

func TestImportBadInput(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "empty",
		"not json":               "page 1",
		`{"items": []}`:          `no "data" list`,
		`{"data": []} [1]`:       "page 2",
		`{"data": [{"id": {}}]}`: "page 1",
	} {
		_, err := Import(strings.NewReader(in), Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Import(%q) = %v, want an error with %q", in, err, want)
		}
	}
	// Pages in an array, numeric ids, and items of other types are fine.
	m, err := Import(strings.NewReader(`[{"data": [
		{"id": 1, "type": "frame", "data": {"title": "Sales"}, "position": {"x": 0, "y": 0}, "geometry": {"width": 1000, "height": 1000}},
		{"id": 2, "type": "sticky_note", "data": {"content": "<p>Sell</p>"}, "style": {"fillColor": "light_blue"}, "parent": {"id": 1}, "position": {"x": 100, "y": 100, "relativeTo": "parent_top_left"}},
		{"id": 3, "type": "sticky_note", "data": {"content": "<p>Sold &amp; done</p><p>price: Decimal</p>"}, "style": {"fillColor": "orange"}, "position": {"x": -200, "y": -400}},
		{"id": 4, "type": "sticky_note", "data": {"content": "<p>Sale</p>"}, "style": {"fillColor": "light_yellow"}, "parent": {"id": 1}},
		{"id": 5, "type": "image", "data": {"title": "logo"}}
	]}, {"data": [{"id": 6, "type": "connector", "startItem": {"id": 2}, "endItem": {"id": 3}},
		{"id": 7, "type": "connector", "startItem": {"id": 2}, "endItem": {"id": 99}}]}]`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := model.Marshal(m)
	if ps := model.Validate(m); len(ps) > 0 {
		t.Errorf("problems:\n%v\n%s", ps, out)
	}
	c := m.Context("Sales")
	if c == nil || c.Command("Sell") == nil || c.Event("SoldDone") == nil || c.Event("SoldDone").Fields.Field("price").Spec != "decimal" {
		t.Errorf("model:\n%s", out)
	}
	if len(m.Unresolved) != 1 || !strings.Contains(m.Unresolved[0].Reason, "not on the board") {
		t.Errorf("unresolved = %+v", m.Unresolved)
	}
}

func TestImportLeavesOutWhatWouldNotValidate(t *testing.T) {
	m, err := Import(strings.NewReader(`{"data": [
		{"id": "f1", "type": "frame", "data": {"title": "Sales"}},
		{"id": "f2", "type": "frame", "data": {"title": "Ideas"}},
		{"id": "c", "type": "sticky_note", "data": {"content": "<p>Sell</p><p>POST /v1/sales/{nope}</p>"}, "style": {"fillColor": "light_blue"}, "parent": {"id": "f1"}},
		{"id": "e", "type": "sticky_note", "data": {"content": "<p>Sold</p>"}, "style": {"fillColor": "orange"}, "parent": {"id": "f1"}},
		{"id": "a", "type": "sticky_note", "data": {"content": "<p>Sale</p>"}, "style": {"fillColor": "light_yellow"}, "parent": {"id": "f1"}},
		{"id": "h", "type": "sticky_note", "data": {"content": "<p>Loyalty?</p>"}, "style": {"fillColor": "red"}, "parent": {"id": "f2"}},
		{"id": "x", "type": "connector", "startItem": {"id": "c"}, "endItem": {"id": "e"}}
	]}`), Options{Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := model.Marshal(m)
	if ps := model.Validate(m); len(ps) > 0 {
		t.Fatalf("problems:\n%v\n%s", ps, out)
	}
	ws := model.Warnings(m).Error()
	for _, want := range []string{`route "POST /v1/sales/{nope}": {nope} is not a field`, "frame Ideas holds no aggregate"} {
		if !strings.Contains(ws, want) {
			t.Errorf("unresolved lacks %q:\n%s", want, ws)
		}
	}
	if len(m.Contexts) != 1 || len(m.Hotspots) != 1 || m.Hotspots[0].Text != "Loyalty?" {
		t.Errorf("model:\n%s", out)
	}
}

// FuzzImport feeds the importer arbitrary input: it returns a model or an
// error, never panics or hangs.
func FuzzImport(f *testing.F) {
	// Small seeds: the fuzzer mutates large ones slowly.
	f.Add([]byte(`{"data": [{"id": "f", "type": "frame", "data": {"title": "Order"}, "position": {"x": 0, "y": 0}, "geometry": {"width": 900, "height": 600}},
		{"id": "c", "type": "sticky_note", "data": {"content": "<p>Place order</p><p>total: decimal</p><p>POST /v1/orders</p>"}, "style": {"fillColor": "light_blue"}, "parent": {"id": "f"}, "position": {"x": 100, "y": 100, "relativeTo": "parent_top_left"}, "geometry": {"width": 199, "height": 228}},
		{"id": "a", "type": "sticky_note", "data": {"content": "<p>Order</p><p>id: order_id</p>"}, "style": {"fillColor": "light_yellow"}, "position": {"x": -100, "y": -150}},
		{"id": "e", "type": "shape", "data": {"content": "<p>Order placed</p>"}, "style": {"fillColor": "#ffa500"}, "parent": {"id": "f"}},
		{"id": "p", "type": "sticky_note", "data": {"content": "<p>Then pay</p>"}, "style": {"fillColor": "violet"}, "parent": {"id": "f"}}]}
		{"data": [{"id": "1", "type": "connector", "startItem": {"id": "c"}, "endItem": {"id": "e"}}, {"id": "2", "type": "connector", "startItem": {"id": "e"}, "endItem": {"id": "p"}},
		{"id": "3", "type": "connector", "startItem": {"id": "p"}, "endItem": {"id": "c"}}, {"id": "4", "type": "connector", "startItem": {"id": "c"}, "endItem": {"id": "a"}}]}`))
	f.Add([]byte(`{"data": [{"id": 1, "type": "frame", "data": {"title": "A"}}, {"id": 2, "type": "sticky_note", "data": {"content": "<p>X</p>"}, "style": {"fillColor": "#ff9d48"}, "parent": {"id": 1}}]}`))
	f.Add([]byte(`[{"data": []}]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Import(bytes.NewReader(in), Options{})
		if err == nil {
			if _, err := model.Marshal(m); err != nil {
				t.Fatalf("the model does not marshal: %v", err)
			}
		}
	})
}
