package miro

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"regexp"
	"strings"
)

// id is a Miro item id: a string in the API, accepted as a number too.
type id string

func (i *id) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*i = id(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("an id is a string or a number, got %s", b)
	}
	*i = id(n.String())
	return nil
}

type ref struct {
	ID id `json:"id"`
}

// item is an item of Miro's REST API v2, with the fields the importer
// reads.
type item struct {
	ID   id     `json:"id"`
	Type string `json:"type"`
	Data struct {
		Content string `json:"content"`
		Title   string `json:"title"`
		Shape   string `json:"shape"`
	} `json:"data"`
	Style struct {
		FillColor string `json:"fillColor"`
	} `json:"style"`
	Position *struct {
		X          float64 `json:"x"`
		Y          float64 `json:"y"`
		Origin     string  `json:"origin"`
		RelativeTo string  `json:"relativeTo"`
	} `json:"position"`
	Geometry *struct {
		Width  float64 `json:"width"`
		Height float64 `json:"height"`
	} `json:"geometry"`
	Parent    *ref `json:"parent"`
	StartItem *ref `json:"startItem"`
	EndItem   *ref `json:"endItem"`
}

type page struct {
	Data []item `json:"data"`
}

// readItems reads every item of every page in r: one or more JSON values,
// each a page {"data": [...]} or an array of pages.
func readItems(r io.Reader) ([]item, error) {
	dec := json.NewDecoder(r)
	var items []item
	pages := 0
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("miro: page %d: %w", pages+1, err)
		}
		raw = bytes.TrimSpace(raw)
		var ps []page
		if len(raw) > 0 && raw[0] == '[' {
			if err := json.Unmarshal(raw, &ps); err != nil {
				return nil, fmt.Errorf("miro: page %d: want an array of pages {\"data\": [...]}: %w", pages+1, err)
			}
		} else {
			var p struct {
				Data *[]item `json:"data"`
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, fmt.Errorf("miro: page %d: %w", pages+1, err)
			}
			if p.Data == nil {
				return nil, fmt.Errorf("miro: page %d: no \"data\" list of items: is this the output of GET /v2/boards/{id}/items?", pages+1)
			}
			ps = []page{{Data: *p.Data}}
		}
		for _, p := range ps {
			pages++
			items = append(items, p.Data...)
		}
	}
	if pages == 0 {
		return nil, fmt.Errorf("miro: the input is empty")
	}
	return items, nil
}

// rect is a box on the canvas, in canvas coordinates.
type rect struct{ x0, y0, x1, y1 float64 }

func (r rect) contains(x, y float64) bool { return x >= r.x0 && x <= r.x1 && y >= r.y0 && y <= r.y1 }
func (r rect) area() float64              { return (r.x1 - r.x0) * (r.y1 - r.y0) }
func (r rect) cx() float64                { return (r.x0 + r.x1) / 2 }
func (r rect) cy() float64                { return (r.y0 + r.y1) / 2 }

// bounds returns the canvas rectangles of the items that have a position
// (a child's position is relative to its parent's top left corner).
func bounds(items []item) map[id]rect {
	byID := map[id]*item{}
	for i := range items {
		byID[items[i].ID] = &items[i]
	}
	out := map[id]rect{}
	var place func(it *item, depth int) (rect, bool)
	place = func(it *item, depth int) (rect, bool) {
		if r, ok := out[it.ID]; ok {
			return r, true
		}
		if it.Position == nil || depth > 10 {
			return rect{}, false
		}
		w, h := 0.0, 0.0
		if it.Geometry != nil {
			w, h = it.Geometry.Width, it.Geometry.Height
		}
		x, y := it.Position.X, it.Position.Y
		if it.Position.Origin == "" || it.Position.Origin == "center" {
			x, y = x-w/2, y-h/2
		}
		if it.Position.RelativeTo == "parent_top_left" && it.Parent != nil {
			if p := byID[it.Parent.ID]; p != nil {
				pr, ok := place(p, depth+1)
				if !ok {
					return rect{}, false
				}
				x, y = x+pr.x0, y+pr.y0
			}
		}
		r := rect{x, y, x + w, y + h}
		out[it.ID] = r
		return r, true
	}
	for i := range items {
		place(&items[i], 0)
	}
	return out
}

var (
	blockRE = regexp.MustCompile(`(?i)<\s*(br|/p|/div|/li|/h[1-6])\s*/?\s*>`)
	tagRE   = regexp.MustCompile(`<[^>]*>`)
)

// lines returns the text lines of an item's HTML content, trimmed, without
// empty ones.
func lines(content string) []string {
	s := blockRE.ReplaceAllString(content, "\n")
	s = tagRE.ReplaceAllString(s, "")
	s = html.UnescapeString(s)
	s = strings.ReplaceAll(s, "\u00a0", " ")
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
