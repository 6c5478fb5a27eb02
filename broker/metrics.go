package broker

import (
	"context"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// registerMetrics registers muninn_relay_published_total{relay}, read from
// the relay's count when the metrics are collected, for as long as the
// relay lives.
func (r *Relay) registerMetrics() error {
	return telemetry.ObserveWhileReachable(r, r.registerCallback)
}

func (r *Relay) registerCallback(get func() *Relay) (metric.Registration, error) {
	m := telemetry.Meter(r.cfg.MeterProvider)
	published, err := m.Int64ObservableCounter(telemetry.MetricRelayPublished,
		metric.WithDescription("Records a relay published (a record published again after a failure counts again)."),
		metric.WithUnit("{record}"))
	if err != nil {
		return nil, err
	}
	set := metric.WithAttributeSet(attribute.NewSet(attribute.String(telemetry.LabelRelay, r.cfg.Group)))
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		r := get()
		if r == nil {
			return nil
		}
		r.mu.Lock()
		n := r.mu.published
		r.mu.Unlock()
		o.ObserveInt64(published, n, set)
		return nil
	}, published)
}

// loopMeters is the consume option that gives the relay's loop its meter
// provider, so that it reports the lag of the relay's group.
func (c RelayConfig) loopMeters() consume.Option {
	if c.MeterProvider == nil {
		return nil
	}
	return consume.WithMeterProvider(c.MeterProvider)
}
