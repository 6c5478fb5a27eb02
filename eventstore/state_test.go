package eventstore_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninn-es/muninn/eventstore"
)

func mustUpdate(t *testing.T, s *eventstore.PebbleStore, fn func(tx eventstore.Txn) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatal(err)
	}
}

func stateKeys(t *testing.T, s *eventstore.PebbleStore, lower, upper []byte, reverse bool) []string {
	t.Helper()
	var keys []string
	for kv, err := range s.Scan(t.Context(), lower, upper, reverse) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, string(kv.Key)+"="+string(kv.Value))
	}
	return keys
}

func TestStateSetGetDeleteScan(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	mustUpdate(t, s, func(tx eventstore.Txn) error {
		for _, k := range []string{"a/1", "a/2", "a/3", "b/1", "c"} {
			if err := tx.Set([]byte(k), []byte("v"+k)); err != nil {
				return err
			}
		}
		// The Txn reads its own writes.
		v, ok, err := tx.Get([]byte("a/2"))
		if err != nil || !ok || string(v) != "va/2" {
			return fmt.Errorf("Get in Txn = %q, %v, %v", v, ok, err)
		}
		var n int
		for _, err := range tx.Scan([]byte("a/"), eventstore.PrefixEnd([]byte("a/")), false) {
			if err != nil {
				return err
			}
			n++
		}
		if n != 3 {
			return fmt.Errorf("Scan in Txn saw %d keys, want 3", n)
		}
		return nil
	})
	v, ok, err := s.Get(ctx, []byte("b/1"))
	if err != nil || !ok || string(v) != "vb/1" {
		t.Fatalf("Get = %q, %v, %v", v, ok, err)
	}
	if _, ok, _ := s.Get(ctx, []byte("nope")); ok {
		t.Fatal("Get of a missing key found it")
	}
	if got, want := stateKeys(t, s, []byte("a/"), eventstore.PrefixEnd([]byte("a/")), false), []string{"a/1=va/1", "a/2=va/2", "a/3=va/3"}; !slices.Equal(got, want) {
		t.Fatalf("prefix scan = %v, want %v", got, want)
	}
	if got, want := stateKeys(t, s, []byte("a/2"), nil, true), []string{"c=vc", "b/1=vb/1", "a/3=va/3", "a/2=va/2"}; !slices.Equal(got, want) {
		t.Fatalf("reverse scan to the end = %v, want %v", got, want)
	}
	mustUpdate(t, s, func(tx eventstore.Txn) error {
		if err := tx.Delete([]byte("c")); err != nil {
			return err
		}
		return tx.DeleteRange([]byte("a/"), eventstore.PrefixEnd([]byte("a/")))
	})
	if got, want := stateKeys(t, s, nil, nil, false), []string{"b/1=vb/1"}; !slices.Equal(got, want) {
		t.Fatalf("after deletes = %v, want %v", got, want)
	}
}

func TestStateFailedUpdateWritesNothing(t *testing.T) {
	s := openMem(t)
	boom := errors.New("boom")
	var kept eventstore.Txn
	err := s.Update(t.Context(), func(tx eventstore.Txn) error {
		kept = tx
		_ = tx.Set([]byte("x"), []byte("1"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if _, ok, _ := s.Get(t.Context(), []byte("x")); ok {
		t.Fatal("a failed Update wrote its key")
	}
	if err := kept.Set([]byte("y"), nil); err == nil {
		t.Fatal("a Txn was usable after its Update returned")
	}
}

func TestStateBadInput(t *testing.T) {
	s := openMem(t)
	for name, fn := range map[string]func(tx eventstore.Txn) error{
		"empty key": func(tx eventstore.Txn) error { return tx.Set(nil, []byte("v")) },
		"long key":  func(tx eventstore.Txn) error { return tx.Set(make([]byte, eventstore.MaxStateKeyBytes+1), nil) },
		"long value": func(tx eventstore.Txn) error {
			return tx.Set([]byte("k"), make([]byte, eventstore.MaxStateValueBytes+1))
		},
		"inverted range": func(tx eventstore.Txn) error { return tx.DeleteRange([]byte("b"), []byte("a")) },
		"empty delete":   func(tx eventstore.Txn) error { return tx.Delete(nil) },
	} {
		if err := s.Update(t.Context(), fn); !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("%s: Update = %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, _, err := s.Get(t.Context(), nil); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("Get(nil) = %v, want ErrInvalidArgument", err)
	}
	for _, err := range s.Scan(t.Context(), []byte("z"), []byte("a"), false) {
		if !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("inverted Scan = %v, want ErrInvalidArgument", err)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want []byte }{
		{[]byte("a/"), []byte("a0")},
		{[]byte{'a', 0xff}, []byte("b")},
		{[]byte{0xff, 0xff}, nil},
		{nil, nil},
	} {
		if got := eventstore.PrefixEnd(c.in); !slices.Equal(got, c.want) {
			t.Errorf("PrefixEnd(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Concurrent read-modify-write Updates of one counter lose no increment.
func TestStateConcurrentUpdatesSerialize(t *testing.T) {
	s := openMem(t)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				err := s.Update(context.Background(), func(tx eventstore.Txn) error {
					v, _, err := tx.Get([]byte("n"))
					if err != nil {
						return err
					}
					var n uint64
					if len(v) == 8 {
						n = binary.BigEndian.Uint64(v)
					}
					return tx.Set([]byte("n"), binary.BigEndian.AppendUint64(nil, n+1))
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	v, _, _ := s.Get(t.Context(), []byte("n"))
	if got := binary.BigEndian.Uint64(v); got != workers*each {
		t.Fatalf("counter = %d, want %d", got, workers*each)
	}
}

// State written by Update and by WithState survives a reopen, and group
// offsets committed in a Txn are the group's committed offsets.
func TestStateDurableAcrossReopen(t *testing.T) {
	fs := vfs.NewMem()
	open := func() *eventstore.PebbleStore {
		s, err := eventstore.Open("db", eventstore.WithFS(fs))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "t", 3)
	c, err := s.JoinGroup(ctx, "g", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := c.Poll(ctx, 10)
	if err != nil || len(recs) != 3 {
		t.Fatalf("Poll = %d records, %v", len(recs), err)
	}
	mustUpdate(t, s, func(tx eventstore.Txn) error {
		if err := tx.Set([]byte("count"), []byte("3")); err != nil {
			return err
		}
		return tx.CommitOffsets(c, map[eventstore.TopicPartition]int64{{Topic: "t", Partition: 0}: 3})
	})
	res, err := s.Append(ctx, "t", "agg", eventstore.NoStream, []eventstore.Event{{Type: "e", Payload: []byte{}}},
		eventstore.WithState(func(res eventstore.AppendResult, w eventstore.StateWriter) error {
			return w.Set([]byte("cmd/1"), fmt.Appendf(nil, "%d@%d", res.LastVersion, res.LastOffset))
		}))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer s.Close()
	if v, ok, err := s.Get(ctx, []byte("count")); err != nil || !ok || string(v) != "3" {
		t.Fatalf("count after reopen = %q, %v, %v", v, ok, err)
	}
	if v, _, _ := s.Get(ctx, []byte("cmd/1")); string(v) != fmt.Sprintf("1@%d", res.LastOffset) {
		t.Fatalf("WithState value after reopen = %q", v)
	}
	if off, ok, err := s.CommittedOffset(ctx, "g", "t", 0); err != nil || !ok || off != 3 {
		t.Fatalf("committed offset after reopen = %d, %v, %v", off, ok, err)
	}
}

func TestWithStateErrorAppendsNothing(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err := s.Append(ctx, "t", "k", eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte{}}},
		eventstore.WithState(func(eventstore.AppendResult, eventstore.StateWriter) error { return boom }))
	if !errors.Is(err, boom) {
		t.Fatalf("Append = %v, want boom", err)
	}
	_, err = s.Append(ctx, "t", "k", eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte{}}},
		eventstore.WithState(func(_ eventstore.AppendResult, w eventstore.StateWriter) error { return w.Set(nil, nil) }))
	if !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Fatalf("Append with a bad state key = %v, want ErrInvalidArgument", err)
	}
	if v, err := s.HeadVersion(ctx, "t", "k"); err != nil || v != 0 {
		t.Fatalf("head after failed appends = %d, %v", v, err)
	}
	res, err := s.Append(ctx, "t", "k", eventstore.NoStream, []eventstore.Event{{Type: "e", Payload: []byte{}}})
	if err != nil || res.FirstOffset != 0 {
		t.Fatalf("next append = %+v, %v; want offset 0", res, err)
	}
}

// A member that lost a partition cannot commit it in a Txn, and the Txn's
// state writes are dropped with it.
func TestTxnCommitOffsetsFenced(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	a, err := s.JoinGroup(ctx, "g", []string{"t"}, eventstore.WithMemberID("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.JoinGroup(ctx, "g", []string{"t"}, eventstore.WithMemberID("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	lost := b.Assignment()[0]
	err = s.Update(ctx, func(tx eventstore.Txn) error {
		_ = tx.Set([]byte("model"), []byte("x"))
		return tx.CommitOffsets(a, map[eventstore.TopicPartition]int64{lost: 0})
	})
	if !errors.Is(err, eventstore.ErrNotAssigned) {
		t.Fatalf("Update committing a revoked partition = %v, want ErrNotAssigned", err)
	}
	if _, ok, _ := s.Get(ctx, []byte("model")); ok {
		t.Fatal("the fenced Update's state write was applied")
	}
	_ = a.Close()
	err = s.Update(ctx, func(tx eventstore.Txn) error {
		return tx.CommitOffsets(a, map[eventstore.TopicPartition]int64{})
	})
	if !errors.Is(err, eventstore.ErrNotAssigned) {
		t.Fatalf("Update committing for a closed member = %v, want ErrNotAssigned", err)
	}
}

func TestPoll(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "t", 10)
	c, err := s.JoinGroup(ctx, "g", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(ctx, 0); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Fatalf("Poll(0) = %v, want ErrInvalidArgument", err)
	}
	seen := map[string]bool{}
	first, err := c.Poll(ctx, 4)
	if err != nil || len(first) != 4 {
		t.Fatalf("Poll(4) = %d records, %v", len(first), err)
	}
	rest, err := c.Poll(ctx, 100)
	if err != nil || len(rest) != 6 {
		t.Fatalf("Poll(100) after 4 = %d records, %v; want the other 6", len(rest), err)
	}
	last := map[int]int64{}
	for _, r := range append(first, rest...) {
		if seen[r.Key] {
			t.Fatalf("record %s delivered twice", r.Key)
		}
		seen[r.Key] = true
		if o, ok := last[r.Partition]; ok && r.Offset <= o {
			t.Fatalf("partition %d out of order: %d after %d", r.Partition, r.Offset, o)
		}
		last[r.Partition] = r.Offset
	}

	// Caught up: Poll waits for the next append.
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = s.Append(context.Background(), "t", "late", eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte{}}})
	}()
	recs, err := c.Poll(ctx, 100)
	if err != nil || len(recs) != 1 || recs[0].Key != "late" {
		t.Fatalf("Poll waiting for an append = %v, %v", recs, err)
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := c.Poll(short, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Poll with nothing to read = %v, want DeadlineExceeded", err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = c.Close()
	}()
	if _, err := c.Poll(ctx, 10); !errors.Is(err, eventstore.ErrConsumerClosed) {
		t.Fatalf("Poll on a closing consumer = %v, want ErrConsumerClosed", err)
	}
}
