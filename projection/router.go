package projection

import (
	"fmt"

	"github.com/muninn-es/muninn/eventstore"
)

// Router is a Handler that dispatches records by event type to typed
// handlers (On, OnCodec), so that a handler receives its decoded event and
// no handler switches on type names. Records of types without a handler go
// to the Otherwise handler, or are skipped.
type Router struct {
	routes    map[string]HandlerFunc
	otherwise HandlerFunc
}

// NewRouter returns an empty Router.
func NewRouter() *Router { return &Router{routes: map[string]HandlerFunc{}} }

// On routes records of eventType to fn with their payload decoded as JSON
// into an E. A payload that does not decode is a permanent error (not
// retried).
func On[E any](r *Router, eventType string, fn func(tx *Tx, rec eventstore.Record, e E) error) error {
	return OnCodec(r, eventType, JSON[E](), fn)
}

// OnCodec routes records of eventType to fn with their payload decoded by
// codec. It fails if eventType is empty or already has a handler.
func OnCodec[E any](r *Router, eventType string, codec ValueCodec[E], fn func(tx *Tx, rec eventstore.Record, e E) error) error {
	switch {
	case r == nil:
		return invalid("router", "is nil")
	case eventType == "":
		return invalid("event type", "is empty")
	case codec == nil:
		return invalid("codec", "of %q is nil", eventType)
	case fn == nil:
		return invalid("handler", "of %q is nil", eventType)
	}
	if _, dup := r.routes[eventType]; dup {
		return invalid("event type", "%q already has a handler", eventType)
	}
	r.routes[eventType] = func(tx *Tx, rec eventstore.Record) error {
		e, err := codec.Decode(rec.Payload)
		if err != nil {
			return Permanent(fmt.Errorf("decode %s payload: %w", eventType, err))
		}
		return fn(tx, rec, e)
	}
	return nil
}

// Otherwise sets the handler of records whose type has no route (default:
// skip them).
func (r *Router) Otherwise(fn HandlerFunc) { r.otherwise = fn }

// Handle dispatches rec by its type.
func (r *Router) Handle(tx *Tx, rec eventstore.Record) error {
	if h, ok := r.routes[rec.Type]; ok {
		return h(tx, rec)
	}
	if r.otherwise != nil {
		return r.otherwise(tx, rec)
	}
	return nil
}
