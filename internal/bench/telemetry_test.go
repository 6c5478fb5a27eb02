package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
)

// The parts of telemetry a benchmark side runs with.
const (
	telemetryOff     = 0
	telemetryTraces  = 1
	telemetryMetrics = 2
	telemetryBoth    = telemetryTraces | telemetryMetrics
	// telemetrySampled, with telemetryTraces, samples one trace in ten
	// (telemetrySampledTracer) instead of every one.
	telemetrySampled = 4
)

// benchTelemetrySide opens one side of the telemetry measurement in b's
// temporary directory, with the SDK providers of telemetryOn for the parts
// in on (telemetryTraces, telemetryMetrics) and no-op ones for the others.
func benchTelemetrySide(b *testing.B, on int) (*env, *telemetrySide) {
	b.Helper()
	cfg := DefaultConfig()
	e := &env{cfg: cfg, root: b.TempDir(), payloads: make([][]byte, payloadPool)}
	for i := range e.payloads {
		e.payloads[i] = make([]byte, cfg.PayloadBytes)
		e.payloads[i][0] = byte(i)
	}
	ctx := context.Background()
	var side *telemetrySide
	var err error
	mp, tp, collect, shutdown := telemetryOn()
	b.Cleanup(func() { _ = shutdown(ctx) })
	if on&telemetryMetrics == 0 {
		mp, collect = noop.NewMeterProvider(), nil
	}
	switch {
	case on&telemetryTraces == 0:
		tp = tracenoop.NewTracerProvider()
	case on&telemetrySampled != 0:
		sampled := telemetrySampledTracer()
		b.Cleanup(func() { _ = sampled.Shutdown(ctx) })
		tp = sampled
	}
	side, err = e.openTelemetrySide(ctx, filepath.Join(e.root, "side"), mp, tp, collect)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = side.close() })
	return e, side
}

// benchAppends is the telemetry step's appends (durable, one event, exact
// version, telemetryClients goroutines) as a Go benchmark, for profiles:
// go test -run '^$' -bench TelemetryAppend -cpuprofile cpu.out ./internal/bench
func benchAppends(b *testing.B, on int) {
	e, side := benchTelemetrySide(b, on)
	ctx := context.Background()
	var writers atomic.Int64
	b.ReportAllocs()
	b.SetParallelism((telemetryClients + 1) / 2)
	b.RunParallel(func(pb *testing.PB) {
		w := writers.Add(1)
		key := fmt.Sprintf("writer-%d", w)
		var version uint64
		events := make([]eventstore.Event, 1)
		for pb.Next() {
			events[0] = eventstore.Event{Type: "bench.appended", Payload: e.payload(version)}
			res, err := side.store.Append(ctx, appendTopic, key, eventstore.Exact(version), events)
			if err != nil {
				b.Error(err)
				return
			}
			version = res.LastVersion
		}
	})
	if side.collect != nil {
		if err := side.collect(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCommands is the telemetry step's commands as a Go benchmark.
func benchCommands(b *testing.B, on int) {
	e, side := benchTelemetrySide(b, on)
	ctx := context.Background()
	var clients atomic.Int64
	b.ReportAllocs()
	b.SetParallelism((telemetryClients + 1) / 2)
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("agg-%d", clients.Add(1))
		var seq uint64
		for pb.Next() {
			seq++
			res, err := side.h.Dispatch(ctx, id, benchCommand{Data: e.data(seq)},
				command.WithCommandID(id+"-cmd-"+strconv.FormatUint(seq, 10)))
			if err != nil {
				b.Error(err)
				return
			}
			if res.Version != seq {
				b.Errorf("command %d on %s: version %d", seq, id, res.Version)
				return
			}
		}
	})
	if side.collect != nil {
		if err := side.collect(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTelemetryAppendOff(b *testing.B)  { benchAppends(b, telemetryOff) }
func BenchmarkTelemetryAppendOn(b *testing.B)   { benchAppends(b, telemetryBoth) }
func BenchmarkTelemetryCommandOff(b *testing.B) { benchCommands(b, telemetryOff) }
func BenchmarkTelemetryCommandOn(b *testing.B)  { benchCommands(b, telemetryBoth) }

// BenchmarkTelemetryCommandTraces and BenchmarkTelemetryCommandMetrics
// run the commands with only tracing, or only metrics, on: which part
// costs what.
func BenchmarkTelemetryCommandTraces(b *testing.B)  { benchCommands(b, telemetryTraces) }
func BenchmarkTelemetryCommandMetrics(b *testing.B) { benchCommands(b, telemetryMetrics) }

// BenchmarkTelemetryCommandSampled runs the commands with metrics on and
// one trace in ten sampled: the cost at a sampling rate services use.
func BenchmarkTelemetryCommandSampled(b *testing.B) {
	benchCommands(b, telemetryBoth|telemetrySampled)
}
