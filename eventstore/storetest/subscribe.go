package storetest

import (
	"context"
	"fmt"
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
}
