package shop

import "go.opentelemetry.io/otel/trace"

// WithTracerProvider sends the spans of every component the shop builds
// (the command bus, the projections, the revenue stream app, the checkout
// saga and the policies that answer payment requests) to tp (default
// otel.GetTracerProvider()). The store is the caller's: open it with
// eventstore.WithTracerProvider(tp) too, so that appends are spans and
// events carry the trace; serve the shop with service.WithTracerProvider(tp)
// so that a request's trace reaches its command.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *config) { o.tracer = tp }
}
