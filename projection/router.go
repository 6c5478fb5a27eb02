package projection

import (
	"fmt"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
)

// Router is a Handler that dispatches records by event type to typed
// handlers, so that a handler receives its decoded event and no handler
// switches on type names. Records of types without a handler go to the
// Otherwise handler, or are skipped.
//
// On routes the event types of an aggregate's registry (aggregate.Events)
// and decodes them as the aggregate does: a record is upcast to the
// current schema version of its type, following renames, and then decoded
// with the registry's format, so a handler sees an event stored years ago
// as it would be written today. OnCodec routes a type of no registry with
// an explicit codec, as stored.
//
// A Router is built before the projection runs and not changed after:
// On, OnCodec and Otherwise are not safe to call while it handles records.
type Router struct {
	// routes are the OnCodec handlers, by record type.
	routes map[string]HandlerFunc
	// typed are the On handlers, by the name of the registered type a
	// record resolves to; they decode the resolved payload.
	typed map[string]func(tx *Tx, rec eventstore.Record, payload []byte) error
	// registries maps every name a registry in use reads (its types'
	// names and the old names its upcasters rename) to that registry.
	registries map[string]readBy
	otherwise  HandlerFunc
}

// readBy is the registry that reads a record type name, and whether the
// name is an old one its upcasters rename (so that a record of it may be
// meant for any of the registry's types).
type readBy struct {
	reg     eventRegistry
	renamed bool
}

// eventRegistry is what a Router needs of an aggregate.Events, whatever
// its event type.
type eventRegistry interface {
	Names() []string
	Renamed() []string
	Resolve(rec eventstore.Record) (aggregate.Raw, error)
	String() string
}

// NewRouter returns an empty Router.
func NewRouter() *Router {
	return &Router{
		routes:     map[string]HandlerFunc{},
		typed:      map[string]func(*Tx, eventstore.Record, []byte) error{},
		registries: map[string]readBy{},
	}
}

// On routes the records of the event type T, as registered in events (an
// aggregate's registry), to fn. T's name comes from the registry; a T the
// registry does not register, or one that already has a handler, is an
// error, reported here rather than by a silent lack of events later.
//
// Records are decoded through the registry: a record of an older schema
// version is upcast to T's current one, and a record under an old name
// that an upcaster renames to T's reaches fn too. T may be a proto message
// type (a pointer to a generated struct) if the registry's format encodes
// it. A record the registry cannot read (an upcaster that fails, a schema
// version newer than this program's) is a permanent error, not retried;
// so is a payload that does not decode. A record of a type the router has
// no handler for is never decoded.
//
// Every registry a Router uses must read names no other one reads, and
// that no OnCodec route takes.
func On[T, E any](r *Router, events *aggregate.Events[E], fn func(tx *Tx, rec eventstore.Record, e T) error) error {
	switch {
	case r == nil:
		return invalid("router", "is nil")
	case events == nil:
		return invalid("event registry", "is nil")
	}
	et, err := aggregate.TypeOf[T](events)
	if err != nil {
		return fmt.Errorf("%w: event type: %w", ErrInvalidArgument, err)
	}
	name := et.Name()
	switch {
	case fn == nil:
		return invalid("handler", "of %q is nil", name)
	case r.typed[name] != nil:
		return invalid("event type", "%q (%T) already has a handler", name, *new(T))
	}
	if err := r.use(events); err != nil {
		return err
	}
	c := et.Codec()
	r.typed[name] = func(tx *Tx, rec eventstore.Record, payload []byte) error {
		e, err := c.Decode(payload)
		if err != nil {
			return consume.Permanent(fmt.Errorf("decode %s payload (schema v%d, resolved to %q v%d): %w",
				rec.Type, rec.SchemaVersion, name, et.SchemaVersion(), err))
		}
		return fn(tx, rec, e)
	}
	return nil
}

// use makes the router read the names of reg through it.
func (r *Router) use(reg eventRegistry) error {
	names, renamed := reg.Names(), reg.Renamed()
	for _, n := range append(names, renamed...) {
		if other, ok := r.registries[n]; ok && other.reg != reg {
			return invalid("event registry", "event type %q is read by two registries: %s and %s", n, other.reg, reg)
		}
		if _, ok := r.routes[n]; ok {
			return invalid("event registry", "event type %q of %s already has an OnCodec handler", n, reg)
		}
	}
	for _, n := range names {
		r.registries[n] = readBy{reg: reg}
	}
	for _, n := range renamed {
		r.registries[n] = readBy{reg: reg, renamed: true}
	}
	return nil
}

// OnCodec routes records of eventType to fn with their payload decoded by
// c, as stored: it bypasses every registry, so nothing upcasts an old
// schema version and fn sees the payload as it was written. Use it for
// event types no aggregate registers (records written by other systems,
// stream processors' output); an aggregate's events go through On. It
// fails if eventType is empty, already has a handler, or is read by a
// registry in use. A payload that does not decode is a permanent error
// (not retried).
func OnCodec[T any](r *Router, eventType string, c codec.Codec[T], fn func(tx *Tx, rec eventstore.Record, e T) error) error {
	switch {
	case r == nil:
		return invalid("router", "is nil")
	case eventType == "":
		return invalid("event type", "is empty")
	case fn == nil:
		return invalid("handler", "of %q is nil", eventType)
	}
	if err := codec.Check(c); err != nil {
		return invalid("codec", "of %q: %v", eventType, err)
	}
	if _, dup := r.routes[eventType]; dup {
		return invalid("event type", "%q already has a handler", eventType)
	}
	if by, ok := r.registries[eventType]; ok {
		return invalid("event type", "%q is read by %s: route it with On", eventType, by.reg)
	}
	r.routes[eventType] = func(tx *Tx, rec eventstore.Record) error {
		e, err := c.Decode(rec.Payload)
		if err != nil {
			return consume.Permanent(fmt.Errorf("decode %s payload: %w", eventType, err))
		}
		return fn(tx, rec, e)
	}
	return nil
}

// Otherwise sets the handler of records whose type has no route (default:
// skip them).
func (r *Router) Otherwise(fn HandlerFunc) { r.otherwise = fn }

// Handle dispatches rec by its type: through the registry that reads its
// type, by the type it resolves to, or to its OnCodec handler.
func (r *Router) Handle(tx *Tx, rec eventstore.Record) error {
	if by, ok := r.registries[rec.Type]; ok {
		raw, err := by.reg.Resolve(rec)
		if err != nil {
			if r.typed[rec.Type] == nil && !by.renamed {
				// Not a type of ours: a record this program cannot read
				// (written by newer code, say) of a type no handler takes.
				return r.other(tx, rec)
			}
			return consume.Permanent(err)
		}
		if h := r.typed[raw.Type]; h != nil {
			return h(tx, rec, raw.Payload)
		}
		return r.other(tx, rec)
	}
	if h, ok := r.routes[rec.Type]; ok {
		return h(tx, rec)
	}
	return r.other(tx, rec)
}

func (r *Router) other(tx *Tx, rec eventstore.Record) error {
	if r.otherwise != nil {
		return r.otherwise(tx, rec)
	}
	return nil
}
