package backends_test

import (
	"testing"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/backends"
)

// Every backend's Reopener opens the same place again: what one store
// appended, the next one reads.
func TestReopenerKeepsTheLog(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		ctx := t.Context()
		open := b.Reopener(t)
		s := open()
		if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 2}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, "t", "k", eventstore.Exact(0), []eventstore.Event{{Type: "x", Payload: []byte("1")}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open()
		if v, err := s.HeadVersion(ctx, "t", "k"); err != nil || v != 1 {
			t.Fatalf("HeadVersion after reopen = %d, %v; want 1", v, err)
		}
		// A fresh store of the same backend is empty.
		if topics, err := b.Open(t).ListTopics(ctx); err != nil || len(topics) != 0 {
			t.Fatalf("a fresh store has topics %v, %v", topics, err)
		}
	})
}

func TestAllStartsWithPebble(t *testing.T) {
	all := backends.All()
	if len(all) == 0 || all[0].Name != "pebble" {
		t.Fatalf("All() = %v, want pebble first", all)
	}
}
