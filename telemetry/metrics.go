package telemetry

import (
	"runtime"
	"weak"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// MeterName is the instrumentation scope of every Muninn metric.
const MeterName = "github.com/muninn-es/muninn"

// The names of Muninn's metrics. They are the Prometheus names, given to
// the OpenTelemetry API as they are: an exporter that translates names (the
// Prometheus exporter's default adds unit and _total suffixes) must be told
// not to (see cmd/muninn's metrics setup), and an OTLP exporter sends them
// unchanged.
const (
	// MetricCommands counts dispatched commands
	// {aggregate, command, outcome}; the outcome is OutcomeApplied,
	// OutcomeDuplicate or the error's kind (command.Kind's String).
	MetricCommands = "muninn_commands_total"
	// MetricCommandDuration is a histogram of the time a dispatch took, in
	// seconds {aggregate, command, outcome}.
	MetricCommandDuration = "muninn_command_duration_seconds"
	// MetricAppendBatchSize is a histogram of the events per append
	// {topic}.
	MetricAppendBatchSize = "muninn_append_batch_size"
	// MetricFsyncDuration is a histogram of the time a durable append
	// waited for its fsync, in seconds.
	MetricFsyncDuration = "muninn_fsync_duration_seconds"
	// MetricConsumerLagRecords is a gauge of the records a consumer has not
	// applied {group, topic, partition}.
	MetricConsumerLagRecords = "muninn_consumer_lag_records"
	// MetricConsumerLagSeconds is a gauge of the age of the oldest record a
	// consumer has not applied, in seconds {group, topic, partition}.
	MetricConsumerLagSeconds = "muninn_consumer_lag_seconds"
	// MetricProjectionState is a gauge per projection and state name
	// {projection, state}: 1 for the state the projection is in, 0 for the
	// others (the states of consume.State: idle, catching_up, live,
	// stopped, failed).
	MetricProjectionState = "muninn_projection_state"
	// MetricSagaSteps counts the steps sagas took {saga}.
	MetricSagaSteps = "muninn_saga_steps_total"
	// MetricSagaInstances is a gauge of a saga's stored instances by
	// status {saga, status}.
	MetricSagaInstances = "muninn_saga_instances"
	// MetricDeadlinesPending is a gauge of a saga's pending deadlines
	// {saga}.
	MetricDeadlinesPending = "muninn_deadlines_pending"
	// MetricRelayPublished counts the records a relay published {relay}.
	MetricRelayPublished = "muninn_relay_published_total"
	// MetricPebblePrefix starts the names of the Pebble engine's own
	// metrics (muninn_pebble_compactions_total, ...).
	MetricPebblePrefix = "muninn_pebble_"
)

// The label (attribute) keys of Muninn's metrics.
const (
	LabelAggregate  = "aggregate"
	LabelCommand    = "command"
	LabelOutcome    = "outcome"
	LabelTopic      = "topic"
	LabelGroup      = "group"
	LabelPartition  = "partition"
	LabelProjection = "projection"
	LabelState      = "state"
	LabelSaga       = "saga"
	LabelStatus     = "status"
	LabelRelay      = "relay"
)

// The outcomes of muninn_commands_total besides the error kinds.
const (
	// OutcomeApplied: the command was applied.
	OutcomeApplied = "applied"
	// OutcomeDuplicate: the command ID had been seen, and the first
	// result was returned.
	OutcomeDuplicate = "duplicate"
)

// Meter returns Muninn's meter of mp, or of otel.GetMeterProvider() when mp
// is nil: the default of every package's WithMeterProvider.
func Meter(mp metric.MeterProvider) metric.Meter {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(MeterName)
}

// Bounds of the histograms, in their units.
var (
	// DurationBounds are the buckets of durations in seconds, from 100 µs
	// to 10 s.
	DurationBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	// SizeBounds are the buckets of counts of things, from 1 to 10000.
	SizeBounds = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}
)

// ObserveWhileReachable registers the callbacks of obj's observable
// instruments for as long as obj lives: register receives a function that
// returns obj, or nil once obj is garbage (the callback then reports
// nothing), and the registration it returns is unregistered when obj has
// been collected. A meter provider, the global one above all, keeps every
// callback registered on it; holding obj only weakly keeps a runner that a
// program dropped from living on in its provider.
func ObserveWhileReachable[T any](obj *T, register func(get func() *T) (metric.Registration, error)) error {
	w := weak.Make(obj)
	reg, err := register(w.Value)
	if err != nil {
		return err
	}
	runtime.AddCleanup(obj, func(r metric.Registration) { _ = r.Unregister() }, reg)
	return nil
}
