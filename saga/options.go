package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/consume"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Dispatcher sends commands: a *command.Bus is one. A saga dispatches each
// command with command.WithCommandID (its derived ID),
// command.WithCausationID and a context carrying the workflow's
// correlation ID (command.WithCorrelationID), and classifies errors with
// command.KindOf.
type Dispatcher interface {
	Dispatch(ctx context.Context, aggregateID string, cmd any, opts ...command.DispatchOption) (command.Result, error)
}

// Defaults of the options.
const (
	DefaultBatchSize     = 256
	DefaultConcurrency   = 64
	DefaultRetries       = consume.DefaultRetries
	DefaultRetention     = 7 * 24 * time.Hour
	DefaultPurgeInterval = time.Hour
)

// Option configures a Saga.
type Option func(*options)

type options struct {
	codec       codec.Format
	clock       clock.Clock
	batch       int
	concurrency int
	retries     int
	backoff     clock.Backoff
	retention   time.Duration
	purge       time.Duration
	logger      *slog.Logger
	meters      metric.MeterProvider
	// tracerProvider is WithTracerProvider's (trace.go); nil for the
	// default.
	tracerProvider trace.TracerProvider
	errs           []error
}

// WithCodec sets the format of the saga's state, of its stored commands
// and timeout messages, and of the payloads of event types no registry
// given to UseEvents reads (those decode as stored, without upcasting).
// Default: codec.DefaultFormat (Protobuf binary for proto messages, JSON
// for the rest), the aggregates' default, so events decode as their
// aggregates wrote them.
func WithCodec(f codec.Format) Option { return func(o *options) { o.codec = f } }

// WithClock sets the saga's one clock: deadlines are due by it, steps see
// its time (Step.Now) and instances record it, and every wait of the saga
// (for the next deadline or purge, the back-off before a handler or a
// command is retried) waits on it. Default: clock.System(). Tests pass a
// *clock.Manual and move it with Advance instead of sleeping.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithBatchSize sets how many records, or due deadlines, one batch (one
// durable write with the checkpoint) handles at most. Default:
// DefaultBatchSize.
func WithBatchSize(n int) Option { return func(o *options) { o.batch = n } }

// WithConcurrency sets how many instances' commands are dispatched at once
// (one instance's commands are always dispatched in order, one at a time).
// Default: DefaultConcurrency.
func WithConcurrency(n int) Option { return func(o *options) { o.concurrency = n } }

// WithRetries sets how many more times a handler that returns an error is
// run before its step counts as failed. Default: DefaultRetries.
func WithRetries(n int) Option { return func(o *options) { o.retries = n } }

// WithBackoff sets the back-off before each retry, both of failing
// handlers and of commands that fail for reasons other than a rejection
// (the store closing, a dispatcher that is down), waited for on the
// saga's clock. Default: clock.DefaultBackoff.
func WithBackoff(b clock.Backoff) Option { return func(o *options) { o.backoff = b } }

// WithRetention sets how long ended instances are kept, so that their
// late events are recognized and ignored and they can be inspected.
// Default: DefaultRetention.
func WithRetention(d time.Duration) Option { return func(o *options) { o.retention = d } }

// WithPurgeInterval sets how often Run purges instances past their
// retention. Default: DefaultPurgeInterval.
func WithPurgeInterval(d time.Duration) Option { return func(o *options) { o.purge = d } }

// WithLogger sets the logger of failures and retries. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func newOptions(opts []Option) (options, error) {
	o := options{
		codec:       codec.DefaultFormat,
		clock:       clock.System(),
		batch:       DefaultBatchSize,
		concurrency: DefaultConcurrency,
		retries:     DefaultRetries,
		backoff:     clock.DefaultBackoff,
		retention:   DefaultRetention,
		purge:       DefaultPurgeInterval,
		logger:      slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		if opt == nil {
			o.errs = append(o.errs, errors.New("nil option"))
			continue
		}
		opt(&o)
	}
	errs := o.errs
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.codec == nil, "WithCodec: nil codec")
	check(o.clock == nil, "WithClock: nil clock")
	check(o.batch < 1 || o.batch > consume.MaxBatchSize, "WithBatchSize: %d, want 1 to %d", o.batch, consume.MaxBatchSize)
	check(o.concurrency < 1, "WithConcurrency: %d, want at least 1", o.concurrency)
	check(o.retries < 0, "WithRetries: %d, want at least 0", o.retries)
	if err := o.backoff.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("WithBackoff: %w", err))
	}
	o.backoff = o.backoff.WithDefaults()
	check(o.retention <= 0, "WithRetention: %s, want more than 0", o.retention)
	check(o.purge <= 0, "WithPurgeInterval: %s, want more than 0", o.purge)
	check(o.logger == nil, "WithLogger: nil logger")
	return o, errors.Join(errs...)
}
