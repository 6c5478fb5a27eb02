package golang

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/muninn-es/muninn/gen/model"
)

// Sagas: a package per saga (dir/<saga>/), since a saga spans contexts
// and imports each of them, as policies do. What the model says is
// generated (<saga>_gen.go): the correlation, the routing of every event
// to its commands with their field mapping, the timeout's deadline and
// command, the end events and the compensations; the rules are hooks
// written once in hooks.go.

// psaga is one saga of the model.
type psaga struct {
	name, goName, doc string
	pkg               string
	wire              string // the saga's (consumer group's) name
	corr              string // the correlation field as the model spells it
	corrGo            string
	timeout           time.Duration
	timeoutSend       *psend       // the timeout's command, nil without a timeout
	reactions         []*preaction // the start first, then in the model's order, then the ends without a reaction
	sends             []*psend     // every command the saga sends, once each, for its helpers and declarations
	comps             []*psend     // the compensation commands, declared too
	ctxs              []*pctx      // the contexts it imports
	aggs              []*pagg      // the aggregates whose events it reads
	failReason        string       // the compensations' literal reason
	timeoutName       string       // the deadline's name
}

// preaction is what the saga does on one event.
type preaction struct {
	ctx         *pctx
	agg         *pagg
	ev          *pmsg
	key         string // Go expression of the correlation key function
	start, end  bool
	compensates bool     // an end on which the saga fails, compensating
	sends       []*psend // sent by the generated code after the hook
	hooked      []*psend // sent by the hook: their aggregate's ID is not derivable
	hook        string   // the hook's name
}

// psend is a command sent by a step.
type psend struct {
	ctx    *pctx
	agg    *pagg
	cmd    *pmsg
	key    string   // Go expression of the target aggregate ID, "" when the hook must say
	fields []string // Go field initialisers
	comp   *psend   // the compensation, if the model has one
	helper string   // send<Command>
	param  string   // its variable in a step
}

func (s *psend) typ() string { return s.ctx.pkg + "." + s.cmd.goName }

// sagaPlan resolves a saga of the model (c is its context, nil for a
// saga of the whole model).
func sagaPlan(m *model.Model, pm *pmodel, c *model.Context, s *model.Saga, bad func(model.Pos, string, ...any)) *psaga {
	ps := &psaga{name: s.Name, goName: exported(s.Name), doc: s.Doc, pkg: lower(s.Name),
		wire: pm.service + "-" + kebab(s.Name), corr: s.CorrelateBy, corrGo: exported(s.CorrelateBy),
		failReason: strings.ToLower(s.Name) + " failed"}
	for _, pc := range pm.contexts {
		if pc.pkg == ps.pkg {
			bad(s.Pos, "saga %s: its package %s is also context %s's: rename one", s.Name, ps.pkg, pc.name)
			return nil
		}
	}
	ok := true
	ctxSeen, aggSeen := map[*pctx]bool{}, map[*pagg]bool{}
	useCtx := func(pc *pctx) {
		if !ctxSeen[pc] {
			ctxSeen[pc] = true
			ps.ctxs = append(ps.ctxs, pc)
		}
	}
	event := func(ref string) (*pctx, *pagg, *pmsg) {
		er, err := m.ResolveEvent(c, ref)
		if err != nil {
			bad(s.Pos, "saga %s: %v", s.Name, err)
			ok = false
			return nil, nil, nil
		}
		pc, pa := pm.lookup(er.Context, er.Aggregate)
		if pa == nil || pa.event(er.Event.Name) == nil {
			ok = false
			return nil, nil, nil
		}
		useCtx(pc)
		if !aggSeen[pa] {
			aggSeen[pa] = true
			ps.aggs = append(ps.aggs, pa)
		}
		return pc, pa, pa.event(er.Event.Name)
	}
	reactionOf := map[*pmsg]*preaction{}
	react := func(ref string) *preaction {
		pc, pa, ev := event(ref)
		if ev == nil {
			return nil
		}
		if r := reactionOf[ev]; r != nil {
			return r
		}
		r := &preaction{ctx: pc, agg: pa, ev: ev, hook: "on" + pa.goName + ev.goName}
		switch f := ev.field(s.CorrelateBy); {
		case pa.id == s.CorrelateBy:
			r.key = "saga.RecordKey[" + pc.pkg + "." + ev.goName + "]"
		case f != nil && f.typ.kind == kString:
			r.key = fmt.Sprintf("func(_ eventstore.Record, e %s.%s) string { return e.%s }", pc.pkg, ev.goName, f.goName)
		default:
			bad(s.Pos, "saga %s: event %s has no string field %s to correlate by", s.Name, ev.name, s.CorrelateBy)
			ok = false
			return nil
		}
		reactionOf[ev] = r
		ps.reactions = append(ps.reactions, r)
		return r
	}
	cmdOf := map[*pmsg]*psend{}
	command := func(ref string, pos model.Pos) *psend {
		cr, err := m.ResolveCommand(c, ref)
		if err != nil {
			bad(pos, "saga %s: %v", s.Name, err)
			ok = false
			return nil
		}
		pc, pa := pm.lookup(cr.Context, cr.Aggregate)
		if pa == nil || pa.command(cr.Command.Name) == nil {
			ok = false
			return nil
		}
		useCtx(pc)
		return &psend{ctx: pc, agg: pa, cmd: pa.command(cr.Command.Name)}
	}
	// declare records the first send of a command type, which names its
	// helper.
	declare := func(snd *psend) *psend {
		if d := cmdOf[snd.cmd]; d != nil {
			return d
		}
		cmdOf[snd.cmd] = snd
		ps.sends = append(ps.sends, snd)
		return snd
	}
	start := react(s.StartsOn)
	if start != nil {
		start.start = true
	}
	ends := map[string]bool{}
	for _, e := range s.EndsOn {
		ends[e] = true
	}
	isEnd := func(ref string) bool {
		if ends[ref] {
			return true
		}
		for e := range ends {
			if _, name := splitRef(e); name == ref || e == ref {
				return true
			}
			if _, name := splitRef(ref); name == e {
				return true
			}
		}
		return false
	}
	// The compensations: the commands of a reaction to an end event that
	// go to an aggregate an earlier, forward step commanded. Forward steps
	// first, so that the pairing does not depend on the model's order.
	forward := map[*pagg]*psend{}
	var endReactions []*model.Reaction
	for _, re := range s.ReactsTo {
		if isEnd(re.On) {
			endReactions = append(endReactions, re)
			continue
		}
		r := react(re.On)
		if r == nil {
			continue
		}
		for _, t := range re.Then {
			snd := command(t, re.Pos)
			if snd == nil {
				continue
			}
			if !sagaSend(ps, r, snd, re.Map, s.CorrelateBy, bad, re.Pos) {
				ok = false
				continue
			}
			d := declare(snd)
			snd.helper, snd.param = d.helperName(ps), unexported(snd.cmd.goName)
			if forward[snd.agg] == nil {
				forward[snd.agg] = d
			}
			if snd.key == "" {
				r.hooked = append(r.hooked, snd)
			} else {
				r.sends = append(r.sends, snd)
			}
		}
	}
	for _, re := range endReactions {
		r := react(re.On)
		if r == nil {
			continue
		}
		r.end = true
		var comps, plain []*psend
		for _, t := range re.Then {
			snd := command(t, re.Pos)
			if snd == nil {
				continue
			}
			if f := forward[snd.agg]; f != nil && f.cmd != snd.cmd {
				if f.comp != nil && f.comp.cmd != snd.cmd {
					bad(re.Pos, "saga %s: %s and %s would both compensate %s", s.Name, f.comp.cmd.name, snd.cmd.name, f.cmd.name)
					ok = false
					continue
				}
				snd.fields = compFields(f.cmd, snd.cmd, ps.failReason)
				f.comp = snd
				comps = append(comps, snd)
				continue
			}
			plain = append(plain, snd)
		}
		switch {
		case len(comps) > 0 && len(plain) > 0:
			bad(re.Pos, "saga %s: the reaction on %s mixes compensations (%s) with commands that compensate nothing (%s)", s.Name, re.On, sendNames(comps), sendNames(plain))
			ok = false
		case len(comps) > 0:
			r.compensates = true
			ps.comps = append(ps.comps, comps...)
		}
		for _, snd := range plain {
			if !sagaSend(ps, r, snd, re.Map, s.CorrelateBy, bad, re.Pos) {
				ok = false
				continue
			}
			d := declare(snd)
			snd.helper, snd.param = d.helperName(ps), unexported(snd.cmd.goName)
			if snd.key == "" {
				r.hooked = append(r.hooked, snd)
			} else {
				r.sends = append(r.sends, snd)
			}
		}
	}
	for _, e := range s.EndsOn {
		if r := react(e); r != nil {
			r.end = true
		}
	}
	if t := s.Timeout; t != nil && ok {
		snd := command(t.Then, t.Pos)
		if snd == nil {
			return nil
		}
		if snd.agg.id == s.CorrelateBy {
			snd.key = "s.Key()"
		}
		d := declare(snd)
		snd.helper, snd.param = d.helperName(ps), unexported(snd.cmd.goName)
		ps.timeout, ps.timeoutSend, ps.timeoutName = t.After, snd, t.Name
		if ps.timeoutName == "" {
			ps.timeoutName = "timeout"
		}
	}
	if !ok {
		return nil
	}
	return ps
}

// helperName returns the name of the send helper of a command type:
// send<Command>, or send<Aggregate><Command> if another type of the saga
// has the same name.
func (s *psend) helperName(ps *psaga) string {
	for _, o := range ps.sends {
		if o != s && o.cmd.goName == s.cmd.goName {
			return "send" + s.agg.goName + s.cmd.goName
		}
	}
	return "send" + s.cmd.goName
}

// sagaSend plans the target and fields of a command sent on r's event.
func sagaSend(ps *psaga, r *preaction, snd *psend, mapping map[string]string, corr string, bad func(model.Pos, string, ...any), pos model.Pos) bool {
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
		if src == corr {
			if target != nil && target.typ.kind != kString {
				return "", fmt.Errorf("%s (the correlation key, a string) for %s, which is no string", src, target.name)
			}
			return "s.Key()", nil
		}
		f := r.ev.field(src)
		if f == nil {
			return "", fmt.Errorf("%s is no field of %s", src, r.ev.name)
		}
		if target != nil && f.typ.goType() != target.typ.goType() {
			return "", fmt.Errorf("%s of %s is a %s, %s of %s a %s", src, r.ev.name, f.typ.goType(), target.name, snd.cmd.name, target.typ.goType())
		}
		return "e." + f.goName, nil
	}
	ok := true
	id := snd.agg.id
	switch src, mapped := mapping[id]; {
	case mapped:
		k, err := source(nil, src)
		if err != nil {
			bad(pos, "saga %s: map %s: %v", ps.name, id, err)
			ok = false
		}
		snd.key = k
	case id == corr:
		snd.key = "s.Key()"
	case r.ev.field(id) != nil && r.ev.field(id).typ.kind == kString:
		snd.key = "e." + r.ev.field(id).goName
	}
	for _, f := range snd.cmd.fields {
		src, mapped := mapping[f.name]
		if !mapped {
			switch ef := r.ev.field(f.name); {
			case ef != nil && ef.typ.goType() == f.typ.goType():
				snd.fields = append(snd.fields, f.goName+": e."+ef.goName)
			case f.name == corr && f.typ.kind == kString:
				snd.fields = append(snd.fields, f.goName+": s.Key()")
			}
			continue
		}
		v, err := source(f, src)
		if err != nil {
			bad(pos, "saga %s: map %s: %v", ps.name, f.name, err)
			ok = false
			continue
		}
		snd.fields = append(snd.fields, f.goName+": "+v)
	}
	return ok
}

// compFields returns the field initialisers of the compensation comp of
// a command cmd (a variable c): the fields of the same name and type, and
// a reason.
func compFields(cmd, comp *pmsg, reason string) []string {
	var out []string
	for _, f := range comp.fields {
		switch cf := cmd.field(f.name); {
		case cf != nil && cf.typ.goType() == f.typ.goType():
			out = append(out, f.goName+": c."+cf.goName)
		case f.name == "reason" && f.typ.kind == kString:
			out = append(out, f.goName+": "+strconv.Quote(reason))
		}
	}
	return out
}

func sendNames(l []*psend) string {
	var s []string
	for _, x := range l {
		s = append(s, x.cmd.name)
	}
	return strings.Join(s, ", ")
}

// splitRef cuts "Context.Name" into its parts.
func splitRef(ref string) (string, string) {
	if i := strings.LastIndexByte(ref, '.'); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	return "", ref
}

// goDuration returns the Go expression of d.
func goDuration(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "time.Hour"}, {time.Minute, "time.Minute"}, {time.Second, "time.Second"}, {time.Millisecond, "time.Millisecond"}} {
		if d%u.d == 0 {
			return fmt.Sprintf("%d * %s", d/u.d, u.name)
		}
	}
	return fmt.Sprintf("%d", d)
}

// sagaImports returns the import block of a saga's file.
func sagaImports(w *writer, ctxs []*pctx, module string, std ...string) {
	w.p("import (")
	sort.Strings(std)
	for _, s := range std {
		w.p("\t%q", s)
	}
	w.p("")
	pkgs := []string{"github.com/muninn-es/muninn/saga"}
	for _, pc := range ctxs {
		pkgs = append(pkgs, module+"/"+pc.pkg)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		w.p("\t%q", p)
	}
	w.p(")")
	w.p("")
}

// sagaGen returns the generated file of a saga.
func sagaGen(pm *pmodel, ps *psaga, module string) ([]byte, error) {
	var w writer
	w.p("%s", header(pm.file))
	w.p("")
	w.p("package %s", ps.pkg)
	w.p("")
	var std []string
	if ps.timeoutSend != nil {
		std = append(std, "time")
	}
	for _, r := range ps.reactions {
		if strings.HasPrefix(r.key, "func(") {
			std = append(std, "github.com/muninn-es/muninn/eventstore")
			break
		}
	}
	sagaImports(&w, ps.ctxs, module, std...)
	w.doc(fmt.Sprintf("Name is the name of the %s saga, its consumer group.", ps.name))
	w.p("const Name = %q", ps.wire)
	w.p("")
	if ps.timeoutSend != nil {
		w.doc(fmt.Sprintf("DefaultTimeout is how long an instance may run before its deadline sends %s.%s (the model's timeout), unless Define is given another.", ps.timeoutSend.ctx.pkg, ps.timeoutSend.cmd.goName))
		w.p("const DefaultTimeout = %s", goDuration(ps.timeout))
		w.p("")
		w.doc("TimeoutName names an instance's deadline (Step.Cancel(TimeoutName) cancels it).")
		w.p("const TimeoutName = %q", ps.timeoutName)
		w.p("")
		w.doc("TimedOut is the message of an instance's deadline.")
		w.p("type TimedOut struct {")
		w.p("\t%s string `json:%q`", ps.corrGo, ps.corr)
		w.doc("After is the timeout the instance was started with.")
		w.p("\tAfter time.Duration `json:\"after\"`")
		w.p("}")
		w.p("")
	}
	w.doc(docFor("Define", "", "returns the definition of the "+ps.name+" saga, each instance keyed by "+ps.corr+":"))
	for _, r := range ps.reactions {
		var what []string
		switch {
		case r.start:
			what = append(what, "starts it")
		}
		for _, snd := range r.sends {
			what = append(what, "sends "+snd.typ()+" to "+strings.TrimPrefix(strings.TrimPrefix(snd.key, "e."), "s.Key()")+keyWord(snd))
		}
		for _, snd := range r.hooked {
			what = append(what, r.hook+" sends "+snd.typ())
		}
		if r.start && ps.timeoutSend != nil {
			what = append(what, "starts the timeout")
		}
		switch {
		case r.compensates:
			what = append(what, "fails it, compensating what was done, newest first")
		case r.end:
			what = append(what, "completes it")
		}
		w.p("//   - %s: %s;", r.ev.wire, strings.Join(what, ", "))
	}
	if ps.timeoutSend != nil {
		w.p("//   - the timeout: %s.", ps.timeoutSend.typ())
	}
	w.p("//")
	w.p("// Before a step sends its commands it calls its hook (hooks.go), which")
	w.p("// may change the state and the commands, or send those the model cannot")
	w.p("// address. When the saga fails (a compensating end event, a rejected")
	w.p("// command, a step's Fail) onFailure runs, before the compensations are")
	w.p("// sent.")
	params := ""
	if ps.timeoutSend != nil {
		w.p("// A timeout of 0 or less is DefaultTimeout.")
		params = "timeout time.Duration"
	}
	w.p("func Define(%s) *saga.Definition[State] {", params)
	if ps.timeoutSend != nil {
		w.p("\tif timeout <= 0 {")
		w.p("\t\ttimeout = DefaultTimeout")
		w.p("\t}")
	}
	var topics []string
	for _, pa := range ps.aggs {
		topics = append(topics, ctxOf(pm, pa).pkg+"."+pa.topicConst)
	}
	w.p("\td := saga.Define[State](Name, %s)", strings.Join(topics, ", "))
	for _, snd := range append(append([]*psend(nil), ps.sends...), ps.comps...) {
		w.p("\tsaga.Command[%s](d, %q)", snd.typ(), snd.cmd.wire)
	}
	w.p("\t// A registry fails only if its type list is wrong, and then so does")
	w.p("\t// the aggregate's definition, which the service builds first.")
	for _, pa := range ps.aggs {
		w.p("\tif events, err := %s.%s(); err == nil {", ctxOf(pm, pa).pkg, pa.eventsFunc)
		w.p("\t\tsaga.UseEvents(d, events)")
		w.p("\t}")
	}
	for _, r := range ps.reactions {
		fn := "On"
		if r.start {
			fn = "StartOn"
		}
		w.p("\tsaga.%s(d, %q, %s, func(s *saga.Step[State], e %s.%s) error {", fn, r.ev.wire, r.key, r.ctx.pkg, r.ev.goName)
		args := []string{"s", "e"}
		for _, snd := range r.sends {
			w.p("\t\t%s := %s{%s}", snd.param, snd.typ(), strings.Join(snd.fields, ", "))
			args = append(args, "&"+snd.param)
		}
		w.p("\t\tif err := %s(%s); err != nil {", r.hook, strings.Join(args, ", "))
		w.p("\t\t\treturn err")
		w.p("\t\t}")
		for _, snd := range r.sends {
			w.p("\t\t%s(s, %s, %s)", snd.helper, snd.key, snd.param)
		}
		if r.start && ps.timeoutSend != nil {
			w.p("\t\ts.Schedule(TimeoutName, s.Now().Add(timeout), TimedOut{%s: s.Key(), After: timeout})", ps.corrGo)
		}
		switch {
		case r.compensates:
			reason := strconv.Quote(r.ev.wire)
			if f := r.ev.field("reason"); f != nil && f.typ.kind == kString {
				reason = "e." + f.goName
			}
			w.p("\t\ts.Fail(%s)", reason)
		case r.end:
			w.p("\t\ts.Complete()")
		}
		w.p("\t\treturn nil")
		w.p("\t})")
	}
	if t := ps.timeoutSend; t != nil {
		w.p("\tsaga.OnTimeout(d, TimeoutName, func(s *saga.Step[State], m TimedOut) error {")
		args := []string{"s", "m"}
		if t.key != "" {
			w.p("\t\t%s := %s{}", t.param, t.typ())
			args = append(args, "&"+t.param)
		}
		w.p("\t\tif err := onTimeout(%s); err != nil {", strings.Join(args, ", "))
		w.p("\t\t\treturn err")
		w.p("\t\t}")
		if t.key != "" {
			w.p("\t\t%s(s, %s, %s)", t.helper, t.key, t.param)
		}
		w.p("\t\treturn nil")
		w.p("\t})")
	}
	w.p("\tsaga.OnFailure(d, onFailure)")
	w.p("\treturn d")
	w.p("}")
	w.p("")
	for _, snd := range ps.sends {
		if snd.comp != nil {
			w.doc(fmt.Sprintf("%s sends c to the %s key from a step, compensated by a %s if the saga fails.", snd.helper, snd.agg.name, snd.comp.typ()))
		} else {
			w.doc(fmt.Sprintf("%s sends c to the %s key from a step.", snd.helper, snd.agg.name))
		}
		w.p("func %s(s *saga.Step[State], key string, c %s) {", snd.helper, snd.typ())
		if snd.comp != nil {
			w.p("\ts.Send(key, c, saga.CompensateWith(key, %s{%s}))", snd.comp.typ(), strings.Join(snd.comp.fields, ", "))
		} else {
			w.p("\ts.Send(key, c)")
		}
		w.p("}")
		w.p("")
	}
	return source(ps.pkg+"/"+ps.pkg+"_gen.go", w.Bytes())
}

func keyWord(snd *psend) string {
	if snd.key == "s.Key()" {
		return "the instance's " + snd.agg.id
	}
	return " (" + snd.agg.id + ")"
}

// ctxOf returns the context of an aggregate of the plan.
func ctxOf(pm *pmodel, pa *pagg) *pctx {
	for _, pc := range pm.contexts {
		for _, a := range pc.aggs {
			if a == pa {
				return pc
			}
		}
	}
	return nil
}

// sagaHooks returns the hand-written part of a saga, written once: its
// state type and a hook per step.
func sagaHooks(pm *pmodel, ps *psaga, module string) ([]byte, error) {
	var w writer
	w.doc(fmt.Sprintf("Package %s is the %s saga: %s", ps.pkg, ps.name, sentence(strings.TrimSpace(ps.doc), "a workflow across contexts.")))
	w.p("//")
	w.p("// Its wiring is generated by muninn gen go (%s_gen.go) from the model;", ps.pkg)
	w.p("// its rules are the hooks of this file, written by hand.")
	w.p("package %s", ps.pkg)
	w.p("")
	var std []string
	hooked := ps.timeoutSend != nil && ps.timeoutSend.key == ""
	used := map[*pctx]bool{}
	for _, r := range ps.reactions {
		hooked = hooked || len(r.hooked) > 0
		used[r.ctx] = true
		for _, snd := range r.sends {
			used[snd.ctx] = true
		}
	}
	if t := ps.timeoutSend; t != nil && t.key != "" {
		used[t.ctx] = true
	}
	if hooked {
		std = append(std, "errors")
	}
	var ctxs []*pctx
	for _, pc := range ps.ctxs {
		if used[pc] {
			ctxs = append(ctxs, pc)
		}
	}
	sagaImports(&w, ctxs, module, std...)
	w.doc("State is the state of one instance, kept by the saga between steps (as JSON).")
	w.p("type State struct {")
	w.p("\t%s string `json:%q`", ps.corrGo, ps.corr)
	w.p("}")
	w.p("")
	for _, r := range ps.reactions {
		w.doc(fmt.Sprintf("%s is the rule of the step on %s.", r.hook, r.ev.wire))
		params := []string{"s *saga.Step[State]", "e " + r.ctx.pkg + "." + r.ev.goName}
		for _, snd := range r.sends {
			params = append(params, snd.param+" *"+snd.typ())
		}
		w.p("func %s(%s) error {", r.hook, strings.Join(params, ", "))
		if r.start {
			w.p("\ts.State.%s = s.Key()", ps.corrGo)
		}
		if len(r.hooked) > 0 {
			var what []string
			for _, snd := range r.hooked {
				what = append(what, fmt.Sprintf("%s with %s (which %s?)", snd.typ(), snd.helper, snd.agg.id))
			}
			w.p("\treturn errors.New(%q)", fmt.Sprintf("rule %s.%s is not written yet: fill in %s in %s/hooks.go to send %s", ps.name, r.ev.name, r.hook, ps.pkg, strings.Join(what, ", ")))
		} else {
			w.p("\treturn nil")
		}
		w.p("}")
		w.p("")
	}
	if t := ps.timeoutSend; t != nil {
		w.doc(fmt.Sprintf("onTimeout is the rule of the step on the deadline, before %s is sent.", t.typ()))
		params := []string{"s *saga.Step[State]", "m TimedOut"}
		if t.key != "" {
			params = append(params, t.param+" *"+t.typ())
		}
		w.p("func onTimeout(%s) error {", strings.Join(params, ", "))
		if t.key == "" {
			w.p("\treturn errors.New(%q)", fmt.Sprintf("rule %s timeout is not written yet: send %s with %s in onTimeout", ps.name, t.typ(), t.helper))
		} else {
			w.p("\treturn nil")
		}
		w.p("}")
		w.p("")
	}
	w.doc("onFailure is the rule of a failed instance (f says why: a compensating end event, a rejected command, a step's Fail), which runs before the compensations are sent; it may send what the model's compensations do not cover.")
	w.p("func onFailure(_ *saga.Step[State], _ saga.Failure) error {")
	w.p("\treturn nil")
	w.p("}")
	return source(ps.pkg+"/hooks.go", w.Bytes())
}
