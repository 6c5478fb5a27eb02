package saga

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/muninn-es/muninn/aggregate"
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
	routes    map[string]route[S]
	timeouts  map[string]timeout[S]
	commands  map[string]func(aggregate.Codec, []byte) (any, error)
	cmdTypes  map[string]reflect.Type
	cmdNames  map[reflect.Type]string
	onFailure func(*Step[S], Failure) error
	// decoders decode records of event types registered with UseEvents,
	// upcasting old schema versions.
	decoders map[string]func(eventstore.Record) (any, error)
	errs     []error
}

// route is how one event type reaches a saga: prepare decodes the record,
// correlates it to an instance key ("" for none) and returns the handler
// call bound to the decoded event.
type route[S any] struct {
	start   bool
	prepare func(codec aggregate.Codec, rec eventstore.Record) (key string, run func(*Step[S]) error, err error)
}

// timeout is a registered timeout message type and its handler.
type timeout[S any] struct {
	msgType reflect.Type
	run     func(codec aggregate.Codec, payload []byte, st *Step[S]) error
}

// Define starts the definition of the saga name, which reads topics. The
// name is stable: it names the saga's consumer group ("saga.<name>") and
// the place of its state in the store, so renaming a saga starts it over.
func Define[S any](name string, topics ...string) *Definition[S] {
	d := &Definition[S]{
		name:     name,
		topics:   topics,
		routes:   map[string]route[S]{},
		timeouts: map[string]timeout[S]{},
		commands: map[string]func(aggregate.Codec, []byte) (any, error){},
		cmdTypes: map[string]reflect.Type{},
		cmdNames: map[reflect.Type]string{},
		decoders: map[string]func(eventstore.Record) (any, error){},
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

// checkName refuses saga names that cannot name a consumer group or that
// would mix up state keys.
func checkName(name string) error {
	if name == "" {
		return errors.New("empty saga name")
	}
	if err := eventstore.ValidateGroupName(groupPrefix + name); err != nil {
		return fmt.Errorf("saga name %q: %w", name, err)
	}
	if strings.ContainsRune(name, '/') {
		return fmt.Errorf("saga name %q: contains '/'", name)
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
	if !d.stateless {
		starts := 0
		for _, r := range d.routes {
			if r.start {
				starts++
			}
		}
		if starts == 0 {
			errs = append(errs, errors.New("no event starts it (StartOn)"))
		}
	} else if len(d.routes) == 0 {
		errs = append(errs, errors.New("it reacts to no event (Whenever)"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("saga %q: %w", d.name, err)
	}
	return nil
}

func (d *Definition[S]) fail(err error) { d.errs = append(d.errs, err) }

func (d *Definition[S]) addRoute(what, eventType string, r route[S]) {
	switch {
	case d == nil:
		return
	case eventType == "":
		d.fail(fmt.Errorf("%s: empty event type", what))
	case d.routes[eventType].prepare != nil:
		d.fail(fmt.Errorf("%s: event type %q already has a handler", what, eventType))
	default:
		d.routes[eventType] = r
	}
}

// typedRoute builds the route of an event type whose payload decodes into
// an E: through the registry given to UseEvents, if it has the type, else
// with the saga's codec.
func typedRoute[S, E any](d *Definition[S], start bool, key func(eventstore.Record, E) string, handle func(*Step[S], E) error) route[S] {
	return route[S]{start: start, prepare: func(codec aggregate.Codec, rec eventstore.Record) (string, func(*Step[S]) error, error) {
		e, err := decodeEvent[E](d, codec, rec)
		if err != nil {
			return "", nil, err
		}
		k, err := callKey(key, rec, e)
		if err != nil {
			return "", nil, err
		}
		return k, func(st *Step[S]) error { return handle(st, e) }, nil
	}}
}

// decodeEvent decodes rec's payload into an E.
func decodeEvent[E, S any](d *Definition[S], codec aggregate.Codec, rec eventstore.Record) (E, error) {
	dec, ok := d.decoders[rec.Type]
	if !ok {
		e, err := aggregate.Decode[E](codec, rec.Payload)
		if err != nil {
			return e, fmt.Errorf("decode %s payload (schema %d) with codec %s: %w", rec.Type, rec.SchemaVersion, codec.Name(), err)
		}
		return e, nil
	}
	var zero E
	v, err := dec(rec)
	if err != nil {
		return zero, fmt.Errorf("decode %s payload (schema %d): %w", rec.Type, rec.SchemaVersion, err)
	}
	e, ok := v.(E)
	if !ok {
		return zero, fmt.Errorf("event type %s decodes to %T, but its handler takes %s", rec.Type, v, reflect.TypeFor[E]())
	}
	return e, nil
}

// UseEvents makes the saga decode the event types of events (an
// aggregate's registry, aggregate.NewEvents) as the aggregate does, with
// its codec and its upcasters, so that records written under an older
// schema version reach the handlers upcast. Without it, payloads decode
// with the saga's codec as they are. Call it for each aggregate whose
// events the saga handles; an event type in two registries is a mistake.
func UseEvents[S, E any](d *Definition[S], events *aggregate.Events[E]) {
	if events == nil {
		d.fail(errors.New("UseEvents: nil registry"))
		return
	}
	for _, name := range events.Names() {
		if _, dup := d.decoders[name]; dup {
			d.fail(fmt.Errorf("UseEvents: event type %q is in two registries", name))
			continue
		}
		d.decoders[name] = func(rec eventstore.Record) (any, error) { return events.Decode(rec) }
	}
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
// of "" means the event is not the saga's. Payloads decode with the saga's
// codec (WithCodec).
func StartOn[S, E any](d *Definition[S], eventType string, key func(rec eventstore.Record, e E) string, handle func(s *Step[S], e E) error) {
	if key == nil || handle == nil {
		d.fail(fmt.Errorf("StartOn(%q): nil key or handler", eventType))
		return
	}
	if d.stateless {
		d.fail(fmt.Errorf("StartOn(%q): a policy reacts with Whenever", eventType))
		return
	}
	d.addRoute("StartOn", eventType, typedRoute(d, true, key, handle))
}

// On makes the running instance that key names react to events of
// eventType with handle. Events whose key names no running instance (or
// that return "") are ignored: they are not the saga's, or they came after
// it ended. Correlating across bounded contexts is the key's job: a
// payment event's key is the order ID it carries.
func On[S, E any](d *Definition[S], eventType string, key func(rec eventstore.Record, e E) string, handle func(s *Step[S], e E) error) {
	if key == nil || handle == nil {
		d.fail(fmt.Errorf("On(%q): nil key or handler", eventType))
		return
	}
	if d.stateless {
		d.fail(fmt.Errorf("On(%q): a policy reacts with Whenever", eventType))
		return
	}
	d.addRoute("On", eventType, typedRoute(d, false, key, handle))
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
	p.addRoute("Whenever", eventType, typedRoute(p, true, EventID[E], handle))
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
		d.timeouts[name] = timeout[S]{msgType: reflect.TypeFor[M](), run: func(codec aggregate.Codec, payload []byte, st *Step[S]) error {
			m, err := aggregate.Decode[M](codec, payload)
			if err != nil {
				return Permanent(fmt.Errorf("decode timeout %q message: %w", name, err))
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
		d.commands[commandType] = func(codec aggregate.Codec, data []byte) (any, error) {
			return aggregate.Decode[C](codec, data)
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

// Failure describes a failed step, as OnFailure receives it.
type Failure struct {
	// Reason says what failed: the reason given to Step.Fail, the last
	// handler error, or the rejection of a command.
	Reason string
	// Command is the rejected command's type name and AggregateID its
	// aggregate, when a rejected command caused the failure.
	Command, AggregateID string
}
