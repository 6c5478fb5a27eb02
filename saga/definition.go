package saga

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
)

// Definition says what a saga does: the events that start an instance and
// the events it then reacts to, with the key that correlates each to its
// instance; the timeouts it handles; the commands it sends; and what it
// does when a step fails. Build one with Define and the package-level
// functions Command, StartOn, On, OnTimeout and OnFailure (a policy with
// DefinePolicy, Command and Whenever), then run it with New. A Definition
// holds no state and may be shared by several stores. Registration
// mistakes are collected and reported, all at once, by New (or Err).
type Definition[S any] struct {
	name      string
	topics    []string
	stateless bool
	// handlers are the StartOn, On and Whenever handlers, by event type.
	handlers map[string]handler[S]
	// registries are the event registries given to UseEvents, and readers
	// maps every record type one of them reads to it.
	registries []*registry
	readers    map[string]readBy
	// routes is what the runner dispatches records on, by record type:
	// made from handlers and registries by reroute.
	routes    map[string]route[S]
	timeouts  map[string]timeout[S]
	commands  map[string]func(codec.Format, []byte) (any, error)
	cmdTypes  map[string]reflect.Type
	cmdNames  map[reflect.Type]string
	onFailure func(*Step[S], Failure) error
	errs      []error
}

// route is how records of one type reach a saga: prepare decodes the
// record (with the saga's format, or through an event registry),
// correlates it to an instance key ("" for none) and binds the handler
// call to the decoded event.
type route[S any] struct {
	prepare func(format codec.Format, rec eventstore.Record) (prepared[S], error)
}

// prepared is what route.prepare (and the runner's Prepare) found for a
// record: whether a handler takes the record (a record of a registry's
// type may resolve to one no handler takes), whether it starts an
// instance, the instance key ("" for none), and the handler call bound to
// the decoded event.
type prepared[S any] struct {
	routed bool
	start  bool
	key    string
	run    func(*Step[S]) error
}

// handler is a StartOn, On or Whenever handler of one event type, erased
// of the event's Go type.
type handler[S any] struct {
	what  string // "StartOn", "On" or "Whenever", for messages
	start bool
	typ   reflect.Type
	// fromPayload decodes a payload with a format into the handler's
	// event; fromValue takes an event a registry decoded.
	fromPayload func(f codec.Format, rec eventstore.Record, payload []byte) (prepared[S], error)
	fromValue   func(rec eventstore.Record, v any) (prepared[S], error)
}

// registry is an event registry given to UseEvents, erased of its event
// type.
type registry struct {
	events interface {
		Names() []string
		Renamed() []string
		Resolve(eventstore.Record) (aggregate.Raw, error)
		Codec() codec.Format
		GoType(name string) (reflect.Type, bool)
		String() string
	}
	decode func(eventstore.Record) (any, error)
}

// readBy is the registry that reads a record type, and whether the type
// is an old name its upcasters rename.
type readBy struct {
	reg     *registry
	renamed bool
}

// timeout is a registered timeout message type and its handler.
type timeout[S any] struct {
	msgType reflect.Type
	run     func(f codec.Format, payload []byte, st *Step[S]) error
}

// Define starts the definition of the saga name, which reads topics. The
// name is stable: it names the saga's consumer group ("saga.<name>") and
// the place of its state in the store, so renaming a saga starts it over.
func Define[S any](name string, topics ...string) *Definition[S] {
	d := &Definition[S]{
		name:     name,
		topics:   topics,
		handlers: map[string]handler[S]{},
		readers:  map[string]readBy{},
		routes:   map[string]route[S]{},
		timeouts: map[string]timeout[S]{},
		commands: map[string]func(codec.Format, []byte) (any, error){},
		cmdTypes: map[string]reflect.Type{},
		cmdNames: map[reflect.Type]string{},
	}
	if err := checkName(name); err != nil {
		d.fail(err)
	}
	if len(topics) == 0 {
		d.fail(errors.New("no topics to read"))
	}
	seen := map[string]bool{}
	for _, t := range topics {
		if err := eventstore.ValidateTopicName(t); err != nil {
			d.fail(fmt.Errorf("topic %q: %w", t, err))
		}
		if seen[t] {
			d.fail(fmt.Errorf("topic %q is listed twice", t))
		}
		seen[t] = true
	}
	return d
}

// Policy is the definition of a policy: the stateless case of a saga,
// "whenever this event, send that command". Build one with DefinePolicy and
// Whenever, and run it with New like a saga.
type Policy = Definition[struct{}]

// DefinePolicy starts the definition of the policy name, which reads
// topics. Each event a policy reacts to is its own short-lived instance,
// keyed by the event's ID: the commands it sends get IDs derived from the
// event, exactly as a saga's, so redelivery never sends one twice. The
// instance is gone once its commands (and any deadline it scheduled) are
// done.
func DefinePolicy(name string, topics ...string) *Policy {
	d := Define[struct{}](name, topics...)
	d.stateless = true
	return d
}

// checkName checks a saga's name with eventstore.ValidateName, and that
// its consumer group's name, "saga.<name>", fits eventstore.MaxNameLen.
func checkName(name string) error {
	if err := eventstore.ValidateName("saga", name); err != nil {
		return err
	}
	if n := len(groupPrefix) + len(name); n > eventstore.MaxNameLen {
		return fmt.Errorf("%w: saga: name is %d bytes: its consumer group %q+name would be %d bytes, longer than %d",
			eventstore.ErrInvalidArgument, len(name), groupPrefix, n, eventstore.MaxNameLen)
	}
	return nil
}

// Name returns the saga's name.
func (d *Definition[S]) Name() string { return d.name }

// Topics returns the topics the saga reads.
func (d *Definition[S]) Topics() []string { return append([]string(nil), d.topics...) }

// Err reports every mistake made while building the definition, joined, or
// nil. New reports them too.
func (d *Definition[S]) Err() error {
	errs := append([]error(nil), d.errs...)
	errs = append(errs, d.checkRegistries()...)
	if !d.stateless {
		starts := 0
		for _, h := range d.handlers {
			if h.start {
				starts++
			}
		}
		if starts == 0 {
			errs = append(errs, errors.New("no event starts it (StartOn)"))
		}
	} else if len(d.handlers) == 0 {
		errs = append(errs, errors.New("it reacts to no event (Whenever)"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("saga %q: %w", d.name, err)
	}
	return nil
}

func (d *Definition[S]) fail(err error) { d.errs = append(d.errs, err) }

func (d *Definition[S]) addHandler(eventType string, h handler[S]) {
	switch {
	case d == nil:
		return
	case eventType == "":
		d.fail(fmt.Errorf("%s: empty event type", h.what))
	case d.handlers[eventType].fromPayload != nil:
		d.fail(fmt.Errorf("%s: event type %q already has a handler", h.what, eventType))
	default:
		d.handlers[eventType] = h
		d.reroute()
	}
}

// newHandler erases the event type E of a handler.
func newHandler[S, E any](what string, start bool, key func(eventstore.Record, E) string, handle func(*Step[S], E) error) handler[S] {
	bind := func(rec eventstore.Record, e E) (prepared[S], error) {
		k, err := callKey(key, rec, e)
		if err != nil {
			return prepared[S]{}, err
		}
		return prepared[S]{routed: true, start: start, key: k, run: func(st *Step[S]) error { return handle(st, e) }}, nil
	}
	return handler[S]{what: what, start: start, typ: reflect.TypeFor[E](),
		fromPayload: func(f codec.Format, rec eventstore.Record, payload []byte) (prepared[S], error) {
			e, err := codec.Unmarshal[E](f, payload)
			if err != nil {
				return prepared[S]{}, fmt.Errorf("decode %s payload (schema %d) with codec %s: %w", rec.Type, rec.SchemaVersion, f.Name(), err)
			}
			return bind(rec, e)
		},
		fromValue: func(rec eventstore.Record, v any) (prepared[S], error) {
			e, ok := v.(E)
			if !ok {
				return prepared[S]{}, fmt.Errorf("event type %s decodes to %T, but its handler takes %s", rec.Type, v, reflect.TypeFor[E]())
			}
			return bind(rec, e)
		},
	}
}

// reroute makes the routes of the handlers and registries as they are:
// every record type a registry reads goes through it, to the handler of the
// type it resolves to; the types of the other handlers decode with the
// saga's format.
func (d *Definition[S]) reroute() {
	d.routes = make(map[string]route[S], len(d.handlers)+len(d.readers))
	for name, h := range d.handlers {
		if _, ok := d.readers[name]; !ok {
			d.routes[name] = route[S]{prepare: func(f codec.Format, rec eventstore.Record) (prepared[S], error) {
				return h.fromPayload(f, rec, rec.Payload)
			}}
		}
	}
	for name, by := range d.readers {
		d.routes[name] = route[S]{prepare: func(_ codec.Format, rec eventstore.Record) (prepared[S], error) {
			return d.throughRegistry(by, rec)
		}}
	}
}

// throughRegistry prepares rec, a record of a type by.reg reads: it
// resolves it to the current schema version of its type (upcasting,
// following renames) and hands it to that type's handler, if there is one.
func (d *Definition[S]) throughRegistry(by readBy, rec eventstore.Record) (prepared[S], error) {
	ev := by.reg.events
	raw, err := ev.Resolve(rec)
	if err != nil {
		if _, handled := d.handlers[rec.Type]; !handled && !by.renamed {
			// A record of a type the saga does not handle that this
			// program cannot read (written by newer code, say): not ours.
			return prepared[S]{}, nil
		}
		return prepared[S]{}, err
	}
	h, ok := d.handlers[raw.Type]
	if !ok {
		return prepared[S]{}, nil
	}
	if t, _ := ev.GoType(raw.Type); t == h.typ {
		return h.fromPayload(ev.Codec(), rec, raw.Payload)
	}
	// The handler takes an interface the registered type implements.
	v, err := by.reg.decode(rec)
	if err != nil {
		return prepared[S]{}, err
	}
	return h.fromValue(rec, v)
}

// UseEvents makes the saga decode the event types of events (an
// aggregate's registry, aggregate.NewEvents) as the aggregate does, with
// its format and its upcasters, so that records written under an older
// schema version reach the handlers upcast, and records under an old name
// that an upcaster renames reach the handler of the type it becomes.
// Without it, payloads decode with the saga's format as they are. Call it
// for each aggregate whose events the saga handles; an event type that two
// registries read is a mistake.
//
// With a registry, names must agree with it: a handler's event type name
// must be the name its Go type is registered under, and a name the
// registry reads must be handled by its Go type (or an interface it
// implements); a mismatch, in whichever order StartOn, On, Whenever and
// UseEvents were called, is reported by New.
func UseEvents[S, E any](d *Definition[S], events *aggregate.Events[E]) {
	if events == nil {
		d.fail(errors.New("UseEvents: nil registry"))
		return
	}
	reg := &registry{events: events, decode: func(rec eventstore.Record) (any, error) { return events.Decode(rec) }}
	names, renamed := events.Names(), events.Renamed()
	ok := true
	for _, name := range append(names, renamed...) {
		if _, dup := d.readers[name]; dup {
			d.fail(fmt.Errorf("UseEvents: event type %q is in two registries", name))
			ok = false
		}
	}
	if !ok {
		return
	}
	for _, name := range names {
		d.readers[name] = readBy{reg: reg}
	}
	for _, name := range renamed {
		d.readers[name] = readBy{reg: reg, renamed: true}
	}
	d.registries = append(d.registries, reg)
	d.reroute()
}

// checkRegistries reports the handlers whose event type name or Go type
// disagrees with a registry given to UseEvents.
func (d *Definition[S]) checkRegistries() []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(d.handlers)) {
		h := d.handlers[name]
		if by, ok := d.readers[name]; ok {
			ev := by.reg.events
			if by.renamed {
				errs = append(errs, fmt.Errorf("%s(%q): %q is an old name that %s upcasts to another type: handle that type", h.what, name, name, ev))
				continue
			}
			if t, _ := ev.GoType(name); t != h.typ && (h.typ.Kind() != reflect.Interface || !t.Implements(h.typ)) {
				errs = append(errs, fmt.Errorf("%s(%q): the event registry decodes %q into %s, but the handler takes %s", h.what, name, name, t, h.typ))
			}
			continue
		}
		for _, reg := range d.registries {
			for _, n := range reg.events.Names() {
				if t, _ := reg.events.GoType(n); t == h.typ {
					errs = append(errs, fmt.Errorf("%s(%q): the handler takes %s, which the event registry registers as %q", h.what, name, h.typ, n))
				}
			}
		}
	}
	return errs
}

// callKey runs a key function, turning a panic into an error.
func callKey[E any](key func(eventstore.Record, E) string, rec eventstore.Record, e E) (k string, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("key function of %s panicked: %v", rec.Type, v)
		}
	}()
	return key(rec, e), nil
}

// StartOn makes events of eventType start an instance of the saga: key
// returns the instance's key (its correlation key, such as an order ID),
// and handle runs as the instance's first step, on the initial (zero)
// state. If the instance is already running, handle runs on its state like
// any step. If it has completed or failed (compensating, or failed), and
// is not yet purged, the event is ignored: a key names one workflow. A key
// of "" means the event is not the saga's. Payloads decode through the
// registry given to UseEvents that reads eventType, or else with the saga's
// format (WithCodec).
func StartOn[S, E any](d *Definition[S], eventType string, key func(rec eventstore.Record, e E) string, handle func(s *Step[S], e E) error) {
	if key == nil || handle == nil {
		d.fail(fmt.Errorf("StartOn(%q): nil key or handler", eventType))
		return
	}
	if d.stateless {
		d.fail(fmt.Errorf("StartOn(%q): a policy reacts with Whenever", eventType))
		return
	}
	d.addHandler(eventType, newHandler("StartOn", true, key, handle))
}

// On makes the running instance that key names react to events of
// eventType with handle. Events whose key names no running instance (or
// that return "") are ignored: they are not the saga's, or they came after
// it ended. Correlating across bounded contexts is the key's job: a
// payment event's key is the order ID it carries. Payloads decode as
// StartOn's do.
func On[S, E any](d *Definition[S], eventType string, key func(rec eventstore.Record, e E) string, handle func(s *Step[S], e E) error) {
	if key == nil || handle == nil {
		d.fail(fmt.Errorf("On(%q): nil key or handler", eventType))
		return
	}
	if d.stateless {
		d.fail(fmt.Errorf("On(%q): a policy reacts with Whenever", eventType))
		return
	}
	d.addHandler(eventType, newHandler("On", false, key, handle))
}

// Whenever makes the policy p run handle for every event of eventType:
// "whenever this, do that". The step's Send sends commands with IDs derived
// from the event, so that handle's commands are sent once however often
// the event is delivered.
func Whenever[E any](p *Policy, eventType string, handle func(s *Step[struct{}], e E) error) {
	if handle == nil {
		p.fail(fmt.Errorf("Whenever(%q): nil handler", eventType))
		return
	}
	if !p.stateless {
		p.fail(fmt.Errorf("Whenever(%q): a saga reacts with StartOn and On", eventType))
		return
	}
	p.addHandler(eventType, newHandler("Whenever", true, EventID[E], handle))
}

// RecordKey is a key function for StartOn and On that correlates by the
// record's key, the ID of the aggregate that emitted the event.
func RecordKey[E any](rec eventstore.Record, _ E) string { return rec.Key }

// EventID is a key function that makes every event its own instance.
func EventID[E any](rec eventstore.Record, _ E) string { return rec.ID.String() }

// OnTimeout registers handle for the timeout name: a step schedules it
// with Step.Schedule(name, at, msg), msg an M, and when the time comes
// handle runs as a step of the instance with msg decoded. A timeout fires
// once, unless it is cancelled (Step.Cancel) or the instance ends first.
func OnTimeout[S, M any](d *Definition[S], name string, handle func(s *Step[S], msg M) error) {
	switch {
	case name == "":
		d.fail(errors.New("OnTimeout: empty timeout name"))
	case handle == nil:
		d.fail(fmt.Errorf("OnTimeout(%q): nil handler", name))
	case d.timeouts[name].run != nil:
		d.fail(fmt.Errorf("OnTimeout(%q): timeout already has a handler", name))
	default:
		d.timeouts[name] = timeout[S]{msgType: reflect.TypeFor[M](), run: func(f codec.Format, payload []byte, st *Step[S]) error {
			m, err := codec.Unmarshal[M](f, payload)
			if err != nil {
				return consume.Permanent(fmt.Errorf("decode timeout %q message: %w", name, err))
			}
			return handle(st, m)
		}}
	}
}

// Command declares C as a command type the saga sends, under the stable
// name commandType: commands wait in the saga's outbox, in the store,
// until they are dispatched, and the name is how they are stored. Every
// command type a step sends, schedules or compensates with must be
// declared. C is the concrete type the command bus routes (not the
// aggregate's command interface).
func Command[C, S any](d *Definition[S], commandType string) {
	t := reflect.TypeFor[C]()
	switch {
	case commandType == "":
		d.fail(fmt.Errorf("Command[%s]: empty command type name", t))
	case t.Kind() == reflect.Interface:
		d.fail(fmt.Errorf("Command[%s]: an interface type; declare each concrete command type", t))
	case d.commands[commandType] != nil:
		d.fail(fmt.Errorf("Command[%s]: name %q is already command type %s", t, commandType, d.cmdTypes[commandType]))
	case d.cmdNames[t] != "":
		d.fail(fmt.Errorf("Command[%s]: already declared as %q", t, d.cmdNames[t]))
	default:
		d.commands[commandType] = func(f codec.Format, data []byte) (any, error) {
			return codec.Unmarshal[C](f, data)
		}
		d.cmdTypes[commandType] = t
		d.cmdNames[t] = commandType
	}
}

// OnFailure registers handle to run when a step of an instance fails: when
// a handler calls Step.Fail, keeps returning an error, or a command it sent
// is rejected. handle runs like a step, on the instance's state, before the
// instance is compensated; commands it sends are sent after the
// compensations, and a rejected one is recorded like a rejected
// compensation (Instance.CompensationErrors). Only its State changes and
// Send take effect: deadlines, compensations, Complete and Fail are
// ignored, and if it returns an error (or panics) its changes are dropped
// and the error is added to the instance's LastError, without a retry.
// Without it a failure compensates and ends the instance.
func OnFailure[S any](d *Definition[S], handle func(s *Step[S], f Failure) error) {
	if handle == nil {
		d.fail(errors.New("OnFailure: nil handler"))
		return
	}
	if d.onFailure != nil {
		d.fail(errors.New("OnFailure: registered twice"))
		return
	}
	d.onFailure = handle
}

// Failure describes a failed step, as OnFailure receives it and
// Instance.Failure shows it.
type Failure struct {
	// Reason says what failed: the reason given to Step.Fail, the last
	// handler error, or the rejection of a command.
	Reason string `json:"reason"`
	// Command is the rejected command's type name and AggregateID its
	// aggregate, when a rejected command caused the failure.
	Command     string `json:"command,omitempty"`
	AggregateID string `json:"aggregate_id,omitempty"`
	// Kind and Message are the kind (command.KindOf) and the message of
	// the error that rejected the command, when one did: the Kind tells a
	// rule the aggregate enforces (command.KindFailedPrecondition) from a
	// malformed command (command.KindInvalidArgument) or a missing
	// aggregate (command.KindNotFound) without reading Reason. Kind
	// marshals as its name.
	Kind    command.Kind `json:"kind,omitempty"`
	Message string       `json:"message,omitempty"`
}
