package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/backends"
)

// flaky fails every Publish while failing is set, and otherwise passes the
// messages to a real publisher. It injects engine failures.
type flaky struct {
	message.Publisher
	mu      sync.Mutex
	failing int // how many more Publish calls fail
	calls   int
}

func (f *flaky) Publish(topic string, msgs ...*message.Message) error {
	f.mu.Lock()
	f.calls++
	if f.failing > 0 {
		f.failing--
		f.mu.Unlock()
		return errors.New("engine down")
	}
	f.mu.Unlock()
	return f.Publisher.Publish(topic, msgs...)
}

// TestRelayToLog relays one store's topic into another store through the
// log's Publisher and checks that every record arrives with its fields, in
// stream order, while publishes fail now and then.
func TestRelayToLog(t *testing.T) {
	backends.Run(t, testRelayToLog)
}

func testRelayToLog(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	src, dst := backend.Open(t), backend.Open(t)
	if err := src.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewPublisher(dst, broker.PublisherConfig{Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	fl := &flaky{Publisher: pub, failing: 3}
	clk := newClock()
	relay, err := broker.NewRelay(src, fl, broker.RelayConfig{
		Group: "relay", Topics: []string{"orders"}, BatchSize: 7, Clock: clk,
		TopicMapper: func(t string) string { return "out." + t },
	})
	if err != nil {
		t.Fatal(err)
	}
	const keys, perKey = 5, 20
	for i := range perKey {
		for k := range keys {
			_, err := src.Append(ctx, "orders", fmt.Sprintf("o-%d", k), eventstore.Exact(uint64(i)), []eventstore.Event{{
				Type: "order.changed", SchemaVersion: 2, Payload: fmt.Appendf(nil, "%d", i),
				CorrelationID: "corr", CausationID: "cause",
				Headers: map[string]string{"tenant": "t1", "muninn_type": "a user header"},
			}})
			if err != nil {
				t.Fatal(err)
			}
		}
		if i == perKey/2 {
			runBG(t, relay.Run)
		}
	}
	// The three failed publishes are each followed by a back-off on the
	// clock: move it past each.
	var waits []time.Duration
	for range 3 {
		if err := clk.BlockUntil(ctx, 1); err != nil {
			t.Fatal(err)
		}
		next, _ := clk.Next()
		waits = append(waits, next.Sub(clk.Now()))
		clk.Set(next)
	}
	waitFor(t, "all relayed", func() bool {
		st, err := relay.Status(ctx)
		return err == nil && st.Lag == 0 && st.Published >= keys*perKey && st.State == consume.StateLive
	})
	st, err := relay.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Retries != 3 || !strings.Contains(st.LastError, "engine down") || !st.LastErrorAt.Equal(clk.Now().Add(-waits[2])) {
		t.Errorf("status: retries %d, last error %q at %s; want 3 retries of 'engine down'", st.Retries, st.LastError, st.LastErrorAt)
	}
	if !st.Running || st.State != consume.StateLive || st.Group != "relay" || len(st.Partitions) != 3 || st.LagSeconds != 0 {
		t.Errorf("status %+v", st)
	}
	if w := waits; w[1] <= w[0]/2 || w[2] <= w[1]/2 {
		t.Errorf("backoff waits %v: want 3 growing waits", w)
	}
	if n := clk.Waiters(); n != 0 {
		t.Errorf("%d waits pending after the publishes succeeded", n)
	}
	js, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"last_error":"engine down"`, `"retries":3`, `"state":"live"`, `"lag_seconds":0`, `"group":"relay"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("status JSON %s lacks %s", js, want)
		}
	}
	for k := range keys {
		key := fmt.Sprintf("o-%d", k)
		want := uint64(1)
		for rec, err := range dst.ReadStream(ctx, "out.orders", key, 0) {
			if err != nil {
				t.Fatal(err)
			}
			src, err := srcVersion(ctx, src, key, want)
			if err != nil {
				t.Fatal(err)
			}
			if rec.ID != src.ID || rec.Type != "order.changed" || rec.SchemaVersion != 2 || string(rec.Payload) != string(src.Payload) ||
				rec.CorrelationID != "corr" || rec.CausationID != "cause" || rec.Headers["tenant"] != "t1" ||
				rec.Headers["muninn_type"] != "a user header" || !rec.Timestamp.Equal(src.Timestamp) {
				t.Fatalf("%s v%d: got %+v, want the fields of %+v", key, want, rec, src)
			}
			want++
		}
		if want != perKey+1 {
			t.Errorf("%s: %d records relayed, want %d", key, want-1, perKey)
		}
	}
}

func srcVersion(ctx context.Context, s eventstore.Store, key string, v uint64) (eventstore.Record, error) {
	for rec, err := range s.ReadStream(ctx, "orders", key, v) {
		return rec, err
	}
	return eventstore.Record{}, errors.New("missing")
}

// TestRelayResumes stops a relay, closes and reopens its store, and starts
// another relay of the same group: it resumes from the committed offsets,
// so nothing is published twice after a clean stop and nothing is missed.
func TestRelayResumes(t *testing.T) {
	backends.Run(t, testRelayResumes)
}

func testRelayResumes(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	open := backend.Reopener(t)
	src := open()
	dst := backend.Open(t)
	if err := src.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	pub, _ := broker.NewPublisher(dst, broker.PublisherConfig{})
	appendN := func(n int) {
		for i := range n {
			if _, err := src.Append(ctx, "t", fmt.Sprintf("k%d", i%4), eventstore.Any, []eventstore.Event{{Type: "x", Payload: []byte{}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func() int {
		n := 0
		info, err := dst.DescribeTopic(ctx, "t")
		if err != nil {
			return 0
		}
		for _, p := range info.Partitions {
			n += int(p.Records)
		}
		return n
	}
	appendN(10)
	r1, _ := broker.NewRelay(src, pub, broker.RelayConfig{Group: "g", Topics: []string{"t"}})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r1.Run(runCtx) }()
	waitFor(t, "first 10", func() bool { return count() == 10 })
	waitFor(t, "first 10 committed", func() bool { st, _ := r1.Status(ctx); return st.Lag == 0 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	appendN(10)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	src = open()
	r2, _ := broker.NewRelay(src, pub, broker.RelayConfig{Group: "g", Topics: []string{"t"}})
	runBG(t, r2.Run)
	waitFor(t, "20", func() bool { return count() >= 20 })
	waitFor(t, "lag 0", func() bool { st, _ := r2.Status(ctx); return st.Lag == 0 })
	if n := count(); n != 20 {
		t.Errorf("%d records in the destination, want 20", n)
	}
}

func TestRelayConfigValidate(t *testing.T) {
	err := broker.RelayConfig{Topics: []string{"bad topic"}, BatchSize: -1, Backoff: clock.Backoff{Jitter: 2}}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("error %v does not wrap ErrInvalidArgument", err)
	}
	for _, want := range []string{"Group", "name is empty", "Topics", "BatchSize -1", "Jitter"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := broker.NewRelay(nil, nil, broker.RelayConfig{}); err == nil || !strings.Contains(err.Error(), "store is nil") || !strings.Contains(err.Error(), "publisher is nil") {
		t.Errorf("NewRelay(nil, nil, {}): %v", err)
	}
	s := openStore(t)
	pub, _ := broker.NewPublisher(s, broker.PublisherConfig{})
	if _, err := broker.NewRelay(s, pub, broker.RelayConfig{Group: "g", Topics: []string{"a"}, TopicMapper: func(string) string { return "" }}); err == nil ||
		!strings.Contains(err.Error(), `maps topic "a" to an empty name`) {
		t.Errorf("empty mapped topic: %v", err)
	}
	r, err := broker.NewRelay(s, pub, broker.RelayConfig{Group: "g", Topics: []string{"missing"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); !errors.Is(err, eventstore.ErrTopicNotFound) {
		t.Errorf("Run on a missing topic: %v, want ErrTopicNotFound", err)
	}
}
