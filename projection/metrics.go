package projection

import (
	"context"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// WithMeterProvider sets where the projection reports its metrics (default
// otel.GetMeterProvider(), a no-op until a program sets one), read from
// Status when the metrics are collected: the lag of its current
// generation's consumer group, muninn_consumer_lag_records and
// muninn_consumer_lag_seconds {group, topic, partition}, and
// muninn_projection_state{projection, state}, 1 for the state it is in and
// 0 for the other states of consume.State (idle, catching_up, live,
// stopped, failed). They stay registered as long as mp lives. A nil mp
// fails New.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meters, o.metersSet = mp, true }
}

// projectionStates are the values of the state label.
var projectionStates = []consume.State{consume.StateIdle, consume.StateCatchingUp, consume.StateLive, consume.StateStopped, consume.StateFailed}

// noMeters is the meter provider of the projection's loops: the projection
// reports the lag of whichever is current itself.
var noMeters = noop.NewMeterProvider()

// registerMetrics registers the projection's gauges, for as long as it
// lives.
func (p *Projection) registerMetrics() error {
	if err := telemetry.ObserveWhileReachable(p, func(get func() *Projection) (metric.Registration, error) {
		return consume.ObserveLag(p.opts.meters, func(ctx context.Context) (consume.Status, error) {
			p := get()
			if p == nil {
				return consume.Status{}, nil
			}
			st, err := p.Status(ctx)
			return st.Status, err
		})
	}); err != nil {
		return err
	}
	return telemetry.ObserveWhileReachable(p, p.registerState)
}

// registerState registers muninn_projection_state.
func (p *Projection) registerState(get func() *Projection) (metric.Registration, error) {
	m := telemetry.Meter(p.opts.meters)
	state, err := m.Int64ObservableGauge(telemetry.MetricProjectionState,
		metric.WithDescription("1 for the state a projection is in, 0 for the others."))
	if err != nil {
		return nil, err
	}
	sets := make([]metric.ObserveOption, len(projectionStates))
	for i, s := range projectionStates {
		sets[i] = metric.WithAttributeSet(attribute.NewSet(
			attribute.String(telemetry.LabelProjection, p.name), attribute.String(telemetry.LabelState, s.String())))
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		p := get()
		if p == nil {
			return nil
		}
		st, err := p.Status(ctx)
		if err != nil {
			return nil // a closed store: nothing to report
		}
		for i, s := range projectionStates {
			v := int64(0)
			if st.State == s {
				v = 1
			}
			o.ObserveInt64(state, v, sets[i])
		}
		return nil
	}, state)
}
