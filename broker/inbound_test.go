package broker_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"
	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/backends"
)

func newGoChannel(t *testing.T) *gochannel.GoChannel {
	t.Helper()
	ch := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})
	t.Cleanup(func() { ch.Close() })
	return ch
}

func counterHandler(_ context.Context, tx eventstore.Txn, rec eventstore.Record) error {
	k := []byte("count/" + rec.ID.String())
	var c uint64
	if v, ok, err := tx.Get(k); err != nil {
		return err
	} else if ok {
		c = binary.BigEndian.Uint64(v)
	}
	return tx.Set(k, binary.BigEndian.AppendUint64(nil, c+1))
}

func countOf(t *testing.T, s eventstore.Store, id uuid.UUID) uint64 {
	t.Helper()
	v, ok, err := s.Get(context.Background(), []byte("count/"+id.String()))
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func record(key string, version uint64) eventstore.Record {
	return eventstore.Record{ID: uuid.Must(uuid.NewV7()), Topic: "orders", Key: key, Version: version, Type: "order.placed",
		SchemaVersion: 1, Payload: []byte(`{}`), Timestamp: time.Now()}
}

// TestInboundDeduplicates delivers each event three times: the handler's
// effect happens once, and later copies are Acked as duplicates.
func TestInboundDeduplicates(t *testing.T) {
	backends.Run(t, testInboundDeduplicates)
}

func testInboundDeduplicates(t *testing.T, backend backends.Backend) {
	store := backend.Open(t)
	ch := newGoChannel(t)
	// AfterCommit runs once per applied record (never for a duplicate),
	// after the transaction: the handler's effect is already visible.
	var afterMu sync.Mutex
	after := map[string]int{}
	afterCommit := func(_ context.Context, rec eventstore.Record) {
		afterMu.Lock()
		defer afterMu.Unlock()
		after[rec.ID.String()]++
		if c := countOf(t, store, rec.ID); c != 1 {
			t.Errorf("AfterCommit of %s saw the effect applied %d times", rec.ID, c)
		}
	}
	in, err := broker.NewInbound(store, ch, counterHandler, broker.InboundConfig{Name: "svc", Topics: []string{"orders"}, AfterCommit: afterCommit})
	if err != nil {
		t.Fatal(err)
	}
	runBG(t, in.Run)
	recs := []eventstore.Record{record("a", 1), record("b", 1), record("a", 2)}
	for range 3 {
		for _, rec := range recs {
			if err := ch.Publish("orders", broker.EncodeRecord(rec)); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "9 deliveries", func() bool { st := inStatus(t, in); return st.Handled+st.Duplicates == 9 })
	if st := inStatus(t, in); st.Handled != 3 || st.Duplicates != 6 {
		t.Errorf("status %+v: want 3 handled, 6 duplicates", st)
	}
	for _, rec := range recs {
		if c := countOf(t, store, rec.ID); c != 1 {
			t.Errorf("event %s applied %d times", rec.ID, c)
		}
		if seen, err := in.Seen(context.Background(), rec.ID); err != nil || !seen {
			t.Errorf("Seen(%s) = %v, %v", rec.ID, seen, err)
		}
		afterMu.Lock()
		if n := after[rec.ID.String()]; n != 1 {
			t.Errorf("AfterCommit ran %d times for %s, want 1", n, rec.ID)
		}
		afterMu.Unlock()
	}
}

// TestInboundRetriesThenDeadLetters: a handler that fails is retried
// Retries times with backoff on the clock, and the message then goes to the
// dead-letter topic with the error, and is Acked; the next message is
// handled.
func TestInboundRetriesThenDeadLetters(t *testing.T) {
	backends.Run(t, testInboundRetriesThenDeadLetters)
}

func testInboundRetriesThenDeadLetters(t *testing.T, backend backends.Backend) {
	store := backend.Open(t)
	ch := newGoChannel(t)
	clk := newClock()
	bad := record("a", 1)
	h := func(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) error {
		if rec.ID == bad.ID {
			// Writes of a failed attempt are rolled back.
			if err := tx.Set([]byte("leak"), []byte("x")); err != nil {
				return err
			}
			return errors.New("boom")
		}
		return counterHandler(ctx, tx, rec)
	}
	in, err := broker.NewInbound(store, ch, h, broker.InboundConfig{Name: "svc", Topics: []string{"orders"}, Retries: 2,
		Backoff: clock.Constant(time.Second), Clock: clk, DeadLetter: ch, DeadLetterTopic: "orders.dlq"})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := ch.Subscribe(context.Background(), "orders.dlq")
	if err != nil {
		t.Fatal(err)
	}
	runBG(t, in.Run)
	good := record("b", 1)
	for _, rec := range []eventstore.Record{bad, good} {
		if err := ch.Publish("orders", broker.EncodeRecord(rec)); err != nil {
			t.Fatal(err)
		}
	}
	// Two waits between the three attempts, each on the clock (the other
	// waiter is the purge's).
	for range 2 {
		if err := clk.BlockUntil(t.Context(), 2); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	select {
	case msg := <-dlq:
		msg.Ack()
		if msg.UUID != bad.ID.String() || msg.Metadata.Get(broker.MetaDeadLetterError) != "boom" ||
			msg.Metadata.Get(broker.MetaDeadLetterInbound) != "svc" || msg.Metadata.Get(broker.MetaDeadLetterTopic) != "orders" {
			t.Errorf("dead letter %s %v", msg.UUID, msg.Metadata)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no dead letter")
	}
	// The dead letter is published before the inbound counts it, and the
	// GoChannel may deliver good before bad: wait for both counts.
	waitFor(t, "good handled, bad dead-lettered", func() bool { st := inStatus(t, in); return st.Handled == 1 && st.DeadLettered == 1 })
	if c := countOf(t, store, good.ID); c != 1 {
		t.Errorf("good applied %d times", c)
	}
	st := inStatus(t, in)
	if st.Failures != 3 || st.DeadLettered != 1 || st.Handled != 1 || st.LastError != "boom" {
		t.Errorf("status %+v", st)
	}
	if len(st.Topics) != 1 || st.Topics[0].Topic != "orders" || st.Topics[0].Loop.Counters.Retries != 2 || st.Topics[0].Loop.Policy != "dead-letter" {
		t.Errorf("topic status %+v", st.Topics)
	}
	if n := clk.Waiters(); n != 1 {
		t.Errorf("%d waits pending after the dead letter, want 1 (the purge's)", n)
	}
	js, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"last_error":"boom"`, `"dead_lettered":1`, `"state":"live"`, `"topic":"orders"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("status JSON %s lacks %s", js, want)
		}
	}
	if _, ok, _ := store.Get(context.Background(), []byte("leak")); ok {
		t.Error("a failed attempt's write was committed")
	}
}

// TestInboundStopsWithoutDeadLetter: without a dead-letter topic a message
// given up stops Run with a *consume.HandlerError and is Nacked, not lost.
// An error is retried, a panic is not.
func TestInboundStopsWithoutDeadLetter(t *testing.T) {
	backends.Run(t, testInboundStopsWithoutDeadLetter)
}

func testInboundStopsWithoutDeadLetter(t *testing.T, backend backends.Backend) {
	store := backend.Open(t)
	ch := newGoChannel(t)
	clk := newClock()
	in, err := broker.NewInbound(store, ch, func(context.Context, eventstore.Txn, eventstore.Record) error { return errors.New("handler bug") },
		broker.InboundConfig{Name: "svc", Topics: []string{"orders"}, Retries: 1, Clock: clk, Backoff: clock.Constant(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- in.Run(context.Background()) }()
	rec := record("a", 1)
	if err := ch.Publish("orders", broker.EncodeRecord(rec)); err != nil {
		t.Fatal(err)
	}
	if err := clk.BlockUntil(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	var herr *consume.HandlerError
	select {
	case err := <-done:
		if !errors.As(err, &herr) || herr.Attempts != 2 || herr.EventID != rec.ID || herr.Key != "a" || herr.EventType != "order.placed" ||
			herr.Consumer != "svc" || !strings.Contains(err.Error(), "handler bug") {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
	if st := inStatus(t, in); st.Running || st.Subscribed || st.Handled != 0 || st.Failures != 2 || !strings.Contains(st.LastError, "handler bug") ||
		st.Topics[0].Loop.State != consume.StateFailed {
		t.Errorf("status after the stop: %+v", st)
	}
	// A panic is given up at once.
	panicky, err := broker.NewInbound(store, ch, func(context.Context, eventstore.Txn, eventstore.Record) error { panic("handler panic") },
		broker.InboundConfig{Name: "svc3", Topics: []string{"panics"}, Retries: 5})
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- panicky.Run(context.Background()) }()
	prec := record("p", 1)
	if err := ch.Publish("panics", broker.EncodeRecord(prec)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.As(err, &herr) || herr.Attempts != 1 || herr.EventID != prec.ID || !consume.IsPermanent(herr.Err) ||
			!strings.Contains(err.Error(), "handler panic") {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
	// A message that cannot be decoded is given up at once.
	bad := message.NewMessage(uuid.NewString(), []byte("x"))
	bad.Metadata.Set(broker.MetaSchemaVersion, "zero")
	in2, _ := broker.NewInbound(store, ch, counterHandler, broker.InboundConfig{Name: "svc2", Topics: []string{"other"}})
	go func() { done <- in2.Run(context.Background()) }()
	if err := ch.Publish("other", bad); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, broker.ErrMalformedMessage) || !errors.As(err, &herr) || herr.Attempts != 1 || !strings.Contains(err.Error(), bad.UUID) {
			t.Fatalf("Run: %v, want ErrMalformedMessage", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// TestInboundPurge: marks older than the retention window are purged, after
// which a late duplicate is handled again (the documented limit).
func TestInboundPurge(t *testing.T) {
	backends.Run(t, testInboundPurge)
}

func testInboundPurge(t *testing.T, backend backends.Backend) {
	store := backend.Open(t)
	ch := newGoChannel(t)
	clk := newClock()
	// The background purge (every PurgeInterval on the clock) stays out of
	// the way: the test purges itself.
	in, err := broker.NewInbound(store, ch, counterHandler, broker.InboundConfig{Name: "svc", Topics: []string{"orders"},
		Retention: time.Hour, PurgeInterval: 24 * time.Hour, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	runBG(t, in.Run)
	old, young := record("a", 1), record("b", 1)
	ch.Publish("orders", broker.EncodeRecord(old))
	waitFor(t, "old", func() bool { return inStatus(t, in).Handled == 1 })
	clk.Advance(50 * time.Minute)
	ch.Publish("orders", broker.EncodeRecord(young))
	waitFor(t, "young", func() bool { return inStatus(t, in).Handled == 2 })
	clk.Advance(20 * time.Minute)
	n, err := in.Purge(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	ctx := context.Background()
	if seen, _ := in.Seen(ctx, old.ID); seen {
		t.Error("old mark survived the purge")
	}
	if seen, _ := in.Seen(ctx, young.ID); !seen {
		t.Error("young mark was purged")
	}
	ch.Publish("orders", broker.EncodeRecord(old))
	ch.Publish("orders", broker.EncodeRecord(young))
	waitFor(t, "redeliveries", func() bool { st := inStatus(t, in); return st.Handled+st.Duplicates == 4 })
	if c := countOf(t, store, old.ID); c != 2 {
		t.Errorf("old applied %d times after its mark expired, want 2", c)
	}
	if c := countOf(t, store, young.ID); c != 1 {
		t.Errorf("young applied %d times, want 1", c)
	}
}

func TestInboundConfigValidate(t *testing.T) {
	err := broker.InboundConfig{Topics: []string{"", "a", "a"}, Retention: -1, Retries: -2, BatchSize: -1, DeadLetterTopic: "x",
		Backoff: clock.Backoff{Jitter: 2}}.Validate()
	for _, want := range []string{"InboundConfig.Name", "name is empty", "Topics[0] is empty", `Topics[2]: "a" is given twice`,
		"Retention is negative", "Retries is -2", "BatchSize -1", "DeadLetter", "Jitter"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	if !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("error %v does not wrap ErrInvalidArgument", err)
	}
	// The name is checked by the one rule of the framework.
	err = broker.InboundConfig{Name: "svc/v1", Topics: []string{"a"}}.Validate()
	if !errors.Is(err, eventstore.ErrInvalidArgument) || !strings.Contains(err.Error(), "'/'") {
		t.Errorf("a name with a slash: %v", err)
	}
	if _, err := broker.NewInbound(nil, nil, nil, broker.InboundConfig{}); err == nil ||
		!strings.Contains(err.Error(), "store is nil") || !strings.Contains(err.Error(), "subscriber is nil") || !strings.Contains(err.Error(), "handler is nil") {
		t.Errorf("NewInbound(nil, nil, nil, {}): %v", err)
	}
}
