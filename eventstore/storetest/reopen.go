package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

func runReopen(t *testing.T, h Harness) {
	t.Run("EverythingAcknowledgedSurvives", func(t *testing.T) {
		s, c := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		mustCreate(t, s, "logs", eventstore.TopicConfig{Partitions: 1, Cleanup: eventstore.Delete, RetentionAge: time.Minute})
		mustAppend(t, s, "orders", "o-1", eventstore.NoStream, ev("placed", "a"), ev("paid", "b"))
		mustAppend(t, s, "logs", "l", eventstore.Any, ev("e", "old"))
		c.Advance(time.Hour)
		mustAppend(t, s, "logs", "l", eventstore.Any, ev("e", "new"))
		if _, err := s.Cleanup(ctx(t)); err != nil {
			t.Fatal(err)
		}
		before, _ := s.DescribeTopic(ctx(t), "logs")

		s = h.Reopen(t, s)
		t.Cleanup(func() { _ = s.Close() })
		names, _ := s.ListTopics(ctx(t))
		if !slices.Equal(names, []string{"logs", "orders"}) {
			t.Fatalf("topics after reopen: %v", names)
		}
		info, err := s.DescribeTopic(ctx(t), "logs")
		if err != nil || info.Config.Cleanup != eventstore.Delete || info.Config.RetentionAge != time.Minute {
			t.Fatalf("logs config after reopen: %+v, %v", info.Config, err)
		}
		if !slices.Equal(info.Partitions, before.Partitions) {
			t.Errorf("partitions after reopen %+v, before %+v", info.Partitions, before.Partitions)
		}
		if got := payloads(collect(t, s.ReadStream(ctx(t), "orders", "o-1", 0))); got != "a,b" {
			t.Errorf("stream after reopen: %s", got)
		}
		if v, _ := s.HeadVersion(ctx(t), "orders", "o-1"); v != 2 {
			t.Errorf("head after reopen: %d", v)
		}
		if _, err := s.Append(ctx(t), "orders", "o-1", eventstore.NoStream, []eventstore.Event{ev("placed", "again")}); err == nil {
			t.Error("NoStream succeeded on a stream that existed before the restart")
		}
		// A deleted topic stays deleted, and its name starts afresh.
		mustCreate(t, s, "gone", eventstore.TopicConfig{Partitions: 1})
		mustAppend(t, s, "gone", "g", eventstore.NoStream, ev("e", "old"))
		if err := s.DeleteTopic(ctx(t), "gone"); err != nil {
			t.Fatal(err)
		}
		s = h.Reopen(t, s)
		t.Cleanup(func() { _ = s.Close() })
		if _, err := s.DescribeTopic(ctx(t), "gone"); err == nil {
			t.Error("deleted topic is back after a restart")
		}
		mustCreate(t, s, "gone", eventstore.TopicConfig{Partitions: 1})
		if got := collect(t, s.ReadStream(ctx(t), "gone", "g", 0)); len(got) != 0 {
			t.Errorf("re-created topic shows %d records of the deleted one", len(got))
		}
		// Offsets continue where they were, even where cleanup removed
		// everything below the end.
		res := mustAppend(t, s, "logs", "l", eventstore.Exact(2), ev("e", "after"))
		if res.FirstOffset != 2 || res.FirstVersion != 3 {
			t.Errorf("append after reopen at offset %d version %d; want 2 and 3", res.FirstOffset, res.FirstVersion)
		}
	})
	t.Run("StateSurvives", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		set(t, s, "a", "1", "b", "2", "r/1", "x", "r/2", "x", "z", "x")
		mustUpdate(t, s, func(tx eventstore.Txn) error {
			return errors.Join(tx.Set([]byte("a"), []byte("changed")), tx.Delete([]byte("z")),
				tx.DeleteRange([]byte("r/"), eventstore.PrefixEnd([]byte("r/"))))
		})
		res, err := s.Append(ctx(t), "orders", "o-1", eventstore.NoStream, []eventstore.Event{ev("placed", "p")},
			eventstore.WithState(func(r eventstore.AppendResult, w eventstore.StateWriter) error {
				return w.Set([]byte("cmd/1"), fmt.Appendf(nil, "v%d@%d", r.LastVersion, r.LastOffset))
			}))
		if err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, s, func(tx eventstore.Txn) error { return tx.Set([]byte("nosync"), []byte("1")) }, eventstore.UpdateNoSync())
		if err := s.Sync(ctx(t)); err != nil {
			t.Fatal(err)
		}
		before := entries(t, s.Scan(ctx(t), nil, nil, false))

		s = h.Reopen(t, s)
		t.Cleanup(func() { _ = s.Close() })
		got := entries(t, s.Scan(ctx(t), nil, nil, false))
		want := []string{"a=changed", "b=2", fmt.Sprintf("cmd/1=v1@%d", res.LastOffset), "nosync=1"}
		if !slices.Equal(got, want) || !slices.Equal(got, before) {
			t.Errorf("state after reopen %q, before %q; want %q", got, before, want)
		}
		if got := payloads(collect(t, s.ReadStream(ctx(t), "orders", "o-1", 0))); got != "p" {
			t.Errorf("the WithState append after reopen: %s", got)
		}
	})
	t.Run("GroupResumesAfterRestart", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		ends := fill(t, s, "orders", 2, 5)
		c := mustJoin(t, s, "g", []string{"orders"})
		drain(t, c)
		if err := c.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{tp("orders", 0): 2}); err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, s, func(tx eventstore.Txn) error {
			return errors.Join(tx.Set([]byte("model"), []byte("m")),
				tx.CommitOffsets(c, map[eventstore.TopicPartition]int64{tp("orders", 1): 3}))
		})

		s = h.Reopen(t, s)
		t.Cleanup(func() { _ = s.Close() })
		for p, want := range map[int]int64{0: 2, 1: 3} {
			if off, ok, err := s.CommittedOffset(ctx(t), "g", "orders", p); err != nil || !ok || off != want {
				t.Errorf("committed offset of partition %d after reopen = %d, %v, %v; want %d", p, off, ok, err, want)
			}
		}
		if got := get(t, s, "model"); got != "m" {
			t.Errorf("state committed with the offsets after reopen: %s", got)
		}
		if groups, err := s.ListGroups(ctx(t)); err != nil || !slices.Equal(groups, []string{"g"}) {
			t.Errorf("ListGroups after reopen = %v, %v", groups, err)
		}
		info, err := s.DescribeGroup(ctx(t), "g")
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Members) != 0 || len(info.Partitions) != 2 {
			t.Fatalf("group after reopen: %+v", info)
		}
		for _, p := range info.Partitions {
			want := map[int]int64{0: 2, 1: 3}[p.Partition]
			if p.Member != "" || p.Committed != want || p.End != ends[p.Partition] || p.Lag != ends[p.Partition]-want {
				t.Errorf("partition %d after reopen: %+v; want committed %d, end %d, lag %d", p.Partition, p, want, ends[p.Partition], ends[p.Partition]-want)
			}
		}
		// A new member resumes from the committed offsets; so does a Latest
		// one, since the group has committed.
		for _, opts := range [][]eventstore.ConsumerOption{nil, {eventstore.WithStartPosition(eventstore.Latest)}} {
			m := mustJoin(t, s, "g", []string{"orders"}, opts...)
			got := byPartition(drain(t, m))
			if !slices.Equal(got[tp("orders", 0)], span(2, ends[0])) || !slices.Equal(got[tp("orders", 1)], span(3, ends[1])) {
				t.Errorf("member (%d options) read %v after reopen, want partition 0 from 2 and 1 from 3", len(opts), got)
			}
			_ = m.Close()
		}
	})
}
