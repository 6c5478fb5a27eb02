package broker_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/broker/brokertest"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/crashtest"
)

// The crash test proves that the relay and Inbound lose nothing and apply
// nothing twice across kill -9. A child process (this test binary,
// re-executed by crashtest to run only TestCrashChild) relays a source log into an engine
// log (the log's own Publisher and Subscriber, on disk) and applies it with
// Inbound into a third store, until the parent kills it with SIGKILL at a
// random moment. The parent restarts it until everything is applied, then
// checks that every record reached the engine, that every effect happened
// exactly once, and that the effects of each key followed its versions.

const (
	crashTopic   = "orders"
	crashKeys    = 8
	crashPerKey  = 60
	crashRecords = crashKeys * crashPerKey
)

func crashStores(dir string) (src, engine, state eventstore.Store, err error) {
	src, err = eventstore.Open(filepath.Join(dir, "src"))
	if err != nil {
		return nil, nil, nil, err
	}
	engine, err = eventstore.Open(filepath.Join(dir, "engine"))
	if err != nil {
		src.Close()
		return nil, nil, nil, err
	}
	state, err = eventstore.Open(filepath.Join(dir, "state"))
	if err != nil {
		src.Close()
		engine.Close()
		return nil, nil, nil, err
	}
	return src, engine, state, nil
}

// TestCrashChild is the child of TestCrashRelayInbound; it does nothing
// unless started by it.
func TestCrashChild(t *testing.T) {
	if !crashtest.IsChild(t) {
		return
	}
	fail := crashtest.Fail
	src, engine, state, err := crashStores(crashtest.Arg("dir"))
	if err != nil {
		fail("open: %v", err)
	}
	pub, err := broker.NewPublisher(engine, broker.PublisherConfig{Partitions: 3})
	if err != nil {
		fail("%v", err)
	}
	sub, err := broker.NewSubscriber(engine, broker.SubscriberConfig{ConsumerGroup: "inbound", Partitions: 3})
	if err != nil {
		fail("%v", err)
	}
	relay, err := broker.NewRelay(src, pub, broker.RelayConfig{Group: "relay", Topics: []string{crashTopic}, BatchSize: 8})
	if err != nil {
		fail("%v", err)
	}
	in, err := broker.NewInbound(state, sub, brokertest.CountingHandler, broker.InboundConfig{Name: "crash", Topics: []string{crashTopic}})
	if err != nil {
		fail("%v", err)
	}
	ctx := context.Background()
	go func() { fail("relay stopped: %v", relay.Run(ctx)) }()
	go func() { fail("inbound stopped: %v", in.Run(ctx)) }()
	tick := time.NewTicker(5 * time.Millisecond)
	for range tick.C {
		n := 0
		for _, err := range state.Scan(ctx, []byte("count/"), eventstore.PrefixEnd([]byte("count/")), false) {
			if err != nil {
				fail("scan: %v", err)
			}
			n++
		}
		if n >= crashRecords {
			crashtest.Ack("DONE")
			os.Exit(0)
		}
	}
}

func TestCrashRelayInbound(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, engine, state, err := crashStores(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.CreateTopic(ctx, crashTopic, eventstore.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	for i := range crashPerKey {
		for k := range crashKeys {
			if _, err := src.Append(ctx, crashTopic, fmt.Sprintf("k%d", k), eventstore.Any,
				[]eventstore.Event{{Type: "x", Payload: fmt.Appendf(nil, "%d", i)}}, eventstore.NoSync()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := errors.Join(src.Sync(ctx), src.Close(), engine.Close(), state.Close()); err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(crashtest.Seed(t), 7))
	child := crashtest.Child{Test: "TestCrashChild", Args: map[string]string{"dir": dir}}
	kills := 0
	for round := 0; ; round++ {
		if round > 200 {
			t.Fatal("not done after 200 rounds")
		}
		// The first rounds are killed at a random moment; later ones run
		// to the end.
		var acks []string
		if round < 12 {
			res := crashtest.Round{Child: child, KillAfter: time.Duration(50+rng.IntN(400)) * time.Millisecond, MayFinish: true}.Run(t)
			if res.Killed {
				kills++
				t.Logf("round %d: killed with %d of %d applied", round, crashApplied(t, dir), crashRecords)
				continue
			}
			acks = res.Acks
		} else {
			acks = crashtest.Start(t, child).Wait()
		}
		if !slices.Equal(acks, []string{"DONE"}) {
			t.Fatalf("round %d: child ended with acknowledgements %q, want DONE", round, acks)
		}
		break
	}
	t.Logf("child killed %d times", kills)

	src, engine, state, err = crashStores(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	defer engine.Close()
	defer state.Close()
	brokertest.CheckExactlyOnce(t, state, crashRecords)
	for k := range crashKeys {
		v, ok, err := state.Get(ctx, []byte(fmt.Sprintf("last/k%d", k)))
		if err != nil || !ok || binary.BigEndian.Uint64(v) != crashPerKey {
			t.Errorf("k%d: last applied version %v (%v, %v), want %d", k, v, ok, err, crashPerKey)
		}
	}
	// The engine log holds every record at least once; duplicates are the
	// price of at least once.
	seen := map[string]bool{}
	total := 0
	info, err := engine.DescribeTopic(ctx, crashTopic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range info.Partitions {
		for rec, err := range engine.ReadPartition(ctx, crashTopic, p.Partition, 0) {
			if err != nil {
				t.Fatal(err)
			}
			seen[rec.ID.String()] = true
			total++
		}
	}
	if len(seen) != crashRecords {
		t.Errorf("engine log has %d distinct records, want %d", len(seen), crashRecords)
	}
	t.Logf("engine log: %d records, %d distinct", total, len(seen))
}

// crashApplied opens the state store and counts the effects applied.
func crashApplied(t *testing.T, dir string) int {
	t.Helper()
	s, err := eventstore.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return brokertest.Applied(t, s)
}
