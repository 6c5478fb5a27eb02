package service

import (
	"net/http"

	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// WithTracerProvider sets where the Server's spans go (Server; default
// otel.GetTracerProvider(), a no-op until a service sets a global one). The
// gRPC server and the gateway's loopback client carry W3C trace context
// (otelgrpc), and the HTTP server takes it from a request's traceparent
// header (otelhttp), so that a request's span is the parent of its
// handler's work: give the command bus, the store and the runners the same
// provider to follow the request into its command, its events and what
// they cause.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// tracer returns the Server's tracer provider.
func (o *options) tracer() trace.TracerProvider {
	if o.tracerProvider != nil {
		return o.tracerProvider
	}
	return otel.GetTracerProvider()
}

// otelGRPC returns the options of the gRPC instrumentation.
func (o *options) otelGRPC() []otelgrpc.Option {
	return []otelgrpc.Option{otelgrpc.WithTracerProvider(o.tracer()), otelgrpc.WithPropagators(telemetry.Propagator())}
}

// tracingServerOptions returns the gRPC server's instrumentation.
func (o *options) tracingServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(o.otelGRPC()...))}
}

// tracingDialOptions returns the gateway's client instrumentation.
func (o *options) tracingDialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(o.otelGRPC()...))}
}

// tracingHandler wraps the HTTP server's handler: a span per request,
// named by its method and path, the child of the request's traceparent.
func (o *options) tracingHandler(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "muninn.http",
		otelhttp.WithTracerProvider(o.tracer()),
		otelhttp.WithPropagators(telemetry.Propagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }),
	)
}
