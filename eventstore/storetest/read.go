package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

func runRead(t *testing.T, h Harness) {
	t.Run("StreamForwardFromVersion", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		for i := range 5 {
			mustAppend(t, s, "orders", "o-1", eventstore.Exact(uint64(i)), ev("e", fmt.Sprint(i+1)))
			mustAppend(t, s, "orders", "o-10", eventstore.Exact(uint64(i)), ev("e", "other"))
		}
		if got := payloads(collect(t, s.ReadStream(ctx(t), "orders", "o-1", 0))); got != "1,2,3,4,5" {
			t.Errorf("from 0: %s", got)
		}
		if got := payloads(collect(t, s.ReadStream(ctx(t), "orders", "o-1", 3))); got != "3,4,5" {
			t.Errorf("from 3: %s", got)
		}
		if got := collect(t, s.ReadStream(ctx(t), "orders", "o-1", 6)); len(got) != 0 {
			t.Errorf("from past the head: %d records", len(got))
		}
	})
	t.Run("StreamBackward", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		mustAppend(t, s, "orders", "o-1", eventstore.NoStream, ev("e", "1"), ev("e", "2"), ev("e", "3"))
		if got := versions(collect(t, s.ReadStream(ctx(t), "orders", "o-1", 0, eventstore.Backward()))); got != "3,2,1" {
			t.Errorf("backward from head: %s", got)
		}
		if got := versions(collect(t, s.ReadStream(ctx(t), "orders", "o-1", 2, eventstore.Backward()))); got != "2,1" {
			t.Errorf("backward from 2: %s", got)
		}
	})
	t.Run("StreamKeysDoNotBleed", func(t *testing.T) {
		// Keys that prefix each other, and keys with odd bytes, are separate streams.
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 1})
		keys := []string{"a", "ab", "a\x00", "a\xff", "\x00", "b"}
		for _, k := range keys {
			mustAppend(t, s, "t", k, eventstore.NoStream, ev("e", k))
		}
		for _, k := range keys {
			recs := collect(t, s.ReadStream(ctx(t), "t", k, 0))
			if len(recs) != 1 || string(recs[0].Payload) != k || recs[0].Key != k {
				t.Errorf("stream %q reads %q", k, payloads(recs))
			}
		}
	})
	t.Run("MissingStreamIsEmpty", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		if got := collect(t, s.ReadStream(ctx(t), "orders", "nobody", 0)); len(got) != 0 {
			t.Errorf("missing stream has %d records", len(got))
		}
		if v, err := s.HeadVersion(ctx(t), "orders", "nobody"); v != 0 || err != nil {
			t.Errorf("HeadVersion of missing stream = %d, %v", v, err)
		}
	})
	t.Run("PartitionFromOffset", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		k := keyIn("o", 1, 2)
		for i := range 10 {
			mustAppend(t, s, "orders", k, eventstore.Any, ev("e", fmt.Sprint(i)))
		}
		recs := collect(t, s.ReadPartition(ctx(t), "orders", 1, 7))
		if !slices.Equal(offsets(recs), []int64{7, 8, 9}) || payloads(recs) != "7,8,9" {
			t.Errorf("partition 1 from 7: offsets %v payloads %s", offsets(recs), payloads(recs))
		}
		if got := collect(t, s.ReadPartition(ctx(t), "orders", 0, 0)); len(got) != 0 {
			t.Errorf("empty partition has %d records", len(got))
		}
		for _, p := range []int{-1, 2} {
			if err := firstErr(s.ReadPartition(ctx(t), "orders", p, 0)); !errors.Is(err, eventstore.ErrInvalidArgument) {
				t.Errorf("ReadPartition(%d): %v, want ErrInvalidArgument", p, err)
			}
		}
		if err := firstErr(s.ReadPartition(ctx(t), "orders", 0, -1)); !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("negative offset: %v", err)
		}
	})
	t.Run("BreakingEarlyReleasesTheRead", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		for i := range 100 {
			mustAppend(t, s, "orders", "o", eventstore.Exact(uint64(i)), ev("e", "x"))
		}
		n := 0
		for _, err := range s.ReadPartition(ctx(t), "orders", 0, 0) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 3 {
				break
			}
		}
		n = 0
		for range s.ReadStream(ctx(t), "orders", "o", 0) {
			if n++; n == 3 {
				break
			}
		}
		// Close (run by the test's cleanup) must not report a leaked iterator.
	})
	t.Run("CancelledContextEndsRead", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		for i := range 1000 {
			mustAppend(t, s, "orders", fmt.Sprint(i), eventstore.NoStream, ev("e", "x"))
		}
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		n := 0
		var got error
		for _, err := range s.ReadPartition(c, "orders", 0, 0) {
			if err != nil {
				got = err
				break
			}
			if n++; n == 10 {
				cancel()
			}
		}
		if !errors.Is(got, context.Canceled) || n >= 1000 {
			t.Fatalf("read %d records after cancel, err %v", n, got)
		}
	})
	t.Run("TimestampsRoundTrip", func(t *testing.T) {
		s, c := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		c.Advance(90 * time.Minute)
		mustAppend(t, s, "orders", "o", eventstore.Any, ev("e", "x"))
		r := collect(t, s.ReadStream(ctx(t), "orders", "o", 0))[0]
		if !r.Timestamp.Equal(c.Now()) {
			t.Errorf("timestamp %v, want the store clock's %v", r.Timestamp, c.Now())
		}
	})
}
