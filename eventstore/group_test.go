package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninn-es/muninn/eventstore"
)

func openMem(t *testing.T, opts ...eventstore.Option) *eventstore.PebbleStore {
	t.Helper()
	s, err := eventstore.OpenMem(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func appendN(t *testing.T, s *eventstore.PebbleStore, topic string, n int) {
	t.Helper()
	for i := range n {
		if _, err := s.Append(t.Context(), topic, fmt.Sprint("k", i), eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte(fmt.Sprint(i))}}); err != nil {
			t.Fatal(err)
		}
	}
}

// consume reads from c in a goroutine and sends each record on the channel.
func consume(ctx context.Context, c eventstore.Consumer) <-chan eventstore.Record {
	out := make(chan eventstore.Record, 1024)
	go func() {
		defer close(out)
		for rec, err := range c.Records(ctx) {
			if err != nil {
				return
			}
			out <- rec
		}
	}()
	return out
}

func receive(t *testing.T, ch <-chan eventstore.Record, n int) []eventstore.Record {
	t.Helper()
	var out []eventstore.Record
	for len(out) < n {
		select {
		case r, ok := <-ch:
			if !ok {
				t.Fatalf("consumer ended after %d of %d records", len(out), n)
			}
			out = append(out, r)
		case <-time.After(10 * time.Second):
			t.Fatalf("received %d of %d records", len(out), n)
		}
	}
	return out
}

func TestGroupMembersSharePartitions(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	a, err := s.JoinGroup(ctx, "billing", []string{"orders"}, eventstore.WithMemberID("a"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(a.Assignment()); got != 4 {
		t.Fatalf("sole member has %d partitions, want 4", got)
	}
	b, err := s.JoinGroup(ctx, "billing", []string{"orders"}, eventstore.WithMemberID("b"))
	if err != nil {
		t.Fatal(err)
	}
	as, bs := a.Assignment(), b.Assignment()
	if len(as) != 2 || len(bs) != 2 {
		t.Fatalf("assignments after join: a=%v b=%v", as, bs)
	}
	for _, tp := range as {
		if slices.Contains(bs, tp) {
			t.Fatalf("%v assigned to both members", tp)
		}
	}
	appendN(t, s, "orders", 200)
	ra, rb := consume(ctx, a), consume(ctx, b)
	seen := map[string]string{}
	var mu sync.Mutex
	total := 0
	deadline := time.After(10 * time.Second)
	for total < 200 {
		select {
		case r := <-ra:
			mu.Lock()
			seen[string(r.Payload)] += "a"
			mu.Unlock()
			if !slices.Contains(as, eventstore.TopicPartition{Topic: r.Topic, Partition: r.Partition}) {
				t.Fatalf("a got a record of %d, not its partition", r.Partition)
			}
			total++
		case r := <-rb:
			seen[string(r.Payload)] += "b"
			total++
		case <-deadline:
			t.Fatalf("received %d of 200", total)
		}
	}
	for k, who := range seen {
		if len(who) != 1 {
			t.Fatalf("record %s delivered to %q", k, who)
		}
	}
	if len(seen) != 200 {
		t.Fatalf("%d distinct records of 200", len(seen))
	}
}

func TestGroupRebalanceOnLeaveResumesFromCommitted(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	a, _ := s.JoinGroup(ctx, "g", []string{"orders"}, eventstore.WithMemberID("a"))
	b, _ := s.JoinGroup(ctx, "g", []string{"orders"}, eventstore.WithMemberID("b"))
	appendN(t, s, "orders", 100)
	bPart := b.Assignment()[0]
	info, _ := s.DescribeTopic(ctx, "orders")
	bEnd := info.Partitions[bPart.Partition].EndOffset

	// b reads 10 records of its partition and commits them, then leaves.
	bctx, bcancel := context.WithCancel(ctx)
	recs := receive(t, consume(bctx, b), 10)
	if err := b.Commit(ctx, recs[9]); err != nil {
		t.Fatal(err)
	}
	bcancel()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Commit(ctx, recs[9]); !errors.Is(err, eventstore.ErrNotAssigned) {
		t.Fatalf("commit after leaving: %v, want ErrNotAssigned", err)
	}
	if got := a.Assignment(); len(got) != 2 {
		t.Fatalf("a after b left: %v", got)
	}
	// a now reads b's partition from b's committed offset.
	var fromB []eventstore.Record
	ra := consume(ctx, a)
	for _, r := range receive(t, ra, 100-10) {
		if r.Partition == bPart.Partition {
			fromB = append(fromB, r)
		}
	}
	if len(fromB) != int(bEnd)-10 || fromB[0].Offset != 10 {
		t.Fatalf("a read %d records of b's partition from offset %d; want %d from 10", len(fromB), fromB[0].Offset, bEnd-10)
	}
}

func TestGroupCommitAfterRevocationIsRefused(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	_ = s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 2})
	appendN(t, s, "orders", 20)
	a, _ := s.JoinGroup(ctx, "g", []string{"orders"}, eventstore.WithMemberID("a"))
	rec := receive(t, consume(ctx, a), 1)[0]
	// b joins; partitions spread, and a may lose rec's partition.
	b, _ := s.JoinGroup(ctx, "g", []string{"orders"}, eventstore.WithMemberID("b"))
	tp := eventstore.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}
	owner, loser := a, b
	if slices.Contains(b.Assignment(), tp) {
		owner, loser = b, a
	}
	if err := loser.Commit(ctx, rec); !errors.Is(err, eventstore.ErrNotAssigned) {
		t.Fatalf("commit by a member without the partition: %v", err)
	}
	if err := owner.Commit(ctx, rec); err != nil {
		t.Fatalf("commit by the owner: %v", err)
	}
	if err := owner.CommitOffsets(ctx, map[eventstore.TopicPartition]int64{tp: 1 << 40}); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Fatalf("commit past the end: %v", err)
	}
}

func TestGroupResumesAfterRestart(t *testing.T) {
	fs := vfs.NewMem()
	ctx := t.Context()
	open := func() *eventstore.PebbleStore {
		s, err := eventstore.Open("db", eventstore.WithFS(fs))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	_ = s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 1})
	appendN(t, s, "orders", 30)
	c, _ := s.JoinGroup(ctx, "g", []string{"orders"})
	cctx, cancel := context.WithCancel(ctx)
	recs := receive(t, consume(cctx, c), 12)
	if err := c.Commit(ctx, recs[11]); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open()
	defer s.Close()
	info, err := s.DescribeGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Members) != 0 || len(info.Partitions) != 1 || info.Partitions[0].Committed != 12 || info.Partitions[0].Lag != 18 {
		t.Fatalf("group after restart: %+v", info)
	}
	c, _ = s.JoinGroup(ctx, "g", []string{"orders"})
	if r := receive(t, consume(ctx, c), 1)[0]; r.Offset != 12 {
		t.Fatalf("resumed at offset %d, want 12", r.Offset)
	}
	groups, _ := s.ListGroups(ctx)
	if !slices.Equal(groups, []string{"g"}) {
		t.Fatalf("ListGroups = %v", groups)
	}
}

func TestDescribeGroupLag(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	_ = s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 3})
	appendN(t, s, "orders", 60)
	c, _ := s.JoinGroup(ctx, "g", []string{"orders"}, eventstore.WithMemberID("m1"))
	recs := receive(t, consume(ctx, c), 60)
	last := map[int]eventstore.Record{}
	for _, r := range recs {
		last[r.Partition] = r
	}
	if err := c.Commit(ctx, last[0]); err != nil {
		t.Fatal(err)
	}
	info, err := s.DescribeGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Members) != 1 || info.Members[0].ID != "m1" || len(info.Members[0].Assignment) != 3 {
		t.Fatalf("members: %+v", info.Members)
	}
	for _, p := range info.Partitions {
		wantLag := p.End
		if p.Partition == 0 {
			wantLag = 0
		}
		if p.Member != "m1" || p.Lag != wantLag {
			t.Errorf("partition %d: %+v, want lag %d", p.Partition, p, wantLag)
		}
	}
	if _, err := s.DescribeGroup(ctx, "nobody"); !errors.Is(err, eventstore.ErrGroupNotFound) {
		t.Errorf("unknown group: %v", err)
	}
}

func TestGroupStartLatest(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	_ = s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 1})
	appendN(t, s, "orders", 5)
	c, _ := s.JoinGroup(ctx, "g", []string{"orders"}, eventstore.WithStartPosition(eventstore.Latest))
	ch := consume(ctx, c)
	if _, err := s.Append(ctx, "orders", "new", eventstore.NoStream, []eventstore.Event{{Type: "e", Payload: []byte("new")}}); err != nil {
		t.Fatal(err)
	}
	if r := receive(t, ch, 1)[0]; string(r.Payload) != "new" {
		t.Fatalf("Latest consumer got %s first", r.Payload)
	}
}

func TestGroupInvalidInput(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	_ = s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 1})
	if _, err := s.JoinGroup(ctx, "", []string{"orders"}); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("empty group: %v", err)
	}
	if _, err := s.JoinGroup(ctx, "g", nil); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("no topics: %v", err)
	}
	if _, err := s.JoinGroup(ctx, "g", []string{"missing"}); !errors.Is(err, eventstore.ErrTopicNotFound) {
		t.Errorf("missing topic: %v", err)
	}
	if _, err := s.JoinGroup(ctx, "g", []string{"orders"}, eventstore.WithMemberID("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.JoinGroup(ctx, "g", []string{"orders"}, eventstore.WithMemberID("x")); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("duplicate member: %v", err)
	}
}

func TestConsumerEndsWhenStoreCloses(t *testing.T) {
	s, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	_ = s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 1})
	c, _ := s.JoinGroup(ctx, "g", []string{"orders"})
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		var last error
		for _, err := range c.Records(ctx) {
			last = err
		}
		done <- last
	}()
	<-started
	time.Sleep(10 * time.Millisecond) // let the loop reach its wait; the result is the same if it has not
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("consumer ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("consumer did not end when the store closed")
	}
}

func TestDeleteTopicInUseByGroup(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	_ = s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 2})
	c, err := s.JoinGroup(ctx, "billing", []string{"orders"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "orders"); !errors.Is(err, eventstore.ErrTopicInUse) {
		t.Fatalf("DeleteTopic with a member subscribed: %v, want ErrTopicInUse", err)
	}
	appendN(t, s, "orders", 4)
	recs := receive(t, consume(ctx, c), 4)
	if err := c.Commit(ctx, recs[3]); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if err := s.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatalf("DeleteTopic after the member left: %v", err)
	}
	// The group's offsets on the topic went with it: without members or
	// offsets, the group is not found.
	if info, err := s.DescribeGroup(ctx, "billing"); !errors.Is(err, eventstore.ErrGroupNotFound) {
		t.Fatalf("group after its topic was deleted: %+v, %v; want ErrGroupNotFound", info, err)
	}
}

// Poll serves the partitions that have records in turn, even when the
// partitions before them in the assignment are empty: a batching consumer
// of a busy topic and a quiet one reads the busy topic's partitions evenly.
func TestPollTakesTurnsAmongNonEmptyPartitions(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	for _, name := range []string{"a-quiet", "b-busy"} {
		if err := s.CreateTopic(ctx, name, eventstore.TopicConfig{Partitions: 3}); err != nil {
			t.Fatal(err)
		}
	}
	appendN(t, s, "b-busy", 300)
	c, err := s.JoinGroup(ctx, "turns", []string{"a-quiet", "b-busy"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read := map[int]int{}
	for range 6 {
		recs, err := c.Poll(ctx, 10)
		if err != nil || len(recs) != 10 {
			t.Fatalf("Poll = %d records, %v", len(recs), err)
		}
		read[recs[0].Partition] += len(recs)
	}
	for p := range 3 {
		if read[p] != 20 {
			t.Errorf("after 6 polls of 10: %v records per partition, want 20 from each", read)
			break
		}
	}
}

// TryPoll returns at once, with what is available or nothing.
func TestTryPoll(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	c, err := s.JoinGroup(ctx, "try", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if recs, err := c.TryPoll(ctx, 10); err != nil || len(recs) != 0 {
		t.Fatalf("TryPoll on an empty topic = %d records, %v; want none at once", len(recs), err)
	}
	appendN(t, s, "t", 5)
	if recs, err := c.TryPoll(ctx, 3); err != nil || len(recs) != 3 {
		t.Fatalf("TryPoll(3) = %d records, %v", len(recs), err)
	}
	if recs, err := c.TryPoll(ctx, 10); err != nil || len(recs) != 2 {
		t.Fatalf("TryPoll(10) after 3 of 5 = %d records, %v", len(recs), err)
	}
	if _, err := c.TryPoll(ctx, 0); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("TryPoll(0) = %v", err)
	}
	c.Close()
	if _, err := c.TryPoll(ctx, 1); !errors.Is(err, eventstore.ErrConsumerClosed) {
		t.Errorf("TryPoll after Close = %v", err)
	}
}

// A partition that went to another member and came back: the first member
// can neither commit what it read before (the other may have handled and
// committed it since) nor go on reading from its old position; it resumes
// from the group's committed offset.
func TestReassignedPartitionIsFenced(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "t", 20)
	a, err := s.JoinGroup(ctx, "g", []string{"t"}, eventstore.WithMemberID("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	read, err := a.Poll(ctx, 100)
	if err != nil || len(read) != 20 {
		t.Fatalf("a polled %d, %v", len(read), err)
	}
	// b joins and takes partition 1, handles it to its end and commits.
	b, err := s.JoinGroup(ctx, "g", []string{"t"}, eventstore.WithMemberID("b"))
	if err != nil {
		t.Fatal(err)
	}
	moved := b.Assignment()[0]
	got, err := b.Poll(ctx, 100)
	if err != nil || len(got) == 0 {
		t.Fatalf("b polled %d, %v", len(got), err)
	}
	end := got[len(got)-1].Offset + 1
	if err := b.CommitOffsets(ctx, map[eventstore.TopicPartition]int64{moved: end}); err != nil {
		t.Fatal(err)
	}
	_ = b.Close() // the partition goes back to a

	// a's offsets from before the move are refused, with its state writes.
	err = s.Update(ctx, func(tx eventstore.Txn) error {
		_ = tx.Set([]byte("model"), []byte("stale"))
		return tx.CommitOffsets(a, map[eventstore.TopicPartition]int64{moved: 3})
	})
	if !errors.Is(err, eventstore.ErrNotAssigned) {
		t.Fatalf("commit of a batch read before the partition moved and came back = %v, want ErrNotAssigned", err)
	}
	if _, ok, _ := s.Get(ctx, []byte("model")); ok {
		t.Fatal("the fenced Update's state write was applied")
	}
	// a's next poll resumes the moved partition from b's commit: nothing
	// b handled is read again.
	if _, err := s.Append(ctx, "t", "late", eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte{}}}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	for {
		recs, err := a.Poll(short, 100)
		if err != nil {
			break
		}
		for _, r := range recs {
			if r.Partition == moved.Partition && r.Offset < end {
				t.Fatalf("a read %s@%d again, which b had committed (up to %d)", moved, r.Offset, end)
			}
		}
	}
	// and it commits again normally.
	if err := a.CommitOffsets(ctx, map[eventstore.TopicPartition]int64{moved: end}); err != nil {
		t.Fatalf("commit after the refresh: %v", err)
	}
}
