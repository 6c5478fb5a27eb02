package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// tinyConfig is a run that takes a second or two; it checks that every
// measurement works, never how fast.
func tinyConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Duration = 100 * time.Millisecond
	cfg.Warmup = 20 * time.Millisecond
	cfg.Streams = 50
	cfg.EventsPerStream = 3
	cfg.PayloadBytes = 64
	cfg.ProjectionEvents = 2_000
	cfg.StreamEvents = 2000
	cfg.SagaOrders = 40
	// The PostgreSQL measurements run when a server is configured (CI
	// always has one; see internal/pgtest).
	cfg.PostgresURL = os.Getenv("MUNINN_PG_URL")
	return cfg
}

// wantKeys are the JSON keys promised to scripts; they must never change.
var wantKeys = []string{
	"append_durable_1_per_s", "append_durable_16_per_s", "append_durable_64_per_s",
	"pebble_raw_sync_1_per_s", "pebble_raw_sync_16_per_s", "pebble_raw_sync_64_per_s",
	"append_durable_1_ratio", "append_durable_16_ratio", "append_durable_64_ratio",
	"stream_read_events_per_s", "partition_scan_events_per_s", "peak_heap_bytes",
	"cores", "go_version", "goos_goarch", "duration_s", "streams", "events_per_stream", "payload_bytes",
	"command_bus_16_per_s", "command_bus_append_16_per_s", "command_bus_16_ratio", "load_1000_events_us", "load_1000_events_snapshot_us",
	"projection_catchup_events_per_s",
	"relay_gochannel_per_s", "relay_nats_per_s", "relay_latency_p50_ms", "relay_latency_p99_ms",
	"windowed_count_events_per_s", "stream_events",
	"saga_steps_per_s", "saga_workflows_per_s", "saga_orders",
	"grpc_commands_16_per_s", "rest_commands_16_per_s", "shop_commands_16_per_s", "grpc_commands_16_ratio", "rest_commands_16_ratio",
	"query_min_position_p50_ms", "query_min_position_p99_ms",
}

func TestRunReportsEveryKey(t *testing.T) {
	for _, rounds := range []int{1, 2} {
		cfg := tinyConfig(t)
		cfg.Rounds = rounds
		var progress bytes.Buffer
		cfg.Progress = &progress
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("rounds=%d: %v\nprogress:\n%s", rounds, err, progress.String())
		}
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range append(wantKeys, Keys()...) {
			switch v := m[k].(type) {
			case float64:
				if v == 0 && strings.HasPrefix(k, "pg_") && cfg.PostgresURL == "" {
					continue // measured only with a PostgreSQL server
				}
				if v <= 0 {
					t.Errorf("rounds=%d: %s = %v, want > 0", rounds, k, v)
				}
			case string:
				if v == "" {
					t.Errorf("rounds=%d: %s is empty", rounds, k)
				}
			default:
				t.Errorf("rounds=%d: key %s missing or of type %T in %s", rounds, k, v, b)
			}
		}
		if m["streams"] != 50.0 || m["events_per_stream"] != 3.0 || m["payload_bytes"] != 64.0 || m["duration_s"] != 0.1 || m["rounds"] != float64(rounds) || m["saga_orders"] != 40.0 {
			t.Errorf("rounds=%d: context keys do not echo the config: %s", rounds, b)
		}
		if !strings.Contains(progress.String(), "partition_scan_events_per_s") {
			t.Errorf("progress does not name the measurements:\n%s", progress.String())
		}
		entries, err := os.ReadDir(cfg.Dir)
		if err != nil || len(entries) != 0 {
			t.Errorf("temporary directory left behind in %s: %v %v", cfg.Dir, entries, err)
		}
	}
}

func TestKeysMatchPlan(t *testing.T) {
	// Every step must fill a Result field; set fails on an unknown key.
	var r Result
	for _, s := range (&env{}).plan() {
		for _, key := range s.keys {
			if err := r.set(key, 1); err != nil {
				t.Error(err)
			}
		}
	}
	if err := r.set("no_such_key", 1); err == nil {
		t.Error("set of an unknown key succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	if err := QuickConfig().Validate(); err != nil {
		t.Fatalf("quick config: %v", err)
	}
	err := Config{Warmup: -time.Second}.Validate()
	if err == nil {
		t.Fatal("zero config is valid")
	}
	for _, field := range []string{"Duration", "Warmup", "Rounds", "Streams", "EventsPerStream", "PayloadBytes", "Partitions", "ProjectionEvents", "StreamEvents", "SagaOrders"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
	if _, err := Run(context.Background(), Config{}); err == nil {
		t.Error("Run accepted the zero config")
	}
}

func TestMedian(t *testing.T) {
	r := func(v float64) Result { return Result{AppendDurable1PerS: v, StreamReadEventsPerS: 10 * v} }
	if got := median([]Result{r(3), r(1), r(2)}); got.AppendDurable1PerS != 2 || got.StreamReadEventsPerS != 20 {
		t.Errorf("median of 3 = %+v", got)
	}
	if got := median([]Result{r(40), r(10), r(20), r(31)}); got.AppendDurable1PerS != 26 {
		t.Errorf("median of 4 = %v, want 26 (25.5 rounded to a whole rate)", got.AppendDurable1PerS)
	}
	ratio := func(v float64) Result { return Result{AppendDurable16Ratio: v} }
	if got := median([]Result{ratio(0.5875), ratio(0.5874999)}); got.AppendDurable16Ratio != 0.587 {
		t.Errorf("median ratio = %v, want 0.587 (three decimals)", got.AppendDurable16Ratio)
	}
}

func TestWriteTable(t *testing.T) {
	res := Result{AppendDurable16PerS: 12345.6, AppendDurable16Ratio: 0.912, PeakHeapBytes: 3 << 20,
		Environment: Environment{Cores: 2, GoVersion: "go1.26", GOOSGOARCH: "linux/amd64", DurationS: 3, Rounds: 1, Streams: 10000, EventsPerStream: 10, PayloadBytes: 200}}
	var b bytes.Buffer
	if err := WriteTable(&b, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range append(Keys(), "12,346", "0.91", "3.0 MiB", "2 cores", "10,000 streams") {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", -4321: "-4,321"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestClosedLoop(t *testing.T) {
	e := &env{cfg: Config{Duration: time.Millisecond}}
	ctx := context.Background()

	// An op slower than the whole window still yields a rate, not zero.
	rate, err := e.closedLoop(ctx, 2, func(int) func() error {
		return func() error { time.Sleep(20 * time.Millisecond); return nil }
	})
	if err != nil || rate <= 0 {
		t.Errorf("slow op: rate %v, err %v; want a positive rate", rate, err)
	}

	// The first error stops the loop and is returned.
	boom := errors.New("boom")
	if _, err := e.closedLoop(ctx, 4, func(int) func() error {
		return func() error { return boom }
	}); !errors.Is(err, boom) {
		t.Errorf("failing op: err %v, want %v", err, boom)
	}

	// Ending the context ends the measurement with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	e.cfg.Duration = time.Hour
	if _, err := e.closedLoop(cctx, 2, func(int) func() error {
		return func() error { cancel(); return nil }
	}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err %v, want context.Canceled", err)
	}
}

func TestWriteTableRoundsNote(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, Result{Environment: Environment{Rounds: 3}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "3 rounds (median)") || !strings.Contains(b.String(), "median of the rounds'") {
		t.Errorf("table of 3 rounds does not say how values were combined:\n%s", b.String())
	}
}
