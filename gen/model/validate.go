package model

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Validate checks the meaning of m and returns every problem it finds,
// sorted by position (nil when there are none): unknown events, commands,
// types and fields wherever they are named, a command that emits nothing,
// a read model fed by nothing, a saga with no end, duplicate names (per
// kind, per context), names that are not safe Go and protobuf identifiers,
// bad route hints, scenarios that do not fit their aggregate, cross-context
// references to events that are not public. The unresolved list is not a
// problem here: see Warnings.
func Validate(m *Model) Problems {
	v := &validator{m: m}
	v.model()
	v.ps.sort()
	return v.ps
}

// Warnings returns what Validate does not treat as a problem but a person
// must still decide: the model's unresolved items, as problems.
func Warnings(m *Model) Problems {
	var ps Problems
	for _, u := range m.Unresolved {
		msg := u.Reason
		if u.Text != "" {
			msg = fmt.Sprintf("%s (%q)", u.Reason, u.Text)
		}
		ps = append(ps, Problem{Pos: u.Pos, Element: "unresolved item " + u.Item, Message: msg})
	}
	ps.sort()
	return ps
}

type validator struct {
	m  *Model
	ps Problems
}

func (v *validator) add(pos Pos, element, format string, args ...any) {
	v.ps = append(v.ps, Problem{Pos: pos, Element: element, Message: fmt.Sprintf(format, args...)})
}

var fieldNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// timeoutNameRE is the form of a saga timeout's name (the schema's pattern).
var timeoutNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// name checks an element's name: present, an identifier, starting with an
// upper-case letter.
func (v *validator) name(pos Pos, kind, name string) {
	switch {
	case name == "":
		v.add(pos, kind, "has no name")
	case !IsIdent(name):
		v.add(pos, kind+" "+name, "name %q is not an identifier (ASCII letters, digits and _, starting with a letter)", name)
	case name[0] < 'A' || name[0] > 'Z':
		v.add(pos, kind+" "+name, "name %q must start with an upper-case letter", name)
	}
}

// dups reports each name that appears more than once among names.
type dupSet map[string]Pos

func (v *validator) dup(seen dupSet, pos Pos, kind, name string) {
	if name == "" {
		return
	}
	if first, ok := seen[name]; ok {
		v.add(pos, kind+" "+name, "duplicate name: also at %s", first)
		return
	}
	seen[name] = pos
}

func (v *validator) model() {
	m := v.m
	switch {
	case m.Name == "":
		v.add(m.Pos, "model", "has no name")
	case !IsIdent(m.Name):
		v.add(m.Pos, "model", "name %q is not an identifier (ASCII letters, digits and _, starting with a letter)", m.Name)
	}
	if len(m.Contexts) == 0 {
		v.add(m.Pos, "model", "has no contexts")
	}
	contexts := dupSet{}
	routes := map[string]Pos{}
	sagas := dupSet{}
	for _, c := range m.Contexts {
		v.name(c.Pos, "context", c.Name)
		v.dup(contexts, c.Pos, "context", c.Name)
		v.context(c, routes)
		for _, s := range c.Sagas {
			v.dup(sagas, s.Pos, "saga", s.Name)
			v.saga(c, s)
		}
	}
	for _, s := range m.Sagas {
		v.dup(sagas, s.Pos, "saga", s.Name)
		v.saga(nil, s)
	}
	for _, h := range m.Hotspots {
		v.hotspot(h)
	}
}

func (v *validator) hotspot(h *Hotspot) {
	if strings.TrimSpace(h.Text) == "" {
		v.add(h.Pos, "hotspot", "has no text")
	}
}

func (v *validator) context(c *Context, routes map[string]Pos) {
	el := "context " + c.Name
	if len(c.Aggregates) == 0 && len(c.ReadModels) == 0 && len(c.Policies) == 0 && len(c.Sagas) == 0 {
		v.add(c.Pos, el, "is empty: it has no aggregates, read models, policies or sagas")
	}
	types := dupSet{}
	for _, t := range c.Types {
		v.name(t.Pos, "type", t.Name)
		v.dup(types, t.Pos, "type", t.Name)
		v.fields(c, "type "+t.Name, t.Fields, "")
	}
	v.typeCycles(c)
	aggs, cmds, events := dupSet{}, dupSet{}, dupSet{}
	for _, a := range c.Aggregates {
		v.name(a.Pos, "aggregate", a.Name)
		v.dup(aggs, a.Pos, "aggregate", a.Name)
		for _, cmd := range a.Commands {
			v.dup(cmds, cmd.Pos, "command", cmd.Name)
		}
		for _, e := range a.Events {
			v.dup(events, e.Pos, "event", e.Name)
		}
		v.aggregate(c, a, routes)
	}
	rms := dupSet{}
	for _, r := range c.ReadModels {
		v.name(r.Pos, "read model", r.Name)
		v.dup(rms, r.Pos, "read model", r.Name)
		v.readModel(c, r, routes)
	}
	pols := dupSet{}
	for _, p := range c.Policies {
		v.name(p.Pos, "policy", p.Name)
		v.dup(pols, p.Pos, "policy", p.Name)
		v.policy(c, p)
	}
	exts := dupSet{}
	for _, e := range c.Externals {
		v.name(e.Pos, "external", e.Name)
		v.dup(exts, e.Pos, "external", e.Name)
		for _, u := range e.UsedBy {
			if c.Policy(u) != nil {
				continue
			}
			if _, err := v.m.ResolveCommand(c, u); err != nil {
				v.add(e.Pos, "external "+e.Name, "used_by %q names no command or policy of context %s", u, c.Name)
			}
		}
	}
	for _, h := range c.Hotspots {
		v.hotspot(h)
	}
}

// typeCycles reports message types that contain themselves other than
// through a list (a value that would be infinitely large).
func (v *validator) typeCycles(c *Context) {
	state := map[string]int{} // 0 unseen, 1 on the path, 2 done
	var visit func(t *Message, path []string)
	visit = func(t *Message, path []string) {
		state[t.Name] = 1
		for _, f := range t.Fields {
			if f.Type == nil || f.Type.Kind != Ref {
				continue
			}
			next := c.Message(f.Type.Ref)
			if next == nil {
				continue
			}
			switch state[next.Name] {
			case 1:
				cycle := append(slices.Clone(path), t.Name, next.Name)
				i := slices.Index(cycle, next.Name)
				v.add(f.Pos, "type "+t.Name, "contains itself through %s (a message cannot contain itself: make the field a list)", strings.Join(cycle[i:], " → "))
			case 0:
				visit(next, append(path, t.Name))
			}
		}
		state[t.Name] = 2
	}
	for _, t := range c.Types {
		if state[t.Name] == 0 {
			visit(t, nil)
		}
	}
}

// fields checks a field list; id is the implicit ID field of the
// enclosing aggregate ("" for none).
func (v *validator) fields(c *Context, el string, fields FieldList, id string) {
	seen := dupSet{}
	for _, f := range fields {
		switch {
		case f.Name == "":
			v.add(f.Pos, el, "a field has no name")
			continue
		case !fieldNameRE.MatchString(f.Name):
			v.add(f.Pos, el, "field name %q must be snake_case: lower-case ASCII letters, digits and _, starting with a letter", f.Name)
		case f.Name == id:
			v.add(f.Pos, el, "field %q is the aggregate's id, which every command and event carries already: remove it", f.Name)
		}
		if first, ok := seen[f.Name]; ok {
			v.add(f.Pos, el, "duplicate field %q: also at %s", f.Name, first)
		}
		seen[f.Name] = f.Pos
		typ, err := ParseType(f.Spec)
		if err != nil {
			v.add(f.Pos, el, "field %s: %v", f.Name, err)
			continue
		}
		v.refs(c, el, f, typ)
	}
}

func (v *validator) refs(c *Context, el string, f *Field, t *Type) {
	switch t.Kind {
	case List:
		v.refs(c, el, f, t.Elem)
	case Ref:
		if c.Message(t.Ref) == nil {
			v.add(f.Pos, el, "field %s: unknown type %q (declare it in the types of context %s)", f.Name, t.Ref, c.Name)
		}
	}
}

var errorCodes = map[string]string{
	"invalid_argument": "invalid_argument", "InvalidArgument": "invalid_argument",
	"failed_precondition": "failed_precondition", "FailedPrecondition": "failed_precondition",
	"not_found": "not_found", "NotFound": "not_found",
	"already_exists": "already_exists", "AlreadyExists": "already_exists",
	"aborted": "aborted", "Aborted": "aborted",
}

// ErrorCode returns the error's gRPC status code in snake_case
// (failed_precondition when Code is empty), or "" when Code is not one
// of the known codes.
func (e *Error) ErrorCode() string {
	if e.Code == "" {
		return "failed_precondition"
	}
	return errorCodes[e.Code]
}

func (v *validator) aggregate(c *Context, a *Aggregate, routes map[string]Pos) {
	el := "aggregate " + a.Name
	switch {
	case a.ID == "":
		v.add(a.Pos, el, "has no id (the name of the field that identifies an instance, e.g. order_id)")
	case !fieldNameRE.MatchString(a.ID):
		v.add(a.Pos, el, "id %q must be snake_case: lower-case ASCII letters, digits and _, starting with a letter", a.ID)
	}
	if len(a.Commands) == 0 {
		v.add(a.Pos, el, "has no commands")
	}
	errs := dupSet{}
	for _, e := range a.Errors {
		v.name(e.Pos, "error", e.Name)
		v.dup(errs, e.Pos, "error", e.Name)
		if e.ErrorCode() == "" {
			v.add(e.Pos, "error "+e.Name, "unknown code %q (want invalid_argument, failed_precondition, not_found, already_exists or aborted)", e.Code)
		}
	}
	for _, e := range a.Events {
		v.name(e.Pos, "event", e.Name)
		if e.Version < 0 {
			v.add(e.Pos, "event "+e.Name, "version %d: a schema version is at least 1", e.Version)
		}
		v.fields(c, "event "+e.Name, e.Fields, a.ID)
	}
	for _, cmd := range a.Commands {
		cel := "command " + cmd.Name
		v.name(cmd.Pos, "command", cmd.Name)
		v.fields(c, cel, cmd.Fields, a.ID)
		if len(cmd.Emits) == 0 {
			v.add(cmd.Pos, cel, "emits nothing (list the events it may emit under emits)")
		}
		for _, e := range cmd.Emits {
			if a.Event(e) == nil {
				if owner := c.EventOwner(e); owner != nil {
					v.add(cmd.Pos, cel, "emits %q, an event of aggregate %s: a command emits events of its own aggregate (%s)", e, owner.Name, a.Name)
				} else {
					v.add(cmd.Pos, cel, "emits unknown event %q", e)
				}
			}
		}
		for _, e := range cmd.Errors {
			if a.Error(e) == nil {
				v.add(cmd.Pos, cel, "unknown error %q (declare it in the errors of aggregate %s)", e, a.Name)
			}
		}
		if cmd.HTTP != nil {
			names := []string{a.ID}
			for _, f := range cmd.Fields {
				names = append(names, f.Name)
			}
			v.route(cmd.HTTP, cel, names, routes)
		}
	}
	scen := dupSet{}
	for _, s := range a.Scenarios {
		v.dup(scen, s.Pos, "scenario", s.Name)
		v.scenario(c, a, s)
	}
}

var methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

var (
	routeSegRE = regexp.MustCompile(`^(?:[A-Za-z0-9_.~-]+|\{[a-z][a-z0-9_]*\})$`)
	verbRE     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
)

// route checks a route hint; names are the fields it may bind.
func (v *validator) route(r *Route, el string, names []string, routes map[string]Pos) {
	if r.Method == "" {
		v.add(r.Pos, el, "route %q: want \"METHOD /path\", e.g. \"POST /v1/orders/{order_id}:pay\"", r.Raw)
		return
	}
	if !slices.Contains(methods, r.Method) {
		v.add(r.Pos, el, "route %q: unknown method %s (want %s)", r.Raw, r.Method, strings.Join(methods, ", "))
	}
	if !strings.HasPrefix(r.Path, "/") {
		v.add(r.Pos, el, "route %q: the path must start with /", r.Raw)
		return
	}
	path := r.Path
	if i := strings.LastIndex(path, ":"); i > strings.LastIndex(path, "/") {
		if !verbRE.MatchString(path[i+1:]) {
			v.add(r.Pos, el, "route %q: bad verb %q after :", r.Raw, path[i+1:])
		}
		path = path[:i]
	}
	for seg := range strings.SplitSeq(strings.TrimPrefix(path, "/"), "/") {
		if !routeSegRE.MatchString(seg) {
			v.add(r.Pos, el, "route %q: bad path segment %q (want a word or {field})", r.Raw, seg)
			continue
		}
		if strings.HasPrefix(seg, "{") {
			name := seg[1 : len(seg)-1]
			if !slices.Contains(names, name) {
				v.add(r.Pos, el, "route %q: {%s} is not a field (%s)", r.Raw, name, strings.Join(names, ", "))
			}
		}
	}
	key := r.Method + " " + r.Path
	if first, ok := routes[key]; ok {
		v.add(r.Pos, el, "route %q: also used at %s", r.Raw, first)
	} else {
		routes[key] = r.Pos
	}
}

// event resolves an event reference from context c (nil: the model),
// reporting it if unknown or, across contexts, not public.
func (v *validator) event(c *Context, pos Pos, el, what, ref string) (EventRef, bool) {
	r, err := v.m.ResolveEvent(c, ref)
	if err != nil {
		v.add(pos, el, "%s: %v", what, err)
		return r, false
	}
	if c != nil && r.Context != c && !r.Event.Public {
		v.add(pos, el, "%s: event %s of context %s is not public (mark it public: true to use it from context %s)", what, ref, r.Context.Name, c.Name)
	}
	return r, true
}

func (v *validator) command(c *Context, pos Pos, el, what, ref string) (CommandRef, bool) {
	r, err := v.m.ResolveCommand(c, ref)
	if err != nil {
		v.add(pos, el, "%s: %v", what, err)
		return r, false
	}
	return r, true
}

// hasField reports whether an event or command of aggregate a has field
// name (its own or the aggregate's id).
func hasField(a *Aggregate, fields FieldList, name string) bool {
	return name == a.ID || fields.Field(name) != nil
}

// mapping checks a field mapping from an event to commands: each target
// is a field of at least one of them (the unresolved ones are skipped).
func (v *validator) mapping(pos Pos, el string, m map[string]string, ev EventRef, cmds ...CommandRef) {
	for _, target := range sortedKeys(m) {
		source := m[target]
		var names []string
		found := false
		for _, cmd := range cmds {
			if cmd.Command == nil {
				found = true
				continue
			}
			names = append(names, cmd.Command.Name)
			found = found || hasField(cmd.Aggregate, cmd.Command.Fields, target)
		}
		if !found && len(names) > 0 {
			v.add(pos, el, "map: %q is not a field of command %s", target, strings.Join(names, " or "))
		}
		if isLiteral(source) || ev.Event == nil {
			continue
		}
		if !hasField(ev.Aggregate, ev.Event.Fields, source) {
			v.add(pos, el, "map: %s ← %q: %q is not a field of event %s (quote a literal: '\"text\"')", target, source, source, ev.Event.Name)
		}
	}
}

// isLiteral reports whether a mapping source is a literal: quoted text, a
// number, true or false.
func isLiteral(s string) bool {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return true
	}
	if s == "true" || s == "false" {
		return true
	}
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r >= '0' && r <= '9' || i == 0 && r == '-' && len(s) > 1) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (v *validator) readModel(c *Context, r *ReadModel, routes map[string]Pos) {
	el := "read model " + r.Name
	v.fields(c, el, r.Fields, "")
	switch {
	case r.Key == "":
		v.add(r.Pos, el, "has no key (the field that identifies a row)")
	case r.Fields.Field(r.Key) == nil:
		v.add(r.Pos, el, "key %q is not one of its fields", r.Key)
	}
	if len(r.From) == 0 {
		v.add(r.Pos, el, "is fed by nothing (list the events it is built from under from)")
	}
	for _, e := range r.From {
		v.event(c, r.Pos, el, "from", e)
	}
	if r.HTTP != nil {
		var names []string
		for _, f := range r.Fields {
			names = append(names, f.Name)
		}
		v.route(r.HTTP, el, names, routes)
		if r.HTTP.Method != "" && r.HTTP.Method != "GET" {
			v.add(r.HTTP.Pos, el, "route %q: a query is a GET", r.HTTP.Raw)
		}
	}
	if r.Custom && r.HTTP == nil {
		v.add(r.Pos, el, "is custom (kept by hand) but has no http route: its query is all that is generated of it")
	}
	if r.Rows != "" && !fieldNameRE.MatchString(r.Rows) {
		v.add(r.Pos, el, "rows %q: want a field name such as orders (lower case, digits, _)", r.Rows)
	}
}

func (v *validator) policy(c *Context, p *Policy) {
	el := "policy " + p.Name
	var ev EventRef
	var cmd CommandRef
	if p.When == "" {
		v.add(p.Pos, el, "has no when (the event it reacts to)")
	} else {
		ev, _ = v.event(c, p.Pos, el, "when", p.When)
	}
	if p.Then == "" {
		v.add(p.Pos, el, "has no then (the command it sends)")
	} else {
		cmd, _ = v.command(c, p.Pos, el, "then", p.Then)
	}
	v.mapping(p.Pos, el, p.Map, ev, cmd)
	if ev.Event != nil {
		v.condition(c, p.Pos, el, ev, p.If)
	}
}

// condition checks a policy's if: each names a field of the event (or its
// aggregate's ID) that can be compared, with a value of its type.
func (v *validator) condition(c *Context, pos Pos, el string, ev EventRef, cond map[string]any) {
	for _, name := range sortedKeys(cond) {
		x := cond[name]
		if name == ev.Aggregate.ID {
			if _, ok := x.(string); !ok {
				v.add(pos, el, "if %s: want a string (%s is the ID of %s), got %v", name, name, ev.Aggregate.Name, x)
			}
			continue
		}
		f := ev.Event.Fields.Field(name)
		if f == nil {
			v.add(pos, el, "if %s: event %s has no field %q", name, ev.Event.Name, name)
			continue
		}
		if f.Type == nil {
			continue // reported with the event
		}
		switch f.Type.Kind {
		case String, Enum, Int, Int64, Decimal, Bool:
		default:
			v.add(pos, el, "if %s: only string, enum, integer and bool fields can be compared, and %s of %s is not one", name, name, ev.Event.Name)
			continue
		}
		if x == nil {
			v.add(pos, el, "if %s: want the value it must equal", name)
			continue
		}
		if msg := checkValue(c, f.Type, x); msg != "" {
			v.add(pos, el, "if %s: %s", name, msg)
		}
	}
}

func (v *validator) saga(c *Context, s *Saga) {
	v.name(s.Pos, "saga", s.Name)
	el := "saga " + s.Name
	if s.CorrelateBy == "" {
		v.add(s.Pos, el, "has no correlate_by (the field that identifies one run of it)")
	}
	correlates := func(pos Pos, r EventRef) {
		if s.CorrelateBy != "" && !hasField(r.Aggregate, r.Event.Fields, s.CorrelateBy) {
			v.add(pos, el, "event %s has no field %q to correlate by", r.Event.Name, s.CorrelateBy)
		}
	}
	if s.StartsOn == "" {
		v.add(s.Pos, el, "has no starts_on (the event that starts it)")
	} else if r, ok := v.event(c, s.Pos, el, "starts_on", s.StartsOn); ok {
		correlates(s.Pos, r)
	}
	for _, re := range s.ReactsTo {
		ev, ok := v.event(c, re.Pos, el, "reacts_to on", re.On)
		if ok {
			correlates(re.Pos, ev)
		}
		if len(re.Then) == 0 {
			v.add(re.Pos, el, "reaction on %s sends no command (then)", re.On)
		}
		var cmds []CommandRef
		for _, t := range re.Then {
			cmd, _ := v.command(c, re.Pos, el, "reacts_to then", t)
			cmds = append(cmds, cmd)
		}
		v.mapping(re.Pos, el, re.Map, ev, cmds...)
	}
	if t := s.Timeout; t != nil {
		if t.After <= 0 {
			v.add(t.Pos, el, "timeout after %v: want a positive duration such as 72h", t.After)
		}
		if t.Name != "" && !timeoutNameRE.MatchString(t.Name) {
			v.add(t.Pos, el, "timeout name %q: want lower case letters, digits and -, starting with a letter, such as payment-timeout", t.Name)
		}
		if t.Then == "" {
			v.add(t.Pos, el, "timeout has no then (the command it sends)")
		} else {
			v.command(c, t.Pos, el, "timeout then", t.Then)
		}
	}
	if len(s.EndsOn) == 0 {
		v.add(s.Pos, el, "has no end (list the events that end it under ends_on)")
	}
	for _, e := range s.EndsOn {
		if r, ok := v.event(c, s.Pos, el, "ends_on", e); ok {
			correlates(s.Pos, r)
		}
	}
}

func (v *validator) scenario(c *Context, a *Aggregate, s *Scenario) {
	el := fmt.Sprintf("scenario %q", s.Name)
	if s.Name == "" {
		el = "scenario"
		v.add(s.Pos, el, "has no name")
	}
	for _, g := range s.Given {
		v.instanceEvent(c, a, el, "given", g)
	}
	var cmd *Command
	if s.When == nil {
		v.add(s.Pos, el, "has no when (the command)")
	} else if cmd = a.Command(s.When.Command); cmd == nil {
		v.add(s.When.Pos, el, "when: unknown command %q of aggregate %s", s.When.Command, a.Name)
	} else {
		v.values(c, s.When.Pos, el, "command "+cmd.Name, a.ID, cmd.Fields, s.When.Fields)
	}
	switch {
	case s.Then == nil && s.Error == "":
		v.add(s.Pos, el, "has neither then (the events) nor error")
	case len(s.Then) > 0 && s.Error != "":
		v.add(s.Pos, el, "has both then and error: a command either emits events or fails")
	}
	for _, t := range s.Then {
		v.instanceEvent(c, a, el, "then", t)
		if cmd != nil && a.Event(t.Event) != nil && !slices.Contains(cmd.Emits, t.Event) {
			v.add(t.Pos, el, "then: command %s does not emit %s (add it to its emits)", cmd.Name, t.Event)
		}
	}
	if s.Error != "" {
		switch {
		case a.Error(s.Error) == nil:
			v.add(s.Pos, el, "error: unknown error %q of aggregate %s", s.Error, a.Name)
		case cmd != nil && !slices.Contains(cmd.Errors, s.Error):
			v.add(s.Pos, el, "error: command %s does not return %s (add it to its errors)", cmd.Name, s.Error)
		}
	}
}

func (v *validator) instanceEvent(c *Context, a *Aggregate, el, what string, e *EventInstance) {
	ev := a.Event(e.Event)
	if ev == nil {
		v.add(e.Pos, el, "%s: unknown event %q of aggregate %s", what, e.Event, a.Name)
		return
	}
	v.values(c, e.Pos, el, "event "+ev.Name, a.ID, ev.Fields, e.Fields)
}

// values checks the field values of a scenario's event or command.
func (v *validator) values(c *Context, pos Pos, el, of, id string, fields FieldList, vals map[string]any) {
	for _, name := range sortedKeys(vals) {
		if name == id {
			if _, ok := vals[name].(string); !ok {
				v.add(pos, el, "%s: %s: want a string", of, name)
			}
			continue
		}
		f := fields.Field(name)
		if f == nil {
			v.add(pos, el, "%s has no field %q", of, name)
			continue
		}
		if f.Type == nil {
			continue
		}
		if msg := checkValue(c, f.Type, vals[name]); msg != "" {
			v.add(pos, el, "%s: %s: %s", of, name, msg)
		}
	}
}

// checkValue returns what is wrong with value x of type t, or "".
func checkValue(c *Context, t *Type, x any) string {
	if x == nil {
		return ""
	}
	switch t.Kind {
	case String:
		if _, ok := x.(string); !ok {
			return fmt.Sprintf("want a string, got %v", x)
		}
	case Int, Int64, Decimal:
		if _, ok := x.(int); !ok {
			return fmt.Sprintf("want an integer, got %v", x)
		}
	case Bool:
		if _, ok := x.(bool); !ok {
			return fmt.Sprintf("want true or false, got %v", x)
		}
	case Timestamp:
		switch x := x.(type) {
		case time.Time:
		case string:
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				return fmt.Sprintf("want an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", x)
			}
		default:
			return fmt.Sprintf("want an RFC 3339 time, got %v", x)
		}
	case Enum:
		s, ok := x.(string)
		if !ok || !slices.Contains(t.Values, s) {
			return fmt.Sprintf("want one of %s, got %v", strings.Join(t.Values, ", "), x)
		}
	case List:
		xs, ok := x.([]any)
		if !ok {
			return fmt.Sprintf("want a list, got %v", x)
		}
		for i, e := range xs {
			if msg := checkValue(c, t.Elem, e); msg != "" {
				return fmt.Sprintf("[%d]: %s", i, msg)
			}
		}
	case Ref:
		msg := c.Message(t.Ref)
		if msg == nil {
			return ""
		}
		fs, ok := x.(map[string]any)
		if !ok {
			return fmt.Sprintf("want a mapping of %s's fields, got %v", t.Ref, x)
		}
		for _, name := range sortedKeys(fs) {
			f := msg.Fields.Field(name)
			if f == nil {
				return fmt.Sprintf("%s has no field %q", t.Ref, name)
			}
			if f.Type == nil {
				continue
			}
			if m := checkValue(c, f.Type, fs[name]); m != "" {
				return name + ": " + m
			}
		}
	}
	return ""
}
