package mermaid

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/muninn-es/muninn/gen/internal/legend"
	"github.com/muninn-es/muninn/gen/model"
)

// Write writes m as a Mermaid flowchart (flowchart LR) to w. m should be
// valid (model.Validate): references that do not resolve are left out.
func Write(w io.Writer, m *model.Model) error {
	g := &graph{m: m, b: bufio.NewWriter(w), pairs: map[string]bool{}}
	g.write()
	return g.b.Flush()
}

type graph struct {
	m     *model.Model
	b     *bufio.Writer
	edges []string
	pairs map[string]bool
}

func (g *graph) line(indent int, format string, args ...any) {
	g.b.WriteString(strings.Repeat("  ", indent))
	fmt.Fprintf(g.b, format, args...)
	g.b.WriteByte('\n')
}

// edge adds an edge "from ARROW to", unless the two nodes have one.
func (g *graph) edge(format string, args ...any) {
	e := fmt.Sprintf(format, args...)
	f := strings.Fields(e)
	pair := f[0] + " " + f[len(f)-1]
	if g.pairs[pair] {
		return
	}
	g.pairs[pair] = true
	g.edges = append(g.edges, e)
}

// id returns a node id: kind prefix, context and name.
func id(prefix string, ctx, name string) string {
	if ctx == "" {
		return prefix + "_" + name
	}
	return prefix + "_" + ctx + "_" + name
}

// label quotes text for a node label.
func label(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;")
	return `"` + r.Replace(s) + `"`
}

func (g *graph) eventID(from *model.Context, ref string) (string, bool) {
	r, err := g.m.ResolveEvent(from, ref)
	if err != nil {
		return "", false
	}
	return id("e", r.Context.Name, r.Event.Name), true
}

func (g *graph) commandID(from *model.Context, ref string) (string, bool) {
	r, err := g.m.ResolveCommand(from, ref)
	if err != nil {
		return "", false
	}
	return id("c", r.Context.Name, r.Command.Name), true
}

func (g *graph) write() {
	g.line(0, "flowchart LR")
	if g.m.Doc != "" || g.m.Name != "" {
		g.line(1, "%%%% %s", strings.TrimSpace(g.m.Name+": "+g.m.Doc))
	}
	hot := 0
	hotspot := func(indent int, ctx *model.Context, h *model.Hotspot) {
		hot++
		n := fmt.Sprintf("h%d", hot)
		g.line(indent, "%s[%s]:::hotspot", n, label("? "+h.Text))
		if ctx != nil && h.On != "" {
			for _, target := range g.named(ctx, h.On) {
				g.edge("%s -.- %s", n, target)
			}
		}
	}
	for _, c := range g.m.Contexts {
		g.line(1, "subgraph %s[%s]", id("ctx", "", c.Name), label(c.Name))
		g.line(2, "direction LR")
		actors := map[string]bool{}
		for _, a := range c.Aggregates {
			for _, cmd := range a.Commands {
				if cmd.Actor != "" && !actors[cmd.Actor] && c.External(cmd.Actor) == nil {
					actors[cmd.Actor] = true
					g.line(2, "%s([%s]):::actor", id("u", c.Name, ident(cmd.Actor)), label(cmd.Actor))
				}
			}
		}
		for _, a := range c.Aggregates {
			g.line(2, "subgraph %s[%s]", id("a", c.Name, a.Name), label(a.Name))
			for _, cmd := range a.Commands {
				cid := id("c", c.Name, cmd.Name)
				g.line(3, "%s[%s]:::command", cid, label(cmd.Name))
				switch {
				case cmd.Actor == "":
				case c.External(cmd.Actor) != nil:
					// The actor is an external system of the context.
					g.edge("%s --> %s", id("x", c.Name, cmd.Actor), cid)
				default:
					g.edge("%s --> %s", id("u", c.Name, ident(cmd.Actor)), cid)
				}
				for _, e := range cmd.Emits {
					if a.Event(e) != nil {
						g.edge("%s --> %s", cid, id("e", c.Name, e))
					}
				}
			}
			for _, e := range a.Events {
				g.line(3, "%s[%s]:::event", id("e", c.Name, e.Name), label(e.Name))
			}
			g.line(2, "end")
			g.line(2, "class %s aggregate", id("a", c.Name, a.Name))
		}
		for _, p := range c.Policies {
			pid := id("p", c.Name, p.Name)
			g.line(2, "%s{{%s}}:::policy", pid, label(p.Name))
			if e, ok := g.eventID(c, p.When); ok {
				if cond := p.Condition(); cond != "" {
					// The policy's if labels the arrow from its event.
					g.edge("%s -->|%s| %s", e, label("if "+cond), pid)
				} else {
					g.edge("%s --> %s", e, pid)
				}
			}
			if cmd, ok := g.commandID(c, p.Then); ok {
				g.edge("%s --> %s", pid, cmd)
			}
		}
		for _, r := range c.ReadModels {
			rid := id("r", c.Name, r.Name)
			g.line(2, "%s[(%s)]:::read_model", rid, label(r.Name))
			for _, f := range r.From {
				if e, ok := g.eventID(c, f); ok {
					g.edge("%s --> %s", e, rid)
				}
			}
		}
		for _, x := range c.Externals {
			xid := id("x", c.Name, x.Name)
			g.line(2, "%s[/%s/]:::external", xid, label(x.Name))
			for _, u := range x.UsedBy {
				if c.Policy(u) != nil {
					g.edge("%s -.- %s", xid, id("p", c.Name, u))
				} else if cmd, ok := g.commandID(c, u); ok {
					g.edge("%s -.- %s", xid, cmd)
				}
			}
		}
		for _, s := range c.Sagas {
			g.saga(2, c, s)
		}
		for _, h := range c.Hotspots {
			hotspot(2, c, h)
		}
		g.line(1, "end")
	}
	for _, s := range g.m.Sagas {
		g.saga(1, nil, s)
	}
	for _, h := range g.m.Hotspots {
		hotspot(1, nil, h)
	}
	for _, e := range g.edges {
		g.line(1, "%s", e)
	}
	for _, k := range legend.Kinds {
		c := legend.Of(k)
		g.line(1, "classDef %s fill:%s,stroke:%s,color:%s", k, c.Fill, c.Stroke, c.Text)
	}
}

func (g *graph) saga(indent int, c *model.Context, s *model.Saga) {
	ctx := ""
	if c != nil {
		ctx = c.Name
	}
	sid := id("s", ctx, s.Name)
	g.line(indent, "%s{{%s}}:::saga", sid, label(s.Name+" (saga)"))
	seen := map[string]bool{}
	for _, ev := range append([]string{s.StartsOn}, func() []string {
		var on []string
		for _, r := range s.ReactsTo {
			on = append(on, r.On)
		}
		return on
	}()...) {
		if e, ok := g.eventID(c, ev); ok && !seen[e] {
			seen[e] = true
			g.edge("%s --> %s", e, sid)
		}
	}
	sent := map[string]bool{}
	for _, r := range s.ReactsTo {
		for _, t := range r.Then {
			if cmd, ok := g.commandID(c, t); ok && !sent[cmd] {
				sent[cmd] = true
				g.edge("%s --> %s", sid, cmd)
			}
		}
	}
	if s.Timeout != nil {
		if cmd, ok := g.commandID(c, s.Timeout.Then); ok {
			// Beside a plain arrow to the same command, if there is one.
			g.edges = append(g.edges, fmt.Sprintf("%s -.->|after %s| %s", sid, s.Timeout.After, cmd))
		}
	}
}

// named returns the node ids of the elements of c named name (a hotspot's
// On may name a comma-separated list).
func (g *graph) named(c *model.Context, on string) []string {
	var out []string
	for n := range strings.SplitSeq(on, ",") {
		n = strings.TrimSpace(n)
		switch {
		case c.Command(n) != nil:
			out = append(out, id("c", c.Name, n))
		case c.Event(n) != nil:
			out = append(out, id("e", c.Name, n))
		case c.Policy(n) != nil:
			out = append(out, id("p", c.Name, n))
		case c.ReadModel(n) != nil:
			out = append(out, id("r", c.Name, n))
		case c.External(n) != nil:
			out = append(out, id("x", c.Name, n))
		}
	}
	return out
}

// ident makes free text (an actor's name) a node id part.
func ident(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
