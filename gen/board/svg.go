package board

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strings"

	"github.com/muninn-es/muninn/gen/internal/legend"
	"github.com/muninn-es/muninn/gen/model"
)

// SVG writes the board of m to w as an SVG document. m should be valid
// (model.Validate): references that do not resolve are not drawn.
func SVG(m *model.Model, w io.Writer) error {
	s := layout(m)
	b := bufio.NewWriter(w)
	s.write(b)
	return b.Flush()
}

func f(v float64) string { return fmt.Sprintf("%.1f", v) }

func (s *scene) write(b *bufio.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...); b.WriteByte('\n') }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-family="Helvetica, Arial, sans-serif">`, f(s.w), f(s.h), f(s.w), f(s.h))
	p(`<title>%s</title>`, html.EscapeString(s.title+": event-storming board"))
	p(`<defs>`)
	p(`<marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker>`)
	p(`<marker id="headx" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6a3f8f"/></marker>`)
	p(`<filter id="shadow" x="-10%%" y="-10%%" width="130%%" height="130%%"><feDropShadow dx="2" dy="3" stdDeviation="2" flood-opacity="0.25"/></filter>`)
	p(`</defs>`)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>`)
	p(`<text x="%s" y="%s" font-size="18" font-weight="bold" fill="#222">%s</text>`, f(margin), f(margin+4), html.EscapeString(s.title))
	for _, l := range s.legend {
		c := legend.Of(l.kind)
		p(`<rect x="%s" y="%s" width="%s" height="%s" rx="3" fill="%s" stroke="%s"/>`, f(l.x), f(l.y), f(l.w), f(l.h), c.Fill, c.Stroke)
		p(`<text x="%s" y="%s" font-size="13" text-anchor="middle" fill="%s">%s</text>`, f(l.cx()), f(l.cy()+4.5), c.Text, html.EscapeString(l.lines[0]))
	}
	for i, l := range s.lanes {
		fill := "#f6f7f9"
		if i%2 == 1 {
			fill = "#eef1f5"
		}
		p(`<g class="lane">`)
		p(`<rect x="%s" y="%s" width="%s" height="%s" rx="8" fill="%s" stroke="#c5ccd6"/>`, f(l.x), f(l.y), f(l.w), f(l.h), fill)
		p(`<text x="%s" y="%s" font-size="17" font-weight="bold" fill="#33415c">%s</text>`, f(l.x+laneInset), f(l.y+24), html.EscapeString(l.title))
		p(`</g>`)
	}
	// Arrows under the stickies, so that no line covers a name.
	p(`<g class="arrows" fill="none" stroke="#444" stroke-width="1.6">`)
	for _, a := range s.arrows {
		extra := ` marker-end="url(#head)"`
		if a.plain {
			extra = ""
		}
		if a.dashed {
			extra += ` stroke-dasharray="5 4"`
		}
		switch {
		case a.from.kind == legend.Hotspot || a.to.kind == legend.Hotspot:
			extra += ` stroke="#c0392b"`
		case a.from.lane != a.to.lane:
			// Between contexts: in a colour of its own.
			extra += ` stroke="#6a3f8f" marker-end="url(#headx)"`
			extra = strings.Replace(extra, ` marker-end="url(#head)"`, "", 1)
		}
		p(`<path d="%s"%s/>`, pathData(a.pts), extra)
	}
	p(`</g>`)
	for _, x := range s.boxes {
		c := legend.Of(x.kind)
		p(`<g class="sticky %s">`, x.kind)
		p(`<title>%s: %s</title>`, html.EscapeString(legend.Label(x.kind)), html.EscapeString(x.text))
		p(`<rect x="%s" y="%s" width="%s" height="%s" rx="3" fill="%s" stroke="%s" filter="url(#shadow)"/>`, f(x.x), f(x.y), f(x.w), f(x.h), c.Fill, c.Stroke)
		top := x.cy() - float64(len(x.lines))*lineH/2 + lineH*0.75
		if x.h > boxH { // a tall aggregate: its name at the top
			top = x.y + padY + lineH*0.75
		}
		p(`<text x="%s" y="%s" font-size="%s" text-anchor="middle" fill="%s">`, f(x.cx()), f(top), f(fontSize), c.Text)
		for i, line := range x.lines {
			dy := "0"
			if i > 0 {
				dy = f(lineH)
			}
			p(`<tspan x="%s" dy="%s">%s</tspan>`, f(x.cx()), dy, html.EscapeString(line))
		}
		p(`</text>`)
		p(`</g>`)
	}
	p(`</svg>`)
}

// pathData draws a polyline with its corners rounded.
func pathData(pts []pt) string {
	const radius = 6.0
	var b strings.Builder
	fmt.Fprintf(&b, "M%s,%s", f(pts[0].x), f(pts[0].y))
	for i := 1; i < len(pts)-1; i++ {
		prev, p, next := pts[i-1], pts[i], pts[i+1]
		r := min(radius, dist(prev, p)/2, dist(p, next)/2)
		a := towards(p, prev, r)
		c := towards(p, next, r)
		fmt.Fprintf(&b, " L%s,%s Q%s,%s %s,%s", f(a.x), f(a.y), f(p.x), f(p.y), f(c.x), f(c.y))
	}
	last := pts[len(pts)-1]
	fmt.Fprintf(&b, " L%s,%s", f(last.x), f(last.y))
	return b.String()
}

func dist(a, b pt) float64 { return math.Hypot(b.x-a.x, b.y-a.y) }

// towards returns the point at distance d from p towards q.
func towards(p, q pt, d float64) pt {
	l := dist(p, q)
	if l == 0 {
		return p
	}
	return pt{p.x + (q.x-p.x)*d/l, p.y + (q.y-p.y)*d/l}
}
