package command_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// readMetrics collects r's metrics as "name{k=v,...}" -> value: the sum of
// a counter, the value of a gauge, and the count of a histogram (under
// name_count).
func readMetrics(t *testing.T, r *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	key := func(name string, set attribute.Set) string {
		return name + "{" + set.Encoded(attribute.DefaultEncoder()) + "}"
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = float64(p.Value)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[key(m.Name+"_count", p.Attributes)] = float64(p.Count)
				}
			}
		}
	}
	return out
}

// TestMetrics dispatches an applied, a duplicate, a refused and a rejected
// command and checks muninn_commands_total and the duration histogram by
// outcome, measured outside the middleware that refused one.
func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	s := openMem(t)
	b := newBus(t, s, command.WithMeterProvider(mp), command.WithMiddleware(command.Authorize(func(_ context.Context, cmd *command.Command) error {
		if cmd.AggregateID == "forbidden" {
			return fmt.Errorf("not yours")
		}
		return nil
	})))
	orders := register(t, b)
	ctx := t.Context()
	for range 2 {
		if _, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}, command.WithCommandID("c1")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := orders.Dispatch(ctx, "forbidden", PlaceOrder{"eve"}); command.KindOf(err) != command.KindPermissionDenied {
		t.Fatalf("forbidden = %v", err)
	}
	if _, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}); command.KindOf(err) != command.KindFailedPrecondition {
		t.Fatalf("placing twice = %v", err)
	}
	got := readMetrics(t, reader)
	place := "command_test.PlaceOrder" // the Go type: PlaceOrder has no CommandType method
	want := map[string]float64{}
	for outcome, n := range map[string]float64{"applied": 1, "duplicate": 1, "permission_denied": 1, "failed_precondition": 1} {
		labels := "{aggregate=order,command=" + place + ",outcome=" + outcome + "}"
		want["muninn_commands_total"+labels] = n
		want["muninn_command_duration_seconds_count"+labels] = n
	}
	var diff []string
	for k, v := range want {
		if got[k] != v {
			diff = append(diff, fmt.Sprintf("%s = %v, want %v", k, got[k], v))
		}
	}
	if len(got) != len(want) {
		diff = append(diff, fmt.Sprintf("%d series, want %d: %v", len(got), len(want), got))
	}
	slices.Sort(diff)
	for _, d := range diff {
		t.Error(d)
	}
}

func TestWithMeterProviderNil(t *testing.T) {
	if _, err := command.New(openMem(t), command.WithMeterProvider(nil)); err == nil || !strings.Contains(err.Error(), "WithMeterProvider") {
		t.Errorf("New(WithMeterProvider(nil)) = %v, want an error naming it", err)
	}
}

// BenchmarkDispatchMetrics is the CPU cost of the bus's metrics on a
// dispatch (in memory), off (the no-op provider) and on (the SDK's).
func BenchmarkDispatchMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		var opts []command.Option
		if on {
			name = "on"
			opts = append(opts, command.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))))
		}
		b.Run(name, func(b *testing.B) {
			s := openMem(b)
			orders := register(b, newBus(b, s, opts...))
			i := 0
			for b.Loop() {
				i++ // a new order each time: the same work per dispatch
				if _, err := orders.Dispatch(b.Context(), "o-"+strconv.Itoa(i), PlaceOrder{"ada"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// ExampleWithMeterProvider counts commands by outcome with the
// OpenTelemetry SDK (here read with a manual reader; a service exports
// them, to Prometheus for example).
func ExampleWithMeterProvider() {
	ctx := context.Background()
	store, _ := eventstore.OpenMem()
	defer store.Close()
	events, _ := aggregate.NewEvents[OrderEvent](
		aggregate.Type[OrderPlaced]("order.placed"),
		aggregate.Type[ItemAdded]("order.item_added"),
		aggregate.Type[OrderConfirmed]("order.confirmed"),
	)
	order, _ := aggregate.New("order", aggregate.Decider[Order, OrderCommand, OrderEvent]{Decide: decide, Evolve: evolve}, events)
	reader := sdkmetric.NewManualReader()
	bus, _ := command.New(store, command.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	defer bus.Close()
	orders, _ := command.Register(ctx, bus, order)

	_, _ = orders.Dispatch(ctx, "order-1", PlaceOrder{"ada"}, command.WithCommandID("c1"))
	_, _ = orders.Dispatch(ctx, "order-1", PlaceOrder{"ada"}, command.WithCommandID("c1"))
	_, _ = orders.Dispatch(ctx, "order-1", AddItem{"sku-42", 0})

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(ctx, &rm)
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "muninn_commands_total" {
				for _, p := range sum.DataPoints {
					lines = append(lines, fmt.Sprintf("%s{%s} %d", m.Name, p.Attributes.Encoded(attribute.DefaultEncoder()), p.Value))
				}
			}
		}
	}
	slices.Sort(lines)
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// muninn_commands_total{aggregate=order,command=command_test.AddItem,outcome=invalid_argument} 1
	// muninn_commands_total{aggregate=order,command=command_test.PlaceOrder,outcome=applied} 1
	// muninn_commands_total{aggregate=order,command=command_test.PlaceOrder,outcome=duplicate} 1
}
