package projection

import "go.opentelemetry.io/otel/trace"

// WithTracerProvider sets where the projection's spans go (default
// otel.GetTracerProvider()): each batch it applies is a span of its
// consume loop, linked to the traces of the records in it, and a child of
// the append that wrote them when they all come from one (see
// consume.WithTracerProvider).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}
