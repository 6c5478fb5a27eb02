package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/otelsdk"
)

// telemetryClients is the concurrency of the telemetry measurement.
const telemetryClients = 16

// telemetrySide is one side of the telemetry measurement: a store and a
// command bus on it, with telemetry on or off.
type telemetrySide struct {
	store *eventstore.PebbleStore
	bus   *command.Bus
	h     *command.Handler[benchState, benchCommand, benchEvent]
	// collect reads the metrics, as a scrape does (nil when off).
	collect func(context.Context) error
	seqs    []uint64 // per client, across slices
}

// telemetrySlices is how many slices each side of the telemetry
// measurement is cut into: an even number, so that the sides' order
// (off first, then on first) alternates evenly.
const telemetrySlices = 4

// telemetryOn is what the "on" side runs with: the meter provider muninn
// serve runs (otelsdk.NewMeterProvider, the OpenTelemetry SDK's with
// exemplars off) with a reader that is collected after every slice (a
// scrape) and whose readings are discarded, and the SDK's tracer provider.
func telemetryOn() (metric.MeterProvider, trace.TracerProvider, func(context.Context) error, func(context.Context) error) {
	reader := sdkmetric.NewManualReader()
	mp := otelsdk.NewMeterProvider(reader)
	collect := func(ctx context.Context) error {
		var rm metricdata.ResourceMetrics
		return reader.Collect(ctx, &rm)
	}
	// Every span sampled and ended, then dropped: the SDK's whole cost
	// without an exporter's.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	shutdown := func(ctx context.Context) error { return errors.Join(mp.Shutdown(ctx), tp.Shutdown(ctx)) }
	return mp, tp, collect, shutdown
}

// telemetrySampledTracer is the tracer provider of the "sampled" side:
// the SDK's, sampling one trace in ten (ParentBased(TraceIDRatioBased(0.1)),
// a rate services use). The other nine commands make non-recording spans
// and still store their trace context in the events.
func telemetrySampledTracer() *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.1))))
}

// telemetry measures the cost of tracing and metrics: durable appends (16
// goroutines, one event each, exact expected version) and durable commands
// through the command bus (16 clients on aggregates of their own), each on
// a store and a bus with the SDK's providers (telemetryOn) and on a store
// and a bus with no-op ones, in alternating slices (off, on, on, off, off,
// on, ...), so that the disk's drift affects both sides alike. The
// commands also run on a third side, metrics on and one trace in ten
// sampled (telemetrySampledTracer), in the same slices (off, on, sampled,
// then sampled, on, off). The stores are in the run's directory, opened
// for this measurement. It returns appends off, on, commands off, on and
// sampled.
func (e *env) telemetry(ctx context.Context) (_ []float64, err error) {
	e.seq++
	run := e.seq
	mp, tp, collect, shutdown := telemetryOn()
	defer func() { err = errors.Join(err, shutdown(context.Background())) }()
	off, err := e.openTelemetrySide(ctx, filepath.Join(e.root, "telemetry-off-"+strconv.Itoa(run)), noop.NewMeterProvider(), tracenoop.NewTracerProvider(), nil)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, off.close()) }()
	on, err := e.openTelemetrySide(ctx, filepath.Join(e.root, "telemetry-on-"+strconv.Itoa(run)), mp, tp, collect)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, on.close()) }()
	stp := telemetrySampledTracer()
	defer func() { err = errors.Join(err, stp.Shutdown(context.Background())) }()
	sampled, err := e.openTelemetrySide(ctx, filepath.Join(e.root, "telemetry-sampled-"+strconv.Itoa(run)), mp, stp, collect)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, sampled.close()) }()

	slice := max(e.cfg.Duration/telemetrySlices, 50*time.Millisecond)
	var rates [5]float64 // appends off, on; commands off, on, sampled
	for i := range telemetrySlices {
		warmup := time.Duration(0)
		if i == 0 {
			warmup = e.cfg.Warmup
		}
		// off, on, sampled, then the other way round: each side runs as
		// often early as late, so that what a slice leaves behind (the
		// other stores' compactions, the page cache) weighs on all alike.
		// The appends run on off and on only.
		sides := [3]*telemetrySide{off, on, sampled}
		order := []int{0, 1, 2}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, j := range order {
			if j == 2 {
				continue
			}
			a, err := e.telemetryAppends(ctx, sides[j], run, warmup, slice)
			if err != nil {
				return nil, fmt.Errorf("appends: %w", err)
			}
			rates[j] += a / telemetrySlices
		}
		for _, j := range order {
			c, err := e.telemetryCommands(ctx, sides[j], run, warmup, slice)
			if err != nil {
				return nil, fmt.Errorf("commands: %w", err)
			}
			rates[2+j] += c / telemetrySlices
		}
	}
	return rates[:], nil
}

func (e *env) openTelemetrySide(ctx context.Context, dir string, mp metric.MeterProvider, tp trace.TracerProvider, collect func(context.Context) error) (*telemetrySide, error) {
	store, err := eventstore.Open(dir, eventstore.WithMeterProvider(mp), eventstore.WithTracerProvider(tp))
	if err != nil {
		return nil, err
	}
	side := &telemetrySide{store: store, collect: collect, seqs: make([]uint64, telemetryClients)}
	fail := func(err error) (*telemetrySide, error) { return nil, errors.Join(err, side.close()) }
	if err := store.CreateTopic(ctx, appendTopic, eventstore.TopicConfig{Partitions: e.cfg.Partitions}); err != nil {
		return fail(err)
	}
	agg, err := benchAggregate(busAggregate, e.cfg.Partitions, aggregate.WithCache(4096), aggregate.WithSnapshots(loadSnapshotEvery))
	if err != nil {
		return fail(err)
	}
	if side.bus, err = command.New(store, command.WithMeterProvider(mp), command.WithTracerProvider(tp)); err != nil {
		return fail(err)
	}
	if side.h, err = command.Register(ctx, side.bus, agg); err != nil {
		return fail(err)
	}
	return side, nil
}

func (s *telemetrySide) close() error {
	var err error
	if s.bus != nil {
		err = s.bus.Close()
	}
	return errors.Join(err, s.store.Close())
}

// slice runs one timed slice of f on side, after flushing its store, and
// collects side's metrics after it.
func (s *telemetrySide) slice(ctx context.Context, f func() (float64, error)) (float64, error) {
	if err := s.store.Flush(ctx); err != nil {
		return 0, err
	}
	rate, err := f()
	if err != nil {
		return 0, err
	}
	if s.collect != nil {
		if err := s.collect(ctx); err != nil {
			return 0, fmt.Errorf("collect metrics: %w", err)
		}
	}
	return rate, nil
}

// telemetryAppends is appendDurable on side's store.
func (e *env) telemetryAppends(ctx context.Context, side *telemetrySide, run int, warmup, d time.Duration) (float64, error) {
	e.seq++
	part := e.seq
	return side.slice(ctx, func() (float64, error) {
		return e.closedLoopFor(ctx, telemetryClients, warmup, d, func(w int) func() error {
			key := fmt.Sprintf("writer-%d-%d-%d", run, part, w)
			var version uint64
			events := make([]eventstore.Event, 1)
			return func() error {
				events[0] = eventstore.Event{Type: "bench.appended", Payload: e.payload(uint64(w)*7919 + version)}
				res, err := side.store.Append(ctx, appendTopic, key, eventstore.Exact(version), events)
				if err != nil {
					return err
				}
				version = res.LastVersion
				return nil
			}
		})
	})
}

// telemetryCommands is commandBus's bus side on side's bus.
func (e *env) telemetryCommands(ctx context.Context, side *telemetrySide, run int, warmup, d time.Duration) (float64, error) {
	return side.slice(ctx, func() (float64, error) {
		return e.closedLoopFor(ctx, telemetryClients, warmup, d, func(w int) func() error {
			id := fmt.Sprintf("agg-%d-%d", run, w)
			prefix := id + "-cmd-"
			return func() error {
				side.seqs[w]++
				seq := side.seqs[w]
				res, err := side.h.Dispatch(ctx, id, benchCommand{Data: e.data(uint64(w)*7919 + seq)},
					command.WithCommandID(prefix+strconv.FormatUint(seq, 10)))
				if err != nil {
					return err
				}
				if res.Version != seq {
					return fmt.Errorf("command %d on %s: version %d", seq, id, res.Version)
				}
				return nil
			}
		})
	})
}
