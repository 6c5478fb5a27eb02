package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

func runTopics(t *testing.T, h Harness) {
	t.Run("CreateAndDescribe", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 3})
		info, err := s.DescribeTopic(ctx(t), "orders")
		if err != nil {
			t.Fatal(err)
		}
		if info.Name != "orders" || info.Config.Partitions != 3 || info.Config.Cleanup != eventstore.Retain || len(info.Partitions) != 3 {
			t.Fatalf("DescribeTopic = %+v", info)
		}
		for i, p := range info.Partitions {
			if p.Partition != i || p.StartOffset != 0 || p.EndOffset != 0 || p.Records != 0 {
				t.Errorf("new partition %d = %+v", i, p)
			}
		}
	})
	t.Run("List", func(t *testing.T) {
		s, _ := open(t, h)
		for _, n := range []string{"b", "a", "c.d_e-f"} {
			mustCreate(t, s, n, eventstore.TopicConfig{Partitions: 1})
		}
		got, err := s.ListTopics(ctx(t))
		if err != nil || !slices.Equal(got, []string{"a", "b", "c.d_e-f"}) {
			t.Fatalf("ListTopics = %v, %v", got, err)
		}
	})
	t.Run("ExistsRefused", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		err := s.CreateTopic(ctx(t), "orders", eventstore.TopicConfig{Partitions: 2})
		if !errors.Is(err, eventstore.ErrTopicExists) {
			t.Fatalf("second CreateTopic: %v, want ErrTopicExists", err)
		}
	})
	t.Run("InvalidNames", func(t *testing.T) {
		s, _ := open(t, h)
		for _, name := range []string{"", ".", "..", "has space", "slash/no", "ü", strings.Repeat("x", 250)} {
			err := s.CreateTopic(ctx(t), name, eventstore.TopicConfig{Partitions: 1})
			if !errors.Is(err, eventstore.ErrInvalidArgument) || !strings.Contains(err.Error(), "topic") {
				t.Errorf("CreateTopic(%q) = %v, want ErrInvalidArgument naming the topic", name, err)
			}
		}
	})
	t.Run("InvalidConfigNamesEveryField", func(t *testing.T) {
		s, _ := open(t, h)
		err := s.CreateTopic(ctx(t), "bad", eventstore.TopicConfig{Partitions: 0, Cleanup: "shred", RetentionAge: -time.Second})
		if !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Fatalf("err = %v", err)
		}
		for _, field := range []string{"Partitions", "Cleanup", "RetentionAge"} {
			if !strings.Contains(err.Error(), field) {
				t.Errorf("error %q does not name %s", err, field)
			}
		}
		err = s.CreateTopic(ctx(t), "bad", eventstore.TopicConfig{Partitions: 1, Cleanup: eventstore.Retain, RetentionBytes: 10})
		if !errors.Is(err, eventstore.ErrInvalidArgument) || !strings.Contains(err.Error(), "RetentionBytes") {
			t.Errorf("retention on a retain topic: %v", err)
		}
		if _, err := s.DescribeTopic(ctx(t), "bad"); !errors.Is(err, eventstore.ErrTopicNotFound) {
			t.Errorf("refused topic exists: %v", err)
		}
	})
	t.Run("PartitionCountImmutable", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		err := s.UpdateTopic(ctx(t), "orders", eventstore.TopicConfig{Partitions: 4})
		if !errors.Is(err, eventstore.ErrInvalidArgument) || !strings.Contains(err.Error(), "Partitions") {
			t.Fatalf("UpdateTopic partitions 2->4: %v", err)
		}
		info, _ := s.DescribeTopic(ctx(t), "orders")
		if len(info.Partitions) != 2 {
			t.Fatalf("partitions after refused update: %d", len(info.Partitions))
		}
	})
	t.Run("UpdateRetention", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "logs", eventstore.TopicConfig{Partitions: 1})
		cfg := eventstore.TopicConfig{Partitions: 1, Cleanup: eventstore.Delete, RetentionAge: time.Hour}
		if err := s.UpdateTopic(ctx(t), "logs", cfg); err != nil {
			t.Fatal(err)
		}
		info, _ := s.DescribeTopic(ctx(t), "logs")
		if info.Config.Cleanup != eventstore.Delete || info.Config.RetentionAge != time.Hour {
			t.Fatalf("config after update: %+v", info.Config)
		}
	})
	t.Run("DeleteAndRecreate", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		mustCreate(t, s, "other", eventstore.TopicConfig{Partitions: 1})
		mustAppend(t, s, "orders", "o-1", eventstore.NoStream, ev("placed", "old"))
		mustAppend(t, s, "other", "o-1", eventstore.NoStream, ev("placed", "kept"))
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		subErr := make(chan error, 1)
		go func() {
			for _, err := range s.Subscribe(c, "orders", 0, 0) {
				if err != nil {
					subErr <- err
					return
				}
			}
			subErr <- nil
		}()
		if err := s.DeleteTopic(ctx(t), "orders"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DescribeTopic(ctx(t), "orders"); !errors.Is(err, eventstore.ErrTopicNotFound) {
			t.Errorf("DescribeTopic after delete: %v", err)
		}
		if _, err := s.Append(ctx(t), "orders", "o-1", eventstore.Any, []eventstore.Event{ev("e", "x")}); !errors.Is(err, eventstore.ErrTopicNotFound) {
			t.Errorf("Append after delete: %v", err)
		}
		if err := s.DeleteTopic(ctx(t), "orders"); !errors.Is(err, eventstore.ErrTopicNotFound) {
			t.Errorf("second DeleteTopic: %v", err)
		}
		select {
		case err := <-subErr:
			if !errors.Is(err, eventstore.ErrTopicNotFound) {
				t.Errorf("subscription on the deleted topic ended with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("subscription on the deleted topic did not end")
		}
		if names, _ := s.ListTopics(ctx(t)); !slices.Equal(names, []string{"other"}) {
			t.Errorf("ListTopics after delete: %v", names)
		}
		// A new topic of the same name starts empty.
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 3})
		res := mustAppend(t, s, "orders", "o-1", eventstore.NoStream, ev("placed", "new"))
		if res.FirstOffset != 0 || res.FirstVersion != 1 {
			t.Errorf("first append to the re-created topic at offset %d version %d", res.FirstOffset, res.FirstVersion)
		}
		if got := payloads(collect(t, s.ReadStream(ctx(t), "orders", "o-1", 0))); got != "new" {
			t.Errorf("re-created topic reads %s", got)
		}
		if got := payloads(collect(t, s.ReadStream(ctx(t), "other", "o-1", 0))); got != "kept" {
			t.Errorf("other topic reads %s after the delete", got)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s, _ := open(t, h)
		if _, err := s.DescribeTopic(ctx(t), "nope"); !errors.Is(err, eventstore.ErrTopicNotFound) {
			t.Errorf("DescribeTopic: %v", err)
		}
		if _, err := s.Append(ctx(t), "nope", "k", eventstore.Any, []eventstore.Event{ev("t", "x")}); !errors.Is(err, eventstore.ErrTopicNotFound) {
			t.Errorf("Append: %v", err)
		}
		if err := firstErr(s.ReadStream(ctx(t), "nope", "k", 0)); !errors.Is(err, eventstore.ErrTopicNotFound) {
			t.Errorf("ReadStream: %v", err)
		}
		if err := firstErr(s.ReadPartition(ctx(t), "nope", 0, 0)); !errors.Is(err, eventstore.ErrTopicNotFound) {
			t.Errorf("ReadPartition: %v", err)
		}
		if err := s.UpdateTopic(ctx(t), "nope", eventstore.TopicConfig{Partitions: 1}); !errors.Is(err, eventstore.ErrTopicNotFound) {
			t.Errorf("UpdateTopic: %v", err)
		}
	})
}
