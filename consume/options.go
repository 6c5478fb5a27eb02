package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/metric"
)

// Defaults of the options.
const (
	// DefaultBatchSize is how many records one Update applies at most.
	DefaultBatchSize = 1000
	// DefaultRetries is how many times a failed record is tried again.
	DefaultRetries = 3
	// MaxBatchSize is the largest batch size accepted.
	MaxBatchSize = 1_000_000
)

// Option configures a Loop. The same names configure every runner of the
// framework that is built on it (projections, sagas, stream apps, the
// broker's inbound consumer).
type Option func(*options)

type options struct {
	batch   int
	retries int
	backoff clock.Backoff
	clock   clock.Clock
	logger  *slog.Logger
	policy  ErrorPolicy
	member  []eventstore.ConsumerOption
	prefix  keyspace.Key
	headers map[string]string
	wrap    func(*GroupSource) Source
	meters  metric.MeterProvider
	tracer  telemetry.Tracer
	errs    []error
}

// WithBatchSize sets how many records are polled and applied in one Update
// (one fsync) at most. Default DefaultBatchSize.
func WithBatchSize(n int) Option { return func(o *options) { o.batch = n } }

// WithRetries sets how many times a record whose handler failed is tried
// again, each after a back-off, before the ErrorPolicy applies. Zero means
// no retries. Default DefaultRetries.
func WithRetries(n int) Option { return func(o *options) { o.retries = n } }

// WithBackoff sets the back-off between retries (default
// clock.DefaultBackoff).
func WithBackoff(b clock.Backoff) Option { return func(o *options) { o.backoff = b } }

// WithClock sets the clock the loop waits on and stamps with (default
// clock.System()). Tests pass a *clock.Manual and move it past back-offs.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithLogger sets where the loop logs retries, failures, starts and stops
// (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithErrorPolicy sets what happens to a record that keeps failing (default
// Stop()).
func WithErrorPolicy(p ErrorPolicy) Option { return func(o *options) { o.policy = p } }

// WithConsumerOptions passes options to the group member the loop joins as
// (eventstore.WithMemberID, eventstore.WithStartPosition).
func WithConsumerOptions(opts ...eventstore.ConsumerOption) Option {
	return func(o *options) { o.member = append(o.member, opts...) }
}

// WithStatePrefix sets where in the state space the loop keeps its own
// records (the marks of parked records). Default keyspace.New(
// keyspace.Consume, name). A projection keeps them in its generation, so
// that a rebuild starts without them.
func WithStatePrefix(k keyspace.Key) Option { return func(o *options) { o.prefix = k } }

// WithDeadLetterHeaders adds headers to every record the Park policy
// writes to the dead-letter topic.
func WithDeadLetterHeaders(h map[string]string) Option {
	return func(o *options) {
		if o.headers == nil {
			o.headers = map[string]string{}
		}
		for k, v := range h {
			o.headers[k] = v
		}
	}
}

// WithSourceWrapper makes the loop read through wrap(group) instead of the
// group itself, when it joins the group in Run: a saga adds its due
// deadlines, a stream app balances partitions by event time. Only for New.
func WithSourceWrapper(wrap func(*GroupSource) Source) Option {
	return func(o *options) { o.wrap = wrap }
}

func newOptions(name string, opts []Option) (options, error) {
	o := options{batch: DefaultBatchSize, retries: DefaultRetries, backoff: clock.DefaultBackoff, tracer: telemetry.NewTracer(nil)}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	errs := o.errs
	if o.batch < 1 || o.batch > MaxBatchSize {
		errs = append(errs, invalid("WithBatchSize", "must be between 1 and %d, got %d", MaxBatchSize, o.batch))
	}
	if o.retries < 0 {
		errs = append(errs, invalid("WithRetries", "must not be negative, got %d", o.retries))
	}
	if err := o.backoff.Validate(); err != nil {
		errs = append(errs, invalid("WithBackoff", "%v", err))
	}
	o.backoff = o.backoff.WithDefaults()
	o.clock = clock.OrSystem(o.clock)
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	switch o.policy.kind {
	case policyPark:
		if err := eventstore.ValidateTopicName(o.policy.topic); err != nil {
			errs = append(errs, fmt.Errorf("Park: %w", err))
		}
	case policyDeadLetter:
		if o.policy.publish == nil {
			errs = append(errs, invalid("DeadLetter", "publish function is nil"))
		}
	}
	if o.prefix == nil {
		o.prefix = keyspace.New(keyspace.Consume, name)
	}
	return o, errors.Join(errs...)
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", eventstore.ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}

// sourceOpener opens a loop's source at the start of each Run.
type sourceOpener func(ctx context.Context) (Source, error)
