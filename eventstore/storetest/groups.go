package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

func runGroups(t *testing.T, h Harness) {
	t.Run("JoinGroupValidation", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		cases := map[string]struct {
			group  string
			topics []string
			opts   []eventstore.ConsumerOption
			want   error
		}{
			"empty group":    {"", []string{"orders"}, nil, eventstore.ErrInvalidArgument},
			"bad group":      {"has space", []string{"orders"}, nil, eventstore.ErrInvalidArgument},
			"long group":     {strings.Repeat("g", eventstore.MaxNameLen+1), []string{"orders"}, nil, eventstore.ErrInvalidArgument},
			"no topics":      {"g", nil, nil, eventstore.ErrInvalidArgument},
			"missing topic":  {"g", []string{"orders", "missing"}, nil, eventstore.ErrTopicNotFound},
			"bad start":      {"g", []string{"orders"}, []eventstore.ConsumerOption{eventstore.WithStartPosition(eventstore.StartPosition(7))}, eventstore.ErrInvalidArgument},
			"everything bad": {"", nil, []eventstore.ConsumerOption{eventstore.WithStartPosition(-1)}, eventstore.ErrInvalidArgument},
		}
		for name, c := range cases {
			m, err := s.JoinGroup(ctx(t), c.group, c.topics, c.opts...)
			if !errors.Is(err, c.want) {
				t.Errorf("%s: JoinGroup = %v, want %v", name, err, c.want)
			}
			if m != nil {
				_ = m.Close()
			}
		}
		if groups, _ := s.ListGroups(ctx(t)); len(groups) != 0 {
			t.Errorf("refused joins left groups %v", groups)
		}
		x := mustJoin(t, s, "g", []string{"orders"}, eventstore.WithMemberID("x"))
		if x.ID() != "x" || x.Group() != "g" {
			t.Errorf("member ID %q group %q, want x and g", x.ID(), x.Group())
		}
		if _, err := s.JoinGroup(ctx(t), "g", []string{"orders"}, eventstore.WithMemberID("x")); !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("a second member x: %v, want ErrInvalidArgument", err)
		}
		// Without WithMemberID, every member gets an ID of its own.
		a, b := mustJoin(t, s, "g", []string{"orders"}), mustJoin(t, s, "g", []string{"orders"})
		if a.ID() == "" || a.ID() == b.ID() || a.ID() == "x" {
			t.Errorf("generated member IDs %q and %q", a.ID(), b.ID())
		}
		for _, n := range []int{0, -1} {
			if _, err := x.Poll(ctx(t), n); !errors.Is(err, eventstore.ErrInvalidArgument) {
				t.Errorf("Poll(%d) = %v, want ErrInvalidArgument", n, err)
			}
			if _, err := x.TryPoll(ctx(t), n); !errors.Is(err, eventstore.ErrInvalidArgument) {
				t.Errorf("TryPoll(%d) = %v, want ErrInvalidArgument", n, err)
			}
		}
	})
	t.Run("PartitionsSpreadOverMembers", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "a", eventstore.TopicConfig{Partitions: 5})
		mustCreate(t, s, "b", eventstore.TopicConfig{Partitions: 2})
		members := []eventstore.Consumer{
			mustJoin(t, s, "g", []string{"a"}, eventstore.WithMemberID("m1")),
			mustJoin(t, s, "g", []string{"b", "a"}, eventstore.WithMemberID("m2")),
			mustJoin(t, s, "g", []string{"a", "a"}, eventstore.WithMemberID("m3")),
		}
		checkSpread(t, s, "g", members, map[string][]string{"m1": {"a"}, "m2": {"a", "b"}, "m3": {"a"}}, map[string]int{"a": 5, "b": 2})
	})
	t.Run("RebalanceOnJoinAndClose", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 4})
		parts := map[string]int{"orders": 4}
		a := mustJoin(t, s, "g", []string{"orders"}, eventstore.WithMemberID("a"))
		checkSpread(t, s, "g", []eventstore.Consumer{a}, map[string][]string{"a": {"orders"}}, parts)
		b := mustJoin(t, s, "g", []string{"orders"}, eventstore.WithMemberID("b"))
		checkSpread(t, s, "g", []eventstore.Consumer{a, b}, map[string][]string{"a": {"orders"}, "b": {"orders"}}, parts)
		c := mustJoin(t, s, "g", []string{"orders"}, eventstore.WithMemberID("c"))
		checkSpread(t, s, "g", []eventstore.Consumer{a, b, c}, map[string][]string{"a": {"orders"}, "b": {"orders"}, "c": {"orders"}}, parts)

		// Each member reads its own partitions, and together they read
		// every record once.
		ends := fill(t, s, "orders", 4, 3)
		seen := map[eventstore.TopicPartition][]int64{}
		for _, m := range []eventstore.Consumer{a, b, c} {
			for k, offs := range byPartition(drain(t, m)) {
				if !slices.Contains(m.Assignment(), k) {
					t.Errorf("%s read %s, not one of its partitions %v", m.ID(), k, m.Assignment())
				}
				seen[k] = append(seen[k], offs...)
			}
		}
		for p, end := range ends {
			if got := seen[tp("orders", p)]; !slices.Equal(got, span(0, end)) {
				t.Errorf("the members read %v of partition %d, want %v once each", got, p, span(0, end))
			}
		}

		// c commits part of its partitions and leaves: the others take them
		// over from the committed offsets. (A partition that moves between
		// the others is read again from where the group committed it,
		// which is the start here.)
		left := c.Assignment()
		commit := map[eventstore.TopicPartition]int64{}
		for _, k := range left {
			commit[k] = 1
		}
		if err := c.CommitOffsets(ctx(t), commit); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		checkSpread(t, s, "g", []eventstore.Consumer{a, b}, map[string][]string{"a": {"orders"}, "b": {"orders"}}, parts)
		if got := c.Assignment(); len(got) != 0 {
			t.Errorf("a member that left still has %v", got)
		}
		taken := map[eventstore.TopicPartition][]int64{}
		for _, m := range []eventstore.Consumer{a, b} {
			maps.Copy(taken, byPartition(drain(t, m)))
		}
		for _, k := range left {
			if got, want := taken[k], span(1, ends[k.Partition]); !slices.Equal(got, want) {
				t.Errorf("%s after c left: read %v, want %v (from c's commit)", k, got, want)
			}
		}
	})
	t.Run("Poll", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 3})
		for i := range 10 {
			mustAppend(t, s, "t", fmt.Sprint("k", i), eventstore.NoStream, ev("e", fmt.Sprint(i)))
		}
		c := mustJoin(t, s, "g", []string{"t"})
		first, err := c.Poll(ctx(t), 4)
		if err != nil || len(first) != 4 {
			t.Fatalf("Poll(4) = %d records, %v", len(first), err)
		}
		rest, err := c.Poll(ctx(t), 100)
		if err != nil || len(rest) != 6 {
			t.Fatalf("Poll(100) after 4 of 10 = %d records, %v; want a short batch of the other 6", len(rest), err)
		}
		got := byPartition(append(first, rest...))
		total := 0
		for p := range 3 {
			info, _ := s.DescribeTopic(ctx(t), "t")
			end := info.Partitions[p].EndOffset
			if !slices.Equal(got[tp("t", p)], span(0, end)) {
				t.Errorf("partition %d polled as %v, want %v: each record once, in offset order", p, got[tp("t", p)], span(0, end))
			}
			total += int(end)
		}
		if total != 10 {
			t.Fatalf("the partitions hold %d records", total)
		}
		// A short batch meant caught up: there is nothing more.
		if recs, err := c.TryPoll(ctx(t), 100); err != nil || len(recs) != 0 {
			t.Fatalf("TryPoll after a short batch = %d records, %v; want none", len(recs), err)
		}
		// Caught up, Poll waits for the next append.
		polled := make(chan []eventstore.Record, 1)
		go func() {
			recs, err := c.Poll(ctx(t), 100)
			if err != nil {
				t.Errorf("waiting Poll: %v", err)
			}
			polled <- recs
		}()
		letRun()
		mustAppend(t, s, "t", "late", eventstore.NoStream, ev("e", "late"))
		if recs := within(t, polled, "Poll waiting for an append"); len(recs) != 1 || recs[0].Key != "late" {
			t.Fatalf("waiting Poll returned %s", payloads(recs))
		}
		// With nothing to read, Poll returns when its context ends.
		short, cancel := context.WithTimeout(ctx(t), 10*time.Millisecond)
		defer cancel()
		if recs, err := c.Poll(short, 10); !errors.Is(err, context.DeadlineExceeded) || len(recs) != 0 {
			t.Fatalf("Poll with nothing to read = %d records, %v; want DeadlineExceeded", len(recs), err)
		}
		// TryPoll returns at once, with what there is.
		if recs, err := c.TryPoll(ctx(t), 10); err != nil || len(recs) != 0 {
			t.Fatalf("TryPoll with nothing to read = %d records, %v", len(recs), err)
		}
		fill(t, s, "t", 3, 2)
		if recs, err := c.TryPoll(ctx(t), 4); err != nil || len(recs) != 4 {
			t.Fatalf("TryPoll(4) of 6 = %d records, %v", len(recs), err)
		}
		if recs, err := c.TryPoll(ctx(t), 4); err != nil || len(recs) != 2 {
			t.Fatalf("TryPoll(4) of the last 2 = %d records, %v", len(recs), err)
		}
	})
	t.Run("PollAfterClose", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 1})
		c := mustJoin(t, s, "g", []string{"t"})
		polled := make(chan error, 1)
		go func() {
			_, err := c.Poll(ctx(t), 10)
			polled <- err
		}()
		letRun()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := within(t, polled, "Poll of a closing consumer"); !errors.Is(err, eventstore.ErrConsumerClosed) {
			t.Errorf("Poll when the consumer closed = %v, want ErrConsumerClosed", err)
		}
		mustAppend(t, s, "t", "k", eventstore.NoStream, ev("e", "x"))
		if _, err := c.Poll(ctx(t), 10); !errors.Is(err, eventstore.ErrConsumerClosed) {
			t.Errorf("Poll after Close = %v, want ErrConsumerClosed", err)
		}
		if _, err := c.TryPoll(ctx(t), 10); !errors.Is(err, eventstore.ErrConsumerClosed) {
			t.Errorf("TryPoll after Close = %v, want ErrConsumerClosed", err)
		}
	})
	t.Run("PollWhenStoreCloses", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 1})
		c := mustJoin(t, s, "g", []string{"t"})
		polled := make(chan error, 1)
		go func() {
			_, err := c.Poll(ctx(t), 10)
			polled <- err
		}()
		letRun()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := within(t, polled, "Poll when the store closed"); !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("Poll when the store closed = %v, want ErrClosed", err)
		}
		if _, err := c.Poll(ctx(t), 10); !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("Poll after the store closed = %v, want ErrClosed", err)
		}
		if _, err := s.JoinGroup(ctx(t), "g", []string{"t"}); !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("JoinGroup after the store closed = %v, want ErrClosed", err)
		}
	})
	t.Run("Commit", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 2})
		mustCreate(t, s, "other", eventstore.TopicConfig{Partitions: 1})
		ends := fill(t, s, "t", 2, 4)
		fill(t, s, "other", 1, 1)
		c := mustJoin(t, s, "g", []string{"t"})
		recs := drain(t, c)
		committed := func(p int) string {
			off, ok, err := s.CommittedOffset(ctx(t), "g", "t", p)
			return fmt.Sprint(off, ok, err)
		}
		if got := committed(0); got != "0 false <nil>" {
			t.Errorf("CommittedOffset before any commit = %s", got)
		}
		rec := recs[1]
		if err := c.Commit(ctx(t), rec); err != nil {
			t.Fatal(err)
		}
		if got, want := committed(rec.Partition), fmt.Sprint(rec.Offset+1, true, nil); got != want {
			t.Errorf("after Commit(%d@%d): CommittedOffset = %s, want %s", rec.Partition, rec.Offset, got, want)
		}
		// CommitOffsets commits the next offset to read; the end of the
		// partition is a valid one.
		if err := c.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{tp("t", 0): ends[0], tp("t", 1): 1}); err != nil {
			t.Fatal(err)
		}
		if got := committed(0) + " " + committed(1); got != fmt.Sprint(ends[0], true, nil)+" 1 true <nil>" {
			t.Errorf("after CommitOffsets: %s", got)
		}
		// Bad offsets are refused, and nothing of the commit is written.
		for _, bad := range []int64{-1, ends[1] + 1, 1 << 40} {
			err := c.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{tp("t", 0): 2, tp("t", 1): bad})
			if !errors.Is(err, eventstore.ErrInvalidArgument) {
				t.Errorf("CommitOffsets of offset %d = %v, want ErrInvalidArgument", bad, err)
			}
		}
		if got := committed(0) + " " + committed(1); got != fmt.Sprint(ends[0], true, nil)+" 1 true <nil>" {
			t.Errorf("after refused commits: %s", got)
		}
		// A partition the member was never assigned.
		if err := c.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{tp("other", 0): 1}); !errors.Is(err, eventstore.ErrNotAssigned) {
			t.Errorf("commit of a topic the member does not read = %v, want ErrNotAssigned", err)
		}
		if _, ok, _ := s.CommittedOffset(ctx(t), "g", "other", 0); ok {
			t.Error("the refused commit of other/0 was written")
		}
		// A member that left commits nothing.
		_ = c.Close()
		if err := c.Commit(ctx(t), recs[0]); !errors.Is(err, eventstore.ErrNotAssigned) {
			t.Errorf("Commit after Close = %v, want ErrNotAssigned", err)
		}
	})
	t.Run("TxnCommitOffsets", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 2})
		fill(t, s, "t", 2, 3)
		g1 := mustJoin(t, s, "g1", []string{"t"})
		g2 := mustJoin(t, s, "g2", []string{"t"})
		drain(t, g1)
		drain(t, g2)
		// State writes and the offsets of two groups, in one Update.
		mustUpdate(t, s, func(tx eventstore.Txn) error {
			return errors.Join(
				tx.Set([]byte("model"), []byte("v1")),
				tx.CommitOffsets(g1, map[eventstore.TopicPartition]int64{tp("t", 0): 2}),
				tx.CommitOffsets(g2, map[eventstore.TopicPartition]int64{tp("t", 0): 1, tp("t", 1): 3}),
			)
		})
		offsets := func() string {
			var b strings.Builder
			for _, g := range []string{"g1", "g2"} {
				for p := range 2 {
					off, ok, err := s.CommittedOffset(ctx(t), g, "t", p)
					if err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(&b, "%s/%d=%d,%v ", g, p, off, ok)
				}
			}
			return b.String()
		}
		const want = "g1/0=2,true g1/1=0,false g2/0=1,true g2/1=3,true "
		if got := offsets(); got != want || get(t, s, "model") != "v1" {
			t.Errorf("after the Update: offsets %s model %s; want %s and v1", got, get(t, s, "model"), want)
		}
		// A bad offset fails the whole Update.
		err := s.Update(ctx(t), func(tx eventstore.Txn) error {
			return errors.Join(
				tx.Set([]byte("model"), []byte("v2")),
				tx.CommitOffsets(g1, map[eventstore.TopicPartition]int64{tp("t", 0): 3}),
				tx.CommitOffsets(g2, map[eventstore.TopicPartition]int64{tp("t", 1): 1 << 40}),
			)
		})
		if !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("Update committing an offset past the end = %v, want ErrInvalidArgument", err)
		}
		// So does a consumer of another store.
		other, _ := open(t, h)
		mustCreate(t, other, "t", eventstore.TopicConfig{Partitions: 2})
		foreign := mustJoin(t, other, "g1", []string{"t"})
		err = s.Update(ctx(t), func(tx eventstore.Txn) error {
			return errors.Join(
				tx.Set([]byte("model"), []byte("v3")),
				tx.CommitOffsets(foreign, map[eventstore.TopicPartition]int64{tp("t", 0): 0}),
			)
		})
		if !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("Update committing for a consumer of another store = %v, want ErrInvalidArgument", err)
		}
		if got := offsets(); got != want || get(t, s, "model") != "v1" {
			t.Errorf("after refused Updates: offsets %s model %s; want %s and v1", got, get(t, s, "model"), want)
		}
		if _, ok, _ := other.CommittedOffset(ctx(t), "g1", "t", 0); ok {
			t.Error("the refused Update committed in the other store")
		}
	})
	t.Run("FencedAfterLosingAPartition", func(t *testing.T) {
		// A member that lost a partition to a new member can commit it
		// neither directly nor in a Txn, whose state writes are then void.
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 2})
		fill(t, s, "t", 2, 3)
		a := mustJoin(t, s, "g", []string{"t"}, eventstore.WithMemberID("a"))
		read := drain(t, a)
		if len(read) != 6 {
			t.Fatalf("a read %d records, want 6", len(read))
		}
		b := mustJoin(t, s, "g", []string{"t"}, eventstore.WithMemberID("b"))
		if len(a.Assignment()) != 1 || len(b.Assignment()) != 1 {
			t.Fatalf("assignments a=%v b=%v, want one partition each", a.Assignment(), b.Assignment())
		}
		lost, kept := b.Assignment()[0], a.Assignment()[0]
		var lostRec eventstore.Record
		for _, r := range read {
			if tp(r.Topic, r.Partition) == lost {
				lostRec = r
			}
		}
		if err := a.Commit(ctx(t), lostRec); !errors.Is(err, eventstore.ErrNotAssigned) {
			t.Errorf("Commit of a lost partition = %v, want ErrNotAssigned", err)
		}
		if err := a.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{kept: 3, lost: 3}); !errors.Is(err, eventstore.ErrNotAssigned) {
			t.Errorf("CommitOffsets with a lost partition = %v, want ErrNotAssigned", err)
		}
		err := s.Update(ctx(t), func(tx eventstore.Txn) error {
			return errors.Join(
				tx.Set([]byte("model"), []byte("stale")),
				tx.CommitOffsets(a, map[eventstore.TopicPartition]int64{kept: 3, lost: 3}),
			)
		})
		if !errors.Is(err, eventstore.ErrNotAssigned) {
			t.Errorf("Update committing a lost partition = %v, want ErrNotAssigned", err)
		}
		if got := get(t, s, "model"); got != "<none>" {
			t.Errorf("the fenced Update wrote model=%s", got)
		}
		for _, k := range []eventstore.TopicPartition{kept, lost} {
			if _, ok, _ := s.CommittedOffset(ctx(t), "g", k.Topic, k.Partition); ok {
				t.Errorf("a fenced commit wrote an offset for %s", k)
			}
		}
		// What each member still owns it commits.
		if err := a.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{kept: 3}); err != nil {
			t.Errorf("a commits the partition it kept: %v", err)
		}
		drain(t, b)
		mustUpdate(t, s, func(tx eventstore.Txn) error {
			return tx.CommitOffsets(b, map[eventstore.TopicPartition]int64{lost: 1})
		})
		// And a reads no more of the lost partition.
		fill(t, s, "t", 2, 1)
		for _, r := range drain(t, a) {
			if tp(r.Topic, r.Partition) != kept {
				t.Errorf("a read %s@%d after losing it", lost, r.Offset)
			}
		}
	})
	t.Run("FencedAfterAPartitionCameBack", func(t *testing.T) {
		// A partition that went to another member and came back: the first
		// member cannot commit what it read before (the other may have
		// handled and committed it since); once it polls again it reads
		// from the group's committed offset.
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 2})
		ends := fill(t, s, "t", 2, 5)
		a := mustJoin(t, s, "g", []string{"t"}, eventstore.WithMemberID("a"))
		if n := len(drain(t, a)); n != 10 {
			t.Fatalf("a read %d records, want 10", n)
		}
		b := mustJoin(t, s, "g", []string{"t"}, eventstore.WithMemberID("b"))
		moved, kept := b.Assignment()[0], a.Assignment()[0]
		if got := byPartition(drain(t, b))[moved]; !slices.Equal(got, span(0, ends[moved.Partition])) {
			t.Fatalf("b read %v of %s", got, moved)
		}
		if err := b.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{moved: 3}); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil { // the partition goes back to a
			t.Fatal(err)
		}
		if got := a.Assignment(); len(got) != 2 {
			t.Fatalf("a after b left: %v", got)
		}
		if err := a.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{moved: 5}); !errors.Is(err, eventstore.ErrNotAssigned) {
			t.Errorf("commit of an offset read before the partition moved and came back = %v, want ErrNotAssigned", err)
		}
		err := s.Update(ctx(t), func(tx eventstore.Txn) error {
			return errors.Join(
				tx.Set([]byte("model"), []byte("stale")),
				tx.CommitOffsets(a, map[eventstore.TopicPartition]int64{moved: 5}),
			)
		})
		if !errors.Is(err, eventstore.ErrNotAssigned) {
			t.Errorf("Update committing an offset read before the partition came back = %v, want ErrNotAssigned", err)
		}
		if got := get(t, s, "model"); got != "<none>" {
			t.Errorf("the fenced Update wrote model=%s", got)
		}
		if off, _, _ := s.CommittedOffset(ctx(t), "g", moved.Topic, moved.Partition); off != 3 {
			t.Errorf("committed offset of %s = %d, want b's 3", moved, off)
		}
		// The partition it held throughout it still commits.
		if err := a.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{kept: 2}); err != nil {
			t.Errorf("commit of the partition a kept: %v", err)
		}
		// a polls again: the moved partition from b's commit, the kept one
		// from where a was.
		got := byPartition(drain(t, a))
		if want := span(3, ends[moved.Partition]); !slices.Equal(got[moved], want) {
			t.Errorf("a read %v of %s after it came back, want %v (from the group's committed offset)", got[moved], moved, want)
		}
		if len(got[kept]) != 0 {
			t.Errorf("a read %v of %s again, which it held throughout", got[kept], kept)
		}
		mustUpdate(t, s, func(tx eventstore.Txn) error {
			return tx.CommitOffsets(a, map[eventstore.TopicPartition]int64{moved: ends[moved.Partition]})
		})
	})
	t.Run("Rewind", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 2})
		ends := fill(t, s, "t", 2, 4)
		c := mustJoin(t, s, "g", []string{"t"})
		if n := len(drain(t, c)); n != 8 {
			t.Fatalf("read %d records, want 8", n)
		}
		if err := c.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{tp("t", 0): 2}); err != nil {
			t.Fatal(err)
		}
		if err := c.Rewind(ctx(t)); err != nil {
			t.Fatalf("Rewind: %v", err)
		}
		got := byPartition(drain(t, c))
		if want := span(2, ends[0]); !slices.Equal(got[tp("t", 0)], want) {
			t.Errorf("after Rewind, partition 0 read %v, want %v (from the commit)", got[tp("t", 0)], want)
		}
		if want := span(0, ends[1]); !slices.Equal(got[tp("t", 1)], want) {
			t.Errorf("after Rewind, uncommitted partition 1 read %v, want %v (from the start)", got[tp("t", 1)], want)
		}
		// A rewound member commits as before.
		if err := c.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{tp("t", 0): ends[0], tp("t", 1): ends[1]}); err != nil {
			t.Errorf("commit after Rewind: %v", err)
		}
		if err := c.Rewind(ctx(t)); err != nil {
			t.Fatal(err)
		}
		if recs := drain(t, c); len(recs) != 0 {
			t.Errorf("Rewind to the committed ends re-read %d records", len(recs))
		}
	})
	t.Run("StartLatest", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 1})
		fill(t, s, "t", 1, 3)
		c := mustJoin(t, s, "fresh", []string{"t"}, eventstore.WithStartPosition(eventstore.Latest))
		if recs, err := c.TryPoll(ctx(t), 10); err != nil || len(recs) != 0 {
			t.Fatalf("a Latest member read %d records that were there before it joined, %v", len(recs), err)
		}
		mustAppend(t, s, "t", "new", eventstore.NoStream, ev("e", "new"))
		recs, err := c.Poll(ctx(t), 10)
		if err != nil || payloads(recs) != "new" || recs[0].Offset != 3 {
			t.Fatalf("a Latest member polled %s, %v; want only the new record", payloads(recs), err)
		}
		// Latest applies only where the group has no committed offset.
		old := mustJoin(t, s, "old", []string{"t"})
		drain(t, old)
		if err := old.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{tp("t", 0): 1}); err != nil {
			t.Fatal(err)
		}
		_ = old.Close()
		again := mustJoin(t, s, "old", []string{"t"}, eventstore.WithStartPosition(eventstore.Latest))
		if got := offsets(drain(t, again)); !slices.Equal(got, []int64{1, 2, 3}) {
			t.Errorf("a Latest member of a group that committed read %v, want [1 2 3] (from the commit)", got)
		}
	})
	t.Run("StartEarliestIsTheOldestRecordPresent", func(t *testing.T) {
		s, clk := open(t, h)
		mustCreate(t, s, "logs", eventstore.TopicConfig{Partitions: 1, Cleanup: eventstore.Delete, RetentionAge: time.Hour})
		fill(t, s, "logs", 1, 3)
		early := mustJoin(t, s, "early", []string{"logs"})
		drain(t, early)
		if err := early.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{tp("logs", 0): 1}); err != nil {
			t.Fatal(err)
		}
		_ = early.Close()
		clk.Advance(2 * time.Hour)
		fill(t, s, "logs", 1, 2)
		if _, err := s.Cleanup(ctx(t)); err != nil {
			t.Fatal(err)
		}
		// A new group starts at the oldest record left, and a committed
		// offset below it resumes there too.
		for _, g := range []string{"new", "early"} {
			c := mustJoin(t, s, g, []string{"logs"})
			if got := offsets(drain(t, c)); !slices.Equal(got, []int64{3, 4}) {
				t.Errorf("group %s read %v after cleanup removed 0..2, want [3 4]", g, got)
			}
		}
	})
	t.Run("DescribeGroup", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "a", eventstore.TopicConfig{Partitions: 2})
		mustCreate(t, s, "b", eventstore.TopicConfig{Partitions: 1})
		ends := fill(t, s, "a", 2, 3)
		fill(t, s, "b", 1, 2)
		if _, err := s.DescribeGroup(ctx(t), "g"); !errors.Is(err, eventstore.ErrGroupNotFound) {
			t.Errorf("DescribeGroup of an unknown group = %v, want ErrGroupNotFound", err)
		}
		if _, err := s.DescribeGroup(ctx(t), "bad name"); !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("DescribeGroup of a bad name = %v, want ErrInvalidArgument", err)
		}
		m2 := mustJoin(t, s, "g", []string{"a", "b"}, eventstore.WithMemberID("m2"))
		info1, err := s.DescribeGroup(ctx(t), "g")
		if err != nil {
			t.Fatal(err)
		}
		m1 := mustJoin(t, s, "g", []string{"a"}, eventstore.WithMemberID("m1"))
		drain(t, m1)
		drain(t, m2)
		var p1 eventstore.TopicPartition
		if slices.Contains(m1.Assignment(), tp("a", 0)) {
			p1 = tp("a", 0)
		} else {
			p1 = tp("a", 1)
		}
		if err := m1.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{p1: 1}); err != nil {
			t.Fatal(err)
		}
		info, err := s.DescribeGroup(ctx(t), "g")
		if err != nil {
			t.Fatal(err)
		}
		if info.Name != "g" || info.Generation <= info1.Generation {
			t.Errorf("name %q generation %d after a join, was %d; want it to grow", info.Name, info.Generation, info1.Generation)
		}
		if len(info.Members) != 2 || info.Members[0].ID != "m1" || info.Members[1].ID != "m2" {
			t.Fatalf("members %+v, want m1 and m2 in ID order", info.Members)
		}
		for i, m := range []eventstore.Consumer{m1, m2} {
			mi := info.Members[i]
			if !slices.Equal(sortedTPs(mi.Assignment), sortedTPs(m.Assignment())) {
				t.Errorf("member %s described with %v, its Assignment is %v", m.ID(), mi.Assignment, m.Assignment())
			}
			topics := slices.Sorted(slices.Values(mi.Topics))
			if want := [][]string{{"a"}, {"a", "b"}}[i]; !slices.Equal(topics, want) {
				t.Errorf("member %s described with topics %v, want %v", m.ID(), mi.Topics, want)
			}
		}
		var got []string
		for _, p := range info.Partitions {
			got = append(got, fmt.Sprintf("%s member=%t committed=%d end=%d lag=%d", p.TopicPartition, p.Member != "", p.Committed, p.End, p.Lag))
			owner := m1
			if !slices.Contains(m1.Assignment(), p.TopicPartition) {
				owner = m2
			}
			if p.Member != owner.ID() {
				t.Errorf("%s described with member %q, assigned to %s", p.TopicPartition, p.Member, owner.ID())
			}
		}
		other := tp("a", 1-p1.Partition)
		var want []string
		for _, k := range sortedTPs([]eventstore.TopicPartition{p1, other, tp("b", 0)}) {
			switch k {
			case p1:
				want = append(want, fmt.Sprintf("%s member=true committed=1 end=%d lag=%d", k, ends[k.Partition], ends[k.Partition]-1))
			case other:
				want = append(want, fmt.Sprintf("%s member=true committed=-1 end=%d lag=%d", k, ends[k.Partition], ends[k.Partition]))
			default:
				want = append(want, fmt.Sprintf("%s member=true committed=-1 end=2 lag=2", k))
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("partitions\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// Without members, a group is described from its committed offsets.
		_ = m1.Close()
		_ = m2.Close()
		info, err = s.DescribeGroup(ctx(t), "g")
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Members) != 0 || len(info.Partitions) != 1 || info.Partitions[0].TopicPartition != p1 ||
			info.Partitions[0].Member != "" || info.Partitions[0].Committed != 1 || info.Partitions[0].Lag != ends[p1.Partition]-1 {
			t.Errorf("group without members: %+v", info)
		}
		// A group whose members left without committing is gone.
		lone := mustJoin(t, s, "lone", []string{"a"})
		if _, err := s.DescribeGroup(ctx(t), "lone"); err != nil {
			t.Errorf("DescribeGroup of a group with a member: %v", err)
		}
		_ = lone.Close()
		if info, err := s.DescribeGroup(ctx(t), "lone"); !errors.Is(err, eventstore.ErrGroupNotFound) {
			t.Errorf("DescribeGroup of a group without members or offsets = %+v, %v; want ErrGroupNotFound", info, err)
		}
	})
	t.Run("ListGroups", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 1})
		fill(t, s, "t", 1, 2)
		if got, err := s.ListGroups(ctx(t)); err != nil || len(got) != 0 {
			t.Errorf("ListGroups of a new store = %v, %v", got, err)
		}
		mustJoin(t, s, "zeta", []string{"t"})
		committer := mustJoin(t, s, "alpha", []string{"t"})
		drain(t, committer)
		if err := committer.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{tp("t", 0): 1}); err != nil {
			t.Fatal(err)
		}
		_ = committer.Close()
		mustJoin(t, s, "mid", []string{"t"}).Close()
		got, err := s.ListGroups(ctx(t))
		if want := []string{"alpha", "zeta"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("ListGroups = %v, %v; want %v (with members or offsets, sorted)", got, err, want)
		}
	})
	t.Run("CommittedOffset", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 2})
		fill(t, s, "t", 2, 2)
		if off, ok, err := s.CommittedOffset(ctx(t), "nobody", "t", 1); err != nil || ok || off != 0 {
			t.Errorf("CommittedOffset of a group that never committed = %d, %v, %v", off, ok, err)
		}
		c := mustJoin(t, s, "g", []string{"t"})
		drain(t, c)
		if err := c.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{tp("t", 1): 2}); err != nil {
			t.Fatal(err)
		}
		if off, ok, err := s.CommittedOffset(ctx(t), "g", "t", 1); err != nil || !ok || off != 2 {
			t.Errorf("CommittedOffset = %d, %v, %v; want 2", off, ok, err)
		}
		if _, ok, err := s.CommittedOffset(ctx(t), "g", "t", 0); err != nil || ok {
			t.Errorf("CommittedOffset of an uncommitted partition = %v, %v", ok, err)
		}
		if _, _, err := s.CommittedOffset(ctx(t), "g", "missing", 0); !errors.Is(err, eventstore.ErrTopicNotFound) {
			t.Errorf("CommittedOffset of a missing topic = %v, want ErrTopicNotFound", err)
		}
		for _, p := range []int{-1, 2} {
			if _, _, err := s.CommittedOffset(ctx(t), "g", "t", p); !errors.Is(err, eventstore.ErrInvalidArgument) {
				t.Errorf("CommittedOffset of partition %d = %v, want ErrInvalidArgument", p, err)
			}
		}
		if _, _, err := s.CommittedOffset(ctx(t), "", "t", 0); !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("CommittedOffset of an empty group name = %v, want ErrInvalidArgument", err)
		}
	})
	t.Run("DeleteTopicInUse", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		mustCreate(t, s, "other", eventstore.TopicConfig{Partitions: 1})
		mustCreate(t, s, "spare", eventstore.TopicConfig{Partitions: 1})
		fill(t, s, "orders", 2, 2)
		c := mustJoin(t, s, "billing", []string{"orders", "other"})
		if err := s.DeleteTopic(ctx(t), "orders"); !errors.Is(err, eventstore.ErrTopicInUse) {
			t.Fatalf("DeleteTopic with a member subscribed = %v, want ErrTopicInUse", err)
		}
		if _, err := s.DescribeTopic(ctx(t), "orders"); err != nil {
			t.Fatalf("the refused delete removed the topic: %v", err)
		}
		if err := s.DeleteTopic(ctx(t), "spare"); err != nil {
			t.Errorf("DeleteTopic of a topic no member reads: %v", err)
		}
		// The member goes on as before.
		if n := len(drain(t, c)); n != 4 {
			t.Errorf("member read %d records after the refused delete, want 4", n)
		}
		if err := c.CommitOffsets(ctx(t), map[eventstore.TopicPartition]int64{tp("orders", 0): 1}); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		if err := s.DeleteTopic(ctx(t), "orders"); err != nil {
			t.Fatalf("DeleteTopic after the member left: %v", err)
		}
		// The group's offsets went with the topic.
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		if _, ok, err := s.CommittedOffset(ctx(t), "billing", "orders", 0); err != nil || ok {
			t.Errorf("the re-created topic has the old group offset: %v, %v", ok, err)
		}
		if info, err := s.DescribeGroup(ctx(t), "billing"); !errors.Is(err, eventstore.ErrGroupNotFound) {
			t.Errorf("DescribeGroup after its only offsets went with the topic = %+v, %v; want ErrGroupNotFound", info, err)
		}
	})
}

// checkSpread checks that members share the partitions of their topics:
// each partition of a topic goes to exactly one member subscribed to it, a
// topic's partitions are spread evenly (counts differ by at most one), and
// DescribeGroup reports the same assignment.
func checkSpread(t *testing.T, s Store, group string, members []eventstore.Consumer, topics map[string][]string, parts map[string]int) {
	t.Helper()
	owner := map[eventstore.TopicPartition]string{}
	count := map[string]map[string]int{} // topic -> member -> partitions
	for _, m := range members {
		for _, k := range m.Assignment() {
			if prev, dup := owner[k]; dup {
				t.Errorf("%s assigned to %s and %s", k, prev, m.ID())
			}
			owner[k] = m.ID()
			if !slices.Contains(topics[m.ID()], k.Topic) {
				t.Errorf("%s assigned to %s, which does not subscribe to %s", k, m.ID(), k.Topic)
			}
			if count[k.Topic] == nil {
				count[k.Topic] = map[string]int{}
			}
			count[k.Topic][m.ID()]++
		}
	}
	for topic, n := range parts {
		for p := range n {
			if _, ok := owner[tp(topic, p)]; !ok {
				t.Errorf("%s/%d assigned to no member", topic, p)
			}
		}
		lo, hi := n, 0
		for id, subscribed := range topics {
			if slices.Contains(subscribed, topic) {
				lo, hi = min(lo, count[topic][id]), max(hi, count[topic][id])
			}
		}
		if hi-lo > 1 {
			t.Errorf("%s spread unevenly: %v", topic, count[topic])
		}
	}
	info, err := s.DescribeGroup(ctx(t), group)
	if err != nil {
		t.Fatalf("DescribeGroup: %v", err)
	}
	if len(info.Members) != len(members) {
		t.Errorf("DescribeGroup shows %d members, want %d", len(info.Members), len(members))
	}
	for _, mi := range info.Members {
		for _, k := range mi.Assignment {
			if owner[k] != mi.ID {
				t.Errorf("DescribeGroup assigns %s to %s, Assignment to %q", k, mi.ID, owner[k])
			}
		}
	}
}

func sortedTPs(tps []eventstore.TopicPartition) []eventstore.TopicPartition {
	out := slices.Clone(tps)
	slices.SortFunc(out, func(a, b eventstore.TopicPartition) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return a.Partition - b.Partition
	})
	return out
}
