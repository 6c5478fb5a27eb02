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
  muninn bench --quick --postgres 'postgres:///muninn?host=/tmp/pg' --postgres-only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Flags()
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
	f.StringVar(&cfg.PostgresURL, "postgres", "", "also measure the PostgreSQL store on this server (pg_* keys), in a schema of its own dropped at the end")
	f.BoolVar(&cfg.PostgresOnly, "postgres-only", false, "with --postgres: measure only the PostgreSQL store")
	return cmd
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
