package saga_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
		wctx, stop := context.WithTimeout(ctx, 10*time.Second)
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

// TestUseEventsTypeMismatch: a handler whose event type is not what the
// registry decodes stops Run with an error naming both.
func TestUseEventsTypeMismatch(t *testing.T) {
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := t.Context()
	if err := store.CreateTopic(ctx, "payments-v", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, "payments-v", "p", eventstore.Any, []eventstore.Event{{Type: "paid", SchemaVersion: 2, Payload: []byte(`{"order_id":"o-1"}`)}}); err != nil {
		t.Fatal(err)
	}
	bus, err := command.New(store)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	type other struct{ OrderID string }
	d := saga.Define[paid]("mismatch", "payments-v")
	saga.UseEvents(d, paidEvents(t))
	saga.UseEvents(d, paidEvents(t)) // twice: a mistake New reports
	saga.StartOn(d, "paid", func(_ eventstore.Record, e other) string { return e.OrderID }, func(*saga.Step[paid], other) error { return nil })
	if _, err := saga.New(store, bus, d); err == nil || !strings.Contains(err.Error(), `event type "paid" is in two registries`) {
		t.Errorf("New with a type in two registries: %v", err)
	}

	d = saga.Define[paid]("mismatch", "payments-v")
	saga.UseEvents(d, paidEvents(t))
	saga.StartOn(d, "paid", func(_ eventstore.Record, e other) string { return e.OrderID }, func(*saga.Step[paid], other) error { return nil })
	s, err := saga.New(store, bus, d)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = s.Run(rctx)
	if err == nil || !strings.Contains(err.Error(), "decodes to saga_test.paid, but its handler takes saga_test.other") {
		t.Errorf("Run: %v", err)
	}
}
