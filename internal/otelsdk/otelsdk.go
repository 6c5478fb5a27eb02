// Package otelsdk builds the OpenTelemetry SDK meter provider that the
// muninn command runs: `muninn serve` exports it at /metrics and
// `muninn bench` measures its cost. Both take it from here, so that the
// figure in BENCHMARKS.md is the cost of the setup a user runs.
//
// The framework's packages depend only on the OpenTelemetry API; this
// package, like the command, is where the SDK is chosen.
package otelsdk

import (
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
)

// NewMeterProvider returns the SDK's meter provider reading into reader,
// with exemplars off.
//
// The SDK's default exemplar filter keeps, for every histogram, samples
// of the measurements made inside a sampled span (their trace and span
// IDs), which costs a reservoir update per measurement. /metrics serves
// the Prometheus text format, which has no exemplars, so they would be
// collected and never shown. A service that exports OpenMetrics or OTLP
// and wants them builds its own provider (or sets
// OTEL_METRICS_EXEMPLAR_FILTER, which the SDK reads for providers built
// without this option).
func NewMeterProvider(reader sdkmetric.Reader) *sdkmetric.MeterProvider {
	return sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
}
