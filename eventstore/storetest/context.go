package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

// runContext checks the context contract: a call made with a context that
// is already done returns ctx.Err() and has no effect. Writes check the
// context before they write anything; reads, before they read.
func runContext(t *testing.T, h Harness) {
	s, _ := open(t, h)
	live := ctx(t)
	mustCreate(t, s, "ctx", eventstore.TopicConfig{Partitions: 2})
	mustAppend(t, s, "ctx", "k", eventstore.NoStream, ev("e", "1"))
	done, cancel := context.WithCancel(live)
	cancel()
	isDone := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a done context: %v, want context.Canceled", what, err)
		}
	}

	t.Run("Writes", func(t *testing.T) {
		isDone("CreateTopic", s.CreateTopic(done, "ctx-new", eventstore.TopicConfig{Partitions: 1}))
		if _, err := s.DescribeTopic(live, "ctx-new"); !errors.Is(err, eventstore.ErrTopicNotFound) {
			t.Errorf("CreateTopic with a done context created the topic (DescribeTopic: %v)", err)
		}
		isDone("UpdateTopic", s.UpdateTopic(done, "ctx", eventstore.TopicConfig{Partitions: 2, Cleanup: eventstore.Delete, RetentionAge: time.Hour}))
		if info, err := s.DescribeTopic(live, "ctx"); err != nil || info.Config.Cleanup == eventstore.Delete {
			t.Errorf("UpdateTopic with a done context changed the topic: %+v, %v", info.Config, err)
		}
		isDone("DeleteTopic", s.DeleteTopic(done, "ctx"))
		if _, err := s.DescribeTopic(live, "ctx"); err != nil {
			t.Errorf("DeleteTopic with a done context deleted the topic: %v", err)
		}
		_, err := s.Append(done, "ctx", "k", eventstore.Exact(1), []eventstore.Event{ev("e", "2")})
		isDone("Append", err)
		if head, err := s.HeadVersion(live, "ctx", "k"); err != nil || head != 1 {
			t.Errorf("Append with a done context: head is %d (%v), want 1", head, err)
		}
		called := false
		isDone("Update", s.Update(done, func(tx eventstore.Txn) error {
			called = true
			return tx.Set([]byte("ctx-key"), []byte("v"))
		}))
		if _, ok, err := s.Get(live, []byte("ctx-key")); called || ok || err != nil {
			t.Errorf("Update with a done context: fn called %v, key written %v (%v)", called, ok, err)
		}
		_, err = s.Cleanup(done)
		isDone("Cleanup", err)
		isDone("Sync", s.Sync(done))
	})

	t.Run("Reads", func(t *testing.T) {
		isDone("ReadStream", firstErr(s.ReadStream(done, "ctx", "k", 0)))
		isDone("ReadStream backward", firstErr(s.ReadStream(done, "ctx", "k", 0, eventstore.Backward())))
		isDone("ReadPartition", firstErr(s.ReadPartition(done, "ctx", eventstore.PartitionFor("k", 2), 0)))
		isDone("Subscribe", firstErr(s.Subscribe(done, "ctx", eventstore.PartitionFor("k", 2), 0)))
		_, err := s.HeadVersion(done, "ctx", "k")
		isDone("HeadVersion", err)
		_, err = s.DescribeTopic(done, "ctx")
		isDone("DescribeTopic", err)
		_, err = s.ListTopics(done)
		isDone("ListTopics", err)
		_, _, err = s.Get(done, []byte("ctx-key"))
		isDone("Get", err)
		for _, err := range s.Scan(done, nil, nil, false) {
			isDone("Scan", err)
			break
		}
		_, _, err = s.CommittedOffset(done, "g", "ctx", 0)
		isDone("CommittedOffset", err)
		_, err = s.ListGroups(done)
		isDone("ListGroups", err)
	})

	t.Run("Groups", func(t *testing.T) {
		_, err := s.JoinGroup(done, "ctx-g", []string{"ctx"})
		isDone("JoinGroup", err)
		if _, err := s.DescribeGroup(live, "ctx-g"); !errors.Is(err, eventstore.ErrGroupNotFound) {
			t.Errorf("JoinGroup with a done context joined (DescribeGroup: %v)", err)
		}
		c, err := s.JoinGroup(live, "ctx-g", []string{"ctx"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = s.DescribeGroup(done, "ctx-g")
		isDone("DescribeGroup", err)
		_, err = c.Poll(done, 10)
		isDone("Poll", err)
		_, err = c.TryPoll(done, 10)
		isDone("TryPoll", err)
		isDone("Records", firstErr(c.Records(done)))
		tp := eventstore.TopicPartition{Topic: "ctx", Partition: eventstore.PartitionFor("k", 2)}
		isDone("CommitOffsets", c.CommitOffsets(done, map[eventstore.TopicPartition]int64{tp: 1}))
		if _, ok, err := s.CommittedOffset(live, "ctx-g", tp.Topic, tp.Partition); ok || err != nil {
			t.Errorf("CommitOffsets with a done context committed (%v, %v)", ok, err)
		}
		isDone("Rewind", c.Rewind(done))
	})
}
