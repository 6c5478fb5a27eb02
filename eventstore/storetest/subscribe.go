package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

func runSubscribe(t *testing.T, h Harness) {
	t.Run("CatchUpThenLive", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		for i := range 3 {
			mustAppend(t, s, "orders", "o", eventstore.Exact(uint64(i)), ev("e", fmt.Sprint(i)))
		}
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		got := make(chan eventstore.Record)
		done := make(chan error, 1)
		go func() {
			for rec, err := range s.Subscribe(c, "orders", 0, 1) {
				if err != nil {
					done <- err
					return
				}
				got <- rec
			}
			done <- nil
		}()
		expect := func(payload string, offset int64) {
			t.Helper()
			select {
			case r := <-got:
				if string(r.Payload) != payload || r.Offset != offset {
					t.Fatalf("got %s@%d, want %s@%d", r.Payload, r.Offset, payload, offset)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no record %s within 10s", payload)
			}
		}
		expect("1", 1)
		expect("2", 2)
		mustAppend(t, s, "orders", "o", eventstore.Exact(3), ev("e", "live"))
		expect("live", 3)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("subscription ended with %v after cancel; want a clean stop", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("subscription did not stop after cancel")
		}
	})
	t.Run("SlowSubscriberDoesNotBlockAppends", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		first := make(chan struct{})
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			for _, err := range s.Subscribe(c, "orders", 0, 0) {
				if err != nil {
					return
				}
				close(first)
				<-c.Done() // a subscriber that never takes the next record
				return
			}
		}()
		mustAppend(t, s, "orders", "o", eventstore.NoStream, ev("e", "0"))
		<-first
		for i := 1; i < 500; i++ {
			mustAppend(t, s, "orders", "o", eventstore.Exact(uint64(i)), ev("e", "x"))
		}
		cancel()
		<-stopped
	})
	t.Run("ManySubscribersAllSeeEverything", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		const subs, events = 4, 200
		counts := make(chan int, subs)
		for range subs {
			go func() {
				n := 0
				for rec, err := range s.Subscribe(c, "orders", 0, 0) {
					if err != nil || rec.Offset != int64(n) {
						break
					}
					if n++; n == events {
						break
					}
				}
				counts <- n
			}()
		}
		for i := range events {
			mustAppend(t, s, "orders", "o", eventstore.Exact(uint64(i)), ev("e", "x"))
		}
		for range subs {
			select {
			case n := <-counts:
				if n != events {
					t.Fatalf("subscriber saw %d of %d records in order", n, events)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("a subscriber did not see every record")
			}
		}
	})
	t.Run("WakesOnCommit", func(t *testing.T) {
		// A subscriber that has read everything is woken by the next
		// append, durable or not, and only by its own partition's: each
		// append here follows the record that shows the subscriber caught up.
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		key, otherKey := keyIn("o", 1, 2), keyIn("o", 0, 2)
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		got := make(chan eventstore.Record, 1)
		stopped := make(chan struct{})
		defer func() { cancel(); <-stopped }()
		go func() {
			defer close(stopped)
			for rec, err := range s.Subscribe(c, "orders", 1, 0) {
				if err != nil {
					t.Errorf("subscription: %v", err)
					return
				}
				got <- rec
			}
		}()
		mustAppend(t, s, "orders", key, eventstore.NoStream, ev("e", "0"))
		for i := range 6 {
			if r := within(t, got, fmt.Sprint("record ", i)); string(r.Payload) != fmt.Sprint(i) || r.Offset != int64(i) {
				t.Fatalf("subscriber got %s@%d, want %d@%d", r.Payload, r.Offset, i, i)
			}
			mustAppend(t, s, "orders", otherKey, eventstore.Any, ev("e", "other partition"))
			var opts []eventstore.AppendOption
			switch i % 3 {
			case 1:
				opts = append(opts, eventstore.NoSync())
			case 2:
				opts = append(opts, eventstore.WithState(func(_ eventstore.AppendResult, w eventstore.StateWriter) error {
					return w.Set([]byte("k"), []byte("v"))
				}))
			}
			if _, err := s.Append(ctx(t), "orders", key, eventstore.Exact(uint64(i+1)), []eventstore.Event{ev("e", fmt.Sprint(i+1))}, opts...); err != nil {
				t.Fatal(err)
			}
		}
		if r := within(t, got, "last record"); r.Offset != 6 {
			t.Fatalf("subscriber got offset %d, want 6", r.Offset)
		}
	})
	t.Run("EndsWhenContextEnds", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		// Wait until the subscription runs (it has delivered a record) before
		// cancelling: one started with a context already done reports it
		// (the Context subtest), and only a running one ends silently.
		mustAppend(t, s, "orders", "o", eventstore.NoStream, ev("e", "0"))
		running := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			var once sync.Once
			for _, err := range s.Subscribe(c, "orders", 0, 0) {
				once.Do(func() { close(running) })
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		within(t, running, "first record")
		cancel() // the subscription waits for the next record, or is about to: it ends cleanly
		if err := within(t, done, "subscription after cancel"); err != nil {
			t.Fatalf("subscription ended with %v after its context ended; want no error", err)
		}
	})
	t.Run("EndsWithErrClosedWhenStoreCloses", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		mustAppend(t, s, "orders", "o", eventstore.NoStream, ev("e", "0"))
		caughtUp := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			var last error
			for _, err := range s.Subscribe(ctx(t), "orders", 0, 0) {
				if err != nil {
					last = err
					break
				}
				close(caughtUp)
			}
			done <- last
		}()
		within(t, caughtUp, "the first record")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := within(t, done, "subscription when the store closed"); !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("subscription ended with %v when the store closed, want ErrClosed", err)
		}
		if err := firstErr(s.Subscribe(ctx(t), "orders", 0, 0)); !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("Subscribe on a closed store = %v, want ErrClosed", err)
		}
	})
	t.Run("ConsumerRecordsFollowsTheLog", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		fill(t, s, "orders", 2, 1)
		m := mustJoin(t, s, "g", []string{"orders"})
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		got, done := records(c, m)
		seen := map[int]bool{}
		for range 2 {
			r := within(t, got, "a record in the log")
			seen[r.Partition] = true
		}
		if len(seen) != 2 {
			t.Fatalf("Records read partitions %v, want both", seen)
		}
		// Caught up: the next append wakes it.
		res := mustAppend(t, s, "orders", "late", eventstore.NoStream, ev("e", "late"))
		if r := within(t, got, "the live record"); r.Key != "late" || r.Offset != res.FirstOffset {
			t.Fatalf("Records yielded %s@%d, want the live record", r.Key, r.Offset)
		}
		cancel()
		if err := within(t, done, "Records after cancel"); err != nil {
			t.Fatalf("Records ended with %v when its context ended, want no error", err)
		}
	})
	t.Run("ConsumerRecordsFollowsRebalances", func(t *testing.T) {
		// A Records loop stops delivering a partition its member lost, and
		// reads one it gets (back) from the group's committed offset.
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		ends := fill(t, s, "orders", 2, 3)
		a := mustJoin(t, s, "g", []string{"orders"}, eventstore.WithMemberID("a"))
		got, _ := records(ctx(t), a)
		for range ends[0] + ends[1] {
			within(t, got, "a record in the log")
		}
		b := mustJoin(t, s, "g", []string{"orders"}, eventstore.WithMemberID("b"))
		lost, kept := b.Assignment()[0], a.Assignment()[0]
		x := mustAppend(t, s, "orders", keyIn("x", lost.Partition, 2), eventstore.Any, ev("e", "x"))
		y := mustAppend(t, s, "orders", keyIn("y", kept.Partition, 2), eventstore.Any, ev("e", "y"))
		if r := within(t, got, "the record of the kept partition"); r.Partition != kept.Partition || r.Offset != y.FirstOffset {
			t.Fatalf("a yielded %d@%d, want %s@%d: not the partition it lost", r.Partition, r.Offset, kept, y.FirstOffset)
		}
		drain(t, b)
		if err := b.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{lost: 1}); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		var back []int64
		for range x.LastOffset {
			r := within(t, got, "a record of the partition that came back")
			if r.Partition != lost.Partition {
				t.Fatalf("a yielded %d@%d, want only records of %s", r.Partition, r.Offset, lost)
			}
			back = append(back, r.Offset)
		}
		if want := span(1, x.LastOffset+1); !slices.Equal(back, want) {
			t.Errorf("a read %v of %s when it came back, want %v (from b's commit)", back, lost, want)
		}
	})
	t.Run("ConsumerRecordsEndsOnClose", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		fill(t, s, "orders", 1, 1)
		m := mustJoin(t, s, "g", []string{"orders"})
		got, done := records(ctx(t), m)
		within(t, got, "the record in the log")
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := within(t, done, "Records after Close"); err != nil {
			t.Fatalf("Records ended with %v when the consumer closed, want no error", err)
		}
	})
	t.Run("ConsumerRecordsEndsWithErrClosed", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		fill(t, s, "orders", 1, 1)
		m := mustJoin(t, s, "g", []string{"orders"})
		got, done := records(ctx(t), m)
		within(t, got, "the record in the log")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := within(t, done, "Records when the store closed"); !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("Records ended with %v when the store closed, want ErrClosed", err)
		}
	})
}

// records runs a Records loop of c in a goroutine: each record goes to the
// first channel, and the loop's end (its error, or nil) to the second.
func records(ctx context.Context, c eventstore.Consumer) (<-chan eventstore.Record, <-chan error) {
	got := make(chan eventstore.Record, 100)
	done := make(chan error, 1)
	go func() {
		for rec, err := range c.Records(ctx) {
			if err != nil {
				done <- err
				return
			}
			got <- rec
		}
		done <- nil
	}()
	return got, done
}
