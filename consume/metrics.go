package consume

import (
	"context"

	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// WithMeterProvider sets where the loop reports its lag (default
// otel.GetMeterProvider(), a no-op until a program sets one): the gauges
// muninn_consumer_lag_records and muninn_consumer_lag_seconds (the age of
// the oldest record not applied) {group, topic, partition}, read from
// Status when the metrics are collected, so no goroutine polls for them.
// Only a consumer group source (one that is Partitioned, also through
// NewFrom) has a lag. The gauges stay registered as
// long as mp lives. A nil mp fails New. The runners built on the loop
// (projections, sagas, the relay) take the same option and report their
// loops' lag themselves.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) {
		if mp == nil {
			o.errs = append(o.errs, invalid("WithMeterProvider", "nil meter provider"))
			return
		}
		o.meters = mp
	}
}

// ObserveLag registers, on mp (nil: otel.GetMeterProvider()), the gauges
// muninn_consumer_lag_records and muninn_consumer_lag_seconds of the
// partitions in the Status that status returns at each collection: what a
// runner that moves between loops (a projection's generations) uses to
// report the lag of whichever loop is current. Unregister the returned
// registration to stop.
func ObserveLag(mp metric.MeterProvider, status func(ctx context.Context) (Status, error)) (metric.Registration, error) {
	m := telemetry.Meter(mp)
	records, err := m.Int64ObservableGauge(telemetry.MetricConsumerLagRecords,
		metric.WithDescription("Records a consumer group has not applied, by partition."), metric.WithUnit("{record}"))
	if err != nil {
		return nil, err
	}
	seconds, err := m.Float64ObservableGauge(telemetry.MetricConsumerLagSeconds,
		metric.WithDescription("Age of the oldest record a consumer group has not applied, by partition."), metric.WithUnit("s"))
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		st, err := status(ctx)
		if err != nil || st.Group == "" {
			return nil // a closed store, or no group: nothing to report
		}
		for _, p := range st.Partitions {
			set := metric.WithAttributeSet(attribute.NewSet(
				attribute.String(telemetry.LabelGroup, st.Group),
				attribute.String(telemetry.LabelTopic, p.Topic),
				attribute.Int(telemetry.LabelPartition, p.Partition)))
			o.ObserveInt64(records, p.Lag, set)
			o.ObserveFloat64(seconds, p.LagSeconds, set)
		}
		return nil
	}, records, seconds)
}

// observeLag registers the loop's lag gauges for as long as the loop lives.
func (l *Loop) observeLag() error {
	return telemetry.ObserveWhileReachable(l, func(get func() *Loop) (metric.Registration, error) {
		return ObserveLag(l.opts.meters, func(ctx context.Context) (Status, error) {
			if l := get(); l != nil {
				return l.Status(ctx)
			}
			return Status{}, nil
		})
	})
}
