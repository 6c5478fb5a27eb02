package saga

import (
	"context"
	"errors"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// WithMeterProvider sets where the saga reports its metrics (default
// otel.GetMeterProvider(), a no-op until a program sets one), read when the
// metrics are collected: muninn_saga_steps_total{saga} (the steps taken
// since the Saga was created, Stats().Steps), muninn_saga_instances{saga,
// status} (the stored instances by status, read from the store: instances
// that ended count until their retention has passed),
// muninn_deadlines_pending{saga} (read from the store's deadline index),
// and the lag of its consumer group (muninn_consumer_lag_records and
// muninn_consumer_lag_seconds). They stay registered as long as mp lives.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) {
		if mp == nil {
			o.errs = append(o.errs, errors.New("WithMeterProvider: nil meter provider"))
			return
		}
		o.meters = mp
	}
}

// instanceStatuses are the values of the status label.
var instanceStatuses = []Status{StatusRunning, StatusCompleted, StatusCompensating, StatusFailed}

// registerMetrics registers the saga's instruments and their callback, for
// as long as the saga lives.
func (s *Saga[S]) registerMetrics() error {
	return telemetry.ObserveWhileReachable(s, s.registerCallback)
}

func (s *Saga[S]) registerCallback(get func() *Saga[S]) (metric.Registration, error) {
	m := telemetry.Meter(s.opts.meters)
	steps, err := m.Int64ObservableCounter(telemetry.MetricSagaSteps,
		metric.WithDescription("Steps sagas took (events and timeouts handled)."), metric.WithUnit("{step}"))
	if err != nil {
		return nil, err
	}
	instances, err := m.Int64ObservableGauge(telemetry.MetricSagaInstances,
		metric.WithDescription("Stored saga instances, by status."), metric.WithUnit("{instance}"))
	if err != nil {
		return nil, err
	}
	deadlines, err := m.Int64ObservableGauge(telemetry.MetricDeadlinesPending,
		metric.WithDescription("Pending saga deadlines."), metric.WithUnit("{deadline}"))
	if err != nil {
		return nil, err
	}
	name := attribute.String(telemetry.LabelSaga, s.def.name)
	own := metric.WithAttributeSet(attribute.NewSet(name))
	byStatus := make(map[Status]metric.ObserveOption, len(instanceStatuses))
	for _, st := range instanceStatuses {
		byStatus[st] = metric.WithAttributeSet(attribute.NewSet(name, attribute.String(telemetry.LabelStatus, string(st))))
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		s := get()
		if s == nil {
			return nil
		}
		o.ObserveInt64(steps, int64(s.Stats().Steps), own)
		counts, pending, err := s.countStored(ctx)
		if err != nil {
			return nil // a closed store: nothing more to report
		}
		for _, st := range instanceStatuses {
			o.ObserveInt64(instances, counts[st], byStatus[st])
		}
		o.ObserveInt64(deadlines, pending, own)
		return nil
	}, steps, instances, deadlines)
}

// countStored counts the stored instances by status, and the pending
// deadlines. It decodes the instances' records, not their states.
func (s *Saga[S]) countStored(ctx context.Context) (map[Status]int64, int64, error) {
	counts := map[Status]int64{}
	lower, upper := s.keys.instances().Range()
	for kv, err := range s.store.Scan(ctx, lower, upper, false) {
		if err != nil {
			return nil, 0, err
		}
		rec, err := decodeInstance(kv.Value)
		if err != nil {
			continue // Instances reports it
		}
		counts[rec.Status]++
	}
	var pending int64
	lower, upper = s.keys.deadlines().Range()
	for _, err := range s.store.Scan(ctx, lower, upper, false) {
		if err != nil {
			return nil, 0, err
		}
		pending++
	}
	return counts, pending, nil
}

// loopMeters is the consume option that gives the saga's loop its meter
// provider.
func (o options) loopMeters() consume.Option {
	if o.meters == nil {
		return nil
	}
	return consume.WithMeterProvider(o.meters)
}
