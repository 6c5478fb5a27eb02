// Package telemetry holds the names and helpers that Muninn's packages share for traces, metrics and logs.
//
// # Traces
//
// Muninn carries W3C trace context (traceparent, tracestate) through the
// log: the store writes the context of an append into the headers of every
// event it appends (HeaderTraceparent, HeaderTracestate), and the layers
// that handle records (the consume loop and what runs on it: projections,
// sagas, stream apps, the broker's relay and inbound) restore it with
// Extract or link to it with Link, so that one trace spans a request, its
// command, its events and everything they cause. Every package that makes
// spans takes a WithTracerProvider option; the default is
// otel.GetTracerProvider(), a no-op until a service sets a global provider.
// The framework depends only on the OpenTelemetry API; a service picks the
// SDK and its exporter.
//
// Spans are only made where they can be seen: under a context that carries
// a span context, or, for the spans that would start a trace, when the
// package was given a provider (or a global one was set) — so that with the
// default no-op provider tracing costs no allocation.
//
// # Logs
//
// Every package logs through log/slog with the attribute names defined
// here (AttrTopic, AttrPartition, AttrOffset, AttrAggregate, AttrCommandID,
// AttrCorrelationID, AttrTraceID, ...); RecordAttrs gives the attributes of
// a record and TraceAttrs the trace ID of a context.
package telemetry
