package bench

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Defaults of a full run (DefaultConfig) and of a quick one (QuickConfig).
const (
	// DefaultDuration is how long each throughput measurement runs.
	DefaultDuration = 3 * time.Second
	// DefaultWarmup is the untimed run before each throughput measurement.
	DefaultWarmup = 500 * time.Millisecond
	// DefaultRounds is how many times the measurements run.
	DefaultRounds = 1
	// DefaultStreams is how many streams the read measurements load.
	DefaultStreams = 10_000
	// DefaultEventsPerStream is how many events each loaded stream has.
	DefaultEventsPerStream = 10
	// DefaultPayloadBytes is the payload size of every event written.
	DefaultPayloadBytes = 200
	// DefaultPartitions is the partition count of the benchmark topics.
	DefaultPartitions = 8

	// DefaultStreamEvents is how many events the stream-processing
	// measurement processes.
	DefaultStreamEvents = 1_000_000

	// QuickDuration, QuickWarmup and QuickStreams replace the defaults in a
	// quick run, which takes well under 30 s on 2 cores.
	QuickDuration = time.Second
	QuickWarmup   = 200 * time.Millisecond
	QuickStreams  = 2_000

	// DefaultProjectionEvents is how many events the projection catch-up
	// measurement projects; QuickProjectionEvents in a quick run.
	DefaultProjectionEvents = 1_000_000
	QuickProjectionEvents   = 200_000
	// QuickStreamEvents replaces DefaultStreamEvents in a quick run.
	QuickStreamEvents = 200_000

	// DefaultSagaOrders is how many orders the saga measurement takes
	// through the fulfillment workflow; QuickSagaOrders in a quick run.
	DefaultSagaOrders = 10_000
	QuickSagaOrders   = 3_000
)

// maxPayloadBytes keeps every event well inside the store's default event
// size limit (1 MiB, payload plus metadata).
const maxPayloadBytes = 512 << 10

// Config says what Run measures and where. Start from DefaultConfig or
// QuickConfig and change fields; the zero Config is not valid.
type Config struct {
	// Dir is the directory in which Run creates its temporary directory,
	// removed before Run returns. Empty means the system's temporary
	// directory. Measure on the disk you care about.
	Dir string
	// Duration is how long each throughput measurement is timed. Default
	// DefaultDuration.
	Duration time.Duration
	// Warmup is how long each throughput measurement runs, untimed, before
	// it is timed. Zero means no warm-up. Default DefaultWarmup.
	Warmup time.Duration
	// Rounds is how many times every measurement runs; with more than one,
	// each key of the Result is the median over the rounds. Default 1.
	Rounds int
	// Streams and EventsPerStream size the topic the read measurements
	// load. Defaults DefaultStreams and DefaultEventsPerStream.
	Streams         int
	EventsPerStream int
	// PayloadBytes is the payload size of every event and raw Pebble value.
	// Default DefaultPayloadBytes.
	PayloadBytes int
	// Partitions is the partition count of the benchmark topics. Default
	// DefaultPartitions.
	Partitions int
	// ProjectionEvents is how many events the projection catch-up
	// measurement loads and projects. Default DefaultProjectionEvents.
	ProjectionEvents int
	// StreamEvents is how many events the windowed-count topology
	// processes. Default DefaultStreamEvents.
	StreamEvents int
	// SagaOrders is how many orders the saga measurement places and takes
	// through the fulfillment workflow. Default DefaultSagaOrders.
	SagaOrders int
	// Progress receives a line as each step starts and ends. Nil discards.
	Progress io.Writer

	// PostgresURL, if set, is a PostgreSQL server on which Run measures the
	// PostgreSQL store too (the pg_* keys), in a schema of its own that it
	// drops at the end. PostgresOnly skips every other measurement.
	PostgresURL  string
	PostgresOnly bool
	// Only, if not empty, restricts a run to the measurements of which one
	// JSON key starts with one of these prefixes ("telemetry" runs the
	// telemetry step, "pebble_raw_sync_16" the 16-writer append pair); the
	// keys of the others stay 0. Empty (the default): every measurement.
	Only []string
}

// DefaultConfig returns the configuration of a full run.
func DefaultConfig() Config {
	return Config{
		Duration:        DefaultDuration,
		Warmup:          DefaultWarmup,
		Rounds:          DefaultRounds,
		Streams:         DefaultStreams,
		EventsPerStream: DefaultEventsPerStream,
		PayloadBytes:    DefaultPayloadBytes,
		Partitions:      DefaultPartitions,

		ProjectionEvents: DefaultProjectionEvents,
		StreamEvents:     DefaultStreamEvents,
		SagaOrders:       DefaultSagaOrders,
	}
}

// QuickConfig returns the configuration of a quick run: shorter
// measurements and fewer streams.
func QuickConfig() Config {
	c := DefaultConfig()
	c.Duration, c.Warmup, c.Streams = QuickDuration, QuickWarmup, QuickStreams
	c.ProjectionEvents = QuickProjectionEvents
	c.StreamEvents = QuickStreamEvents
	c.SagaOrders = QuickSagaOrders
	return c
}

// Validate reports every problem with c at once, each naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("bench: %s %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Duration <= 0 {
		bad("Duration", "must be positive, got %s", c.Duration)
	}
	if c.Warmup < 0 {
		bad("Warmup", "must not be negative, got %s", c.Warmup)
	}
	if c.Rounds < 1 {
		bad("Rounds", "must be at least 1, got %d", c.Rounds)
	}
	if c.Streams < 1 {
		bad("Streams", "must be at least 1, got %d", c.Streams)
	}
	if c.EventsPerStream < 1 {
		bad("EventsPerStream", "must be at least 1, got %d", c.EventsPerStream)
	}
	if c.PayloadBytes < 1 || c.PayloadBytes > maxPayloadBytes {
		bad("PayloadBytes", "must be between 1 and %d, got %d", maxPayloadBytes, c.PayloadBytes)
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		bad("Partitions", "must be between 1 and 1024, got %d", c.Partitions)
	}
	if c.ProjectionEvents < 1 {
		bad("ProjectionEvents", "must be at least 1, got %d", c.ProjectionEvents)
	}
	if c.StreamEvents < 1 || c.StreamEvents > 100_000_000 {
		bad("StreamEvents", "must be between 1 and 100000000, got %d", c.StreamEvents)
	}
	if c.SagaOrders < 1 || c.SagaOrders > 10_000_000 {
		bad("SagaOrders", "must be between 1 and 10000000, got %d", c.SagaOrders)
	}
	if c.PostgresOnly && c.PostgresURL == "" {
		bad("PostgresOnly", "needs PostgresURL")
	}
	for _, o := range c.Only {
		if o == "" {
			bad("Only", "has an empty prefix")
		}
	}
	return errors.Join(errs...)
}
