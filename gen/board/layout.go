package board

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/muninn-es/muninn/gen/internal/legend"
	"github.com/muninn-es/muninn/gen/model"
)

// Geometry of the board, in SVG user units (pixels).
const (
	margin     = 24.0
	laneHeader = 36.0  // the lane's title strip
	laneGap    = 16.0  // between lanes
	laneInset  = 16.0  // between a lane's edge and its stickies
	colW       = 184.0 // a grid column
	rowH       = 118.0 // a grid row
	boxW       = 150.0 // a sticky
	boxH       = 92.0
	fontSize   = 14.0
	lineH      = 17.0
	padX       = 8.0 // inside a sticky
	padY       = 8.0
	legendH    = 64.0
	maxLines   = 4
)

// The grid columns of a lane.
const (
	colActor = iota
	colCommand
	colAggregate
	colEvent
	colPolicy
	colReadModel
	colHotspot
	numCols
)

// box is a sticky on the board.
type box struct {
	kind       legend.Kind
	lines      []string // the text, wrapped
	text       string   // the whole text, for a tooltip
	x, y, w, h float64
	lane       *lane
}

func (b *box) cx() float64 { return b.x + b.w/2 }
func (b *box) cy() float64 { return b.y + b.h/2 }

// arrow is a line from a point on one box's border to a point on
// another's, drawn as a cubic Bézier curve.
type arrow struct {
	from, to      *box
	pts           []pt // the polyline, from the source's border to the target's
	dashed, plain bool // a dashed line; no arrow head
	level         bool // leaves a tall box level with the target
}

// pt is a point.
type pt struct{ x, y float64 }

// lane is a bounded context's swimlane.
type lane struct {
	title      string
	x, y, w, h float64
}

// scene is the laid-out board.
type scene struct {
	w, h   float64
	title  string
	lanes  []*lane
	boxes  []*box
	arrows []*arrow
	legend []*box
}

// grid places boxes of one lane in cells, never two in one.
type grid struct {
	used map[[2]int]bool
	rows int
}

func (g *grid) free(col, row int) bool { return !g.used[[2]int{col, row}] }

// place returns the first free row at or below row in col, and takes it.
func (g *grid) place(col, row int) int {
	for !g.free(col, row) {
		row++
	}
	g.take(col, row)
	return row
}

func (g *grid) take(col, row int) {
	g.used[[2]int{col, row}] = true
	if row+1 > g.rows {
		g.rows = row + 1
	}
}

// maxRow returns the highest row taken in any of cols, or -1.
func (g *grid) maxRow(cols ...int) int {
	m := -1
	for k := range g.used {
		if slices.Contains(cols, k[0]) && k[1] > m {
			m = k[1]
		}
	}
	return m
}

// cellBox is a box of a lane before the lane has a position.
type cellBox struct {
	b        *box
	col, row int
	span     int // rows (an aggregate spans its commands)
}

type laneLayout struct {
	c     *model.Context // nil for the model's own lane
	title string
	g     grid
	cells []*cellBox
}

func (l *laneLayout) add(kind legend.Kind, text string, col, row, span int) *box {
	b := &box{kind: kind, text: text, lines: wrap(text, stickyW(kind)-2*padX)}
	l.cells = append(l.cells, &cellBox{b: b, col: col, row: row, span: span})
	return b
}

type layouter struct {
	m     *model.Model
	lanes []*laneLayout
	byCtx map[*model.Context]*laneLayout
	// Boxes by context and name, and their rows, for arrows and placing.
	commands, events map[string]*box
	eventRow         map[string]int
	eventLane        map[string]*laneLayout
	commandRow       map[string]int
	named            map[string]*box // context/kind/name
	arrows           []*arrow
}

func key(c *model.Context, name string) string { return c.Name + "." + name }

// layout lays m out.
func layout(m *model.Model) *scene {
	lo := &layouter{
		m: m, byCtx: map[*model.Context]*laneLayout{},
		commands: map[string]*box{}, events: map[string]*box{},
		eventRow: map[string]int{}, eventLane: map[string]*laneLayout{}, commandRow: map[string]int{},
		named: map[string]*box{},
	}
	for _, c := range m.Contexts {
		l := &laneLayout{c: c, title: c.Name, g: grid{used: map[[2]int]bool{}}}
		lo.lanes = append(lo.lanes, l)
		lo.byCtx[c] = l
		lo.flow(l)
	}
	for _, l := range lo.lanes {
		lo.policies(l)
	}
	for _, s := range m.Sagas {
		lo.saga(nil, s)
	}
	for _, l := range lo.lanes {
		for _, s := range l.c.Sagas {
			lo.saga(l.c, s)
		}
	}
	for _, l := range lo.lanes {
		lo.readModels(l)
		lo.externals(l)
		lo.hotspots(l)
	}
	if len(m.Hotspots) > 0 {
		l := &laneLayout{title: "Open questions", g: grid{used: map[[2]int]bool{}}}
		for i, h := range m.Hotspots {
			l.add(legend.Hotspot, h.Text, i%numCols, l.g.place(i%numCols, i/numCols), 1)
		}
		lo.lanes = append(lo.lanes, l)
	}
	return lo.scene()
}

// flow lays out a context's aggregates: for each command a row with its
// actor, the command, the aggregate beside all its commands, and the
// events the command emits.
func (lo *layouter) flow(l *laneLayout) {
	c := l.c
	next := 0
	for _, a := range c.Aggregates {
		first := next
		last := first
		for _, cmd := range a.Commands {
			row := l.g.place(colCommand, next)
			b := l.add(legend.Command, cmd.Name, colCommand, row, 1)
			lo.commands[key(c, cmd.Name)], lo.commandRow[key(c, cmd.Name)] = b, row
			lo.named[key(c, "command."+cmd.Name)] = b
			if cmd.Actor != "" && c.External(cmd.Actor) == nil {
				ab := l.add(legend.Actor, cmd.Actor, colActor, l.g.place(colActor, row), 1)
				lo.arrow(ab, b, false, false)
			}
			for _, e := range cmd.Emits {
				if a.Event(e) == nil || lo.events[key(c, e)] != nil {
					continue
				}
				er := l.g.place(colEvent, row)
				eb := l.add(legend.Event, e, colEvent, er, 1)
				lo.events[key(c, e)], lo.eventRow[key(c, e)], lo.eventLane[key(c, e)] = eb, er, l
				lo.named[key(c, "event."+e)] = eb
			}
			last = row
			next = max(l.g.maxRow(colCommand, colEvent, colActor)+1, row+1)
		}
		// Events no command emits.
		for _, e := range a.Events {
			if lo.events[key(c, e.Name)] == nil {
				er := l.g.place(colEvent, first)
				eb := l.add(legend.Event, e.Name, colEvent, er, 1)
				lo.events[key(c, e.Name)], lo.eventRow[key(c, e.Name)], lo.eventLane[key(c, e.Name)] = eb, er, l
				lo.named[key(c, "event."+e.Name)] = eb
				next = max(next, er+1)
			}
		}
		if len(a.Commands) == 0 {
			last = first
		}
		for r := first; r <= last; r++ {
			l.g.take(colAggregate, r)
		}
		ab := l.add(legend.Aggregate, a.Name, colAggregate, first, last-first+1)
		lo.named[key(c, "aggregate."+a.Name)] = ab
		// command → aggregate → event, on the command's row.
		for _, cmd := range a.Commands {
			lo.arrowAt(lo.commands[key(c, cmd.Name)], ab)
			for _, e := range cmd.Emits {
				if eb := lo.events[key(c, e)]; eb != nil && a.Event(e) != nil {
					lo.arrowAt(ab, eb)
				}
			}
		}
		next = max(next, last+1)
	}
}

func (lo *layouter) policies(l *laneLayout) {
	for _, p := range l.c.Policies {
		row := 0
		var eb *box
		if r, err := lo.m.ResolveEvent(l.c, p.When); err == nil {
			eb = lo.events[key(r.Context, r.Event.Name)]
			if lo.byCtx[r.Context] == l {
				row = lo.eventRow[key(r.Context, r.Event.Name)]
			}
		}
		var cb *box
		if r, err := lo.m.ResolveCommand(l.c, p.Then); err == nil {
			cb = lo.commands[key(r.Context, r.Command.Name)]
			if eb != nil && lo.eventLane[key(l.c, p.When)] != l && lo.byCtx[r.Context] == l {
				// Reacting to another context's event: beside the command.
				row = lo.commandRow[key(r.Context, r.Command.Name)]
			}
		}
		text := p.Name
		if cond := p.Condition(); cond != "" {
			text += " if " + cond
		}
		pb := l.add(legend.Policy, text, colPolicy, l.g.place(colPolicy, row), 1)
		lo.named[key(l.c, "policy."+p.Name)] = pb
		if eb != nil {
			lo.arrow(eb, pb, false, false)
		}
		if cb != nil {
			lo.arrow(pb, cb, false, false)
		}
	}
}

// saga draws each step of s as a policy sticky in the lane of its event,
// and its timeout in the lane of the event that starts it.
func (lo *layouter) saga(c *model.Context, s *model.Saga) {
	for _, re := range s.ReactsTo {
		r, err := lo.m.ResolveEvent(c, re.On)
		if err != nil {
			continue
		}
		l := lo.byCtx[r.Context]
		eb := lo.events[key(r.Context, r.Event.Name)]
		row := lo.eventRow[key(r.Context, r.Event.Name)]
		pb := l.add(legend.Saga, fmt.Sprintf("%s saga: on %s", s.Name, r.Event.Name), colPolicy, l.g.place(colPolicy, row), 1)
		lo.arrow(eb, pb, false, false)
		for _, t := range re.Then {
			if cr, err := lo.m.ResolveCommand(c, t); err == nil {
				if cb := lo.commands[key(cr.Context, cr.Command.Name)]; cb != nil {
					lo.arrow(pb, cb, false, false)
				}
			}
		}
	}
	if s.Timeout == nil {
		return
	}
	r, err := lo.m.ResolveEvent(c, s.StartsOn)
	if err != nil {
		return
	}
	l := lo.byCtx[r.Context]
	row := lo.eventRow[key(r.Context, r.Event.Name)]
	tb := l.add(legend.Saga, fmt.Sprintf("%s saga: after %s", s.Name, duration(s.Timeout.After.String())), colPolicy, l.g.place(colPolicy, row), 1)
	if cr, err := lo.m.ResolveCommand(c, s.Timeout.Then); err == nil {
		if cb := lo.commands[key(cr.Context, cr.Command.Name)]; cb != nil {
			lo.arrow(tb, cb, false, false)
		}
	}
}

// duration shortens a Go duration: 15m0s is 15m.
func duration(s string) string {
	for _, suffix := range []string{"m0s", "h0m"} {
		if strings.HasSuffix(s, suffix) {
			s = strings.TrimSuffix(s, suffix[1:])
		}
	}
	return s
}

func (lo *layouter) readModels(l *laneLayout) {
	for _, r := range l.c.ReadModels {
		row := -1
		var from []*box
		for _, f := range r.From {
			er, err := lo.m.ResolveEvent(l.c, f)
			if err != nil {
				continue
			}
			if eb := lo.events[key(er.Context, er.Event.Name)]; eb != nil {
				from = append(from, eb)
				if lo.byCtx[er.Context] == l && row < 0 {
					row = lo.eventRow[key(er.Context, er.Event.Name)]
				}
			}
		}
		rb := l.add(legend.ReadModel, r.Name, colReadModel, l.g.place(colReadModel, max(row, 0)), 1)
		lo.named[key(l.c, "read_model."+r.Name)] = rb
		for _, eb := range from {
			lo.arrow(eb, rb, false, false)
		}
	}
}

func (lo *layouter) externals(l *laneLayout) {
	for _, x := range l.c.Externals {
		row := 0
		var used []*box
		for _, u := range x.UsedBy {
			if b := lo.named[key(l.c, "policy."+u)]; b != nil {
				used = append(used, b)
				continue
			}
			if cr, err := lo.m.ResolveCommand(l.c, u); err == nil {
				if cb := lo.commands[key(cr.Context, cr.Command.Name)]; cb != nil {
					if len(used) == 0 && cr.Context == l.c {
						row = lo.commandRow[key(cr.Context, cr.Command.Name)]
					}
					used = append(used, cb)
				}
			}
		}
		xb := l.add(legend.External, x.Name, colActor, l.g.place(colActor, row), 1)
		// The commands it sends (as their actor) get an arrow; the others a link.
		for _, b := range used {
			sends := false
			for _, a := range l.c.Aggregates {
				for _, cmd := range a.Commands {
					if cmd.Actor == x.Name && lo.commands[key(l.c, cmd.Name)] == b {
						sends = true
					}
				}
			}
			lo.arrow(xb, b, !sends, !sends)
		}
	}
}

func (lo *layouter) hotspots(l *laneLayout) {
	for _, h := range l.c.Hotspots {
		var target *box
		row := 0
		for _, kind := range []string{"command", "event", "policy", "read_model", "aggregate"} {
			if b := lo.named[key(l.c, kind+"."+strings.TrimSpace(strings.Split(h.On, ",")[0]))]; b != nil && h.On != "" {
				target = b
				break
			}
		}
		if target != nil {
			for _, c := range l.cells {
				if c.b == target {
					row = c.row
				}
			}
		}
		hb := l.add(legend.Hotspot, h.Text, colHotspot, l.g.place(colHotspot, row), 1)
		if target != nil {
			lo.arrow(hb, target, true, true)
		}
	}
}

func (lo *layouter) arrow(from, to *box, dashed, plain bool) {
	lo.arrows = append(lo.arrows, &arrow{from: from, to: to, dashed: dashed, plain: plain})
}

// arrowAt is a horizontal arrow between a sticky and a tall one (an
// aggregate), level with the sticky's centre.
func (lo *layouter) arrowAt(from, to *box) {
	lo.arrows = append(lo.arrows, &arrow{from: from, to: to, level: true})
}

// scene positions the lanes and boxes and routes the arrows.
func (lo *layouter) scene() *scene {
	s := &scene{title: lo.m.Name}
	width := margin*2 + laneInset*2 + float64(numCols)*colW
	y := margin + legendH
	for _, l := range lo.lanes {
		rows := max(l.g.rows, 1)
		ln := &lane{title: l.title, x: margin, y: y, w: width - 2*margin, h: laneHeader + float64(rows)*rowH + laneInset}
		s.lanes = append(s.lanes, ln)
		for _, c := range l.cells {
			b := c.b
			b.lane = ln
			b.w, b.h = stickyW(b.kind), boxH+float64(c.span-1)*rowH
			b.x = ln.x + laneInset + float64(c.col)*colW + (colW-b.w)/2
			b.y = ln.y + laneHeader + float64(c.row)*rowH + (rowH-boxH)/2
			s.boxes = append(s.boxes, b)
		}
		y += ln.h + laneGap
	}
	s.w, s.h = width, y-laneGap+margin
	// The legend: one small sticky per kind.
	kinds := legend.Kinds
	lw := (width - 2*margin) / float64(len(kinds))
	for i, k := range kinds {
		s.legend = append(s.legend, &box{kind: k, lines: []string{legend.Label(k)}, x: margin + float64(i)*lw + 4, y: margin + 16, w: lw - 8, h: 30})
	}
	routeAll(lo.arrows)
	s.arrows = lo.arrows
	return s
}

// The gaps between the grid's stickies are the arrows' channels: no
// sticky is in them (but a tall aggregate, which spans the row gaps of its
// column).
const (
	colGap = colW - boxW
	rowGap = rowH - boxH
)

// router routes the arrows orthogonally through the gaps, spreading the
// arrows that share a gap or a sticky's side so that they stay apart.
type router struct {
	channel map[string]int // arrows in a gap so far
	side    map[string]int // arrows on a sticky's side so far
	total   map[string]int // arrows on a sticky's side in all
}

// spread returns the offset of the n-th line in a gap of the given width.
func spread(n int, width float64) float64 {
	step := 4.0
	slots := int((width/2 - 3) / step) // lines on each side of the middle
	k := n % (2*slots + 1)
	if k%2 == 1 {
		return float64((k+1)/2) * step
	}
	return -float64(k/2) * step
}

func sideKey(b *box, side string) string {
	return fmt.Sprintf("%p%s", b, side)
}

// sideY returns where the next arrow on a side of b meets it.
func (r *router) sideY(b *box, side string) float64 {
	k := sideKey(b, side)
	n, total := r.side[k], r.total[k]
	r.side[k]++
	if total <= 1 {
		return b.cy()
	}
	room := min(b.h-16, float64(total-1)*12)
	return b.cy() - room/2 + room*float64(n)/float64(total-1)
}

func (r *router) offset(key string, width float64) float64 {
	n := r.channel[key]
	r.channel[key]++
	return spread(n, width)
}

// route lays out every arrow: from the right side of its source to the
// left side of its target (an aggregate's arrows go level), through the
// column gap beside each and the row gap above the target.
func routeAll(arrows []*arrow) {
	r := &router{channel: map[string]int{}, side: map[string]int{}, total: map[string]int{}}
	for _, a := range arrows {
		if !a.level && a.from.kind != legend.Hotspot {
			r.total[sideKey(a.from, "right")]++
			r.total[sideKey(a.to, "left")]++
		}
	}
	for _, a := range arrows {
		r.route(a)
	}
}

func (r *router) route(a *arrow) {
	f, t := a.from, a.to
	if a.level {
		// Level with the centre of the smaller box.
		y := t.cy()
		if f.h < t.h {
			y = f.cy()
		}
		if t.x >= f.x+f.w {
			a.pts = []pt{{f.x + f.w, y}, {t.x, y}}
		} else {
			a.pts = []pt{{f.x, y}, {t.x + t.w, y}}
		}
		return
	}
	if f.kind == legend.Hotspot {
		// A hotspot's link comes down onto the top of what it is about,
		// through the row gap above it.
		xi := f.x - (colW-f.w)/2 + r.offset(fmt.Sprintf("v%.0f", f.x-(colW-f.w)/2), colGap)
		gy := t.y - (rowH-boxH)/2
		yg := gy + r.offset(fmt.Sprintf("h%.0f", gy), rowGap)
		xt := t.cx() + r.offset(sideKey(t, "top"), t.w/2)
		a.pts = []pt{{f.x, f.cy()}, {xi, f.cy()}, {xi, yg}, {xt, yg}, {xt, t.y}}
		return
	}
	y1 := r.sideY(f, "right")
	y2 := r.sideY(t, "left")
	x1, x2 := f.x+f.w, t.x
	// The gap right of the source's column and left of the target's.
	out := x1 + (colW-f.w)/2
	in := x2 - (colW-t.w)/2
	switch {
	case in-out < 1 && in-out > -1 && x2 > x1:
		// Neighbouring columns: one gap between them.
		if abs(y1-y2) < 0.5 {
			a.pts = []pt{{x1, y1}, {x2, y2}}
			return
		}
		xm := out + r.offset(fmt.Sprintf("v%.0f", out), colGap)
		a.pts = []pt{{x1, y1}, {xm, y1}, {xm, y2}, {x2, y2}}
	default:
		xo := out + r.offset(fmt.Sprintf("v%.0f", out), colGap)
		xi := in + r.offset(fmt.Sprintf("v%.0f", in), colGap)
		gy := t.y - (rowH-t.h)/2
		if t.h > boxH {
			gy = t.y - rowGap/2
		}
		yg := gy + r.offset(fmt.Sprintf("h%.0f", gy), rowGap)
		a.pts = []pt{{x1, y1}, {xo, y1}, {xo, yg}, {xi, yg}, {xi, y2}, {x2, y2}}
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// stickyW returns the width of a sticky of kind k: actors are smaller.
func stickyW(k legend.Kind) float64 {
	if k == legend.Actor {
		return boxW - 30
	}
	return boxW
}

// wrap splits a name or text into words and lines at most width wide.
func wrap(text string, width float64) []string {
	words := splitWords(text)
	var lines []string
	cur := ""
	for _, w := range words {
		for textWidth(w) > width {
			// A word too long for a line: break it.
			n := len(w)
			for n > 1 && textWidth(w[:n]+"-") > width {
				n--
			}
			if cur != "" {
				lines = append(lines, cur)
				cur = ""
			}
			lines = append(lines, w[:n]+"-")
			w = w[n:]
		}
		switch {
		case cur == "":
			cur = w
		case textWidth(cur+" "+w) <= width:
			cur += " " + w
		default:
			lines = append(lines, cur)
			cur = w
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	if len(lines) > maxLines {
		lines = lines[:maxLines]
		last := lines[maxLines-1]
		for textWidth(last+"…") > width && len(last) > 1 {
			last = last[:len(last)-1]
		}
		lines[maxLines-1] = last + "…"
	}
	return lines
}

// splitWords splits CamelCase names ("OrderPlaced") and free text into
// words; acronyms stay whole ("SKUReserved" is SKU Reserved).
func splitWords(s string) []string {
	var out []string
	for _, field := range strings.Fields(s) {
		rs := []rune(field)
		start := 0
		for i := 1; i < len(rs); i++ {
			prev, r := rs[i-1], rs[i]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsUpper(r) && (unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower)) {
				out = append(out, string(rs[start:i]))
				start = i
			}
		}
		out = append(out, string(rs[start:]))
	}
	return out
}

// textWidth estimates the width of s in the board's sans-serif font, a
// little on the wide side.
func textWidth(s string) float64 {
	w := 0.0
	for _, r := range s {
		switch {
		case r == ' ':
			w += 0.30
		case strings.ContainsRune("il.,:;'!|", r):
			w += 0.30
		case strings.ContainsRune("mwMW", r):
			w += 0.90
		case unicode.IsUpper(r):
			w += 0.72
		case unicode.IsDigit(r):
			w += 0.58
		default:
			w += 0.58
		}
	}
	return w * fontSize
}
