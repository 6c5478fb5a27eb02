package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// traceExporters are the values `muninn serve --trace` accepts.
const traceExporters = `"" (off) or "stdout"`

// newTracing returns the tracer provider that --trace asks for (nil when
// off: the framework's default, a no-op) and an io.Closer that flushes and
// stops it. "stdout" writes every span as JSON to w (stdout) when it ends.
func newTracing(exporter string, w io.Writer) (trace.TracerProvider, io.Closer, error) {
	switch exporter {
	case "":
		return nil, closerFunc(func() error { return nil }), nil
	case "stdout":
		if w == nil {
			w = os.Stdout
		}
		exp, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, nil, fmt.Errorf("serve: --trace stdout: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		return tp, closerFunc(func() error { return tp.Shutdown(context.Background()) }), nil
	}
	return nil, nil, fmt.Errorf("serve: --trace %q: want %s", exporter, traceExporters)
}
