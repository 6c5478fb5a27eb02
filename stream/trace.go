package stream

import "go.opentelemetry.io/otel/trace"

// WithTracerProvider sets where the App's spans go (default
// otel.GetTracerProvider()): each poll it processes is a span of its
// consume loop, linked to the traces of the records in it (see
// consume.WithTracerProvider); the records it writes carry that span's
// trace context.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tracerProvider = tp }
}
