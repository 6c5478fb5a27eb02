package broker

import (
	"context"
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
)

// ready returns n encoded messages, already waiting in a subscription's
// channel, as an engine that delivers without waiting for Acks has them.
func ready(n int) (chan *message.Message, []*message.Message) {
	ch := make(chan *message.Message, n)
	var msgs []*message.Message
	for i := range n {
		m := EncodeRecord(eventstore.Record{ID: uuid.Must(uuid.NewV7()), Key: "k", Version: uint64(i + 1), Type: "x", SchemaVersion: 1, Payload: []byte{}})
		msgs = append(msgs, m)
		ch <- m
	}
	return ch, msgs
}

func acked(m *message.Message) bool {
	select {
	case <-m.Acked():
		return true
	default:
		return false
	}
}

func nacked(m *message.Message) bool {
	select {
	case <-m.Nacked():
		return true
	default:
		return false
	}
}

// TestInboundBatches: messages that are ready together are applied in one
// Update each BatchSize, and Acked once it is durable; a message given up
// under Stop is Nacked, and those not yet polled are left alone.
func TestInboundBatches(t *testing.T) {
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sub := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	defer sub.Close()
	var msgs []*message.Message
	var txs []eventstore.Txn // kept alive: distinct pointers are distinct Updates
	var seen []uint64
	failAt := uint64(0)
	h := func(_ context.Context, tx eventstore.Txn, rec eventstore.Record) error {
		if rec.Version == failAt {
			return errors.New("boom")
		}
		for _, other := range seen {
			// (A batch that fails is applied again without the failing
			// record: only then may a record come twice.)
			if other == rec.Version && failAt == 0 {
				t.Errorf("version %d handled twice", rec.Version)
			}
		}
		if len(txs) == 0 || txs[len(txs)-1] != tx {
			txs = append(txs, tx)
		}
		seen = append(seen, rec.Version)
		if acked(msgs[rec.Version-1]) {
			t.Errorf("version %d was Acked before its Update committed", rec.Version)
		}
		return nil
	}
	in, err := NewInbound(store, sub, h, InboundConfig{Name: "batches", Topics: []string{"t"}, BatchSize: 3, Retries: NoRetries})
	if err != nil {
		t.Fatal(err)
	}
	loop := in.topics[0]
	ch, msgs0 := ready(5)
	msgs = msgs0
	loop.ch = ch
	if err := loop.loop.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(txs) != 2 || len(seen) != 5 {
		t.Fatalf("%d records in %d Updates, want 5 in 2 (3 + 2)", len(seen), len(txs))
	}
	for i, m := range msgs {
		if !acked(m) || nacked(m) {
			t.Errorf("message %d: acked %v, nacked %v; want acked", i, acked(m), nacked(m))
		}
	}
	st, err := in.Status(t.Context())
	if err != nil || st.Handled != 5 || st.Topics[0].Loop.Counters.Applied != 5 {
		t.Fatalf("status %+v, %v", st, err)
	}

	// The third of five fails: the two before it commit and are Acked, it
	// is Nacked when the loop stops, the two after it were never polled.
	txs, seen, failAt = nil, nil, 3
	ch, msgs = ready(5)
	loop.ch = ch
	err = loop.loop.CatchUp(context.Background())
	var herr *consume.HandlerError
	if !errors.As(err, &herr) || herr.Attempts != 1 {
		t.Fatalf("CatchUp = %v, want a *consume.HandlerError after one attempt", err)
	}
	want := []struct{ acked, nacked bool }{{true, false}, {true, false}, {false, true}, {false, false}, {false, false}}
	for i, m := range msgs {
		if acked(m) != want[i].acked || nacked(m) != want[i].nacked {
			t.Errorf("message %d: acked %v, nacked %v; want %+v", i, acked(m), nacked(m), want[i])
		}
	}
	if len(ch) != 2 {
		t.Errorf("%d messages left in the subscription, want 2", len(ch))
	}
}

// TestInboundSourceRewind: after a Rewind the source delivers again, in
// order, what it polled and did not commit; the subscription's own
// messages follow.
func TestInboundSourceRewind(t *testing.T) {
	ch, msgs := ready(4)
	in := &Inbound{cfg: InboundConfig{Name: "r"}}
	src := &messageSource{t: &inboundTopic{in: in, topic: "t"}, ctx: context.Background(), ch: ch, pending: map[int64]*pendingMessage{}}
	ctx := t.Context()
	first, err := src.Poll(ctx, 2)
	if err != nil || len(first) != 2 {
		t.Fatalf("Poll = %d records, %v", len(first), err)
	}
	src.pending[first[0].Offset].outcome = outcomeHandled
	src.Committed(first[:1])
	if err := src.Rewind(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := src.TryPoll(ctx, 10)
	if err != nil || len(again) != 1 || again[0].Offset != first[1].Offset || again[0].ID != first[1].ID {
		t.Fatalf("after Rewind: %+v, %v; want the uncommitted second record", again, err)
	}
	rest, err := src.TryPoll(ctx, 10)
	if err != nil || len(rest) != 2 {
		t.Fatalf("then: %d records, %v; want the 2 not yet polled", len(rest), err)
	}
	close(ch)
	if _, err := src.Poll(ctx, 10); !errors.Is(err, ErrSubscriptionClosed) {
		t.Fatalf("Poll on a closed subscription = %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if !acked(msgs[0]) || !nacked(msgs[1]) || !nacked(msgs[2]) || !nacked(msgs[3]) {
		t.Error("Close did not Nack every message polled and not committed")
	}
}
