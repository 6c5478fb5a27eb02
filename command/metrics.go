package command

import (
	"context"
	"strings"
	"sync"

	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// WithMeterProvider sets where the bus reports its metrics (default
// otel.GetMeterProvider(), a no-op until a program sets one):
// muninn_commands_total{aggregate,command,outcome} and the histogram
// muninn_command_duration_seconds{aggregate,command,outcome}. The outcome is
// "applied", "duplicate" or the error's Kind in snake case
// ("failed_precondition", "aborted", ...). They are measured outside every
// middleware, so commands that middleware refuses count too.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if mp == nil {
			c.errs = append(c.errs, invalid("WithMeterProvider: nil meter provider"))
			return
		}
		c.meters = mp
	}
}

// busMetrics is the bus's MetricsRecorder of the OpenTelemetry instruments.
type busMetrics struct {
	commands metric.Int64Counter
	duration metric.Float64Histogram
	// sets caches the options (the attribute set) of each (aggregate,
	// command, outcome), as the slices the instruments take, so that a
	// dispatch allocates neither the set nor a variadic call's slice.
	sets sync.Map // metricKey -> *metricOpts
}

// metricOpts are the options of one (aggregate, command, outcome).
type metricOpts struct {
	add    []metric.AddOption
	record []metric.RecordOption
}

type metricKey struct{ aggregate, command, outcome string }

func newBusMetrics(mp metric.MeterProvider) (*busMetrics, error) {
	m := telemetry.Meter(mp)
	var bm busMetrics
	var err error
	if bm.commands, err = m.Int64Counter(telemetry.MetricCommands,
		metric.WithDescription("Commands dispatched, by aggregate, command type and outcome."),
		metric.WithUnit("{command}")); err != nil {
		return nil, err
	}
	if bm.duration, err = m.Float64Histogram(telemetry.MetricCommandDuration,
		metric.WithDescription("Time a command's dispatch took, by aggregate, command type and outcome."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(telemetry.DurationBounds...)); err != nil {
		return nil, err
	}
	return &bm, nil
}

// Outcome returns the outcome label of a command that ended with err (nil
// for an applied one) and, if it was applied, was a duplicate or not:
// "applied", "duplicate" or err's Kind in snake case.
func Outcome(err error, duplicate bool) string {
	switch {
	case err != nil:
		return strings.ReplaceAll(KindOf(err).String(), " ", "_")
	case duplicate:
		return telemetry.OutcomeDuplicate
	}
	return telemetry.OutcomeApplied
}

// ObserveCommand records o.
func (bm *busMetrics) ObserveCommand(ctx context.Context, o Observation) {
	k := metricKey{o.AggregateType, o.CommandType, Outcome(o.Err, o.Duplicate)}
	v, ok := bm.sets.Load(k)
	if !ok {
		set := metric.WithAttributeSet(attribute.NewSet(
			attribute.String(telemetry.LabelAggregate, k.aggregate),
			attribute.String(telemetry.LabelCommand, k.command),
			attribute.String(telemetry.LabelOutcome, k.outcome)))
		v, _ = bm.sets.LoadOrStore(k, &metricOpts{add: []metric.AddOption{set}, record: []metric.RecordOption{set}})
	}
	opts := v.(*metricOpts)
	bm.commands.Add(ctx, 1, opts.add...)
	bm.duration.Record(ctx, o.Duration.Seconds(), opts.record...)
}
