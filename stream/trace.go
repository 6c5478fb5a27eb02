package stream

import (
	"github.com/muninn-es/muninn/consume"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// WithTracerProvider sets where the App's spans go (default
// otel.GetTracerProvider()): each poll it processes is a span of its
// consume loop, linked to the traces of the records in it (see
// consume.WithTracerProvider); the records it writes carry that span's
// trace context.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tracerProvider = tp }
}

// WithMeterProvider sets where the App reports the lag of its consumer
// group (default otel.GetMeterProvider()): muninn_consumer_lag_records and
// muninn_consumer_lag_seconds {group, topic, partition}, as projections and
// sagas do (see consume.WithMeterProvider). A nil mp fails NewApp.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.meterProvider, c.meterProviderSet = mp, true }
}

// loopMeters is the consume option of WithMeterProvider, or nil.
func (c *config) loopMeters() consume.Option {
	if !c.meterProviderSet {
		return nil
	}
	return consume.WithMeterProvider(c.meterProvider)
}
