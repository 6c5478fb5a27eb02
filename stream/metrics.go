package stream

import "go.opentelemetry.io/otel/metric"

// WithMeterProvider sets where the App reports the lag of its consumer
// group (default otel.GetMeterProvider(), a no-op until a program sets
// one): the gauges muninn_consumer_lag_records and
// muninn_consumer_lag_seconds {group, topic, partition} of its source and
// repartition topics, read from Status when the metrics are collected (see
// consume.WithMeterProvider). They stay registered as long as mp lives. A
// nil mp fails NewApp.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		c.meters = mp
		c.metersSet = true
	}
}
