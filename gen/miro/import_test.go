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
