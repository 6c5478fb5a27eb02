// Package brokertest states, as tests, what Muninn needs of a watermill
// engine between an outbox Relay and an Inbound consumer: every record
// arrives, the effects of each key follow its stream order, and each effect
// is applied exactly once, also when the engine redelivers, when messages
// are published twice, and through an outage of the engine. Every engine of
// package broker/engines runs it against a real server (embedded NATS
// JetStream, kfake, GoChannel, the log itself); an engine of your own can
// prove itself the same way.
//
//	func TestEngine(t *testing.T) {
//		brokertest.Run(t, brokertest.Harness{
//			Open: func(t *testing.T) (message.Publisher, message.Subscriber) { ... },
//			Outage: func(t *testing.T) func(t *testing.T) { ...stop...; return restart },
//		})
//	}
package brokertest

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
)

// Harness tells the suite how to reach the engine.
type Harness struct {
	// Open returns a publisher and a subscriber of the engine, the
	// subscriber in one consumer group. The suite calls it once per subtest
	// and closes both. Required.
	Open func(t *testing.T) (message.Publisher, message.Subscriber)
	// Outage, if set, stops the engine (a real stop: the server goes away)
	// and returns a function that starts it again with its data; the
	// subscriber and publisher Open returned must work again afterwards.
	Outage func(t *testing.T) (restart func(t *testing.T))
}

// Run runs the contract as subtests: RelayInbound, Duplicates, Trace (the
// trace context of an event reaches the Inbound's handler), and Outage
// when the harness can stop the engine.
func Run(t *testing.T, h Harness) {
	t.Run("RelayInbound", func(t *testing.T) { relayInbound(t, h, "plain", nil) })
	t.Run("Duplicates", func(t *testing.T) { duplicates(t, h) })
	t.Run("Trace", func(t *testing.T) { traceSurvives(t, h) })
	if h.Outage != nil {
		t.Run("Outage", func(t *testing.T) { relayInbound(t, h, "outage", h.Outage) })
	}
}

const keys = 8

// relayInbound runs relay -> engine -> inbound over three rounds of
// appends, with the engine stopped during the second when outage is set.
func relayInbound(t *testing.T, h Harness, name string, outage func(t *testing.T) func(t *testing.T)) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	topic := "brokertest." + name
	src, dst := openStore(t), openStore(t)
	if err := src.CreateTopic(ctx, topic, eventstore.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	pub, sub := h.Open(t)
	defer pub.Close()
	defer sub.Close()
	if si, ok := sub.(message.SubscribeInitializer); ok {
		if err := si.SubscribeInitialize(topic); err != nil {
			t.Fatal(err)
		}
	}
	fast := clock.Backoff{Initial: 20 * time.Millisecond, Max: 300 * time.Millisecond, Multiplier: 2, Jitter: 0.2}
	relay, err := broker.NewRelay(src, pub, broker.RelayConfig{Group: "relay", Topics: []string{topic}, BatchSize: 16, Backoff: fast})
	if err != nil {
		t.Fatal(err)
	}
	in, err := broker.NewInbound(dst, sub, CountingHandler, broker.InboundConfig{Name: "brokertest", Topics: []string{topic}, Backoff: fast})
	if err != nil {
		t.Fatal(err)
	}
	// The inbound subscribes before the relay publishes: an engine without
	// durable subscriptions (GoChannel) replays what it kept for a new
	// subscriber concurrently with live messages, out of order.
	stopIn := runBoth(t, ctx, in.Run)
	defer stopIn()
	waitFor(t, ctx, "inbound subscribed", func() bool { st, err := in.Status(ctx); return err == nil && st.Subscribed })
	stop := runBoth(t, ctx, relay.Run)
	defer stop()

	total := 0
	appendRound := func(perKey int) {
		t.Helper()
		for k := range keys {
			for range perKey {
				if _, err := src.Append(ctx, topic, fmt.Sprintf("order-%d", k), eventstore.Any,
					[]eventstore.Event{{Type: "order.placed", Payload: []byte(`{}`)}}); err != nil {
					t.Fatal(err)
				}
				total++
			}
		}
	}
	appendRound(5)
	waitFor(t, ctx, "first records applied", func() bool { return Applied(t, dst) >= total })
	if outage != nil {
		restart := outage(t)
		appendRound(5)
		waitFor(t, ctx, "relay sees the outage", func() bool {
			st, err := relay.Status(ctx)
			return err == nil && st.Retries > 0
		})
		restart(t)
	} else {
		appendRound(5)
	}
	appendRound(5)
	waitFor(t, ctx, "every record applied", func() bool { return Applied(t, dst) >= total })
	CheckExactlyOnce(t, dst, total)
	for k := range keys {
		v, ok, err := dst.Get(ctx, []byte(fmt.Sprintf("last/order-%d", k)))
		if err != nil || !ok || binary.BigEndian.Uint64(v) != 15 {
			t.Errorf("order-%d: last applied version %v (ok %v, err %v), want 15", k, v, ok, err)
		}
	}
	st, _ := relay.Status(ctx)
	ist, _ := in.Status(ctx)
	t.Logf("relay: published %d, retries %d, last error %q; inbound: handled %d, duplicates %d, failures %d, last error %q",
		st.Published, st.Retries, st.LastError, ist.Handled, ist.Duplicates, ist.Failures, ist.LastError)
}

// duplicates publishes every record twice, straight to the engine (as a
// relay that crashed before its commit would), and checks that each effect
// happens once. The second copies are followed by one new record per key:
// once those are applied, every copy before them was delivered (or dropped
// by the engine's own deduplication).
func duplicates(t *testing.T, h Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := "brokertest.duplicates"
	src, dst := openStore(t), openStore(t)
	if err := src.CreateTopic(ctx, topic, eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	pub, sub := h.Open(t)
	defer pub.Close()
	defer sub.Close()
	if si, ok := sub.(message.SubscribeInitializer); ok {
		if err := si.SubscribeInitialize(topic); err != nil {
			t.Fatal(err)
		}
	}
	in, err := broker.NewInbound(dst, sub, CountingHandler, broker.InboundConfig{Name: "brokertest", Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	stop := runBoth(t, ctx, in.Run)
	defer stop()
	waitFor(t, ctx, "inbound subscribed", func() bool { st, err := in.Status(ctx); return err == nil && st.Subscribed })
	const n, streams = 20, 3
	appendAndRead := func(count int) []*message.Message {
		var msgs []*message.Message
		for i := range count {
			res, err := src.Append(ctx, topic, fmt.Sprintf("k%d", i%streams), eventstore.Any, []eventstore.Event{{Type: "x", Payload: []byte{}}})
			if err != nil {
				t.Fatal(err)
			}
			for rec, err := range src.ReadPartition(ctx, topic, res.Partition, res.FirstOffset) {
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, broker.EncodeRecord(rec))
				break
			}
		}
		return msgs
	}
	publish := func(msgs []*message.Message) {
		for _, m := range msgs {
			if err := pub.Publish(topic, m.Copy()); err != nil {
				t.Fatal(err)
			}
		}
	}
	first := appendAndRead(n)
	publish(first)
	waitFor(t, ctx, "every record applied", func() bool { return Applied(t, dst) >= n })
	publish(first)
	publish(appendAndRead(streams))
	waitFor(t, ctx, "the records after the copies applied", func() bool { return Applied(t, dst) >= n+streams })
	CheckExactlyOnce(t, dst, n+streams)
}

// CountingHandler counts each event ID under "count/<id>" and checks that
// the versions of a key arrive in order ("violation/<id>" otherwise), all
// through the Txn.
func CountingHandler(_ context.Context, tx eventstore.Txn, rec eventstore.Record) error {
	ck := []byte("count/" + rec.ID.String())
	var c uint64
	if v, ok, err := tx.Get(ck); err != nil {
		return err
	} else if ok {
		c = binary.BigEndian.Uint64(v)
	}
	if err := tx.Set(ck, binary.BigEndian.AppendUint64(nil, c+1)); err != nil {
		return err
	}
	lk := []byte("last/" + rec.Key)
	var last uint64
	if v, ok, err := tx.Get(lk); err != nil {
		return err
	} else if ok {
		last = binary.BigEndian.Uint64(v)
	}
	if rec.Version != last+1 {
		if err := tx.Set([]byte("violation/"+rec.ID.String()), fmt.Appendf(nil, "key %s: version %d after %d", rec.Key, rec.Version, last)); err != nil {
			return err
		}
	}
	return tx.Set(lk, binary.BigEndian.AppendUint64(nil, max(last, rec.Version)))
}

// Applied returns how many distinct events CountingHandler applied in s.
func Applied(t *testing.T, s eventstore.Store) int {
	t.Helper()
	n := 0
	for _, err := range s.Scan(context.Background(), []byte("count/"), eventstore.PrefixEnd([]byte("count/")), false) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// CheckExactlyOnce checks that CountingHandler applied want distinct
// events, each once, with no order violation.
func CheckExactlyOnce(t *testing.T, s eventstore.Store, want int) {
	t.Helper()
	ctx := context.Background()
	n := 0
	for kv, err := range s.Scan(ctx, []byte("count/"), eventstore.PrefixEnd([]byte("count/")), false) {
		if err != nil {
			t.Fatal(err)
		}
		if c := binary.BigEndian.Uint64(kv.Value); c != 1 {
			t.Errorf("%s applied %d times", kv.Key, c)
		}
		n++
	}
	if n != want {
		t.Errorf("%d distinct events applied, want %d", n, want)
	}
	for kv, err := range s.Scan(ctx, []byte("violation/"), eventstore.PrefixEnd([]byte("violation/")), false) {
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("order violated: %s: %s", kv.Key, kv.Value)
	}
}

func openStore(t *testing.T) eventstore.Store {
	t.Helper()
	s, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runBoth runs the functions until the returned stop is called, which
// checks that they returned nil.
func runBoth(t *testing.T, ctx context.Context, fns ...func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	errs := make(chan error, len(fns))
	for _, f := range fns {
		go func() { errs <- f(ctx) }()
	}
	return func() {
		cancel()
		for range fns {
			if err := <-errs; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
}

// waitFor checks cond every 20 ms until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for: %s", what)
		case <-tick.C:
		}
	}
}
