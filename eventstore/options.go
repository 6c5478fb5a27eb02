package eventstore

import (
	"errors"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninn-es/muninn/clock"
	"go.opentelemetry.io/otel/metric"
)

// Option configures Open.
type Option func(*options)

type options struct {
	fs              vfs.FS
	logger          *slog.Logger
	clock           clock.Clock
	cleanupInterval time.Duration
	maxGroupAppends int
	maxEventBytes   int
	maxAppendBytes  int
	cacheBytes      int64
	pebble          func(*pebble.Options)
	// internalPebble adjusts Pebble's options for the store itself (Repair),
	// after the user's function.
	internalPebble func(*pebble.Options)
	// recoverWAL, if set, makes Open recover a damaged WAL and report what
	// it dropped (WithRecoverCorruptWAL).
	recoverWAL func(RecoveryReport)
	// meters is where the store reports its metrics (metrics.go);
	// metersSet tells a nil one given from none.
	meters    metric.MeterProvider
	metersSet bool
	// tracer makes the append spans (trace.go).
	tracer appendTracer
}

func defaultOptions() options {
	return options{
		logger:          slog.New(slog.DiscardHandler),
		clock:           clock.System(),
		cleanupInterval: time.Minute,
		maxGroupAppends: 4096,
		maxEventBytes:   1 << 20,
		maxAppendBytes:  16 << 20,
		cacheBytes:      64 << 20,
		tracer:          newAppendTracer(nil),
	}
}

// WithFS opens the store on the given Pebble filesystem instead of the
// operating system's. OpenMem uses vfs.NewMem().
func WithFS(fs vfs.FS) Option { return func(o *options) { o.fs = fs } }

// WithLogger sends the store's and Pebble's log messages to l. The default
// discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithClock sets the clock of record timestamps, of "now" for retention and
// of the background cleanup's interval (default clock.System()). Tests use a
// clock.Manual to age records without sleeping.
func WithClock(c clock.Clock) Option {
	return func(o *options) {
		if c != nil {
			o.clock = c
		}
	}
}

// WithCleanupInterval sets how often cleanup runs in the background (default
// one minute). Zero or a negative value turns background cleanup off;
// Store.Cleanup still runs it on demand.
func WithCleanupInterval(d time.Duration) Option {
	return func(o *options) { o.cleanupInterval = d }
}

// WithMaxEventBytes sets the largest encoded event (payload plus metadata)
// an append accepts (default 1 MiB).
func WithMaxEventBytes(n int) Option { return func(o *options) { o.maxEventBytes = n } }

// WithMaxAppendBytes sets the largest total size of one append's events
// (default 16 MiB).
func WithMaxAppendBytes(n int) Option { return func(o *options) { o.maxAppendBytes = n } }

// WithMaxGroupCommit sets how many appends at most share one commit and one
// fsync (default 4096).
func WithMaxGroupCommit(n int) Option { return func(o *options) { o.maxGroupAppends = n } }

// WithCacheSize sets the size of Pebble's block cache (default 64 MiB).
// Stream reads and scans of recent records come from it.
func WithCacheSize(bytes int64) Option { return func(o *options) { o.cacheBytes = bytes } }

// WithPebbleOptions lets f adjust Pebble's options after the store has set
// its own (cache size, memtable size, ...). Changing comparer-related fields
// breaks the store. The store keeps its hold on what guards against damage:
// f's FS is wrapped (to check the logs at Open), its Logger cannot exit the
// process (Fatalf fails the store instead), its EventListener is joined with
// the store's (which records corruption) and its CompactionScheduler is
// gated (compactions stop once damage is found).
func WithPebbleOptions(f func(*pebble.Options)) Option { return func(o *options) { o.pebble = f } }

func withPebbleOptions(f func(*pebble.Options)) Option {
	return func(o *options) { o.internalPebble = f }
}

func (o *options) validate() error {
	var errs []error
	if o.maxGroupAppends < 1 {
		errs = append(errs, invalid("WithMaxGroupCommit", "must be at least 1, got %d", o.maxGroupAppends))
	}
	if o.maxEventBytes < 64 {
		errs = append(errs, invalid("WithMaxEventBytes", "must be at least 64, got %d", o.maxEventBytes))
	}
	if o.maxAppendBytes < o.maxEventBytes {
		errs = append(errs, invalid("WithMaxAppendBytes", "must be at least WithMaxEventBytes (%d), got %d", o.maxEventBytes, o.maxAppendBytes))
	}
	if o.metersSet && o.meters == nil {
		errs = append(errs, invalid("WithMeterProvider", "nil meter provider"))
	}
	if o.cacheBytes < 0 {
		errs = append(errs, invalid("WithCacheSize", "must not be negative, got %d", o.cacheBytes))
	}
	return errors.Join(errs...)
}

// AppendOptions is what the AppendOptions of one Append ask for. A backend
// reads them with NewAppendOptions; users set them with NoSync and WithState.
type AppendOptions struct {
	// NoSync: return once the events are visible, without waiting for
	// fsync (see NoSync).
	NoSync bool
	// State stages state writes in the append's batch (see WithState).
	State func(AppendResult, StateWriter) error
}

// AppendOption configures one Append.
type AppendOption func(*AppendOptions)

// NewAppendOptions applies opts to a zero AppendOptions.
func NewAppendOptions(opts ...AppendOption) AppendOptions { return applyOptions(opts) }

// applyOptions applies opts to a zero T, skipping nil ones: the body of
// every NewXxxOptions.
func applyOptions[T any, O ~func(*T)](opts []O) T {
	var o T
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// NoSync makes an append non-durable: it returns once the events are in the
// log and visible, without waiting for fsync, so a crash can lose it (and
// every later non-durable append), never a part of it. Meant for bulk loads;
// Store.Sync makes everything appended so far durable. While a durable
// append to the same partition is waiting for its fsync, a NoSync append
// waits for that fsync too, so that readers never see a durable append's
// records before it is durable.
func NoSync() AppendOption { return func(o *AppendOptions) { o.NoSync = true } }

// ReadOptions is what the ReadOptions of one stream read ask for. A backend
// reads them with NewReadOptions.
type ReadOptions struct {
	// Backward reads from the given version down to 1 (see Backward).
	Backward bool
}

// ReadOption configures a stream read.
type ReadOption func(*ReadOptions)

// NewReadOptions applies opts to a zero ReadOptions.
func NewReadOptions(opts ...ReadOption) ReadOptions { return applyOptions(opts) }

// Backward reads a stream from the given version down to version 1. A from
// version of 0 starts at the newest event.
func Backward() ReadOption { return func(o *ReadOptions) { o.Backward = true } }
