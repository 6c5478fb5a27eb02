package stream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

// keyOn returns a key that topic puts in partition.
func keyOn(t *testing.T, s eventstore.Store, topic string, partition int) string {
	t.Helper()
	for i := range 1000 {
		k := fmt.Sprintf("k%d", i)
		if p, err := s.PartitionFor(topic, k); err != nil {
			t.Fatal(err)
		} else if p == partition {
			return k
		}
	}
	t.Fatalf("no key of %s goes to partition %d", topic, partition)
	return ""
}

// WaitCaughtUp on a member whose partitions have nothing to read (idle in
// Poll, it never commits) returns once another member's commit completes
// the group's work: it is woken by that member, not only by its own
// commits.
func TestWaitCaughtUpWokenByAnotherMember(t *testing.T) {
	s := openStore(t)
	createTopic(t, s, "in", 2, eventstore.Retain)
	topo := stream.NewTopology()
	stream.Count(stream.GroupByKey(stream.Source(topo, "in", codec.String(), codec.String())), "c")
	m1, err := stream.NewApp(s, topo, "idle", stream.WithMemberID("m1"))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := stream.NewApp(s, topo, "idle", stream.WithMemberID("m2"))
	if err != nil {
		t.Fatal(err)
	}
	blocked, release := make(chan struct{}, 1), make(chan struct{})
	stream.SetBeforeUpdate(m2, func() error {
		blocked <- struct{}{}
		<-release
		return nil
	})
	start(t, m1)
	waitCaughtUp(t, m1)
	start(t, m2) // the group's members sort m1, m2: m1 gets in/0, m2 in/1
	waitCaughtUp(t, m2)
	info, err := s.DescribeGroup(context.Background(), "idle")
	if err != nil || len(info.Members) != 2 || len(info.Members[1].Assignment) != 1 || info.Members[1].Assignment[0].Partition != 1 {
		t.Fatalf("group = %+v, %v; want m2 to hold in/1", info, err)
	}

	key := keyOn(t, s, "in", 1)
	put(t, s, "in", key, []byte("v"), sec(0))
	<-blocked // m2 has processed the record and waits before its commit

	waiting := make(chan struct{}, 1)
	stream.SetWaitHook(m1, func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m1.WaitCaughtUp(ctx) }()
	<-waiting // m1 saw the group behind and waits
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("WaitCaughtUp of the idle member: %v", err)
	}
	info, err = s.DescribeGroup(context.Background(), "idle")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range info.Partitions {
		if p.Lag != 0 {
			t.Errorf("WaitCaughtUp returned with lag %d on %s", p.Lag, p.TopicPartition)
		}
	}
}

// WaitCaughtUp returns Run's error, at once, when Run fails; it does not
// wait for its context.
func TestWaitCaughtUpReportsRunFailure(t *testing.T) {
	s := openStore(t)
	createTopic(t, s, "nums", 1, eventstore.Retain)
	put(t, s, "nums", "a", []byte("1"), sec(0))
	put(t, s, "nums", "a", []byte("not json"), sec(1))
	topo := stream.NewTopology()
	stream.Reduce(stream.GroupByKey(stream.Source(topo, "nums", codec.String(), codec.JSON[int]())), "sum", func(a, b int) int { return a + b })
	app, err := stream.NewApp(s, topo, "fails")
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, app)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = app.WaitCaughtUp(ctx)
	if !errors.Is(err, consume.ErrFailed) || !errors.Is(err, stream.ErrBadRecord) || ctx.Err() != nil {
		t.Fatalf("WaitCaughtUp = %v, want consume.ErrFailed with Run's ErrBadRecord", err)
	}
	var he *consume.HandlerError
	if err := r.stop(); !errors.As(err, &he) || he.Topic != "nums" || he.Offset != 1 {
		t.Fatalf("Run = %v, want a *consume.HandlerError at nums/0@1", err)
	}
}
