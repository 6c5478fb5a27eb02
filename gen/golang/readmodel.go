package golang

import (
	"fmt"
	"sort"
	"strings"

	"github.com/muninn-es/muninn/gen/model"
)

// Read models: a projection per read model into a typed table of its rows,
// generated into one package, readmodels (a read model may be fed by the
// events of several contexts), with the rules that apply each event to the
// table written once by hand in readmodels/rules.go.

// preadmodel is one read model.
type preadmodel struct {
	name, goName, doc string
	wire              string // the projection's name
	key               *pfield
	keyType           string // Go type of the table's key
	keyCodec          string
	row               *pmsg
	from              []pfrom
	ctx               *pctx // the context it is declared in, whose API serves its query
	// rowID is, for a key that is not unique, the row's own ID (the ID of
	// an aggregate that feeds it, a field of the row besides the key): rows
	// are keyed by it, so that each event's rule finds its row by the
	// record's key, and an index by the key (By<Key>) lists the rows of a
	// key a page at a time.
	rowID *pfield
	query *pquery // nil without an http hint
	// rows is the list field of the list query's response.
	rows string
	// custom: kept by hand; only the query is generated, answered by the
	// <ReadModel>Source set on ReadModels.
	custom bool
}

// pfrom is an event that feeds a read model.
type pfrom struct {
	ctx  *pctx
	agg  *pagg
	ev   *pmsg
	rule string // project<ReadModel><Event>
}

func readModelPlan(m *model.Model, pm *pmodel, c *model.Context, pc *pctx, r *model.ReadModel, bad func(model.Pos, string, ...any)) *preadmodel {
	g := exported(r.Name)
	pr := &preadmodel{name: r.Name, goName: g, doc: r.Doc, wire: pm.service + "-" + kebab(r.Name), rows: r.Rows, custom: r.Custom}
	if pr.rows == "" {
		pr.rows = "rows"
	}
	pr.row = &pmsg{name: r.Name, goName: g, doc: r.Doc}
	pr.row.fields = fields(pc, r.Fields, func(f *model.Field, err error) {
		bad(f.Pos, "read model %s, field %s: %v", r.Name, f.Name, err)
	})
	for _, f := range pr.row.fields {
		if f.typ.kind == kRef || f.typ.kind == kList && f.typ.elem.kind == kRef {
			// The row lives in package readmodels: qualify the context's type.
			f.typ = qualify(f.typ, pc.pkg)
		}
	}
	pr.key = pr.row.field(r.Key)
	if pr.key == nil {
		bad(r.Pos, "read model %s: its key %s is none of its fields", r.Name, r.Key)
		return nil
	}
	switch pr.key.typ.kind {
	case kString, kEnum:
		pr.keyType, pr.keyCodec = "string", "projection.StringKey()"
	case kInt64, kDecimal:
		pr.keyType, pr.keyCodec = "int64", "projection.Int64Key()"
	default:
		// Rows are keyed by the key's string form, which the rules choose
		// (an RFC 3339 time in UTC sorts in time order).
		pr.keyType, pr.keyCodec = "string", "projection.StringKey()"
	}
	seen := map[string]bool{}
	for _, ref := range r.From {
		er, err := m.ResolveEvent(c, ref)
		if err != nil {
			bad(r.Pos, "read model %s: %v", r.Name, err)
			return nil
		}
		ec, ea := pm.lookup(er.Context, er.Aggregate)
		if ea == nil {
			return nil
		}
		ev := ea.event(er.Event.Name)
		if ev == nil || seen[ec.pkg+"."+ev.goName] {
			continue
		}
		seen[ec.pkg+"."+ev.goName] = true
		pr.from = append(pr.from, pfrom{ctx: ec, agg: ea, ev: ev, rule: "project" + g + exported(ec.name) + ev.goName})
	}
	if len(pr.from) == 0 {
		bad(r.Pos, "read model %s: fed by no event", r.Name)
		return nil
	}
	pr.ctx = pc
	if pr.key.typ.kind == kString || pr.key.typ.kind == kEnum {
		unique := false
		for _, f := range pr.from {
			unique = unique || f.agg.id == pr.key.name
		}
		for _, f := range pr.from {
			if id := pr.row.field(f.agg.id); !unique && id != nil && id.typ.kind == kString && pr.rowID == nil {
				pr.rowID = id
			}
		}
	}
	if r.HTTP != nil {
		q, err := queryPlan(pr, r.HTTP.Method, r.HTTP.Path)
		if err != nil {
			bad(r.HTTP.Pos, "read model %s: %v", r.Name, err)
			return nil
		}
		for _, t := range pc.types {
			if t.goName == pr.goName {
				bad(r.Pos, "read model %s: its message %s is also a type of context %s: rename one", r.Name, pr.goName, pc.name)
				return nil
			}
		}
		pr.query = q
	}
	return pr
}

// qualify returns t with its references to the context's types qualified
// by the context's package.
func qualify(t *gtype, pkg string) *gtype {
	switch t.kind {
	case kList:
		return &gtype{kind: kList, elem: qualify(t.elem, pkg)}
	case kRef:
		return &gtype{kind: kRef, ref: pkg + "." + exported(t.ref)}
	}
	return t
}

// readModelPkgs returns the context packages the read models use, sorted.
func readModelPkgs(pm *pmodel) []string {
	pkgs := map[string]bool{}
	for _, r := range pm.readModels {
		if r.custom {
			// No projection: its events are read by the hand-written
			// source. Its row's types are still used.
		} else {
			for _, f := range r.from {
				pkgs[f.ctx.pkg] = true
			}
		}
		for _, f := range r.row.fields {
			if t := f.typ; t.kind == kRef || t.kind == kList && t.elem.kind == kRef {
				ref := t.ref
				if t.kind == kList {
					ref = t.elem.ref
				}
				pkgs[strings.SplitN(ref, ".", 2)[0]] = true
			}
		}
	}
	var out []string
	for p := range pkgs {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// readModelsGen returns the generated readmodels package, or nil.
func readModelsGen(pm *pmodel, module string) ([]byte, error) {
	if len(pm.readModels) == 0 {
		return nil, nil
	}
	var w writer
	w.p("%s", header(pm.file))
	w.p("")
	w.p("// Package readmodels holds the read models of the %s model: each a", pm.name)
	w.p("// projection (package projection) into a typed table of its rows, whose")
	w.p("// events are applied by the rules of rules.go, written by hand.")
	w.p("package readmodels")
	w.p("")
	usesTime := false
	for _, r := range pm.readModels {
		for _, f := range r.row.fields {
			usesTime = usesTime || f.typ.usesTime()
		}
	}
	w.p("import (")
	w.p("\t\"context\"")
	w.p("\t\"errors\"")
	w.p("\t\"sync\"")
	if usesTime {
		w.p("\t\"time\"")
	}
	w.p("")
	w.p("\t\"github.com/muninn-es/muninn/codec\"")
	w.p("\t\"github.com/muninn-es/muninn/eventstore\"")
	w.p("\t\"github.com/muninn-es/muninn/projection\"")
	w.p("")
	for _, p := range readModelPkgs(pm) {
		w.p("\t%q", module+"/"+p)
	}
	w.p(")")
	w.p("")
	w.p("// ErrRuleNotWritten is matched (errors.Is) by the errors the stubs of")
	w.p("// rules.go record.")
	w.p("var ErrRuleNotWritten = errors.New(\"readmodels: rule not written yet\")")
	w.p("")
	w.p("// stubsRun records the stubs of rules.go that ran, by function name.")
	w.p("var stubsRun sync.Map")
	w.p("")
	w.p("type ruleError struct{ rule, fn string }")
	w.p("")
	w.p("func (e *ruleError) Error() string {")
	w.p("\treturn \"rule \" + e.rule + \" is not written yet: fill in \" + e.fn + \" in readmodels/rules.go\"")
	w.p("}")
	w.p("")
	w.p("func (e *ruleError) Is(target error) bool { return target == ErrRuleNotWritten }")
	w.p("")
	w.p("// notWritten records that the stub fn of rule ran and returns its error.")
	w.p("func notWritten(rule, fn string) error {")
	w.p("\terr := &ruleError{rule: rule, fn: fn}")
	w.p("\tstubsRun.Store(fn, err)")
	w.p("\treturn err")
	w.p("}")
	w.p("")
	w.p("// ReadModels are the read models of the model, each with its projection")
	w.p("// and table; a custom one (kept by hand) is the source its query asks,")
	w.p("// which the service sets after Open.")
	w.p("type ReadModels struct {")
	for _, r := range pm.readModels {
		if r.custom {
			w.p("\t%s %sSource", r.goName, r.goName)
			continue
		}
		w.p("\t%s *%sTable", r.goName, r.goName)
	}
	w.p("}")
	w.p("")
	w.p("// Open returns every read model over store but the custom ones; opts are")
	w.p("// their projections'.")
	w.p("func Open(store eventstore.Store, opts ...projection.Option) (*ReadModels, error) {")
	w.p("\trm := &ReadModels{}")
	n := 0
	for _, r := range pm.readModels {
		if !r.custom {
			n++
		}
	}
	if n > 0 {
		w.p("\tvar err error")
	}
	for _, r := range pm.readModels {
		if r.custom {
			continue
		}
		w.p("\tif rm.%s, err = New%s(store, opts...); err != nil {", r.goName, r.goName)
		w.p("\t\treturn nil, err")
		w.p("\t}")
	}
	w.p("\treturn rm, nil")
	w.p("}")
	w.p("")
	w.p("// Projections returns the projection of every read model, for a service")
	w.p("// that runs them all.")
	w.p("func (rm *ReadModels) Projections() []*projection.Projection {")
	var ps []string
	for _, r := range pm.readModels {
		if !r.custom {
			ps = append(ps, "rm."+r.goName+".Projection")
		}
	}
	w.p("\treturn []*projection.Projection{%s}", strings.Join(ps, ", "))
	w.p("}")
	w.p("")
	w.p("// All returns the projection of every read model, for a service that")
	w.p("// runs them all.")
	w.p("func All(store eventstore.Store, opts ...projection.Option) ([]*projection.Projection, error) {")
	w.p("\trm, err := Open(store, opts...)")
	w.p("\tif err != nil {")
	w.p("\t\treturn nil, err")
	w.p("\t}")
	w.p("\treturn rm.Projections(), nil")
	w.p("}")
	w.p("")
	for _, r := range pm.readModels {
		w.doc(docFor(r.goName, r.doc, "is a row of a read model."))
		switch {
		case r.custom:
			w.doc(fmt.Sprintf("It is kept by hand (custom in the model): its query asks ReadModels.%s, a %sSource.", r.goName, r.goName))
		case r.rowID != nil:
			w.doc(fmt.Sprintf("Rows are keyed by %s; a %s has many, listed by the index By%s.", r.rowID.name, r.key.name, r.key.goName))
		default:
			w.doc(fmt.Sprintf("Rows are keyed by %s.", r.key.name))
		}
		w.structType(r.row, true)
		if r.custom {
			continue
		}
		T := r.goName + "Table"
		keyType := r.keyType
		if r.rowID != nil {
			keyType = "string"
		}
		w.p("// %sProjection is the name of the %s read model's projection.", r.goName, r.goName)
		w.p("const %sProjection = %q", r.goName, r.wire)
		w.p("")
		w.p("// %s is the %s read model: Projection runs it (into Table); Get", T, r.goName)
		w.p("// answers queries.")
		w.p("type %s struct {", T)
		w.p("\tProjection *projection.Projection")
		w.p("\tTable      *projection.Table[%s, %s]", keyType, r.goName)
		if r.rowID != nil {
			w.p("\t// By%s indexes the rows by %s.", r.key.goName, r.key.name)
			w.p("\tBy%s *projection.Index[string, %s, string]", r.key.goName, r.goName)
		}
		w.p("}")
		w.p("")
		var topics []string
		seenTopic := map[string]bool{}
		for _, f := range r.from {
			t := f.ctx.pkg + "." + f.agg.topicConst
			if !seenTopic[t] {
				seenTopic[t] = true
				topics = append(topics, t)
			}
		}
		w.p("// New%s returns the %s read model over store, the projection %q", r.goName, r.goName, r.wire)
		w.p("// fed by %s. opts are the projection's.", strings.Join(topics, ", "))
		w.p("func New%s(store eventstore.Store, opts ...projection.Option) (*%s, error) {", r.goName, T)
		codecExpr := r.keyCodec
		if r.rowID != nil {
			codecExpr = "projection.StringKey()"
		}
		w.p("\ttable, err := projection.NewTable(%q, %s, codec.JSON[%s]())", kebab(r.name), codecExpr, r.goName)
		w.p("\tif err != nil {")
		w.p("\t\treturn nil, err")
		w.p("\t}")
		if r.rowID != nil {
			w.p("\tby%s, err := projection.NewIndex(table, %q, projection.StringKey(), func(_ string, v %s) []string { return []string{v.%s} })", r.key.goName, "by-"+kebab(r.key.goName), r.goName, r.key.goName)
			w.p("\tif err != nil {")
			w.p("\t\treturn nil, err")
			w.p("\t}")
		}
		w.p("\tr := projection.NewRouter()")
		regs := map[string]string{}
		var regOrder []string
		for _, f := range r.from {
			k := f.ctx.pkg + "." + f.agg.eventsFunc
			if _, ok := regs[k]; !ok {
				v := unexported(f.ctx.pkg + f.agg.name + "Events")
				regs[k] = v
				regOrder = append(regOrder, k)
				w.p("\t%s, err := %s()", v, k)
				w.p("\tif err != nil {")
				w.p("\t\treturn nil, err")
				w.p("\t}")
			}
		}
		w.p("\terr = errors.Join(")
		for _, f := range r.from {
			w.p("\t\tprojection.On(r, %s, func(tx *projection.Tx, rec eventstore.Record, e %s.%s) error {", regs[f.ctx.pkg+"."+f.agg.eventsFunc], f.ctx.pkg, f.ev.goName)
			w.p("\t\t\treturn %s(tx, table, rec, e)", f.rule)
			w.p("\t\t}),")
		}
		w.p("\t)")
		w.p("\tif err != nil {")
		w.p("\t\treturn nil, err")
		w.p("\t}")
		w.p("\topts = append([]projection.Option{projection.WithTables(table)}, opts...)")
		w.p("\tp, err := projection.New(store, %sProjection, []string{%s}, r, opts...)", r.goName, strings.Join(topics, ", "))
		w.p("\tif err != nil {")
		w.p("\t\treturn nil, err")
		w.p("\t}")
		if r.rowID != nil {
			w.p("\treturn &%s{Projection: p, Table: table, By%s: by%s}, nil", T, r.key.goName, r.key.goName)
		} else {
			w.p("\treturn &%s{Projection: p, Table: table}, nil", T)
		}
		w.p("}")
		w.p("")
		w.p("// Get returns the row of key, and false if there is none.")
		w.p("func (m *%s) Get(ctx context.Context, key %s, opts ...projection.QueryOption) (%s, bool, error) {", T, keyType, r.goName)
		w.p("\treturn m.Table.Get(ctx, key, opts...)")
		w.p("}")
		w.p("")
		_ = regOrder
	}
	return source("readmodels/readmodels_gen.go", w.Bytes())
}

// readModelsRules returns readmodels/rules.go as first written: a stub per
// event of each read model.
func readModelsRules(pm *pmodel, module string) ([]byte, error) {
	if len(pm.readModels) == 0 {
		return nil, nil
	}
	var w writer
	w.p("// The rules of the read models: written by hand, and never overwritten")
	w.p("// by muninn gen go, which wrote these stubs once. Each applies an event")
	w.p("// to its table (Load, Put, Delete in tx).")
	w.p("")
	w.p("package readmodels")
	w.p("")
	w.p("import (")
	w.p("\t\"github.com/muninn-es/muninn/eventstore\"")
	w.p("\t\"github.com/muninn-es/muninn/projection\"")
	w.p("")
	pkgs := map[string]bool{}
	for _, r := range pm.readModels {
		if r.custom {
			continue
		}
		for _, f := range r.from {
			pkgs[f.ctx.pkg] = true
		}
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
	for _, r := range pm.readModels {
		if r.custom {
			continue
		}
		for _, f := range r.from {
			w.p("// %s applies %s.%s to the %s table.", f.rule, f.ctx.pkg, f.ev.goName, r.goName)
			w.p("func %s(tx *projection.Tx, t *projection.Table[%s, %s], rec eventstore.Record, e %s.%s) error {", f.rule, r.keyType, r.goName, f.ctx.pkg, f.ev.goName)
			w.p("\t_ = notWritten(%q, %q)", r.goName+"."+f.ev.goName, f.rule)
			w.p("\treturn nil")
			w.p("}")
			w.p("")
		}
	}
	return source("readmodels/rules.go", w.Bytes())
}
