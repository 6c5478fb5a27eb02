package aggregate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
)

// maxUpcastSteps bounds an upcaster chain; versions strictly increase at
// every step, so only a pathological registration comes near it.
const maxUpcastSteps = 1000

// Raw is an event in its encoded form: what an Upcaster reads and returns.
type Raw struct {
	// Type is the event type name.
	Type string
	// SchemaVersion is the version of the payload's schema, from 1.
	SchemaVersion int
	// Payload is the encoded event.
	Payload []byte
}

// Upcaster turns an event of an old schema version into a newer one, on
// read. It must return a higher SchemaVersion than it was given; it may also
// change the type name (a renamed event). Upcasters chain: the result is
// upcast again while an upcaster is registered for its type and version.
// An Upcaster must be a pure function, safe for concurrent use.
type Upcaster func(Raw) (Raw, error)

// EventOption declares one thing an Events registry knows: an event type
// (Type), an upcaster (Upcast) or the payload format (WithCodec).
type EventOption interface {
	applyEvents(*eventsConfig)
}

type eventsConfig struct {
	types     []*eventType
	upcasters []upcastDef
	format    codec.Format
	errs      []error
}

type eventOptionFunc func(*eventsConfig)

func (f eventOptionFunc) applyEvents(c *eventsConfig) { f(c) }

// eventType is one registered event type, with its encoding and decoding
// closures over the Go type.
type eventType struct {
	name    string
	version int
	goType  reflect.Type
	// decode decodes a payload of the current version into a new value.
	decode func(f codec.Format, payload []byte) (any, error)
	err    error
}

// TypeOption configures one event type.
type TypeOption func(*eventType)

// Schema sets the current schema version of an event type (default 1).
// Events written with a lower version are upcast on read; a higher version
// (written by newer code) is an error.
func Schema(version int) TypeOption {
	return func(t *eventType) {
		if version < 1 {
			t.err = fmt.Errorf("aggregate: event type %q: schema version must be at least 1, got %d", t.name, version)
			return
		}
		t.version = version
	}
}

// Type declares the event type T under a stable name, such as
// "order.placed". The name, not the Go type's, is what the log stores: a
// renamed Go type keeps its events. T is typically a struct implementing the
// aggregate's event interface, or a pointer to a generated proto message.
func Type[T any](name string, opts ...TypeOption) EventOption {
	return eventOptionFunc(func(c *eventsConfig) {
		t := &eventType{name: name, version: 1, goType: reflect.TypeFor[T]()}
		t.decode = func(f codec.Format, payload []byte) (any, error) {
			v, err := codec.Unmarshal[T](f, payload)
			if err != nil {
				return nil, err
			}
			return v, nil
		}
		for _, o := range opts {
			o(t)
		}
		c.types = append(c.types, t)
	})
}

type upcastDef struct {
	typ  string
	from int
	fn   Upcaster
}

// Upcast registers fn to turn events of type typ at schema version from
// into a newer version. typ may be a name that no current Go type carries
// (an event type that was renamed or folded into another).
func Upcast(typ string, from int, fn Upcaster) EventOption {
	return eventOptionFunc(func(c *eventsConfig) {
		c.upcasters = append(c.upcasters, upcastDef{typ: typ, from: from, fn: fn})
	})
}

// WithCodec sets the format of the registry's payloads (default
// codec.DefaultFormat: Protobuf for proto messages, JSON otherwise).
func WithCodec(f codec.Format) EventOption {
	return eventOptionFunc(func(c *eventsConfig) {
		if f == nil {
			c.errs = append(c.errs, errors.New("aggregate: WithCodec: nil codec"))
			return
		}
		c.format = f
	})
}

type upcastKey struct {
	typ  string
	from int
}

// Events is the registry of one aggregate's event types: it maps each Go
// type to its stable name and schema version, encodes events with the
// aggregate's format and decodes stored records back, upcasting old schema
// versions. E is the aggregate's event type, usually an interface that
// every event struct implements. An Events is immutable and safe for
// concurrent use.
//
// Everything that reads an aggregate's events decodes them through its
// registry, so that they read alike everywhere: the repository (Decode),
// projections (projection.On), stream processors (stream.Events) and sagas
// (saga.UseEvents). TypeOf gives the name, schema version and typed codec
// of one event type, and decodes records into it.
type Events[E any] struct {
	format   codec.Format
	byName   map[string]*eventType
	byGoType map[reflect.Type]*eventType
	upcast   map[upcastKey]Upcaster
	// renamed are the type names upcasters read that no Go type has.
	renamed []string
}

// NewEvents builds the registry of the event types and upcasters given. It
// reports every problem at once: an empty, overlong or duplicate name, a Go
// type registered twice or not assignable to E, an upcaster without a
// function, registered twice, or for a version not below the type's
// current one.
func NewEvents[E any](opts ...EventOption) (*Events[E], error) {
	var c eventsConfig
	for _, o := range opts {
		if o == nil {
			c.errs = append(c.errs, errors.New("aggregate: NewEvents: nil option"))
			continue
		}
		o.applyEvents(&c)
	}
	r := &Events[E]{
		format:   codec.DefaultFormat,
		byName:   make(map[string]*eventType),
		byGoType: make(map[reflect.Type]*eventType),
		upcast:   make(map[upcastKey]Upcaster),
	}
	if c.format != nil {
		r.format = c.format
	}
	errs := c.errs
	eType := reflect.TypeFor[E]()
	for _, t := range c.types {
		switch {
		case t.err != nil:
			errs = append(errs, t.err)
			continue
		case t.name == "":
			errs = append(errs, fmt.Errorf("aggregate: event type %s has an empty name", t.goType))
			continue
		case len(t.name) > eventstore.MaxTypeBytes:
			errs = append(errs, fmt.Errorf("aggregate: event type name %.40q... is longer than %d bytes", t.name, eventstore.MaxTypeBytes))
			continue
		case !t.goType.AssignableTo(eType):
			errs = append(errs, fmt.Errorf("aggregate: event type %q: Go type %s does not implement %s", t.name, t.goType, eType))
			continue
		}
		if old, ok := r.byName[t.name]; ok {
			errs = append(errs, fmt.Errorf("aggregate: event type name %q is registered for both %s and %s", t.name, old.goType, t.goType))
			continue
		}
		if old, ok := r.byGoType[t.goType]; ok {
			errs = append(errs, fmt.Errorf("aggregate: Go type %s is registered as both %q and %q", t.goType, old.name, t.name))
			continue
		}
		r.byName[t.name] = t
		r.byGoType[t.goType] = t
	}
	for _, u := range c.upcasters {
		k := upcastKey{u.typ, u.from}
		switch {
		case u.fn == nil:
			errs = append(errs, fmt.Errorf("aggregate: upcaster for %q v%d is nil", u.typ, u.from))
		case u.typ == "":
			errs = append(errs, fmt.Errorf("aggregate: upcaster from v%d has an empty type name", u.from))
		case u.from < 1:
			errs = append(errs, fmt.Errorf("aggregate: upcaster for %q: from version must be at least 1, got %d", u.typ, u.from))
		case r.upcast[k] != nil:
			errs = append(errs, fmt.Errorf("aggregate: upcaster for %q v%d is registered twice", u.typ, u.from))
		default:
			if t, ok := r.byName[u.typ]; ok && u.from >= t.version {
				errs = append(errs, fmt.Errorf("aggregate: upcaster for %q v%d: the current version is %d, so there is nothing to upcast", u.typ, u.from, t.version))
				continue
			}
			r.upcast[k] = u.fn
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for k := range r.upcast {
		if _, ok := r.byName[k.typ]; !ok && !seen[k.typ] {
			seen[k.typ] = true
			r.renamed = append(r.renamed, k.typ)
		}
	}
	sort.Strings(r.renamed)
	return r, nil
}

// Codec returns the registry's payload format.
func (r *Events[E]) Codec() codec.Format { return r.format }

// Renamed returns, sorted, the event type names that upcasters read but no
// Go type is registered under: the old names of event types that were
// renamed or folded into others, which stored records may still carry.
// Decode and Resolve turn such records into a registered type.
func (r *Events[E]) Renamed() []string { return slices.Clone(r.renamed) }

// Names returns the registered event type names, sorted.
func (r *Events[E]) Names() []string {
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// GoType returns the Go type registered under name, and false if none is
// (Renamed names have none).
func (r *Events[E]) GoType(name string) (reflect.Type, bool) {
	t, ok := r.byName[name]
	if !ok {
		return nil, false
	}
	return t.goType, true
}

// Name returns the registered type name and current schema version of e's
// Go type, and false if it has none.
func (r *Events[E]) Name(e E) (string, int, bool) {
	t, ok := r.typeOf(any(e))
	if !ok {
		return "", 0, false
	}
	return t.name, t.version, true
}

func (r *Events[E]) typeOf(v any) (*eventType, bool) {
	if v == nil {
		return nil, false
	}
	t, ok := r.byGoType[reflect.TypeOf(v)]
	return t, ok
}

// Encode turns e into an event to append: its type name, current schema
// version and encoded payload. An event whose Go type is not registered is
// an error wrapping ErrUnknownEventType.
func (r *Events[E]) Encode(e E) (eventstore.Event, error) {
	t, ok := r.typeOf(any(e))
	if !ok {
		return eventstore.Event{}, fmt.Errorf("%w: Go type %T is not registered", ErrUnknownEventType, any(e))
	}
	b, err := r.format.Marshal(any(e))
	if err != nil {
		return eventstore.Event{}, fmt.Errorf("aggregate: encode event %q (%s codec): %w", t.name, r.format.Name(), err)
	}
	if b == nil {
		b = []byte{}
	}
	return eventstore.Event{Type: t.name, SchemaVersion: t.version, Payload: b}, nil
}

// Decode turns a stored record back into an event: it upcasts an old schema
// version to the current one and decodes the payload with the format. Every
// failure is a *DecodeError naming the record's topic, stream, version and
// type, and wrapping ErrUnknownEventType, ErrUpcast or ErrUndecodable.
func (r *Events[E]) Decode(rec eventstore.Record) (E, error) {
	var zero E
	raw, t, err := r.resolve(rec)
	if err != nil {
		return zero, err
	}
	v, err := t.decode(r.format, raw.Payload)
	if err != nil {
		return zero, decodeError(rec, ErrUndecodable, fmt.Errorf("%s codec: %w", r.format.Name(), err))
	}
	e, ok := v.(E)
	if !ok { // cannot happen: NewEvents checked assignability
		return zero, decodeError(rec, ErrUndecodable, fmt.Errorf("decoded %T is not a %s", v, reflect.TypeFor[E]()))
	}
	return e, nil
}

// Resolve upcasts a stored record to the current schema version of its
// event type, without decoding the payload: it returns the name of the
// registered type the record now is (an upcaster may have renamed it), that
// type's current schema version, and the payload in it. Routers use it to
// find a record's handler by the name it resolves to, then decode the
// payload with that type's codec (TypeOf). Failures are *DecodeError, as
// Decode's.
func (r *Events[E]) Resolve(rec eventstore.Record) (Raw, error) {
	raw, _, err := r.resolve(rec)
	return raw, err
}

func (r *Events[E]) resolve(rec eventstore.Record) (Raw, *eventType, error) {
	if rec.Payload == nil {
		return Raw{}, nil, decodeError(rec, ErrUndecodable, errors.New("the record is a tombstone (nil payload)"))
	}
	raw, err := r.Upcast(Raw{Type: rec.Type, SchemaVersion: max(rec.SchemaVersion, 1), Payload: rec.Payload})
	if err != nil {
		return Raw{}, nil, decodeError(rec, ErrUpcast, err)
	}
	t, ok := r.byName[raw.Type]
	if !ok {
		if raw.Type != rec.Type {
			return Raw{}, nil, decodeError(rec, ErrUnknownEventType, fmt.Errorf("upcast to %q v%d, which is not registered", raw.Type, raw.SchemaVersion))
		}
		return Raw{}, nil, decodeError(rec, ErrUnknownEventType, errors.New("no Go type is registered for it"))
	}
	if raw.SchemaVersion != t.version {
		if raw.SchemaVersion > t.version {
			return Raw{}, nil, decodeError(rec, ErrUndecodable, fmt.Errorf("schema v%d is newer than this program's v%d", raw.SchemaVersion, t.version))
		}
		return Raw{}, nil, decodeError(rec, ErrUpcast, fmt.Errorf("no upcaster from %q v%d (current v%d)", raw.Type, raw.SchemaVersion, t.version))
	}
	return raw, t, nil
}

// decodeError is the *DecodeError of rec.
func decodeError(rec eventstore.Record, cause, err error) *DecodeError {
	return &DecodeError{Topic: rec.Topic, Stream: rec.Key, Version: rec.Version, Offset: rec.Offset,
		Type: rec.Type, SchemaVersion: rec.SchemaVersion, cause: cause, Err: err}
}

// Upcast runs the registered upcaster chain on raw until no upcaster
// applies, and returns the result. Each step must raise the schema version
// and keep a non-empty type name.
func (r *Events[E]) Upcast(raw Raw) (Raw, error) {
	for range maxUpcastSteps {
		fn := r.upcast[upcastKey{raw.Type, raw.SchemaVersion}]
		if fn == nil {
			return raw, nil
		}
		next, err := callUpcaster(fn, raw)
		if err != nil {
			return raw, fmt.Errorf("upcaster %q v%d: %w", raw.Type, raw.SchemaVersion, err)
		}
		if next.SchemaVersion <= raw.SchemaVersion {
			return raw, fmt.Errorf("upcaster %q v%d returned v%d: the version must increase", raw.Type, raw.SchemaVersion, next.SchemaVersion)
		}
		if next.Type == "" {
			return raw, fmt.Errorf("upcaster %q v%d returned an empty type name", raw.Type, raw.SchemaVersion)
		}
		if next.Payload == nil {
			next.Payload = []byte{}
		}
		raw = next
	}
	return raw, fmt.Errorf("upcaster chain from %q is longer than %d steps", raw.Type, maxUpcastSteps)
}

// JSONUpcaster returns an Upcaster for JSON payloads: it decodes the
// payload into a map, lets fn change it, and re-encodes it as schema
// version to (with the same type name). Numbers arrive as json.Number, so
// that none loses precision.
func JSONUpcaster(to int, fn func(fields map[string]any) error) Upcaster {
	return func(raw Raw) (Raw, error) {
		d := json.NewDecoder(bytes.NewReader(raw.Payload))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			return raw, fmt.Errorf("decode JSON object: %w", err)
		}
		if m == nil {
			m = map[string]any{}
		}
		if err := fn(m); err != nil {
			return raw, err
		}
		b, err := json.Marshal(m)
		if err != nil {
			return raw, fmt.Errorf("encode JSON object: %w", err)
		}
		return Raw{Type: raw.Type, SchemaVersion: to, Payload: b}, nil
	}
}

// callUpcaster runs fn, turning a panic into an error: a bad upcaster must
// fail the read, not the process.
func callUpcaster(fn Upcaster, raw Raw) (out Raw, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(raw)
}

// String lists the registered types, for debugging.
func (r *Events[E]) String() string {
	var b strings.Builder
	for i, n := range r.Names() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s v%d", n, r.byName[n].version)
	}
	return "aggregate.Events[" + b.String() + "]"
}

// EventType is one event type of a registry, as the Go type T: its stable
// name, its current schema version and the codec of its payloads. Get one
// with TypeOf. It is a small value, safe for concurrent use.
type EventType[T any] struct {
	name    string
	version int
	codec   codec.Codec[T]
	resolve func(eventstore.Record) (Raw, error)
}

// TypeOf returns the registration of the Go type T in r (T exactly, not a
// type that implements it). A T that r does not register is an error
// wrapping ErrUnknownEventType, naming the registered types.
func TypeOf[T, E any](r *Events[E]) (EventType[T], error) {
	if r == nil {
		return EventType[T]{}, fmt.Errorf("%w: %s: the registry is nil", ErrUnknownEventType, reflect.TypeFor[T]())
	}
	t, ok := r.byGoType[reflect.TypeFor[T]()]
	if !ok {
		return EventType[T]{}, fmt.Errorf("%w: Go type %s is not registered in %s", ErrUnknownEventType, reflect.TypeFor[T](), r)
	}
	return EventType[T]{name: t.name, version: t.version, codec: codec.Typed[T](r.format), resolve: r.Resolve}, nil
}

// Name returns the type's registered name, such as "order.placed".
func (t EventType[T]) Name() string { return t.name }

// SchemaVersion returns the type's current schema version.
func (t EventType[T]) SchemaVersion() int { return t.version }

// Codec returns the codec of the type's payloads at the current schema
// version, in the registry's format. It does not upcast: decode a stored
// record with Decode, or a payload that Resolve returned with it.
func (t EventType[T]) Codec() codec.Codec[T] { return t.codec }

// Decode turns a stored record into a T as the registry's Decode would,
// upcasting an old schema version. A record that resolves to another event
// type is an error wrapping ErrUnknownEventType. Failures are *DecodeError.
func (t EventType[T]) Decode(rec eventstore.Record) (T, error) {
	var zero T
	if t.resolve == nil {
		return zero, decodeError(rec, ErrUnknownEventType, errors.New("the zero EventType decodes nothing"))
	}
	raw, err := t.resolve(rec)
	if err != nil {
		return zero, err
	}
	if raw.Type != t.name {
		return zero, decodeError(rec, ErrUnknownEventType, fmt.Errorf("it is event type %q, not %q (%s)", raw.Type, t.name, reflect.TypeFor[T]()))
	}
	v, err := t.codec.Decode(raw.Payload)
	if err != nil {
		return zero, decodeError(rec, ErrUndecodable, err)
	}
	return v, nil
}
