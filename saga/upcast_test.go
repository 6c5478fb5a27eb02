package saga_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/saga"
)

// paid is schema 2 of "paid"; schema 1 called the order field "order".
type paid struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount"`
}

type paidEvent interface{}

func paidEvents(t *testing.T) *aggregate.Events[paidEvent] {
	t.Helper()
	ev, err := aggregate.NewEvents[paidEvent](
		aggregate.Type[paid]("paid", aggregate.Schema(2)),
		aggregate.Upcast("paid", 1, aggregate.JSONUpcaster(2, func(m map[string]any) error {
			m["order_id"] = m["order"]
			delete(m, "order")
			return nil
		})),
	)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// paidSaga records the order of each payment it sees, correlated by it.
func paidSaga(t *testing.T, name string, events *aggregate.Events[paidEvent]) *saga.Definition[paid] {
	d := saga.Define[paid](name, "payments-v")
	if events != nil {
		saga.UseEvents(d, events)
	}
	saga.StartOn(d, "paid", func(_ eventstore.Record, e paid) string { return e.OrderID }, func(s *saga.Step[paid], e paid) error {
		s.State = e
		s.Complete()
		return nil
	})
	return d
}

// TestUseEventsUpcasts: a record written under schema 1 reaches the
// handler upcast to schema 2 through the aggregate's registry; without the
// registry the old field is lost and the event correlates to nothing.
func TestUseEventsUpcasts(t *testing.T) {
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx := t.Context()
	if err := store.CreateTopic(ctx, "payments-v", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []eventstore.Event{
		{Type: "paid", SchemaVersion: 1, Payload: []byte(`{"order":"o-1","amount":5}`)},
		{Type: "paid", SchemaVersion: 2, Payload: []byte(`{"order_id":"o-2","amount":7}`)},
	} {
		if _, err := store.Append(ctx, "payments-v", "pay-"+string(e.Payload[len(e.Payload)-2]), eventstore.Any, []eventstore.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	bus, err := command.New(store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })

	run := func(d *saga.Definition[paid]) *saga.Saga[paid] {
		s, err := saga.New(store, bus, d)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		wctx, stop := context.WithTimeout(ctx, waitTime)
		defer stop()
		if _, err := s.WaitFor(wctx, "", func(saga.Instance[paid]) bool { st := s.Stats(); return st.Steps+st.Ignored == 2 }); err != nil {
			t.Fatalf("%s: %v; stats %+v", d.Name(), err, s.Stats())
		}
		return s
	}

	s := run(paidSaga(t, "upcasting", paidEvents(t)))
	for id, amount := range map[string]int{"o-1": 5, "o-2": 7} {
		in, err := s.Get(ctx, id)
		if err != nil || in.Status != saga.StatusCompleted || in.State.Amount != amount {
			t.Errorf("%s: %+v, %v", id, in, err)
		}
	}

	plain := run(paidSaga(t, "plain", nil))
	if st := plain.Stats(); st.Started != 1 || st.Ignored != 1 {
		t.Errorf("without the registry the schema-1 event should correlate to nothing: %+v", st)
	}
}

// TestUseEventsNamesAgree: with a registry, a handler's event type name
// and Go type must agree with it; every mismatch fails at New, in
// whichever order the definition was built, instead of a handler that
// never runs or a saga that stops at its first event.
func TestUseEventsNamesAgree(t *testing.T) {
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	bus, err := command.New(store)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	type other struct{ OrderID string }
	byOrder := func(_ eventstore.Record, e paid) string { return e.OrderID }
	noop := func(*saga.Step[paid], paid) error { return nil }
	renamedEvents := func() *aggregate.Events[paidEvent] {
		ev, err := aggregate.NewEvents[paidEvent](
			aggregate.Type[paid]("paid", aggregate.Schema(2)),
			aggregate.Upcast("payment.made", 1, func(r aggregate.Raw) (aggregate.Raw, error) {
				r.Type, r.SchemaVersion = "paid", 2
				return r, nil
			}),
		)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	for name, build := range map[string]struct {
		def  func(d *saga.Definition[paid])
		want string
	}{
		"a name of another Go type": {func(d *saga.Definition[paid]) {
			saga.UseEvents(d, paidEvents(t))
			saga.StartOn(d, "paid", func(_ eventstore.Record, e other) string { return e.OrderID }, func(*saga.Step[paid], other) error { return nil })
		}, `StartOn("paid"): the event registry decodes "paid" into saga_test.paid, but the handler takes saga_test.other`},
		"the registry after the handler": {func(d *saga.Definition[paid]) {
			saga.StartOn(d, "paid", func(_ eventstore.Record, e other) string { return e.OrderID }, func(*saga.Step[paid], other) error { return nil })
			saga.UseEvents(d, paidEvents(t))
		}, `the handler takes saga_test.other`},
		"a Go type under another name": {func(d *saga.Definition[paid]) {
			saga.UseEvents(d, paidEvents(t))
			saga.StartOn(d, "payment.paid", byOrder, noop)
		}, `StartOn("payment.paid"): the handler takes saga_test.paid, which the event registry registers as "paid"`},
		"an old name": {func(d *saga.Definition[paid]) {
			saga.UseEvents(d, renamedEvents())
			saga.StartOn(d, "payment.made", byOrder, noop)
		}, `StartOn("payment.made"): "payment.made" is an old name`},
		"a type in two registries": {func(d *saga.Definition[paid]) {
			saga.UseEvents(d, paidEvents(t))
			saga.UseEvents(d, paidEvents(t))
			saga.StartOn(d, "paid", byOrder, noop)
		}, `event type "paid" is in two registries`},
		"an old name in two registries": {func(d *saga.Definition[paid]) {
			saga.UseEvents(d, renamedEvents())
			saga.UseEvents(d, renamedEvents())
			saga.StartOn(d, "paid", byOrder, noop)
		}, `event type "payment.made" is in two registries`},
	} {
		d := saga.Define[paid]("agree", "payments-v")
		build.def(d)
		if _, err := saga.New(store, bus, d); !errors.Is(err, saga.ErrInvalidArgument) || !strings.Contains(err.Error(), build.want) {
			t.Errorf("%s: New = %v, want an error mentioning %s", name, err, build.want)
		}
	}
}

// TestUseEventsRenamed: a record stored under an old type name reaches,
// through the registry, the handler of the type its upcaster renames it
// to; a handler may take the aggregate's event interface.
func TestUseEventsRenamed(t *testing.T) {
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx := t.Context()
	if err := store.CreateTopic(ctx, "payments-v", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	events, err := aggregate.NewEvents[paidEvent](
		aggregate.Type[paid]("paid", aggregate.Schema(2)),
		aggregate.Upcast("payment.made", 1, func(r aggregate.Raw) (aggregate.Raw, error) {
			r, err := aggregate.JSONUpcaster(2, func(m map[string]any) error {
				m["order_id"] = m["order"]
				delete(m, "order")
				return nil
			})(r)
			r.Type = "paid"
			return r, err
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []eventstore.Event{
		{Type: "payment.made", SchemaVersion: 1, Payload: []byte(`{"order":"o-1","amount":5}`)},
		{Type: "paid", SchemaVersion: 2, Payload: []byte(`{"order_id":"o-2","amount":7}`)},
	} {
		if _, err := store.Append(ctx, "payments-v", "pay", eventstore.Any, []eventstore.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	bus, err := command.New(store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	d := saga.Define[paid]("renamed", "payments-v")
	// The handler takes the event interface; the registry comes after it.
	saga.StartOn(d, "paid", func(_ eventstore.Record, e paidEvent) string { return e.(paid).OrderID }, func(s *saga.Step[paid], e paidEvent) error {
		s.State = e.(paid)
		s.Complete()
		return nil
	})
	saga.UseEvents(d, events)
	s, err := saga.New(store, bus, d)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	wctx, stop := context.WithTimeout(ctx, waitTime)
	defer stop()
	if _, err := s.WaitFor(wctx, "", func(saga.Instance[paid]) bool { return s.Stats().Steps == 2 }); err != nil {
		t.Fatalf("%v; stats %+v", err, s.Stats())
	}
	for id, amount := range map[string]int{"o-1": 5, "o-2": 7} {
		in, err := s.Get(ctx, id)
		if err != nil || in.Status != saga.StatusCompleted || in.State.Amount != amount {
			t.Errorf("%s: %+v, %v", id, in, err)
		}
	}
}
