package projection

import (
	"log/slog"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/consume"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Option configures New.
type Option func(*options)

type options struct {
	batch    int
	retries  int
	backoff  clock.Backoff
	clock    clock.Clock
	logger   *slog.Logger
	policy   consume.ErrorPolicy
	tables   []AnyTable
	progress time.Duration
	// meters is where the projection reports its metrics (metrics.go);
	// metersSet tells a nil one given from none.
	meters    metric.MeterProvider
	metersSet bool

	// tracerProvider is WithTracerProvider's (trace.go); nil for the
	// default.
	tracerProvider trace.TracerProvider
}

// DefaultProgressInterval is how often a rebuild reports its progress at
// most, unless WithProgressInterval says otherwise.
const DefaultProgressInterval = 200 * time.Millisecond

func newOptions(opts []Option) options {
	o := options{batch: consume.DefaultBatchSize, retries: consume.DefaultRetries, progress: DefaultProgressInterval}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	o.clock = clock.OrSystem(o.clock)
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// WithBatchSize sets how many records are polled and applied in one Update
// (one fsync) at most. Default consume.DefaultBatchSize. Larger batches
// catch up faster; smaller ones hold the store's update lock for less time.
func WithBatchSize(n int) Option { return func(o *options) { o.batch = n } }

// WithRetries sets how many times a record whose handler failed is tried
// again, each time after a back-off, before the ErrorPolicy applies. Zero
// means no retries. Default consume.DefaultRetries.
func WithRetries(n int) Option { return func(o *options) { o.retries = n } }

// WithBackoff sets the back-off between retries of a failed record
// (default clock.DefaultBackoff).
func WithBackoff(b clock.Backoff) Option { return func(o *options) { o.backoff = b } }

// WithClock sets the clock that retries wait on, that stamps parked
// records and measures a rebuild's rate, and that Run waits on for topics
// that do not exist yet (default clock.System()). Tests pass a
// *clock.Manual and move it past the waits.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithLogger sets where the projection logs retries, parked records,
// starts and stops, and waits for topics (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithErrorPolicy sets what happens to a record whose handler still fails
// after its retries: consume.Stop() (the default: Run returns the
// *consume.HandlerError), consume.Park(topic) (the record goes to the
// dead-letter topic topic, which must not be one the projection consumes,
// and can be listed, replayed and discarded: see Parked) or
// consume.DeadLetter(publish). consume.HandOff() is refused: a projection's
// batch has no Fail method.
func WithErrorPolicy(p consume.ErrorPolicy) Option { return func(o *options) { o.policy = p } }

// WithTables makes tables (and their indexes) part of the projection's
// read model: the handler writes them through its Tx, queries read them
// from the live generation, and a rebuild builds them anew. A table
// belongs to one projection; add its indexes before passing it here.
func WithTables(tables ...AnyTable) Option {
	return func(o *options) { o.tables = append(o.tables, tables...) }
}

// AnyTable is any *Table, whatever its key and value types, for
// WithTables. Only this package implements it.
type AnyTable interface {
	tableName() string
	bind(*Projection) error
}

// WithProgressInterval sets how often a rebuild reports its progress at
// most, on the projection's clock (default DefaultProgressInterval); it
// always reports at the start and at the end.
func WithProgressInterval(d time.Duration) Option { return func(o *options) { o.progress = d } }
