package bench

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Result is what one Run measured. Its JSON form is one flat object whose
// keys are stable: new measurements add keys, existing keys keep their name
// and meaning. Rates are per second of wall-clock time.
//
// Every measured field is a float64 with a json tag (the key) and a label
// tag (its description in the table); Run fills it through its key. With
// several rounds every value is the median over the rounds, ratios
// included: the median of the per-round ratios, each taken between store
// and raw measurements made in alternating slices of the same period.
type Result struct {
	PebbleRawSync1PerS  float64 `json:"pebble_raw_sync_1_per_s" label:"raw Pebble Commit(Sync)/s, 1 goroutine"`
	AppendDurable1PerS  float64 `json:"append_durable_1_per_s" label:"durable appends/s, 1 goroutine"`
	AppendDurable1Ratio float64 `json:"append_durable_1_ratio" label:"  store / raw Pebble, 1 goroutine"`

	PebbleRawSync16PerS  float64 `json:"pebble_raw_sync_16_per_s" label:"raw Pebble Commit(Sync)/s, 16 goroutines"`
	AppendDurable16PerS  float64 `json:"append_durable_16_per_s" label:"durable appends/s, 16 goroutines"`
	AppendDurable16Ratio float64 `json:"append_durable_16_ratio" label:"  store / raw Pebble, 16 goroutines"`

	PebbleRawSync64PerS  float64 `json:"pebble_raw_sync_64_per_s" label:"raw Pebble Commit(Sync)/s, 64 goroutines"`
	AppendDurable64PerS  float64 `json:"append_durable_64_per_s" label:"durable appends/s, 64 goroutines"`
	AppendDurable64Ratio float64 `json:"append_durable_64_ratio" label:"  store / raw Pebble, 64 goroutines"`

	StreamReadEventsPerS    float64 `json:"stream_read_events_per_s" label:"ReadStream, every stream, events/s"`
	PartitionScanEventsPerS float64 `json:"partition_scan_events_per_s" label:"ReadPartition, every partition, events/s"`

	// Write side: the command bus and aggregate loading.
	CommandBus16PerS         float64 `json:"command_bus_16_per_s" label:"command bus, durable, 16 clients on own aggregates, commands/s"`
	CommandBusAppend16PerS   float64 `json:"command_bus_append_16_per_s" label:"  durable appends/s, 16 goroutines, in slices alternating with it"`
	CommandBus16Ratio        float64 `json:"command_bus_16_ratio" label:"  command bus / those durable appends"`
	Load1000EventsUs         float64 `json:"load_1000_events_us" label:"load an aggregate of 1,000 events, µs (median)"`
	Load1000EventsSnapshotUs float64 `json:"load_1000_events_snapshot_us" label:"  the same, snapshot every 100 events, µs (median)"`
	// Projections (package projection).
	ProjectionCatchupEventsPerS float64 `json:"projection_catchup_events_per_s" label:"projection catch-up into counters, events/s"`
	// Workflows (package saga): the fulfillment saga of internal/fulfillment.
	SagaStepsPerS     float64 `json:"saga_steps_per_s" label:"saga, three-step durable workflow, 16 clients placing orders, steps/s"`
	SagaWorkflowsPerS float64 `json:"saga_workflows_per_s" label:"  the same, completed workflows/s (4 steps and 3 commands each)"`
	// broker: the outbox relay to GoChannel and to embedded NATS JetStream,
	// and the latency from append to an Inbound handler through NATS.
	RelayGoChannelPerS float64 `json:"relay_gochannel_per_s" label:"relay to GoChannel, records/s"`
	RelayNATSPerS      float64 `json:"relay_nats_per_s" label:"relay to NATS JetStream, records/s"`
	RelayLatencyP50Ms  float64 `json:"relay_latency_p50_ms" label:"append -> NATS -> inbound handler, p50 ms"`
	RelayLatencyP99Ms  float64 `json:"relay_latency_p99_ms" label:"append -> NATS -> inbound handler, p99 ms"`
	// Stream processing (package stream).
	WindowedCountEventsPerS float64 `json:"windowed_count_events_per_s" label:"windowed count topology, input events/s"`
	// The service surface (package service, examples/shop): PlaceOrder
	// end to end over loopback gRPC and REST while the shop's projection,
	// saga and revenue run, beside the same handler called in process, in
	// alternating slices; and read-your-writes queries.
	GRPCCommands16PerS    float64 `json:"grpc_commands_16_per_s" label:"shop PlaceOrder over gRPC, loopback, 16 clients, commands/s"`
	RESTCommands16PerS    float64 `json:"rest_commands_16_per_s" label:"  the same over REST (POST /v1/orders), 16 clients, commands/s"`
	ShopCommands16PerS    float64 `json:"shop_commands_16_per_s" label:"  the same handler in process, no transport, in slices alternating with them"`
	GRPCCommands16Ratio   float64 `json:"grpc_commands_16_ratio" label:"  gRPC / in process (floor 0.5)"`
	RESTCommands16Ratio   float64 `json:"rest_commands_16_ratio" label:"  REST / in process"`
	QueryMinPositionP50Ms float64 `json:"query_min_position_p50_ms" label:"GetOrder over gRPC with min_position of an order just placed, 16 clients, p50 ms"`
	QueryMinPositionP99Ms float64 `json:"query_min_position_p99_ms" label:"  the same, p99 ms"`

	// Telemetry (telemetry.go): durable appends and commands, 16 clients,
	// with the OpenTelemetry SDK's meter provider (collected after every
	// slice, readings discarded) and tracer provider (every span sampled,
	// then dropped) beside no-op ones, in alternating slices.
	TelemetryOffAppendEventsPerS float64 `json:"telemetry_off_append_events_per_s" label:"durable appends/s, 16 goroutines, tracing and metrics off (no-op providers)"`
	TelemetryAppendEventsPerS    float64 `json:"telemetry_append_events_per_s" label:"  the same, tracing and metrics on (SDK providers, every span sampled), in slices alternating with it"`
	TelemetryAppendRatio         float64 `json:"telemetry_append_ratio" label:"  tracing and metrics on / off"`
	TelemetryOffCommandPerS      float64 `json:"telemetry_off_command_per_s" label:"command bus, durable, 16 clients, commands/s, tracing and metrics off"`
	TelemetryCommandPerS         float64 `json:"telemetry_command_per_s" label:"  the same, tracing and metrics on, in slices alternating with it"`
	TelemetryCommandRatio        float64 `json:"telemetry_command_ratio" label:"  tracing and metrics on / off"`
	// TelemetrySampledCommandPerS is the same commands with metrics on and
	// one trace in ten sampled, in the same slices.
	TelemetrySampledCommandPerS  float64 `json:"telemetry_sampled_command_per_s" label:"  the same, metrics on and one trace in ten sampled"`
	TelemetrySampledCommandRatio float64 `json:"telemetry_sampled_command_ratio" label:"  one trace in ten sampled / off"`
	// PostgreSQL (Config.PostgresURL; zero without it): durable appends of
	// the PostgreSQL store against plain INSERTs into a table with a unique
	// (stream, version) constraint, through the same pool, in alternating
	// slices; then reads of a loaded topic.
	PGRawInsert1PerS      float64 `json:"pg_raw_insert_1_per_s" label:"PostgreSQL: plain INSERT (unique stream, version)/s, 1 goroutine"`
	PGAppendDurable1PerS  float64 `json:"pg_append_durable_1_per_s" label:"  PostgreSQL store durable appends/s, 1 goroutine"`
	PGAppendDurable1Ratio float64 `json:"pg_append_durable_1_ratio" label:"  store / plain INSERT, 1 goroutine"`

	PGRawInsert16PerS      float64 `json:"pg_raw_insert_16_per_s" label:"PostgreSQL: plain INSERT/s, 16 goroutines"`
	PGAppendDurable16PerS  float64 `json:"pg_append_durable_16_per_s" label:"  PostgreSQL store durable appends/s, 16 goroutines"`
	PGAppendDurable16Ratio float64 `json:"pg_append_durable_16_ratio" label:"  store / plain INSERT, 16 goroutines"`

	PGRawInsert64PerS      float64 `json:"pg_raw_insert_64_per_s" label:"PostgreSQL: plain INSERT/s, 64 goroutines"`
	PGAppendDurable64PerS  float64 `json:"pg_append_durable_64_per_s" label:"  PostgreSQL store durable appends/s, 64 goroutines"`
	PGAppendDurable64Ratio float64 `json:"pg_append_durable_64_ratio" label:"  store / plain INSERT, 64 goroutines"`

	PGStreamReadEventsPerS    float64 `json:"pg_stream_read_events_per_s" label:"PostgreSQL: ReadStream, every stream, events/s"`
	PGPartitionScanEventsPerS float64 `json:"pg_partition_scan_events_per_s" label:"PostgreSQL: ReadPartition, every partition, events/s"`

	// PeakHeapBytes is the largest Go heap (live and unswept objects) seen
	// during the whole run, sampled every 10 ms. Pebble's block cache and
	// memtables live outside the Go heap and are not counted.
	PeakHeapBytes uint64 `json:"peak_heap_bytes" label:"peak Go heap"`

	// Environment says where and how the numbers were measured.
	Environment
}

// Environment is the context of a Result: the machine and the
// configuration. Its keys are flattened into the Result's JSON object.
type Environment struct {
	// Cores is runtime.NumCPU().
	Cores int `json:"cores"`
	// GoVersion is runtime.Version(), such as "go1.26.8".
	GoVersion string `json:"go_version"`
	// GOOSGOARCH is the platform, such as "linux/amd64".
	GOOSGOARCH string `json:"goos_goarch"`
	// DurationS is Config.Duration in seconds.
	DurationS float64 `json:"duration_s"`
	// Rounds, Streams, EventsPerStream and PayloadBytes echo the Config.
	Rounds          int `json:"rounds"`
	Streams         int `json:"streams"`
	EventsPerStream int `json:"events_per_stream"`
	PayloadBytes    int `json:"payload_bytes"`
	// StreamEvents echoes Config.StreamEvents.
	StreamEvents int `json:"stream_events"`
	// SagaOrders echoes Config.SagaOrders.
	SagaOrders int `json:"saga_orders"`
}

// resultFields returns the measured fields of Result in declaration order,
// each with its JSON key.
func resultFields() []reflect.StructField {
	t := reflect.TypeFor[Result]()
	var fields []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous || jsonKey(f) == "" {
			continue
		}
		fields = append(fields, f)
	}
	return fields
}

func jsonKey(f reflect.StructField) string {
	key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if key == "-" {
		return ""
	}
	return key
}

// Keys returns the JSON keys of the measured values, in table order. The
// keys of Environment follow them in the JSON object.
func Keys() []string {
	var keys []string
	for _, f := range resultFields() {
		keys = append(keys, jsonKey(f))
	}
	return keys
}

// set stores v in the float64 field whose JSON key is key.
func (r *Result) set(key string, v float64) error {
	for _, f := range resultFields() {
		if jsonKey(f) == key && f.Type.Kind() == reflect.Float64 {
			reflect.ValueOf(r).Elem().FieldByIndex(f.Index).SetFloat(v)
			return nil
		}
	}
	return fmt.Errorf("bench: Result has no float64 field with key %q", key)
}

// median returns a Result whose float64 measurements are the medians of
// rounds (the mean of the middle two for an even count). Other fields are
// left zero.
func median(rounds []Result) Result {
	var out Result
	dst := reflect.ValueOf(&out).Elem()
	for _, f := range resultFields() {
		if f.Type.Kind() != reflect.Float64 || len(rounds) == 0 {
			continue
		}
		vs := make([]float64, len(rounds))
		for i := range rounds {
			vs[i] = reflect.ValueOf(rounds[i]).FieldByIndex(f.Index).Float()
		}
		slices.Sort(vs)
		m := vs[len(vs)/2]
		if len(vs)%2 == 0 {
			m = (vs[len(vs)/2-1] + m) / 2
		}
		// Rates are whole numbers and ratios have three decimals, as in a
		// single round.
		dst.FieldByIndex(f.Index).SetFloat(roundValue(jsonKey(f), m))
	}
	return out
}

// roundValue rounds a measured value as its key says: ratios to three
// decimals, milliseconds to two, rates to whole numbers.
func roundValue(key string, v float64) float64 {
	switch {
	case strings.HasSuffix(key, "_ratio"):
		return math.Round(v*1000) / 1000
	case strings.HasSuffix(key, "_ms"):
		return math.Round(v*100) / 100
	default:
		return math.Round(v)
	}
}

// WriteTable writes r as a human-readable table: a header with the
// environment, then one row per measurement with its label, value and key.
func WriteTable(w io.Writer, r Result) error {
	e := r.Environment
	round := "rounds (median)"
	if e.Rounds == 1 {
		round = "round"
	}
	if _, err := fmt.Fprintf(w, "muninn bench: %d cores, %s %s; %gs per measurement, %d %s; %s streams x %d events, %d-byte payloads\n\n",
		e.Cores, e.GoVersion, e.GOOSGOARCH, e.DurationS, e.Rounds, round,
		thousands(float64(e.Streams)), e.EventsPerStream, e.PayloadBytes); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASUREMENT\tVALUE\tKEY")
	v := reflect.ValueOf(r)
	for _, f := range resultFields() {
		key := jsonKey(f)
		label := cmp.Or(f.Tag.Get("label"), key)
		fmt.Fprintf(tw, "%s\t%s\t%s\n", label, formatValue(key, v.FieldByIndex(f.Index)), key)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if e.Rounds > 1 {
		_, err := fmt.Fprintf(w, "\nEvery value is the median over %d rounds; a ratio is the median of the rounds'\nratios (each from store and raw runs in alternating slices), not the ratio\nof the medians above it.\n", e.Rounds)
		return err
	}
	return nil
}

// formatValue formats a measured value by the suffix of its key.
func formatValue(key string, v reflect.Value) string {
	switch {
	case strings.HasSuffix(key, "_ratio"), strings.HasSuffix(key, "_ms"):
		return strconv.FormatFloat(v.Float(), 'f', 2, 64)
	case strings.HasSuffix(key, "_bytes") && v.CanUint():
		return fmt.Sprintf("%.1f MiB", float64(v.Uint())/(1<<20))
	case v.CanFloat():
		return thousands(v.Float())
	case v.CanUint():
		return thousands(float64(v.Uint()))
	case v.CanInt():
		return thousands(float64(v.Int()))
	default:
		return fmt.Sprint(v.Interface())
	}
}

// thousands formats x rounded to an integer, with commas between groups of
// three digits.
func thousands(x float64) string {
	s := strconv.FormatFloat(math.Round(x), 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
