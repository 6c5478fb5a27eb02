package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/muninn-es/muninn/internal/bench"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	cfg := bench.DefaultConfig()
	var quick, asJSON bool
	var scale int
	var scaleChild string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure durable appends against raw Pebble, the layers above and the API, on this disk",
		Long: `bench measures the event store on a fresh store in a temporary directory
(removed at the end) and prints one table, or with --json one JSON object.

Durable appends (one event per append, exact expected version, fsynced) run
with 1, 16 and 64 concurrent writers, each right after raw Pebble
Commit(Sync) at the same concurrency, so the ratio store/raw shows how close
the store comes to the disk's limit. Then it loads --streams streams of
--events-per-stream events and reads them back by stream and by partition.
Then the fulfillment saga (package saga) on a durable store of its own:
16 goroutines place --saga-orders orders, and the saga takes each through
payment, shipment and completion (four steps, three commands), timed until
every workflow has completed: saga steps/s and workflows/s.
Then the outbox relay (package broker): records/s relayed to watermill's
GoChannel and to an embedded NATS JetStream server, and the p50/p99 latency
from append to an inbound handler through NATS at a steady 200 appends/s.
Then a stream topology counts --stream-events events per key in tumbling
one-minute windows, timed from its start to caught up.
Last, the service surface: the example shop served as muninn serve serves it
(gRPC and the REST gateway on loopback ports, its runners running), with 16
clients placing orders over gRPC, over REST and through the handler in
process, in alternating slices (commands/s and the ratios to in process), and
the p50/p99 latency of a GetOrder whose min_position is the order just placed.

With --scale[=N] it measures instead the cost as the data grows: it
bulk-loads a store on disk with N events (default 10,000,000; 1,000,000 with
--quick) in N/10 streams whose lengths follow a Zipf law (a few very long
ones), and raw Pebble with the same data (one value per event, key = stream +
version), then measures on both, in alternating slices of the same reads:
aggregate loads (Zipf-popular streams), uniformly random stream reads and a
scan; then durable appends with 16 goroutines on the big store against an
empty one, bytes on disk per event, peak RSS and Go heap, and the time Open
takes after a process loading the store is killed with SIGKILL. Its JSON
keys are scale_*. It needs about 800 bytes of disk per event under --dir.

With --postgres URL it then measures the PostgreSQL store on that server,
in a schema of its own (dropped at the end): durable appends with 1, 16
and 64 writers, each beside plain INSERTs into a table with a unique
(stream, version) constraint through the same connection pool, in
alternating slices (pg_append_durable_N_ratio is store / INSERT), and
stream reads and partition scans of a loaded topic. --postgres-only skips
everything else.

Progress goes to stderr, results to stdout.`,
		Example: `  muninn bench --quick
  muninn bench --json --rounds 3 --dir /mnt/data > bench.json
  muninn bench --scale --quick --json
  muninn bench --scale=100000000 --dir /mnt/data
  muninn bench --quick --postgres 'postgres:///muninn?host=/tmp/pg' --postgres-only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Flags()
			if scaleChild != "" {
				return bench.ScaleChild(cmd.Context(), scaleChild, cmd.OutOrStdout())
			}
			if flags.Changed("scale") {
				return runScale(cmd, scale, quick, asJSON)
			}
			if quick {
				q := bench.QuickConfig()
				if !flags.Changed("duration") {
					cfg.Duration = q.Duration
				}
				if !flags.Changed("warmup") {
					cfg.Warmup = q.Warmup
				}
				if !flags.Changed("streams") {
					cfg.Streams = q.Streams
				}
				if !flags.Changed("projection-events") {
					cfg.ProjectionEvents = q.ProjectionEvents
				}
				if !flags.Changed("stream-events") {
					cfg.StreamEvents = q.StreamEvents
				}
				if !flags.Changed("saga-orders") {
					cfg.SagaOrders = q.SagaOrders
				}
			}
			if err := checkBenchFlags(cfg); err != nil {
				return err
			}
			cmd.SilenceUsage = true // from here on, errors are not about usage
			cfg.Progress = cmd.ErrOrStderr()
			res, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return bench.WriteTable(out, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "dir", "", "parent directory of the temporary store (default: the system's temporary directory)")
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each throughput measurement is timed")
	f.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "untimed run before each throughput measurement (0: none)")
	f.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "run every measurement this many times and report the medians")
	f.IntVar(&cfg.Streams, "streams", cfg.Streams, "streams loaded for the read measurements")
	f.IntVar(&cfg.EventsPerStream, "events-per-stream", cfg.EventsPerStream, "events per loaded stream")
	f.IntVar(&cfg.PayloadBytes, "payload-bytes", cfg.PayloadBytes, "payload size of every event")
	f.IntVar(&cfg.Partitions, "partitions", cfg.Partitions, "partitions of the benchmark topics")
	f.IntVar(&cfg.ProjectionEvents, "projection-events", cfg.ProjectionEvents, "events the projection catch-up measurement projects")
	f.IntVar(&cfg.StreamEvents, "stream-events", cfg.StreamEvents, "events the windowed-count stream topology processes")
	f.IntVar(&cfg.SagaOrders, "saga-orders", cfg.SagaOrders, "orders the saga measurement takes through the fulfillment workflow")
	f.BoolVar(&quick, "quick", false, "a run of under 30 s: 1s per measurement, 200ms warm-up, 2,000 streams, 200,000 projection and stream events, 3,000 saga orders (explicit flags win)")
	f.BoolVar(&asJSON, "json", false, "print exactly one JSON object instead of the table")
	f.IntVar(&scale, "scale", 0, "measure reads, appends, disk and memory on a store of this many events, beside raw Pebble (--scale alone: 10,000,000, or 1,000,000 with --quick; give a count as --scale=N)")
	f.Lookup("scale").NoOptDefVal = "0"
	f.StringVar(&scaleChild, "scale-child", "", "the child process of --scale (internal)")
	_ = f.MarkHidden("scale-child")
	f.StringVar(&cfg.PostgresURL, "postgres", "", "also measure the PostgreSQL store on this server (pg_* keys), in a schema of its own dropped at the end")
	f.BoolVar(&cfg.PostgresOnly, "postgres-only", false, "with --postgres: measure only the PostgreSQL store")
	f.StringSliceVar(&cfg.Only, "only", nil, "measure only the steps one of whose JSON keys starts with one of these comma-separated prefixes (e.g. telemetry,pebble_raw_sync_16); the other keys stay 0")
	return cmd
}

// runScale runs the --scale measurement; events 0 means the default count.
func runScale(cmd *cobra.Command, events int, quick, asJSON bool) error {
	cfg := bench.DefaultScaleConfig()
	if quick {
		cfg = bench.QuickScaleConfig()
	}
	flags := cmd.Flags()
	if events != 0 {
		cfg.Events = events
	}
	if flags.Changed("duration") {
		cfg.Duration, _ = flags.GetDuration("duration")
	}
	if flags.Changed("payload-bytes") {
		cfg.PayloadBytes, _ = flags.GetInt("payload-bytes")
	}
	if flags.Changed("partitions") {
		cfg.Partitions, _ = flags.GetInt("partitions")
	}
	cfg.Dir, _ = flags.GetString("dir")
	if err := cfg.Validate(); err != nil {
		return err
	}
	cmd.SilenceUsage = true
	cfg.Progress = cmd.ErrOrStderr()
	res, err := bench.RunScale(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return bench.WriteScaleTable(out, res)
}

// checkBenchFlags reports every bad flag value at once, by flag name.
func checkBenchFlags(c bench.Config) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Duration <= 0 {
		bad("--duration must be positive, got %s", c.Duration)
	}
	if c.Warmup < 0 {
		bad("--warmup must not be negative, got %s", c.Warmup)
	}
	for _, f := range []struct {
		flag  string
		value int
	}{
		{"rounds", c.Rounds}, {"streams", c.Streams}, {"events-per-stream", c.EventsPerStream},
		{"payload-bytes", c.PayloadBytes}, {"partitions", c.Partitions},
		{"projection-events", c.ProjectionEvents}, {"stream-events", c.StreamEvents},
		{"saga-orders", c.SagaOrders},
	} {
		if f.value < 1 {
			bad("--%s must be at least 1, got %d", f.flag, f.value)
		}
	}
	if c.PostgresOnly && c.PostgresURL == "" {
		bad("--postgres-only needs --postgres URL")
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.Validate() // the limits above the minimums
}
