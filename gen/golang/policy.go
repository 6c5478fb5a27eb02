package golang

import (
	"fmt"
	"go/scanner"
	"go/token"
	"sort"
	"strconv"
	"strings"

	"github.com/muninn-es/muninn/gen/model"
)

// Policies: "whenever this event, send that command", generated whole
// (saga.DefinePolicy) into one package, policies, which may import every
// context (a policy of Order reacts to Payment's events and one of
// Payment to Order's, so they cannot live in their contexts' packages).

// ppolicy is one policy of the model.
type ppolicy struct {
	name, goName, doc string
	wire              string // the policy's (consumer group's) name
	evCtx, cmdCtx     *pctx
	evAgg, cmdAgg     *pagg
	ev, cmd           *pmsg
	key               string // Go expression of the target aggregate's ID
	fields            []string
	// unless are the Go conditions under which the policy sends nothing
	// (the negations of its if), and cond describes its if for the doc.
	unless []string
	cond   string
}

// policyPlan resolves a policy of context c into the plan.
func policyPlan(m *model.Model, pm *pmodel, c *model.Context, p *model.Policy, bad func(model.Pos, string, ...any)) *ppolicy {
	er, err := m.ResolveEvent(c, p.When)
	if err != nil {
		bad(p.Pos, "policy %s: %v", p.Name, err)
		return nil
	}
	cr, err := m.ResolveCommand(c, p.Then)
	if err != nil {
		bad(p.Pos, "policy %s: %v", p.Name, err)
		return nil
	}
	pp := &ppolicy{name: p.Name, goName: exported(p.Name), doc: p.Doc,
		wire: pm.service + "-" + kebab(p.Name)}
	pp.evCtx, pp.evAgg = pm.lookup(er.Context, er.Aggregate)
	pp.cmdCtx, pp.cmdAgg = pm.lookup(cr.Context, cr.Aggregate)
	if pp.evAgg == nil || pp.cmdAgg == nil {
		return nil // reported with its context
	}
	pp.ev, pp.cmd = pp.evAgg.event(er.Event.Name), pp.cmdAgg.command(cr.Command.Name)
	if pp.ev == nil || pp.cmd == nil {
		return nil
	}
	// source returns the Go expression of a source field of the event, or
	// of a quoted literal.
	source := func(target *pfield, src string) (string, error) {
		if u, err := strconv.Unquote(src); err == nil || strings.HasPrefix(src, "'") {
			if err != nil {
				u = strings.Trim(src, "'")
			}
			if target != nil && target.typ.kind != kString && target.typ.kind != kEnum {
				return "", fmt.Errorf("literal %s for %s, which is no string", src, target.name)
			}
			return strconv.Quote(u), nil
		}
		if src == pp.evAgg.id {
			if target != nil && target.typ.kind != kString {
				return "", fmt.Errorf("%s (the event's aggregate ID, a string) for %s, which is no string", src, target.name)
			}
			return "rec.Key", nil
		}
		f := pp.ev.field(src)
		if f == nil {
			return "", fmt.Errorf("%s is no field of %s", src, pp.ev.name)
		}
		if target != nil && f.typ.goType() != target.typ.goType() {
			return "", fmt.Errorf("%s of %s is a %s, %s of %s a %s", src, pp.ev.name, f.typ.goType(), target.name, pp.cmd.name, target.typ.goType())
		}
		return "e." + f.goName, nil
	}
	ok := true
	id := pp.cmdAgg.id
	switch src, mapped := p.Map[id]; {
	case mapped:
		k, err := source(nil, src)
		if err != nil {
			bad(p.Pos, "policy %s: map %s: %v", p.Name, id, err)
			ok = false
		}
		pp.key = k
	case id == pp.evAgg.id:
		pp.key = "rec.Key"
	case pp.ev.field(id) != nil && pp.ev.field(id).typ.kind == kString:
		pp.key = "e." + pp.ev.field(id).goName
	default:
		bad(p.Pos, "policy %s: which %s does %s go to? %s has no such field: map it (map: {%s: <field of %s>})", p.Name, pp.cmdAgg.name, pp.cmd.name, pp.ev.name, id, pp.ev.name)
		ok = false
	}
	keys := make([]string, 0, len(p.Map))
	for k := range p.Map {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != id && pp.cmd.field(k) == nil {
			bad(p.Pos, "policy %s: map %s: %s has no such field", p.Name, k, pp.cmd.name)
			ok = false
		}
	}
	for _, f := range pp.cmd.fields {
		src, mapped := p.Map[f.name]
		if !mapped {
			// A field of the event of the same name and type is carried over.
			if ef := pp.ev.field(f.name); ef != nil && ef.typ.goType() == f.typ.goType() {
				pp.fields = append(pp.fields, f.goName+": e."+ef.goName)
			}
			continue
		}
		v, err := source(f, src)
		if err != nil {
			bad(p.Pos, "policy %s: map %s: %v", p.Name, f.name, err)
			ok = false
			continue
		}
		pp.fields = append(pp.fields, f.goName+": "+v)
	}
	ok = pp.condition(p, bad) && ok
	if !ok {
		return nil
	}
	return pp
}

// condition plans the policy's if: the conditions under which it sends
// nothing, by field name.
func (pp *ppolicy) condition(p *model.Policy, bad func(model.Pos, string, ...any)) bool {
	keys := make([]string, 0, len(p.If))
	for k := range p.If {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ok := true
	var descs []string
	for _, k := range keys {
		x := p.If[k]
		if k == pp.evAgg.id {
			id, isString := x.(string)
			if !isString {
				bad(p.Pos, "policy %s: if %s: want a string, got %v", p.Name, k, x)
				ok = false
				continue
			}
			pp.unless = append(pp.unless, "rec.Key != "+strconv.Quote(id))
			descs = append(descs, fmt.Sprintf("%s %q", k, id))
			continue
		}
		f := pp.ev.field(k)
		if f == nil {
			bad(p.Pos, "policy %s: if %s: %s has no such field", p.Name, k, pp.ev.name)
			ok = false
			continue
		}
		switch f.typ.kind {
		case kString, kEnum, kInt, kInt64, kDecimal, kBool:
		default:
			bad(p.Pos, "policy %s: if %s: only string, enum, integer and bool fields can be compared", p.Name, k)
			ok = false
			continue
		}
		v, err := value(nil, f.typ, x)
		if err != nil || x == nil {
			bad(p.Pos, "policy %s: if %s: want a value of its type (%s), got %v", p.Name, k, f.typ.goType(), x)
			ok = false
			continue
		}
		switch {
		case f.typ.kind == kBool && v == "true":
			pp.unless = append(pp.unless, "!e."+f.goName)
		case f.typ.kind == kBool:
			pp.unless = append(pp.unless, "e."+f.goName)
		default:
			pp.unless = append(pp.unless, "e."+f.goName+" != "+v)
		}
		descs = append(descs, k+" "+v)
	}
	pp.cond = strings.Join(descs, " and ")
	return ok
}

// lookup returns the plan of a model context and aggregate.
func (pm *pmodel) lookup(c *model.Context, a *model.Aggregate) (*pctx, *pagg) {
	for _, pc := range pm.contexts {
		if pc.name != c.Name {
			continue
		}
		for _, pa := range pc.aggs {
			if pa.name == a.Name {
				return pc, pa
			}
		}
	}
	return nil, nil
}

// policiesGen returns the generated policies package, or nil if the model
// has no policy.
func policiesGen(pm *pmodel, module string) ([]byte, error) {
	if len(pm.policies) == 0 {
		return nil, nil
	}
	var w writer
	w.p("%s", header(pm.file))
	w.p("")
	w.p("// Package policies holds the policies of the %s model: whenever an", pm.name)
	w.p("// event happens, send a command, once however often the event is")
	w.p("// delivered (package saga). Run each with saga.New(store, bus, policy).")
	w.p("package policies")
	w.p("")
	w.p("import (")
	w.p("\t\"github.com/muninn-es/muninn/saga\"")
	w.p("")
	pkgs := map[string]bool{}
	for _, p := range pm.policies {
		pkgs[p.evCtx.pkg], pkgs[p.cmdCtx.pkg] = true, true
	}
	var sorted []string
	for p := range pkgs {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	for _, p := range sorted {
		w.p("\t%q", module+"/"+p)
	}
	w.p(")")
	w.p("")
	w.p("// All returns every policy of the model.")
	w.p("func All() []*saga.Policy {")
	var all []string
	for _, p := range pm.policies {
		all = append(all, p.goName+"()")
	}
	w.p("\treturn []*saga.Policy{%s}", strings.Join(all, ", "))
	w.p("}")
	w.p("")
	for _, p := range pm.policies {
		ev := p.evCtx.pkg + "." + p.ev.goName
		cmd := p.cmdCtx.pkg + "." + p.cmd.goName
		w.doc(docFor(p.goName, p.doc, "is a policy."))
		when := ev
		if p.cond != "" {
			when += " with " + p.cond
		}
		w.doc(fmt.Sprintf("Whenever %s, it sends %s (policy %q).", when, cmd, p.wire))
		w.p("func %s() *saga.Policy {", p.goName)
		w.p("\tp := saga.DefinePolicy(%q, %s.%s)", p.wire, p.evCtx.pkg, p.evAgg.topicConst)
		w.p("\tsaga.Command[%s](p, %q)", cmd, p.cmd.wire)
		w.p("\t// The registry fails only if its type list is wrong, and then so")
		w.p("\t// does the aggregate's definition, which the service builds first.")
		w.p("\tif events, err := %s.%s(); err == nil {", p.evCtx.pkg, p.evAgg.eventsFunc)
		w.p("\t\tsaga.UseEvents(p, events)")
		w.p("\t}")
		uses := append(append([]string{p.key}, p.fields...), p.unless...)
		e := "_"
		if usesIdent(uses, "e") {
			e = "e"
		}
		w.p("\tsaga.Whenever(p, %q, func(s *saga.Step[struct{}], %s %s) error {", p.ev.wire, e, ev)
		if usesIdent(uses, "rec") {
			w.p("\t\trec, _ := s.Event()")
		}
		if len(p.unless) > 0 {
			w.p("\t\tif %s {", strings.Join(p.unless, " || "))
			w.p("\t\t\treturn nil")
			w.p("\t\t}")
		}
		w.p("\t\ts.Send(%s, %s{%s})", p.key, cmd, strings.Join(p.fields, ", "))
		w.p("\t\treturn nil")
		w.p("\t})")
		w.p("\treturn p")
		w.p("}")
		w.p("")
	}
	return source("policies/policies_gen.go", w.Bytes())
}

// usesIdent reports whether the Go expressions exprs name the identifier
// name (e, the event, or rec, its record): a token, not text, so that a
// string literal that contains "rec." does not count.
func usesIdent(exprs []string, name string) bool {
	for _, x := range exprs {
		var sc scanner.Scanner
		fs := token.NewFileSet()
		src := []byte(x)
		sc.Init(fs.AddFile("", fs.Base(), len(src)), src, nil, 0)
		for {
			_, tok, lit := sc.Scan()
			if tok == token.EOF {
				break
			}
			if tok == token.IDENT && lit == name {
				return true
			}
		}
	}
	return false
}

// lookupCtx returns the plan of a model context.
func (pm *pmodel) lookupCtx(c *model.Context) (*pctx, bool) {
	for _, pc := range pm.contexts {
		if pc.name == c.Name {
			return pc, true
		}
	}
	return nil, false
}
