package engines_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/broker/engines"
	"github.com/muninn-es/muninn/eventstore"
)

const (
	outageTopic = "orders.events"
	outageKeys  = 8
)

// outage stops the engine and returns a function that starts it again; nil
// means no outage.
type outage func(t *testing.T) (restart func(t *testing.T))

// testRelayInboundOutage runs relay -> engine -> inbound with an engine
// outage in the middle: records appended before, during and after it must
// all arrive, each effect must be applied exactly once (a counter per event
// ID in the consumer's state space), and the effects of each key must follow
// its stream versions.
func testRelayInboundOutage(t *testing.T, cfg engines.Config, stop outage) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	src := openStore(t)
	dst := openStore(t)
	if err := src.CreateTopic(ctx, outageTopic, eventstore.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	eng, err := engines.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if si, ok := eng.Subscriber.(interface{ SubscribeInitialize(string) error }); ok {
		if err := si.SubscribeInitialize(outageTopic); err != nil {
			t.Fatal(err)
		}
	}

	fast := broker.Backoff{Initial: 20 * time.Millisecond, Max: 300 * time.Millisecond, Multiplier: 2, Jitter: 0.2}
	relay, err := broker.NewRelay(src, eng.Publisher, broker.RelayConfig{Group: "relay", Topics: []string{outageTopic}, BatchSize: 16, Backoff: fast})
	if err != nil {
		t.Fatal(err)
	}
	in, err := broker.NewInbound(dst, eng.Subscriber, countingHandler, broker.InboundConfig{Name: "shipping", Topics: []string{outageTopic}, Backoff: fast})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	inDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(runCtx) }()
	go func() { inDone <- in.Run(runCtx) }()
	defer func() {
		stopRun()
		if err := <-relayDone; err != nil {
			t.Errorf("relay: %v", err)
		}
		if err := <-inDone; err != nil {
			t.Errorf("inbound: %v", err)
		}
	}()

	total := 0
	appendRound := func(perKey int) {
		t.Helper()
		for k := range outageKeys {
			for range perKey {
				if _, err := src.Append(ctx, outageTopic, fmt.Sprintf("order-%d", k), eventstore.Any,
					[]eventstore.Event{{Type: "order.placed", Payload: []byte(`{}`)}}); err != nil {
					t.Fatal(err)
				}
				total++
			}
		}
	}

	appendRound(5)
	waitFor(t, ctx, "first records applied", func() bool { return applied(t, dst) >= total })

	if stop != nil {
		restart := stop(t)
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
	waitFor(t, ctx, "every record applied", func() bool { return applied(t, dst) >= total })

	// Every effect exactly once, in stream order per key.
	n := 0
	for kv, err := range dst.Scan(ctx, []byte("count/"), eventstore.PrefixEnd([]byte("count/")), false) {
		if err != nil {
			t.Fatal(err)
		}
		if c := binary.BigEndian.Uint64(kv.Value); c != 1 {
			t.Errorf("%s applied %d times", kv.Key, c)
		}
		n++
	}
	if n != total {
		t.Errorf("%d distinct events applied, want %d", n, total)
	}
	for kv, err := range dst.Scan(ctx, []byte("violation/"), eventstore.PrefixEnd([]byte("violation/")), false) {
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("order violated: %s: %s", kv.Key, kv.Value)
	}
	for k := range outageKeys {
		v, ok, err := dst.Get(ctx, []byte(fmt.Sprintf("last/order-%d", k)))
		if err != nil || !ok || binary.BigEndian.Uint64(v) != 15 {
			t.Errorf("order-%d: last applied version %v (ok %v, err %v), want 15", k, v, ok, err)
		}
	}
	st, _ := relay.Status(ctx)
	t.Logf("relay: published %d, retries %d, last error %v; inbound: %+v", st.Published, st.Retries, st.LastError, in.Status())
}

// countingHandler counts each event ID and checks that the versions of a key
// arrive in order, all through the Txn.
func countingHandler(_ context.Context, tx *eventstore.Txn, rec eventstore.Record) error {
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

func applied(t *testing.T, s *eventstore.Store) int {
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

func openStore(t *testing.T) *eventstore.Store {
	t.Helper()
	s, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
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
