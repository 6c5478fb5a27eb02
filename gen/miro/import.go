package miro

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/muninn-es/muninn/gen/model"
)

// Options configure Import.
type Options struct {
	// Name is the model's name; empty means "app".
	Name string
	// Colors maps fill colours (Miro colour names such as "orange" or
	// "light_yellow", or hex values "#rrggbb") to kinds; nil means
	// DefaultColors. A hex fill matches the nearest colour of the map
	// (named ones by their Miro hex value) within Tolerance.
	Colors map[string]Kind
	// Tolerance is how far a hex fill may be from a colour of the map;
	// 0 means DefaultTolerance.
	Tolerance float64
}

// Import reads a Miro board (REST API v2 items, see the package comment)
// and returns its model. What the board leaves ambiguous is in the model's
// Unresolved list, not in the model. The error is about the input itself
// (not JSON, no items).
func Import(r io.Reader, opts Options) (*model.Model, error) {
	items, err := readItems(r)
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = "app"
	}
	if opts.Colors == nil {
		opts.Colors = DefaultColors()
	}
	if opts.Tolerance == 0 {
		opts.Tolerance = DefaultTolerance
	}
	im := &importer{
		m:       &model.Model{Name: opts.Name},
		pal:     newPalette(opts.Colors, opts.Tolerance),
		byID:    map[id]*sticky{},
		known:   map[id]bool{},
		reasons: map[id][]string{},
	}
	im.run(items)
	return im.m, nil
}

// sticky is a sticky note or shape of the board that stands for an
// element of the model.
type sticky struct {
	id    id
	kind  Kind
	text  string   // the first line, as written
	name  string   // text as an identifier
	rest  []string // the other lines
	frame *frame
	r     rect
	hasR  bool
	out   []*sticky
	in    []*sticky

	// resolved
	agg     *model.Aggregate // of a command or event
	event   *model.Event     // of an event (its own or the one it refers to)
	eventIn *frame           // the frame of event
	command *model.Command
	gone    bool // moved to the unresolved list
}

type frame struct {
	id       id
	name     string
	r        rect
	ctx      *model.Context
	stickies []*sticky
}

type importer struct {
	m       *model.Model
	pal     *palette
	byID    map[id]*sticky
	known   map[id]bool // every item id of the board
	frames  []*frame
	order   []id // ids with reasons, in the order they were found
	reasons map[id][]string
	texts   map[id]string
}

// unresolved records why item i is left out (or was changed).
func (im *importer) unresolved(i id, text, format string, args ...any) {
	if _, ok := im.reasons[i]; !ok {
		im.order = append(im.order, i)
	}
	im.reasons[i] = append(im.reasons[i], fmt.Sprintf(format, args...))
	if im.texts == nil {
		im.texts = map[id]string{}
	}
	if text != "" {
		im.texts[i] = text
	}
}

func (im *importer) drop(s *sticky, format string, args ...any) {
	s.gone = true
	im.unresolved(s.id, s.text, format, args...)
}

func (im *importer) run(items []item) {
	rects := bounds(items)
	for _, it := range items {
		im.known[it.ID] = true
	}
	// Frames are the bounded contexts; frames of one title are one context.
	byName := map[string]*frame{}
	for _, it := range items {
		if it.Type != "frame" {
			continue
		}
		title := strings.Join(lines(it.Data.Title), " ")
		name := typeName(title)
		if name == "" {
			im.unresolved(it.ID, title, "frame %q has no name that makes a context name (a word starting with a letter)", title)
			continue
		}
		if f := byName[name]; f != nil {
			im.frames = append(im.frames, &frame{id: it.ID, name: name, r: rects[it.ID], ctx: f.ctx})
			continue
		}
		f := &frame{id: it.ID, name: name, r: rects[it.ID], ctx: &model.Context{Name: name}}
		byName[name] = f
		im.frames = append(im.frames, f)
	}
	frameByID := map[id]*frame{}
	for _, f := range im.frames {
		frameByID[f.id] = f
	}
	// Contexts from left to right, then top to bottom.
	firsts := slices.Clone(im.frames)
	slices.SortStableFunc(firsts, func(a, b *frame) int { return cmp.Or(cmp.Compare(a.r.x0, b.r.x0), cmp.Compare(a.r.y0, b.r.y0)) })
	for _, f := range firsts {
		if !slices.Contains(im.m.Contexts, f.ctx) {
			im.m.Contexts = append(im.m.Contexts, f.ctx)
		}
	}

	var stickies []*sticky
	for _, it := range items {
		if it.Type != "sticky_note" && it.Type != "shape" {
			continue
		}
		ls := lines(it.Data.Content)
		if len(ls) == 0 {
			if it.Type == "sticky_note" {
				im.unresolved(it.ID, "", "an empty sticky")
			}
			continue // an empty shape is decoration
		}
		s := &sticky{id: it.ID, text: ls[0], rest: ls[1:]}
		s.r, s.hasR = rects[it.ID]
		kind, why := im.pal.kind(it.Style.FillColor)
		if kind == "" {
			im.unresolved(it.ID, s.text, "%s: what it stands for is unknown (add the colour to the colour map)", why)
			continue
		}
		if kind == Ignore {
			continue
		}
		s.kind = kind
		// Its frame: its parent, or the smallest frame that holds its centre.
		if it.Parent != nil {
			s.frame = frameByID[it.Parent.ID]
		}
		if s.frame == nil && s.hasR {
			for _, f := range im.frames {
				if f.r.contains(s.r.cx(), s.r.cy()) && (s.frame == nil || f.r.area() < s.frame.r.area()) {
					s.frame = f
				}
			}
		}
		if s.frame == nil {
			if kind == Hotspot {
				im.m.Hotspots = append(im.m.Hotspots, &model.Hotspot{Text: strings.Join(ls, " ")})
				continue
			}
			im.unresolved(it.ID, s.text, "%s in no frame: put it in the frame of its bounded context", article(kind))
			continue
		}
		s.name = typeName(s.text)
		if s.name == "" && kind != Hotspot {
			im.unresolved(it.ID, s.text, "a %s whose first line %q makes no name (a word starting with a letter)", kind, s.text)
			continue
		}
		im.byID[s.id] = s
		s.frame.stickies = append(s.frame.stickies, s)
		stickies = append(stickies, s)
	}
	for _, f := range im.frames {
		slices.SortStableFunc(f.stickies, func(a, b *sticky) int {
			return cmp.Or(cmp.Compare(a.r.cx(), b.r.cx()), cmp.Compare(a.r.cy(), b.r.cy()))
		})
	}

	for _, it := range items {
		if it.Type == "connector" {
			im.connect(it)
		}
	}
	im.types()
	im.aggregates()
	im.commands()
	im.events()
	im.emits()
	im.policies()
	im.readModels()
	im.externals()
	im.hotspots()
	im.emptyContexts()

	for _, i := range im.order {
		im.m.Unresolved = append(im.m.Unresolved, &model.Unresolved{
			Item: string(i), Text: im.texts[i], Reason: strings.Join(im.reasons[i], "; "),
		})
	}
}

// meaningful says which arrows mean something: from kind → to kinds.
// Arrows the other way round between an aggregate, actor, external or
// hotspot and what they touch mean the same.
var meaningful = map[Kind][]Kind{
	Command:   {Event, Aggregate, External, Actor, Hotspot, Type},
	Event:     {Policy, ReadModel, Aggregate, Hotspot, Type},
	Policy:    {Command, External, Hotspot},
	ReadModel: {Actor, Command, Policy, Hotspot, Type},
	Aggregate: {Command, Event, Hotspot},
	Actor:     {Command, ReadModel, Hotspot},
	External:  {Command, Policy, Event, Hotspot},
	Hotspot:   {Command, Event, Policy, ReadModel, Aggregate, Actor, External, Type},
	Type:      {Command, Event, ReadModel, Hotspot},
}

func (im *importer) connect(it item) {
	if it.StartItem == nil || it.EndItem == nil || it.StartItem.ID == "" || it.EndItem.ID == "" {
		im.unresolved(it.ID, "", "an arrow with a loose end")
		return
	}
	a, b := im.byID[it.StartItem.ID], im.byID[it.EndItem.ID]
	for _, end := range []id{it.StartItem.ID, it.EndItem.ID} {
		if !im.known[end] {
			im.unresolved(it.ID, "", "an arrow to item %s, which is not on the board", end)
			return
		}
	}
	if a == nil || b == nil {
		return // an end is unresolved already, a frame, a note or decoration
	}
	if a == b {
		im.unresolved(it.ID, a.text, "an arrow from %s %q to itself", a.kind, a.text)
		return
	}
	switch {
	case a.kind == Event && b.kind == Event:
		im.unresolved(it.ID, a.text+" → "+b.text, "an arrow between two events (%q → %q): an event does not cause an event; put the policy or command between them", a.text, b.text)
		return
	case a.kind == Event && b.kind == Command:
		im.unresolved(it.ID, a.text+" → "+b.text, "an arrow from event %q straight to command %q: put the policy that reacts between them", a.text, b.text)
		return
	case !slices.Contains(meaningful[a.kind], b.kind):
		im.unresolved(it.ID, a.text+" → "+b.text, "an arrow from %s %q to %s %q means nothing in event storming", a.kind, a.text, b.kind, b.text)
		return
	}
	a.out = append(a.out, b)
	b.in = append(b.in, a)
}

// linked returns the stickies of kind k that s has an arrow to or from,
// without repeats.
func linked(s *sticky, k Kind, dirs ...string) []*sticky {
	var out []*sticky
	add := func(l []*sticky) {
		for _, o := range l {
			if o.kind == k && !o.gone && !slices.Contains(out, o) {
				out = append(out, o)
			}
		}
	}
	for _, d := range dirs {
		if d == "out" {
			add(s.out)
		} else {
			add(s.in)
		}
	}
	return out
}

var both = []string{"in", "out"}

// of returns the live stickies of kind k in f.
func (f *frame) of(k Kind) []*sticky {
	var out []*sticky
	for _, s := range f.stickies {
		if s.kind == k && !s.gone {
			out = append(out, s)
		}
	}
	return out
}

var (
	routeRE = regexp.MustCompile(`^(?i:GET|POST|PUT|PATCH|DELETE)\s+/\S*$`)
	fieldRE = regexp.MustCompile(`^([^:]+):\s*(.+)$`)
)

// lineInfo is what the lines after a sticky's name say.
type lineInfo struct {
	fields model.FieldList
	route  string
	id     string // "id: x"
	key    string // "key: x"
	errors []string
	public bool
	doc    []string
}

// parseLines reads the lines after the name; a bad field line is reported
// and left out.
func (im *importer) parseLines(s *sticky, types map[string]bool) lineInfo {
	var li lineInfo
	for _, l := range s.rest {
		if routeRE.MatchString(l) {
			parts := strings.Fields(l)
			li.route = strings.ToUpper(parts[0]) + " " + parts[1]
			continue
		}
		if strings.EqualFold(l, "public") {
			li.public = true
			continue
		}
		m := fieldRE.FindStringSubmatch(l)
		if m == nil {
			li.doc = append(li.doc, l)
			continue
		}
		key, val := strings.TrimSpace(m[1]), strings.TrimSpace(m[2])
		switch strings.ToLower(key) {
		case "id":
			li.id = fieldName(val)
			continue
		case "key":
			li.key = fieldName(val)
			continue
		case "errors", "error":
			for e := range strings.SplitSeq(val, ",") {
				if n := typeName(e); n != "" {
					li.errors = append(li.errors, n)
				}
			}
			continue
		}
		name := fieldName(key)
		spec, optional := strings.CutSuffix(val, "?")
		spec = strings.TrimSpace(spec)
		if low := strings.ToLower(spec); slices.Contains([]string{"string", "int", "int64", "bool", "decimal", "timestamp"}, low) {
			spec = low
		}
		if name == "" {
			im.unresolved(s.id, s.text, "line %q: %q makes no field name; the line is left out", l, key)
			continue
		}
		t, err := model.ParseType(spec)
		if err == nil {
			err = refsKnown(t, types)
		}
		if err != nil {
			im.unresolved(s.id, s.text, "field line %q: %v; the line is left out", l, err)
			continue
		}
		if li.fields.Field(name) != nil {
			im.unresolved(s.id, s.text, "field %s appears twice; the second is left out", name)
			continue
		}
		li.fields = append(li.fields, &model.Field{Name: name, Spec: t.String(), Type: t, Optional: optional})
	}
	return li
}

func refsKnown(t *model.Type, types map[string]bool) error {
	switch t.Kind {
	case model.List:
		return refsKnown(t.Elem, types)
	case model.Ref:
		if !types[t.Ref] {
			return fmt.Errorf("unknown type %q (draw a gray sticky %q with its fields in the frame)", t.Ref, t.Ref)
		}
	}
	return nil
}

func (im *importer) typeSet(f *frame) map[string]bool {
	set := map[string]bool{}
	for _, t := range f.ctx.Types {
		set[t.Name] = true
	}
	return set
}

func (im *importer) types() {
	for _, f := range im.frames {
		// A type's fields may name other types of the frame: declare the
		// names first.
		set := im.typeSet(f)
		for _, s := range f.of(Type) {
			set[s.name] = true
		}
		for _, s := range f.of(Type) {
			if f.ctx.Message(s.name) != nil {
				im.drop(s, "type %s is drawn twice in frame %s; this copy is left out", s.name, f.name)
				continue
			}
			li := im.parseLines(s, set)
			f.ctx.Types = append(f.ctx.Types, &model.Message{Name: s.name, Fields: li.fields, Doc: strings.Join(li.doc, " ")})
		}
	}
}

func (im *importer) aggregates() {
	for _, f := range im.frames {
		for _, s := range f.of(Aggregate) {
			li := im.parseLines(s, nil)
			if a := f.ctx.Aggregate(s.name); a != nil {
				// Aggregates are drawn beside each of their commands.
				if li.id != "" && li.id != a.ID {
					im.drop(s, "aggregate %s has id %s here and %s elsewhere", s.name, li.id, a.ID)
				}
				s.agg = a
				continue
			}
			if li.id == "" {
				li.id = fieldName(s.name) + "_id"
			}
			s.agg = &model.Aggregate{Name: s.name, ID: li.id, Doc: strings.Join(li.doc, " ")}
			f.ctx.Aggregates = append(f.ctx.Aggregates, s.agg)
		}
	}
}

// nearest returns the aggregate nearest s in its frame, if it is clearly
// the nearest (no other aggregate almost as near) and near enough.
func nearest(s *sticky, aggs []*sticky) *model.Aggregate {
	if !s.hasR {
		return nil
	}
	best := map[*model.Aggregate]float64{}
	for _, a := range aggs {
		if !a.hasR || a.agg == nil {
			continue
		}
		d := math.Hypot(a.r.cx()-s.r.cx(), a.r.cy()-s.r.cy())
		if old, ok := best[a.agg]; !ok || d < old {
			best[a.agg] = d
		}
	}
	var first *model.Aggregate
	d1, d2 := math.Inf(1), math.Inf(1)
	for a, d := range best {
		switch {
		case d < d1:
			first, d1, d2 = a, d, d1
		case d < d2:
			d2 = d
		}
	}
	limit := 2.5 * math.Max(s.r.x1-s.r.x0, s.r.y1-s.r.y0)
	if first == nil || d1 > limit || d2 < 1.5*d1 {
		return nil
	}
	return first
}

func aggNames(ss []*sticky) []string {
	var names []string
	for _, s := range ss {
		if s.agg != nil && !slices.Contains(names, s.agg.Name) {
			names = append(names, s.agg.Name)
		}
	}
	return names
}

func (im *importer) commands() {
	for _, f := range im.frames {
		aggs := f.of(Aggregate)
		for _, s := range f.of(Command) {
			linkedAggs := linked(s, Aggregate, both...)
			var agg *model.Aggregate
			switch names := aggNames(linkedAggs); {
			case len(names) > 1:
				im.drop(s, "command %s is connected to %d aggregates (%s): which one decides it?", s.name, len(names), strings.Join(names, ", "))
				continue
			case len(names) == 1:
				agg = linkedAggs[0].agg
			case len(aggNames(aggs)) == 1:
				agg = aggs[0].agg
			default:
				agg = nearest(s, aggs)
			}
			if agg == nil {
				im.drop(s, "command %s belongs to no aggregate: connect it to the aggregate that decides it", s.name)
				continue
			}
			s.agg = agg
			if other := f.ctx.CommandOwner(s.name); other != nil {
				if other != agg {
					im.drop(s, "command %s is drawn for aggregates %s and %s", s.name, other.Name, agg.Name)
					continue
				}
				s.command = other.Command(s.name)
				continue
			}
			li := im.parseLines(s, im.typeSet(f))
			s.command = &model.Command{Name: s.name, Fields: dropID(li.fields, agg.ID), Errors: li.errors, Doc: strings.Join(li.doc, " ")}
			if li.route != "" {
				if bad := unboundParams(li.route, append([]string{agg.ID}, fieldNames(s.command.Fields)...)); bad != "" {
					im.unresolved(s.id, s.text, "route %q: {%s} is not a field of the command; the route is left out", li.route, bad)
				} else {
					s.command.HTTP = model.ParseRoute(li.route)
				}
			}
			for _, e := range li.errors {
				if agg.Error(e) == nil {
					agg.Errors = append(agg.Errors, &model.Error{Name: e, Code: errorCode(e)})
				}
			}
			var actors []string
			for _, a := range linked(s, Actor, both...) {
				actors = append(actors, a.text)
			}
			s.command.Actor = strings.Join(actors, " or ")
			agg.Commands = append(agg.Commands, s.command)
		}
	}
}

// dropID removes the aggregate's id field, which commands and events
// carry implicitly.
func dropID(l model.FieldList, id string) model.FieldList {
	return slices.DeleteFunc(l, func(f *model.Field) bool { return f.Name == id })
}

func (im *importer) events() {
	// Own events first (emitted by a command or connected to an
	// aggregate of their frame), then the copies that refer to another
	// frame's event.
	var copies []*sticky
	for _, f := range im.frames {
		for _, s := range f.of(Event) {
			var aggs []*model.Aggregate
			for _, c := range linked(s, Command, "in") {
				if c.agg != nil && !slices.Contains(aggs, c.agg) {
					aggs = append(aggs, c.agg)
				}
			}
			if len(aggs) == 0 {
				for _, a := range linked(s, Aggregate, both...) {
					if !slices.Contains(aggs, a.agg) {
						aggs = append(aggs, a.agg)
					}
				}
			}
			switch len(aggs) {
			case 0:
				copies = append(copies, s)
				continue
			case 1:
			default:
				var names []string
				for _, a := range aggs {
					names = append(names, a.Name)
				}
				im.drop(s, "event %s comes from %d aggregates (%s): which one emits it?", s.name, len(aggs), strings.Join(names, ", "))
				continue
			}
			agg := aggs[0]
			if other := f.ctx.EventOwner(s.name); other != nil {
				if other != agg {
					im.drop(s, "event %s is drawn for aggregates %s and %s", s.name, other.Name, agg.Name)
					continue
				}
				s.agg, s.event, s.eventIn = agg, other.Event(s.name), f
				if li := im.parseLines(s, im.typeSet(f)); len(li.fields) > 0 && len(s.event.Fields) == 0 {
					s.event.Fields = dropID(li.fields, agg.ID)
				}
				continue
			}
			li := im.parseLines(s, im.typeSet(f))
			s.agg, s.eventIn = agg, f
			s.event = &model.Event{Name: s.name, Fields: dropID(li.fields, agg.ID), Public: li.public, Doc: strings.Join(li.doc, " ")}
			agg.Events = append(agg.Events, s.event)
		}
	}
	for _, s := range copies {
		// A copy of an event of another frame (or of this one), drawn
		// where it is reacted to.
		var found []*frame
		for _, f := range im.frames {
			if f.ctx.Event(s.name) != nil && !slices.ContainsFunc(found, func(o *frame) bool { return o.ctx == f.ctx }) {
				found = append(found, f)
			}
		}
		switch len(found) {
		case 0:
			im.drop(s, "no command emits event %s and no aggregate is connected to it", s.name)
		case 1:
			s.eventIn = found[0]
			s.agg = found[0].ctx.EventOwner(s.name)
			s.event = s.agg.Event(s.name)
		default:
			var names []string
			for _, f := range found {
				names = append(names, f.name)
			}
			im.drop(s, "event %s is emitted in several contexts (%s): which one is this?", s.name, strings.Join(names, ", "))
		}
	}
}

func (im *importer) emits() {
	for _, f := range im.frames {
		for _, s := range f.of(Command) {
			if s.command == nil {
				continue
			}
			// Arrows from the command to its events, or through an
			// aggregate sticky drawn for this command alone
			// (command → aggregate → event).
			targets := linked(s, Event, "out")
			for _, a := range linked(s, Aggregate, both...) {
				if cmds := linked(a, Command, both...); len(cmds) == 1 && cmds[0] == s {
					targets = append(targets, linked(a, Event, "out")...)
				}
			}
			for _, e := range targets {
				if e.event == nil {
					continue
				}
				if e.agg != s.agg {
					im.unresolved(e.id, e.text, "command %s (aggregate %s) points at event %s of aggregate %s: a command emits events of its own aggregate", s.name, s.agg.Name, e.name, e.agg.Name)
					continue
				}
				if !slices.Contains(s.command.Emits, e.name) {
					s.command.Emits = append(s.command.Emits, e.name)
				}
			}
		}
		// A command that emits nothing (in none of its copies) is left out.
		for _, a := range f.ctx.Aggregates {
			a.Commands = slices.DeleteFunc(a.Commands, func(c *model.Command) bool {
				if len(c.Emits) > 0 {
					return false
				}
				for _, s := range f.of(Command) {
					if s.command == c {
						im.drop(s, "command %s emits nothing: draw an arrow to the event it causes", c.Name)
					}
				}
				return true
			})
		}
		// An aggregate that decides no command is left out, with its events.
		f.ctx.Aggregates = slices.DeleteFunc(f.ctx.Aggregates, func(a *model.Aggregate) bool {
			if len(a.Commands) > 0 {
				return false
			}
			for _, s := range f.stickies {
				if s.agg == a && !s.gone {
					switch s.kind {
					case Aggregate:
						im.drop(s, "aggregate %s decides no command", a.Name)
					case Event:
						im.drop(s, "event %s belongs to aggregate %s, which decides no command", s.name, a.Name)
					}
				}
			}
			return true
		})
	}
}

// eventRef returns how context c names the event of sticky e, and marks
// it public when it crosses contexts.
func eventRef(c *model.Context, e *sticky) string {
	if e.eventIn.ctx == c {
		return e.event.Name
	}
	e.event.Public = true
	return e.eventIn.ctx.Name + "." + e.event.Name
}

func commandRef(c *model.Context, s *sticky) string {
	if s.frame.ctx == c {
		return s.command.Name
	}
	return s.frame.ctx.Name + "." + s.command.Name
}

func liveEvents(ss []*sticky) []*sticky {
	return slices.DeleteFunc(ss, func(s *sticky) bool { return s.event == nil })
}

func liveCommands(ss []*sticky) []*sticky {
	return slices.DeleteFunc(ss, func(s *sticky) bool { return s.command == nil || s.gone })
}

func texts(ss []*sticky) string {
	var t []string
	for _, s := range ss {
		t = append(t, s.name)
	}
	return strings.Join(t, ", ")
}

func (im *importer) policies() {
	for _, f := range im.frames {
		for _, s := range f.of(Policy) {
			events := liveEvents(linked(s, Event, "in"))
			cmds := liveCommands(linked(s, Command, "out"))
			switch {
			case len(events) == 0:
				im.drop(s, "policy %s reacts to no event: draw an arrow from the event to it", s.name)
			case len(events) > 1:
				im.drop(s, "policy %s reacts to %d events (%s): draw one policy per event", s.name, len(events), texts(events))
			case len(cmds) == 0:
				im.drop(s, "policy %s sends no command: draw an arrow from it to the command", s.name)
			case len(cmds) > 1:
				im.drop(s, "policy %s sends %d commands (%s): draw one policy per command", s.name, len(cmds), texts(cmds))
			case f.ctx.Policy(s.name) != nil:
				im.drop(s, "policy %s is drawn twice in frame %s", s.name, f.name)
			default:
				li := im.parseLines(s, nil)
				f.ctx.Policies = append(f.ctx.Policies, &model.Policy{
					Name: s.name, When: eventRef(f.ctx, events[0]), Then: commandRef(f.ctx, cmds[0]), Doc: strings.Join(li.doc, " "),
				})
			}
		}
	}
}

func (im *importer) readModels() {
	for _, f := range im.frames {
		for _, s := range f.of(ReadModel) {
			events := liveEvents(linked(s, Event, "in"))
			if len(events) == 0 {
				im.drop(s, "read model %s is fed by no event: draw arrows from its events to it", s.name)
				continue
			}
			if f.ctx.ReadModel(s.name) != nil {
				im.drop(s, "read model %s is drawn twice in frame %s", s.name, f.name)
				continue
			}
			li := im.parseLines(s, im.typeSet(f))
			rm := &model.ReadModel{Name: s.name, Fields: li.fields, Key: li.key, Doc: strings.Join(li.doc, " ")}
			if rm.Key == "" {
				if len(rm.Fields) > 0 {
					rm.Key = rm.Fields[0].Name
				} else {
					rm.Key = events[0].agg.ID
				}
			}
			if rm.Fields.Field(rm.Key) == nil {
				rm.Fields = append(model.FieldList{{Name: rm.Key, Spec: "string", Type: &model.Type{Kind: model.String}}}, rm.Fields...)
			}
			for _, e := range events {
				if ref := eventRef(f.ctx, e); !slices.Contains(rm.From, ref) {
					rm.From = append(rm.From, ref)
				}
			}
			if li.route != "" {
				if bad := unboundParams(li.route, fieldNames(rm.Fields)); bad != "" {
					im.unresolved(s.id, s.text, "route %q: {%s} is not a field of the read model; the route is left out", li.route, bad)
				} else {
					rm.HTTP = model.ParseRoute(li.route)
				}
			}
			f.ctx.ReadModels = append(f.ctx.ReadModels, rm)
		}
	}
}

func (im *importer) externals() {
	for _, f := range im.frames {
		for _, s := range f.of(External) {
			ext := f.ctx.External(s.name)
			if ext == nil {
				li := im.parseLines(s, nil)
				ext = &model.External{Name: s.name, Doc: strings.Join(li.doc, " ")}
				f.ctx.Externals = append(f.ctx.Externals, ext)
			}
			for _, c := range liveCommands(linked(s, Command, both...)) {
				if c.frame.ctx != f.ctx {
					im.unresolved(s.id, s.text, "external %s is connected to command %s of another context (%s): draw a copy of it there", s.name, c.name, c.frame.name)
					continue
				}
				if !slices.Contains(ext.UsedBy, c.name) {
					ext.UsedBy = append(ext.UsedBy, c.name)
				}
			}
			for _, p := range linked(s, Policy, both...) {
				if p.frame.ctx == f.ctx && f.ctx.Policy(p.name) != nil && !slices.Contains(ext.UsedBy, p.name) {
					ext.UsedBy = append(ext.UsedBy, p.name)
				}
			}
		}
	}
}

func (im *importer) hotspots() {
	for _, f := range im.frames {
		for _, s := range f.of(Hotspot) {
			h := &model.Hotspot{Text: strings.Join(append([]string{s.text}, s.rest...), " ")}
			var on []string
			for _, o := range append(slices.Clone(s.out), s.in...) {
				if !o.gone && o.name != "" && !slices.Contains(on, o.name) {
					on = append(on, o.name)
				}
			}
			h.On = strings.Join(on, ", ")
			f.ctx.Hotspots = append(f.ctx.Hotspots, h)
		}
	}
}

// errorCode is the status code of an error named on a command's sticky
// ("errors: Order not found, Invalid order"): not_found for a name ending
// in NotFound, invalid_argument for one starting with Invalid, and
// otherwise failed_precondition (a business rule refused the command).
func errorCode(name string) string {
	switch {
	case strings.HasSuffix(name, "NotFound"):
		return "not_found"
	case strings.HasPrefix(name, "Invalid"):
		return "invalid_argument"
	}
	return "failed_precondition"
}

// article returns "a command", "an event", "a read model".
func article(k Kind) string {
	name := strings.ReplaceAll(string(k), "_", " ")
	if strings.ContainsRune("aeiou", rune(name[0])) {
		return "an " + name
	}
	return "a " + name
}

var paramRE = regexp.MustCompile(`\{([^}]*)\}`)

// unboundParams returns the first {param} of route that is not in names,
// or "".
func unboundParams(route string, names []string) string {
	for _, m := range paramRE.FindAllStringSubmatch(route, -1) {
		if !slices.Contains(names, m[1]) {
			return m[1]
		}
	}
	return ""
}

func fieldNames(l model.FieldList) []string {
	var names []string
	for _, f := range l {
		names = append(names, f.Name)
	}
	return names
}

// emptyContexts leaves out the contexts with nothing to generate (a frame
// of hotspots and unresolved stickies); their hotspots become the model's.
func (im *importer) emptyContexts() {
	im.m.Contexts = slices.DeleteFunc(im.m.Contexts, func(c *model.Context) bool {
		if len(c.Aggregates)+len(c.ReadModels)+len(c.Policies)+len(c.Sagas) > 0 {
			return false
		}
		for _, f := range im.frames {
			if f.ctx == c {
				im.unresolved(f.id, f.name, "frame %s holds no aggregate, read model or policy that could be imported: it is left out", f.name)
			}
		}
		im.m.Hotspots = append(im.m.Hotspots, c.Hotspots...)
		return true
	})
}
