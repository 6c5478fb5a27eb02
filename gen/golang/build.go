package golang

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/muninn-es/muninn/gen/model"
)

// build translates m into the plan. It fails, naming the element, on what
// Validate would report and the generator cannot get past (an unknown
// type, a scenario naming an unknown command or field).
func build(m *model.Model) (*pmodel, error) {
	file := "eventmodel.yaml"
	if m.Pos.File != "" {
		file = filepath.Base(m.Pos.File)
	}
	pm := &pmodel{name: m.Name, file: file}
	service := lower(m.Name)
	if service == "" {
		service = "app"
	}
	pm.service = service
	var errs []string
	bad := func(pos model.Pos, format string, args ...any) {
		errs = append(errs, pos.String()+": "+fmt.Sprintf(format, args...))
	}
	pkgs := map[string]bool{}
	for _, c := range m.Contexts {
		pc := &pctx{name: c.Name, pkg: lower(c.Name), doc: c.Doc, service: service}
		if pc.pkg == "" || !model.IsIdent(pc.pkg) {
			bad(c.Pos, "context %q: no Go package name can be made of it", c.Name)
			continue
		}
		if pkgs[pc.pkg] {
			bad(c.Pos, "context %q: a second context whose Go package is %s", c.Name, pc.pkg)
			continue
		}
		pkgs[pc.pkg] = true
		for _, t := range c.Types {
			pc.types = append(pc.types, &pmsg{name: t.Name, goName: exported(t.Name), doc: t.Doc})
		}
		// Fields after every type is known, so that references resolve.
		for i, t := range c.Types {
			pc.types[i].fields = fields(pc, t.Fields, func(f *model.Field, err error) {
				bad(f.Pos, "type %s, field %s: %v", t.Name, f.Name, err)
			})
		}
		for _, a := range c.Aggregates {
			pc.aggs = append(pc.aggs, aggregatePlan(pc, a, len(c.Aggregates) == 1, m.Topic(c), c.Topic != "", bad))
		}
		if isKeyword(pc.pkg) || pc.pkg == "main" {
			bad(c.Pos, "context %q: its Go package would be %s, which Go does not allow", c.Name, pc.pkg)
			continue
		}
		checkNames(pc, c, bad)
		pm.contexts = append(pm.contexts, pc)
	}
	// Scenarios after every aggregate of the context is planned.
	for i, c := range m.Contexts {
		if i >= len(pm.contexts) || pm.contexts[i].name != c.Name {
			continue
		}
		pc := pm.contexts[i]
		for j, a := range c.Aggregates {
			pa := pc.aggs[j]
			for _, s := range a.Scenarios {
				if ps := scenarioPlan(pc, pa, a, s, bad); ps != nil {
					pa.scenarios = append(pa.scenarios, ps)
				}
			}
		}
	}
	if len(errs) == 0 {
		rmNames := map[string]string{}
		for _, c := range m.Contexts {
			for _, p := range c.Policies {
				if pp := policyPlan(m, pm, c, p, bad); pp != nil {
					pm.policies = append(pm.policies, pp)
				}
			}
			for _, sg := range c.Sagas {
				if ps := sagaPlan(m, pm, c, sg, bad); ps != nil {
					pm.sagas = append(pm.sagas, ps)
				}
			}
			pc, _ := pm.lookupCtx(c)
			for _, r := range c.ReadModels {
				pr := readModelPlan(m, pm, c, pc, r, bad)
				if pr == nil {
					continue
				}
				if prev := rmNames[pr.goName]; prev != "" {
					bad(r.Pos, "read model %s: its Go name %s is also read model %s's (read models share package readmodels)", r.Name, pr.goName, prev)
					continue
				}
				rmNames[pr.goName] = c.Name + "." + r.Name
				pm.readModels = append(pm.readModels, pr)
			}
		}
	}
	if len(errs) == 0 {
		for _, sg := range m.Sagas {
			if ps := sagaPlan(m, pm, nil, sg, bad); ps != nil {
				pm.sagas = append(pm.sagas, ps)
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("golang: the model cannot be generated:\n\t%s", strings.Join(errs, "\n\t"))
	}
	return pm, nil
}

// fields plans a field list; a field whose type is malformed or unknown is
// reported to bad and left out.
func fields(pc *pctx, l model.FieldList, bad func(*model.Field, error)) []*pfield {
	var out []*pfield
	for _, f := range l {
		if f.Type == nil {
			_, err := model.ParseType(f.Spec)
			bad(f, err)
			continue
		}
		t, err := fromModel(f.Type)
		if err == nil {
			err = checkRefs(pc, t)
		}
		if err != nil {
			bad(f, err)
			continue
		}
		out = append(out, &pfield{name: f.Name, goName: exported(f.Name), typ: t, doc: f.Doc})
	}
	return out
}

func checkRefs(pc *pctx, t *gtype) error {
	switch t.kind {
	case kList:
		return checkRefs(pc, t.elem)
	case kRef:
		if pc.typ(t.ref) == nil {
			return fmt.Errorf("unknown type %s: declare it in the context's types", t.ref)
		}
	}
	return nil
}

func aggregatePlan(pc *pctx, a *model.Aggregate, only bool, ctxTopic string, topicSet bool, bad func(model.Pos, string, ...any)) *pagg {
	g := exported(a.Name)
	pa := &pagg{name: a.Name, goName: g, doc: a.Doc, id: a.ID}
	if only {
		pa.topicConst, pa.commandIface, pa.eventIface = "Topic", "Command", "Event"
		pa.eventsFunc, pa.newFunc, pa.deciderFunc = "Events", "New", "Decider"
	} else {
		pa.topicConst, pa.commandIface, pa.eventIface = g+"Topic", g+"Command", g+"Event"
		pa.eventsFunc, pa.newFunc, pa.deciderFunc = g+"Events", "New"+g, g+"Decider"
	}
	pa.initialFunc, pa.decideFunc, pa.evolveFunc = "initial"+g, "decide"+g, "evolve"+g
	// The topic of a context's only aggregate is the context's topic when
	// the model names one; otherwise every aggregate has its own,
	// "<model>.<aggregates>", as Kafka topics are usually named. An
	// aggregate's own topic comes first.
	switch {
	case a.Topic != "":
		pa.topic = a.Topic
	case only && topicSet:
		pa.topic = ctxTopic
	default:
		pa.topic = pc.service + "." + plural(kebab(a.Name))
	}
	prefix := pc.service + "." + kebab(a.Name) + "."
	aggWord := strings.ToLower(a.Name)
	for _, c := range a.Commands {
		cm := &pmsg{name: c.Name, goName: exported(c.Name), doc: c.Doc, emits: c.Emits}
		cm.fields = fields(pc, c.Fields, func(f *model.Field, err error) {
			bad(f.Pos, "command %s, field %s: %v", c.Name, f.Name, err)
		})
		// The command's name without the aggregate's: PlaceOrder of Order
		// is "<model>.order.place", MarkPaid "<model>.order.mark-paid".
		var ws []string
		all := words(c.Name)
		for _, w := range all {
			if len(all) > 1 && strings.ToLower(w) == aggWord {
				continue
			}
			ws = append(ws, strings.ToLower(w))
		}
		cm.wire = prefix + strings.Join(ws, "-")
		cm.rule = "decide" + cm.goName
		if c.HTTP != nil && c.HTTP.Method != "" {
			if err := checkRoute(pa, cm, c.HTTP.Method, c.HTTP.Path); err != nil {
				bad(c.HTTP.Pos, "command %s: %v", c.Name, err)
			} else {
				cm.route = &proute{method: c.HTTP.Method, path: c.HTTP.Path}
			}
		}
		pa.commands = append(pa.commands, cm)
	}
	for _, e := range a.Events {
		em := &pmsg{name: e.Name, goName: exported(e.Name), doc: e.Doc, version: e.SchemaVersion()}
		em.fields = fields(pc, e.Fields, func(f *model.Field, err error) {
			bad(f.Pos, "event %s, field %s: %v", e.Name, f.Name, err)
		})
		em.wire = prefix + kebab(e.Name)
		em.rule = "evolve" + em.goName
		pa.events = append(pa.events, em)
	}
	return pa
}

// errorKinds maps an error code of the model to the command.Kind the
// scenario test expects.
var errorKinds = map[string]string{
	"invalid_argument":    "command.KindInvalidArgument",
	"failed_precondition": "command.KindFailedPrecondition",
	"not_found":           "command.KindNotFound",
	"aborted":             "command.KindAborted",
	// There is no already-exists kind: a command the rules refuse because
	// its aggregate exists is a failed precondition.
	"already_exists":    "command.KindFailedPrecondition",
	"permission_denied": "command.KindPermissionDenied",
}

func errorKind(code string) (string, bool) {
	if code == "" {
		code = "failed_precondition"
	}
	k, ok := errorKinds[snake(code)]
	return k, ok
}

func scenarioPlan(pc *pctx, pa *pagg, a *model.Aggregate, s *model.Scenario, bad func(model.Pos, string, ...any)) *pscenario {
	ps := &pscenario{name: s.Name, goName: exported(s.Name)}
	if ps.goName == "" || !model.IsIdent(ps.goName) {
		bad(s.Pos, "scenario %q: no test name can be made of it (use letters, digits and spaces)", s.Name)
		return nil
	}
	ok := true
	instance := func(pos model.Pos, name string, fields map[string]any, find func(string) *pmsg, what string) pinstance {
		msg := find(name)
		if msg == nil {
			bad(pos, "scenario %q: %s %s is not one of aggregate %s's", s.Name, what, name, a.Name)
			ok = false
			return pinstance{}
		}
		if _, err := literal(pc, msg, fields); err != nil {
			bad(pos, "scenario %q: %s %s: %v", s.Name, what, name, err)
			ok = false
		}
		return pinstance{msg: msg, fields: fields}
	}
	for _, g := range s.Given {
		ps.given = append(ps.given, instance(g.Pos, g.Event, g.Fields, pa.event, "event"))
	}
	if s.When == nil {
		bad(s.Pos, "scenario %q: no when", s.Name)
		return nil
	}
	ps.when = instance(s.When.Pos, s.When.Command, s.When.Fields, pa.command, "command")
	for _, t := range s.Then {
		ps.then = append(ps.then, instance(t.Pos, t.Event, t.Fields, pa.event, "event"))
	}
	if s.Error != "" {
		code := s.Error
		if e := a.Error(s.Error); e != nil {
			code = e.Code
		}
		k, known := errorKind(code)
		if !known {
			bad(s.Pos, "scenario %q: error %s is neither an error of aggregate %s nor a code (invalid_argument, failed_precondition, not_found, already_exists, aborted)", s.Name, s.Error, a.Name)
			return nil
		}
		ps.err = s.Error
		ps.errKind = k
	}
	if !ok {
		return nil
	}
	return ps
}

// validTimestamp checks a scenario's timestamp value.
func validTimestamp(s string) error {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err
}

// generatedNames are the package-level names the generated files of every
// context declare besides the model's.
var generatedNames = []string{"ErrRuleNotWritten", "stubsRun", "ruleError", "notWritten",
	"Server", "NewServer", "RegisterGateway", "newID", "convertList", "waitingFor", "mustTime"}

// checkNames reports the model's elements whose Go names would collide in
// their context's package (a type and a command of the same name, two
// fields that are both CustomerID), which would not compile.
func checkNames(pc *pctx, c *model.Context, bad func(model.Pos, string, ...any)) {
	seen := map[string]string{}
	for _, n := range generatedNames {
		seen[n] = "a name the generator declares"
	}
	declare := func(pos model.Pos, goName, what string) {
		if prev, ok := seen[goName]; ok {
			bad(pos, "%s: its Go name %s is also %s", what, goName, prev)
			return
		}
		seen[goName] = what
	}
	fieldsOf := func(pos model.Pos, what string, fs []*pfield) {
		names := map[string]string{}
		for _, f := range fs {
			if prev, ok := names[f.goName]; ok {
				bad(pos, "%s: fields %s and %s are both %s in Go", what, prev, f.name, f.goName)
			}
			names[f.goName] = f.name
		}
	}
	for i, t := range pc.types {
		what := "type " + t.name
		declare(c.Types[i].Pos, t.goName, what)
		fieldsOf(c.Types[i].Pos, what, t.fields)
	}
	for i, a := range pc.aggs {
		ma := c.Aggregates[i]
		what := "aggregate " + a.name
		for _, n := range []string{a.goName, a.topicConst, a.commandIface, a.eventIface, a.eventsFunc, a.newFunc,
			a.deciderFunc, a.initialFunc, a.decideFunc, a.evolveFunc} {
			declare(ma.Pos, n, what)
		}
		for j, cmd := range a.commands {
			what := "command " + cmd.name
			declare(ma.Commands[j].Pos, cmd.goName, what)
			declare(ma.Commands[j].Pos, cmd.rule, what+"'s rule")
			fieldsOf(ma.Commands[j].Pos, what, cmd.fields)
		}
		for j, ev := range a.events {
			what := "event " + ev.name
			declare(ma.Events[j].Pos, ev.goName, what)
			declare(ma.Events[j].Pos, ev.rule, what+"'s rule")
			fieldsOf(ma.Events[j].Pos, what, ev.fields)
		}
	}
}
