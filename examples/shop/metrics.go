package shop

import "go.opentelemetry.io/otel/metric"

// WithMeterProvider sets where the shop's parts report their metrics: the
// command bus, the projections, the revenue stream app, the checkout saga
// and the policies' sagas (default otel.GetMeterProvider()). The store's metrics are
// the store's option (eventstore.WithMeterProvider): the shop does not
// open it.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(o *config) { o.meters = mp } }
