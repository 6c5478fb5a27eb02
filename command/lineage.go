package command

import "context"

type correlationKey struct{}

// WithCorrelationID returns a context that carries the correlation ID id.
// Commands dispatched with it put id on every event they produce; a
// transport sets it from the request, and a saga from the event it reacts
// to.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the correlation ID ctx carries, or "". Inside
// middleware and handlers the bus has always set one.
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}
