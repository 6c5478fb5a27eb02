package eventstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninn-es/muninn/clock"
)

// TestCorruptRecordIsAnErrorNotData damages a stored record behind the
// store's back and checks that every read path reports it, naming the
// topic, partition and offset, and never returns it as data.
func TestCorruptRecordIsAnErrorNotData(t *testing.T) {
	ctx := context.Background()
	s, err := OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "orders", TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.Append(ctx, "orders", "o-1", Exact(uint64(i)), []Event{{Type: "e", Payload: []byte("payload")}}); err != nil {
			t.Fatal(err)
		}
	}
	tp, _ := s.topic("orders")
	for _, key := range [][]byte{appendLogKey(nil, tp.meta.ID, 0, 1), appendStreamKey(nil, tp.meta.ID, "o-1", 2)} {
		v, closer, err := s.db.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		bad := append([]byte(nil), v...)
		closer.Close()
		bad[len(bad)-2] ^= 0x40 // one bit of the payload
		if err := s.db.Set(key, bad, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, got []Record, err error) {
		t.Helper()
		var ce *CorruptRecordError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Topic != "orders" || ce.Partition != 0 {
			t.Fatalf("%s: err = %v, want a *CorruptRecordError on orders/0", what, err)
		}
		for _, r := range got {
			if r.Offset == 1 {
				t.Fatalf("%s returned the corrupt record as data", what)
			}
		}
	}
	var got []Record
	var rerr error
	for rec, err := range s.ReadPartition(ctx, "orders", 0, 0) {
		if err != nil {
			rerr = err
			break
		}
		got = append(got, rec)
	}
	check("ReadPartition", got, rerr)
	if ce := (*CorruptRecordError)(nil); errors.As(rerr, &ce) && ce.Offset != 1 {
		t.Errorf("ReadPartition names offset %d, want 1", ce.Offset)
	}
	got, rerr = nil, nil
	for rec, err := range s.ReadStream(ctx, "orders", "o-1", 0) {
		if err != nil {
			rerr = err
			break
		}
		got = append(got, rec)
	}
	check("ReadStream", got, rerr)
}

// TestBackgroundCleanup lets the background cleaner remove expired records,
// without calling Cleanup.
func TestBackgroundCleanup(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s, err := OpenMem(WithClock(clk), WithCleanupInterval(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "logs", TopicConfig{Partitions: 1, Cleanup: Delete, RetentionAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := s.Append(ctx, "logs", "k", Any, []Event{{Type: "e", Payload: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	// The background loop waits on the clock; once the clock moves past its
	// wait, the loop cleans up and then waits again: the second wait means
	// the pass is over. The deadline is a watchdog only.
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := clk.BlockUntil(wait, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	if err := clk.BlockUntil(wait, 1); err != nil {
		t.Fatal(err)
	}
	info, err := s.DescribeTopic(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	if p := info.Partitions[0]; p.Records != 0 || p.StartOffset != 10 {
		t.Fatalf("background cleanup did not remove expired records: %+v", p)
	}
}
