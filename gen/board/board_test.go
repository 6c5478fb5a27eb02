package board

import (
	"bytes"
	"encoding/xml"
	"os"
	"testing"

	"github.com/muninn-es/muninn/gen/model"
)

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

func overlap(a, b *box) bool {
	return a.x < b.x+b.w && b.x < a.x+a.w && a.y < b.y+b.h && b.y < a.y+a.h
}

// onBorder reports whether (x, y) is on the border of b.
func onBorder(b *box, x, y float64) bool {
	const eps = 0.5
	inX := x >= b.x-eps && x <= b.x+b.w+eps
	inY := y >= b.y-eps && y <= b.y+b.h+eps
	onV := (abs(x-b.x) < eps || abs(x-b.x-b.w) < eps) && inY
	onH := (abs(y-b.y) < eps || abs(y-b.y-b.h) < eps) && inX
	return onV || onH
}

func checkGeometry(t *testing.T, s *scene) {
	t.Helper()
	all := append(append([]*box(nil), s.boxes...), s.legend...)
	for i, a := range all {
		for _, b := range all[i+1:] {
			if overlap(a, b) {
				t.Errorf("boxes overlap: %v at (%.0f,%.0f) and %v at (%.0f,%.0f)", a.lines, a.x, a.y, b.lines, b.x, b.y)
			}
		}
		if a.x < 0 || a.y < 0 || a.x+a.w > s.w || a.y+a.h > s.h {
			t.Errorf("box %v is outside the board", a.lines)
		}
		if len(a.lines) == 0 {
			t.Errorf("a %s box has no text", a.kind)
		}
		for _, l := range a.lines {
			if w := textWidth(l); w > a.w-2*padX+0.01 && a.kind != "" && !isLegend(s, a) {
				t.Errorf("text %q (%.0f wide) does not fit its box (%.0f)", l, w, a.w-2*padX)
			}
		}
		if h := float64(len(a.lines)) * lineH; h > a.h-2*padY && !isLegend(s, a) {
			t.Errorf("text %v (%.0f high) does not fit its box (%.0f)", a.lines, h, a.h-2*padY)
		}
	}
	for _, ar := range s.arrows {
		first, last := ar.pts[0], ar.pts[len(ar.pts)-1]
		if !onBorder(ar.from, first.x, first.y) {
			t.Errorf("arrow %v → %v does not start on its box: (%.1f,%.1f)", ar.from.lines, ar.to.lines, first.x, first.y)
		}
		if !onBorder(ar.to, last.x, last.y) {
			t.Errorf("arrow %v → %v does not end on its box: (%.1f,%.1f)", ar.from.lines, ar.to.lines, last.x, last.y)
		}
	}
}

func isLegend(s *scene, b *box) bool {
	for _, l := range s.legend {
		if l == b {
			return true
		}
	}
	return false
}

func TestShopGeometry(t *testing.T) {
	s := layout(shop(t))
	checkGeometry(t, s)
	if len(s.lanes) != 3 {
		t.Errorf("%d lanes, want one per context (3)", len(s.lanes))
	}
	count := map[string]int{}
	for _, b := range s.boxes {
		count[string(b.kind)]++
	}
	// 14 commands and events (one sticky each), 6 saga steps and the
	// timeout, 2 read models, 4 aggregates, 1 external, 2 hotspots, and
	// the customer beside each of their 2 commands.
	for kind, want := range map[string]int{"command": 14, "event": 14, "saga": 7, "read_model": 2, "aggregate": 4, "external": 1, "hotspot": 2, "actor": 2} {
		if count[kind] != want {
			t.Errorf("%d %s stickies, want %d", count[kind], kind, want)
		}
	}
	if len(s.arrows) < 40 {
		t.Errorf("only %d arrows", len(s.arrows))
	}
}

func TestStarterAndImportedGeometry(t *testing.T) {
	m, err := model.Parse("starter.yaml", model.Starter())
	if err != nil {
		t.Fatal(err)
	}
	checkGeometry(t, layout(m))
	// The shop as imported from the Miro board: policies, not a saga.
	data, err := os.ReadFile("../miro/testdata/shop-board.golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if m, err = model.Parse("shop-board.golden.yaml", data); err != nil {
		t.Fatal(err)
	}
	s := layout(m)
	checkGeometry(t, s)
	policies := 0
	for _, b := range s.boxes {
		if b.kind == "policy" {
			policies++
		}
	}
	if policies != 6 {
		t.Errorf("%d policy stickies, want 6", policies)
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	var buf bytes.Buffer
	if err := SVG(shop(t), &buf); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&buf)
	for {
		_, err := dec.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
	}
}

func TestWrap(t *testing.T) {
	for in, want := range map[string]int{
		"OrderPlaced": 1, "WhenPaymentDeclinedCancelTheOrder": 3, "SKUReserved": 1,
		"Do we ship partial orders when a SKU runs out, and who pays the second parcel and the returns of it all?": maxLines,
		"Supercalifragilisticexpialidocious": 2,
	} {
		lines := wrap(in, boxW-2*padX)
		if len(lines) != want {
			t.Errorf("wrap(%q) = %q, want %d lines", in, lines, want)
		}
		for _, l := range lines {
			if textWidth(l) > boxW-2*padX {
				t.Errorf("wrap(%q): line %q too wide", in, l)
			}
		}
	}
}

// FuzzSVG draws whatever model parses, valid or not: never a panic.
func FuzzSVG(f *testing.F) {
	f.Add(model.Starter())
	f.Add([]byte("name: x\ncontexts:\n  - name: A\n    aggregates: [{name: B, id: b, commands: [{name: C, emits: [E, E, Z], actor: Q}], events: [{name: E}]}]\n    policies: [{name: P, when: E, then: C}, {name: P, when: A.E, then: Nope}]\n    hotspots: [{text: '?', on: 'C, E, P'}]\nsagas: [{name: S, starts_on: E, reacts_to: [{on: A.E, then: [C, X.Y]}], timeout: {after: 1m, then: C}}]\nhotspots: [a, b, c, d, e, f, g, h, i]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := model.Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := SVG(m, &buf); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPolicyCondition lays out the example shop's model: a policy's
// sticky says under which condition it sends its command.
func TestPolicyCondition(t *testing.T) {
	data, err := os.ReadFile("../../examples/shop/eventmodel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Parse("eventmodel.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	s := layout(m)
	checkGeometry(t, s)
	want := map[string]bool{"CaptureCards if method = card": false, "DeclineCards if method = card_declined": false}
	for _, b := range s.boxes {
		if _, ok := want[b.text]; ok && b.kind == "policy" {
			want[b.text] = true
		}
	}
	for text, found := range want {
		if !found {
			t.Errorf("no policy sticky %q", text)
		}
	}
}
