package miro

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kind is what a sticky stands for on an event-storming board.
type Kind string

// The kinds of stickies.
const (
	Event     Kind = "event"
	Command   Kind = "command"
	Policy    Kind = "policy"
	ReadModel Kind = "read_model"
	Aggregate Kind = "aggregate"
	Actor     Kind = "actor"
	External  Kind = "external"
	Hotspot   Kind = "hotspot"
	// Type is a message type (a gray sticky "LineItem" with its fields),
	// for fields to refer to.
	Type Kind = "type"
	// Ignore marks a colour whose stickies are notes, not part of the model.
	Ignore Kind = "ignore"
)

var kinds = []Kind{Event, Command, Policy, ReadModel, Aggregate, Actor, External, Hotspot, Type, Ignore}

// namedColors are the hex values of Miro's named sticky colours.
var namedColors = map[string]string{
	"gray":         "#f5f6f8",
	"light_yellow": "#fff9b1",
	"yellow":       "#f5d128",
	"orange":       "#ff9d48",
	"light_green":  "#d5f692",
	"green":        "#c9df56",
	"dark_green":   "#93d275",
	"cyan":         "#67c6c0",
	"light_pink":   "#ffcee0",
	"pink":         "#ea94bb",
	"violet":       "#c6a2d2",
	"red":          "#f0939d",
	"light_blue":   "#a6ccf5",
	"blue":         "#6cd8fa",
	"dark_blue":    "#9ea9ff",
	"black":        "#000000",
}

// DefaultColors returns the usual event-storming legend: orange domain
// event, blue command, violet (lilac) policy, green read model, pale
// yellow aggregate, yellow actor, pink external system, red hotspot, and
// gray message type; by Miro colour name and by the hex values that
// event-storming templates use.
func DefaultColors() map[string]Kind {
	return map[string]Kind{
		"orange":       Event,
		"light_blue":   Command,
		"blue":         Command,
		"dark_blue":    Command,
		"violet":       Policy,
		"light_green":  ReadModel,
		"green":        ReadModel,
		"dark_green":   ReadModel,
		"light_yellow": Aggregate,
		"yellow":       Actor,
		"light_pink":   External,
		"pink":         External,
		"red":          Hotspot,
		"gray":         Type,
		// The event-storming templates' shapes.
		"#ffa500": Event,     // orange
		"#1e90ff": Command,   // blue
		"#b19cd9": Policy,    // lilac
		"#8fd14f": ReadModel, // green
		"#fef445": Actor,     // yellow
		"#ff69b4": External,  // hot pink
		"#e6e6e6": Type,      // light gray
		"#ff0000": Hotspot,   // red
	}
}

// ParseColors reads a colour map from YAML: a mapping from a Miro colour
// name or a hex value (#rrggbb) to a kind (event, command, policy,
// read_model, aggregate, actor, external, hotspot, type or ignore).
func ParseColors(data []byte) (map[string]Kind, error) {
	var raw map[string]string
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("miro: colours: %w", err)
	}
	out := map[string]Kind{}
	var errs []string
	for _, c := range sortedKeys(raw) {
		k := Kind(strings.TrimSpace(raw[c]))
		key := strings.ToLower(strings.TrimSpace(c))
		switch {
		case !slices.Contains(kinds, k):
			errs = append(errs, fmt.Sprintf("colour %q: unknown kind %q (want one of %s)", c, raw[c], kindList()))
		case strings.HasPrefix(key, "#"):
			if _, ok := parseHex(key); !ok {
				errs = append(errs, fmt.Sprintf("colour %q: want #rrggbb", c))
				continue
			}
			out[key] = k
		case namedColors[key] == "":
			errs = append(errs, fmt.Sprintf("colour %q: not a Miro colour name (%s) nor #rrggbb", c, strings.Join(sortedKeys(namedColors), ", ")))
		default:
			out[key] = k
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("miro: colours: %s", strings.Join(errs, "; "))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("miro: colours: the map is empty")
	}
	return out, nil
}

func kindList() string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

type rgb struct{ r, g, b float64 }

func parseHex(s string) (rgb, bool) {
	s = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "#")
	if len(s) == 3 {
		s = string([]byte{s[0], s[0], s[1], s[1], s[2], s[2]})
	}
	if len(s) != 6 {
		return rgb{}, false
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return rgb{}, false
	}
	return rgb{float64(v >> 16 & 0xff), float64(v >> 8 & 0xff), float64(v & 0xff)}, true
}

func (a rgb) dist(b rgb) float64 {
	return math.Sqrt((a.r-b.r)*(a.r-b.r) + (a.g-b.g)*(a.g-b.g) + (a.b-b.b)*(a.b-b.b))
}

// DefaultTolerance is how far (Euclidean distance in RGB, 0..441) a hex
// fill may be from a colour of the map to count as it.
const DefaultTolerance = 40

// palette resolves fill colours to kinds.
type palette struct {
	named map[string]Kind
	hexes []hexKind
	tol   float64
}

type hexKind struct {
	name string
	c    rgb
	k    Kind
}

func newPalette(colors map[string]Kind, tol float64) *palette {
	p := &palette{named: map[string]Kind{}, tol: tol}
	for _, name := range sortedKeys(colors) {
		k := colors[name]
		key := strings.ToLower(name)
		if c, ok := parseHex(key); ok && strings.HasPrefix(key, "#") {
			p.hexes = append(p.hexes, hexKind{key, c, k})
			continue
		}
		p.named[key] = k
		if h, ok := namedColors[key]; ok {
			c, _ := parseHex(h)
			p.hexes = append(p.hexes, hexKind{key, c, k})
		}
	}
	return p
}

// kind returns the kind of fill colour fill, or why it has none.
func (p *palette) kind(fill string) (Kind, string) {
	key := strings.ToLower(strings.TrimSpace(fill))
	if key == "" {
		return "", "it has no fill colour"
	}
	if k, ok := p.named[key]; ok {
		return k, ""
	}
	if h, ok := namedColors[key]; ok {
		key = h
	}
	c, ok := parseHex(key)
	if !ok {
		return "", fmt.Sprintf("unknown colour %q", fill)
	}
	// The nearest colour of each kind; the nearest kind must be clearly
	// nearer than the next.
	nearest := map[Kind]hexKind{}
	dist := map[Kind]float64{}
	for _, h := range p.hexes {
		d := c.dist(h.c)
		if old, ok := dist[h.k]; !ok || d < old {
			dist[h.k], nearest[h.k] = d, h
		}
	}
	best, bestD, second := hexKind{}, math.Inf(1), math.Inf(1)
	for _, k := range kinds {
		d, ok := dist[k]
		switch {
		case !ok:
		case d < bestD:
			second, best, bestD = bestD, nearest[k], d
		case d < second:
			second = d
		}
	}
	if bestD > p.tol {
		if best.k == "" {
			return "", fmt.Sprintf("unknown colour %s", fill)
		}
		return "", fmt.Sprintf("unknown colour %s (nearest: %s, %s, too far)", fill, best.name, best.k)
	}
	if second-bestD < 5 {
		return "", fmt.Sprintf("colour %s is as near to a %s as to another kind", fill, best.k)
	}
	return best.k, ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
