package storetest

import (
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
}
