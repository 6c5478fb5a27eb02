package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninn-es/muninn/broker/engines"
	"github.com/muninn-es/muninn/eventstore"
)

// Topics of the benchmark store.
const (
	appendTopic = "bench-append"
	readTopic   = "bench-read"
)

// payloadPool is how many distinct payloads the benchmark cycles through, so
// that neighbouring records do not compress away.
const payloadPool = 1024

// Run measures everything in Config on a fresh store in a temporary
// directory under cfg.Dir, removed before Run returns, and returns the
// numbers. It takes a few times cfg.Duration per round, plus the load of the
// read topic. Ending ctx stops it with ctx's error.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	heap := startHeapSampler(10 * time.Millisecond)
	defer func() { res.PeakHeapBytes = heap.stop() }()

	root, err := os.MkdirTemp(cfg.Dir, "muninn-bench-")
	if err != nil {
		return Result{}, fmt.Errorf("bench: create temporary directory: %w", err)
	}
	defer func() {
		if rmErr := os.RemoveAll(root); rmErr != nil && err == nil {
			err = fmt.Errorf("bench: remove %s: %w", root, rmErr)
		}
	}()
	e, err := openEnv(ctx, cfg, root)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if closeErr := e.close(); closeErr != nil && err == nil {
			err = closeErr
		}
	}()

	rounds := make([]Result, 0, cfg.Rounds)
	for round := range cfg.Rounds {
		if cfg.Rounds > 1 {
			e.progress("round %d of %d\n", round+1, cfg.Rounds)
		}
		r, err := e.round(ctx)
		if err != nil {
			return Result{}, err
		}
		rounds = append(rounds, r)
	}
	res = median(rounds)
	res.Environment = Environment{
		Cores:           runtime.NumCPU(),
		GoVersion:       runtime.Version(),
		GOOSGOARCH:      runtime.GOOS + "/" + runtime.GOARCH,
		DurationS:       cfg.Duration.Seconds(),
		Rounds:          cfg.Rounds,
		Streams:         cfg.Streams,
		EventsPerStream: cfg.EventsPerStream,
		PayloadBytes:    cfg.PayloadBytes,
		StreamEvents:    cfg.StreamEvents,
		SagaOrders:      cfg.SagaOrders,
	}
	return res, nil
}

// env is the state of one Run: the store, the raw Pebble database beside
// it, and the data the measurements share.
type env struct {
	cfg Config
	// root is the run's temporary directory.
	root     string
	store    *eventstore.PebbleStore
	raw      *pebble.DB
	payloads [][]byte
	// keys are the stream keys of the read topic.
	keys   []string
	loaded bool
	// streamLoaded is set once the stream-processing input is written.
	streamLoaded bool
	// seq numbers throughput runs, so that each writes new keys.
	seq int
	// pg is the PostgreSQL part, when Config.PostgresURL is set.
	pg *pgEnv
}

// step is one measurement: it returns the value of one Result key.
type step struct {
	// keys are the JSON keys the step measures, in the order run returns
	// their values.
	keys []string
	run  func(context.Context) ([]float64, error)
}

// plan returns the measurements of one round, in the order they run. Raw
// Pebble and the store are measured in alternating slices at each
// concurrency (see pair), so that a drift in the disk's speed affects both
// sides of a ratio alike.
func (e *env) plan() []step {
	pair := func(writers int) step {
		return step{
			keys: []string{fmt.Sprintf("pebble_raw_sync_%d_per_s", writers), fmt.Sprintf("append_durable_%d_per_s", writers)},
			run: func(ctx context.Context) ([]float64, error) {
				raw, store, err := e.pair(ctx, writers)
				return []float64{raw, store}, err
			},
		}
	}
	one := func(key string, f func(context.Context) (float64, error)) step {
		return step{keys: []string{key}, run: func(ctx context.Context) ([]float64, error) {
			v, err := f(ctx)
			return []float64{v}, err
		}}
	}
	if e.cfg.PostgresOnly {
		return e.pgPlan()
	}
	// The reads run first, on the freshly loaded store: after the append
	// measurements Pebble spends minutes compacting their million records
	// in the background, and on two cores the reads would measure that.
	return append([]step{
		one("stream_read_events_per_s", e.streamRead),
		one("partition_scan_events_per_s", e.partitionScan),
		pair(1),
		pair(16),
		pair(64),
		{keys: []string{"command_bus_16_per_s", "command_bus_append_16_per_s"}, run: e.commandBus},
		{keys: []string{"load_1000_events_us", "load_1000_events_snapshot_us"}, run: e.loadTimes},
		// The cost of metrics (telemetry.go).
		{keys: []string{"telemetry_off_append_events_per_s", "telemetry_append_events_per_s",
			"telemetry_off_command_per_s", "telemetry_command_per_s", "telemetry_sampled_command_per_s"}, run: e.telemetry},
		one("projection_catchup_events_per_s", e.projectionCatchup),
		{keys: []string{"saga_steps_per_s", "saga_workflows_per_s"}, run: func(ctx context.Context) ([]float64, error) {
			steps, workflows, err := e.sagaThroughput(ctx)
			return []float64{steps, workflows}, err
		}},
		// broker: the outbox relay.
		one("relay_gochannel_per_s", func(ctx context.Context) (float64, error) { return e.relayThroughput(ctx, engines.GoChannel) }),
		one("relay_nats_per_s", func(ctx context.Context) (float64, error) { return e.relayThroughput(ctx, engines.NATS) }),
		{keys: []string{"relay_latency_p50_ms", "relay_latency_p99_ms"}, run: func(ctx context.Context) ([]float64, error) {
			p50, p99, err := e.relayLatency(ctx)
			return []float64{p50, p99}, err
		}},
		// Stream processing (package stream).
		one("windowed_count_events_per_s", e.windowedCount),
		// The service surface, last: the checkout saga it leaves behind
		// stops with it, and the next round's shop picks it up.
		{keys: []string{"grpc_commands_16_per_s", "rest_commands_16_per_s", "shop_commands_16_per_s",
			"query_min_position_p50_ms", "query_min_position_p99_ms"}, run: e.serviceSurface},
	}, e.pgPlan()...)
}

// selected returns the steps of plan that Config.Only selects.
func (e *env) selected() []step {
	all := e.plan()
	if len(e.cfg.Only) == 0 {
		return all
	}
	var steps []step
	for _, s := range all {
		if slices.ContainsFunc(s.keys, func(k string) bool {
			return slices.ContainsFunc(e.cfg.Only, func(p string) bool { return strings.HasPrefix(k, p) })
		}) {
			steps = append(steps, s)
		}
	}
	return steps
}

// round runs every step once and derives the ratios.
func (e *env) round(ctx context.Context) (Result, error) {
	var r Result
	steps := e.selected()
	for i, s := range steps {
		e.progress("[%d/%d] %s ...\n", i+1, len(steps), strings.Join(s.keys, " and "))
		vs, err := s.run(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("bench: %s: %w", strings.Join(s.keys, ", "), err)
		}
		for j, key := range s.keys {
			if err := r.set(key, roundValue(key, vs[j])); err != nil {
				return Result{}, err
			}
			e.progress("      %s = %s\n", key, formatValue(key, reflect.ValueOf(vs[j])))
		}
	}
	r.AppendDurable1Ratio = ratio(r.AppendDurable1PerS, r.PebbleRawSync1PerS)
	r.AppendDurable16Ratio = ratio(r.AppendDurable16PerS, r.PebbleRawSync16PerS)
	r.AppendDurable64Ratio = ratio(r.AppendDurable64PerS, r.PebbleRawSync64PerS)
	r.CommandBus16Ratio = ratio(r.CommandBus16PerS, r.CommandBusAppend16PerS)
	r.GRPCCommands16Ratio = ratio(r.GRPCCommands16PerS, r.ShopCommands16PerS)
	r.RESTCommands16Ratio = ratio(r.RESTCommands16PerS, r.ShopCommands16PerS)
	r.TelemetryAppendRatio = ratio(r.TelemetryAppendEventsPerS, r.TelemetryOffAppendEventsPerS)
	r.TelemetryCommandRatio = ratio(r.TelemetryCommandPerS, r.TelemetryOffCommandPerS)
	r.TelemetrySampledCommandRatio = ratio(r.TelemetrySampledCommandPerS, r.TelemetryOffCommandPerS)
	r.PGAppendDurable1Ratio = ratio(r.PGAppendDurable1PerS, r.PGRawInsert1PerS)
	r.PGAppendDurable16Ratio = ratio(r.PGAppendDurable16PerS, r.PGRawInsert16PerS)
	r.PGAppendDurable64Ratio = ratio(r.PGAppendDurable64PerS, r.PGRawInsert64PerS)
	return r, nil
}

// ratio returns a/b rounded to three decimals, or 0 if b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(a/b*1000) / 1000
}

func (e *env) progress(format string, args ...any) {
	fmt.Fprintf(e.cfg.Progress, "bench: "+format, args...)
}

// openEnv opens the store and the raw Pebble database, each in its own
// directory under root, and creates the benchmark topics.
func openEnv(ctx context.Context, cfg Config, root string) (*env, error) {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	e := &env{cfg: cfg, root: root}
	rng := rand.New(rand.NewPCG(1, 2))
	e.payloads = make([][]byte, payloadPool)
	for i := range e.payloads {
		p := make([]byte, cfg.PayloadBytes)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		e.payloads[i] = p
	}
	e.keys = make([]string, cfg.Streams)
	for i := range e.keys {
		e.keys[i] = fmt.Sprintf("stream-%06d", i)
	}

	e.progress("store in %s\n", root)
	var err error
	e.store, err = eventstore.Open(filepath.Join(root, "store"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	e.raw, err = pebble.Open(filepath.Join(root, "raw-pebble"), &pebble.Options{
		Logger: quietLogger{cfg.Progress},
		// The store's memtable size, so that both flush equally often.
		MemTableSize: 64 << 20,
	})
	if err != nil {
		_ = e.store.Close()
		return nil, fmt.Errorf("bench: open raw Pebble: %w", err)
	}
	topic := eventstore.TopicConfig{Partitions: cfg.Partitions, Cleanup: eventstore.Retain}
	for _, name := range []string{appendTopic, readTopic} {
		if err := e.store.CreateTopic(ctx, name, topic); err != nil {
			_ = e.close()
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	if cfg.PostgresURL != "" {
		if err := e.pgOpen(ctx); err != nil {
			_ = e.close()
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	return e, nil
}

func (e *env) close() error {
	if err := errors.Join(e.pgClose(), e.store.Close(), e.raw.Close()); err != nil {
		return fmt.Errorf("bench: close: %w", err)
	}
	return nil
}

// payload returns one of the pool's payloads.
func (e *env) payload(i uint64) []byte { return e.payloads[i%payloadPool] }

// quietLogger keeps Pebble from logging routine events (WAL replay, ...) to
// stderr; errors go to the progress writer.
type quietLogger struct{ w io.Writer }

// Infof drops Pebble's routine messages.
func (quietLogger) Infof(string, ...any) {}

// Errorf reports Pebble's errors on the progress writer.
func (l quietLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(l.w, "bench: raw pebble: "+format+"\n", args...)
}

// Fatalf reports an error Pebble cannot continue from; Pebble requires that
// it does not return, so it exits as Pebble's default logger does.
func (l quietLogger) Fatalf(format string, args ...any) {
	fmt.Fprintf(l.w, "bench: raw pebble: fatal: "+format+"\n", args...)
	pebble.DefaultLogger.Fatalf(format, args...)
}

// heapSampler keeps the peak of the Go heap, read from runtime/metrics at a
// fixed interval.
type heapSampler struct {
	quit chan struct{}
	done chan struct{}
	peak uint64
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func startHeapSampler(every time.Duration) *heapSampler {
	h := &heapSampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			h.sample()
			select {
			case <-t.C:
			case <-h.quit:
				h.sample()
				return
			}
		}
	}()
	return h
}

func (h *heapSampler) sample() {
	s := [1]metrics.Sample{{Name: heapMetric}}
	metrics.Read(s[:])
	if s[0].Value.Kind() == metrics.KindUint64 {
		h.peak = max(h.peak, s[0].Value.Uint64())
	}
}

// stop ends the sampling and returns the peak.
func (h *heapSampler) stop() uint64 {
	close(h.quit)
	<-h.done
	return h.peak
}
