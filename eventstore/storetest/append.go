package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/muninn-es/muninn/eventstore"
)

func runAppend(t *testing.T, h Harness) {
	t.Run("VersionsAndOffsetsAreConsecutive", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		r1 := mustAppend(t, s, "orders", "o-1", eventstore.NoStream, ev("placed", "1"), ev("paid", "2"))
		r2 := mustAppend(t, s, "orders", "o-2", eventstore.NoStream, ev("placed", "3"))
		r3 := mustAppend(t, s, "orders", "o-1", eventstore.Exact(2), ev("shipped", "4"))
		want := []eventstore.AppendResult{
			{Topic: "orders", Key: "o-1", FirstOffset: 0, LastOffset: 1, FirstVersion: 1, LastVersion: 2},
			{Topic: "orders", Key: "o-2", FirstOffset: 2, LastOffset: 2, FirstVersion: 1, LastVersion: 1},
			{Topic: "orders", Key: "o-1", FirstOffset: 3, LastOffset: 3, FirstVersion: 3, LastVersion: 3},
		}
		for i, got := range []eventstore.AppendResult{r1, r2, r3} {
			w := want[i]
			if got.Topic != w.Topic || got.Key != w.Key || got.FirstOffset != w.FirstOffset || got.LastOffset != w.LastOffset ||
				got.FirstVersion != w.FirstVersion || got.LastVersion != w.LastVersion || got.Partition != 0 {
				t.Errorf("append %d = %+v, want %+v", i, got, w)
			}
			if len(got.EventIDs) != int(w.LastVersion-w.FirstVersion+1) {
				t.Errorf("append %d has %d event IDs", i, len(got.EventIDs))
			}
		}
	})
	t.Run("NoStreamOnExistingStreamIsRefused", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		mustAppend(t, s, "orders", "o-1", eventstore.NoStream, ev("placed", "original"))
		_, err := s.Append(ctx(t), "orders", "o-1", eventstore.NoStream, []eventstore.Event{ev("placed", "overwrite")})
		var conflict *eventstore.VersionConflictError
		if !errors.As(err, &conflict) || !errors.Is(err, eventstore.ErrVersionConflict) {
			t.Fatalf("NoStream on existing stream: %v, want *VersionConflictError", err)
		}
		if conflict.Actual != 1 || conflict.Expected != eventstore.NoStream || conflict.Key != "o-1" || conflict.Topic != "orders" {
			t.Errorf("conflict = %+v", conflict)
		}
		recs := collect(t, s.ReadStream(ctx(t), "orders", "o-1", 0))
		if payloads(recs) != "original" {
			t.Fatalf("stream after refused NoStream = %s, want only the original", payloads(recs))
		}
	})
	t.Run("ExpectedVersionConditions", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		cases := []struct {
			expected eventstore.ExpectedVersion
			head     uint64 // head before the append
			ok       bool
		}{
			{eventstore.StreamExists, 0, false},
			{eventstore.Exact(1), 0, false},
			{eventstore.NoStream, 0, true},
			{eventstore.Exact(2), 1, false},
			{eventstore.Exact(0), 1, false},
			{eventstore.Exact(1), 1, true},
			{eventstore.StreamExists, 2, true},
			{eventstore.Any, 3, true},
		}
		for i, c := range cases {
			_, err := s.Append(ctx(t), "orders", "o-1", c.expected, []eventstore.Event{ev("e", fmt.Sprint(i))})
			if c.ok && err != nil {
				t.Errorf("case %d: expected %s at head %d: %v", i, c.expected, c.head, err)
			}
			var conflict *eventstore.VersionConflictError
			if !c.ok && (!errors.As(err, &conflict) || conflict.Actual != c.head) {
				t.Errorf("case %d: expected %s at head %d: %v, want conflict with actual %d", i, c.expected, c.head, err, c.head)
			}
		}
		if v, err := s.HeadVersion(ctx(t), "orders", "o-1"); err != nil || v != 4 {
			t.Fatalf("HeadVersion = %d, %v; want 4", v, err)
		}
	})
	t.Run("InvalidInput", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		cases := map[string]struct {
			key    string
			exp    eventstore.ExpectedVersion
			events []eventstore.Event
			field  string
		}{
			"empty key":       {"", eventstore.Any, []eventstore.Event{ev("e", "x")}, "key"},
			"huge key":        {strings.Repeat("k", eventstore.MaxKeyBytes+1), eventstore.Any, []eventstore.Event{ev("e", "x")}, "key"},
			"no events":       {"k", eventstore.Any, nil, "events"},
			"empty type":      {"k", eventstore.Any, []eventstore.Event{ev("", "x")}, "Type"},
			"bad expected":    {"k", eventstore.ExpectedVersion(-7), []eventstore.Event{ev("e", "x")}, "expected"},
			"huge event":      {"k", eventstore.Any, []eventstore.Event{{Type: "e", Payload: make([]byte, 2<<20)}}, "events[0]"},
			"negative schema": {"k", eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte("x"), SchemaVersion: -1}}, "SchemaVersion"},
		}
		for name, c := range cases {
			_, err := s.Append(ctx(t), "orders", c.key, c.exp, c.events)
			if !errors.Is(err, eventstore.ErrInvalidArgument) || !strings.Contains(err.Error(), c.field) {
				t.Errorf("%s: %v, want ErrInvalidArgument naming %s", name, err, c.field)
			}
		}
		info, _ := s.DescribeTopic(ctx(t), "orders")
		if info.Partitions[0].EndOffset != 0 {
			t.Fatalf("refused appends wrote records: %+v", info.Partitions[0])
		}
	})
	t.Run("MetadataDefaults", func(t *testing.T) {
		s, c := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 4})
		res := mustAppend(t, s, "orders", "o-1", eventstore.NoStream, ev("placed", "a"), ev("paid", "b"))
		recs := collect(t, s.ReadStream(ctx(t), "orders", "o-1", 0))
		if len(recs) != 2 {
			t.Fatalf("read %d records", len(recs))
		}
		first := recs[0]
		for i, r := range recs {
			if r.ID != res.EventIDs[i] || r.ID.Version() != 7 {
				t.Errorf("record %d ID %s (v%d), append returned %s; want UUIDv7", i, r.ID, r.ID.Version(), res.EventIDs[i])
			}
			if r.SchemaVersion != 1 || !r.Timestamp.Equal(c.Now()) || r.Topic != "orders" || r.Key != "o-1" {
				t.Errorf("record %d = %+v", i, r)
			}
			if r.CorrelationID != first.ID.String() || r.CausationID != first.ID.String() {
				t.Errorf("record %d correlation %q causation %q; want the first event's ID %s for both", i, r.CorrelationID, r.CausationID, first.ID)
			}
			if r.Partition != eventstore.PartitionFor("o-1", 4) || r.Partition != res.Partition {
				t.Errorf("record %d in partition %d, want Kafka's murmur2 partition %d", i, r.Partition, eventstore.PartitionFor("o-1", 4))
			}
		}
		if recs[0].ID.String() >= recs[1].ID.String() {
			t.Errorf("event IDs not time-ordered: %s then %s", recs[0].ID, recs[1].ID)
		}
	})
	t.Run("MetadataPreserved", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		id := uuid.MustParse("0190a3c4-0000-7000-8000-000000000001")
		ts := time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.UTC)
		in := eventstore.Event{
			ID: id, Type: "order.placed", SchemaVersion: 3, Payload: []byte(`{"total":12}`), Timestamp: ts,
			CorrelationID: "req-1", CausationID: "cmd-9", Headers: map[string]string{"tenant": "acme", "trace": "abc"},
		}
		mustAppend(t, s, "orders", "o-1", eventstore.Any, in)
		r := collect(t, s.ReadStream(ctx(t), "orders", "o-1", 0))[0]
		if r.ID != id || r.Type != in.Type || r.SchemaVersion != 3 || !bytes.Equal(r.Payload, in.Payload) || !r.Timestamp.Equal(ts) ||
			r.CorrelationID != "req-1" || r.CausationID != "cmd-9" || len(r.Headers) != 2 || r.Headers["tenant"] != "acme" || r.Headers["trace"] != "abc" {
			t.Fatalf("read back %+v", r)
		}
	})
	t.Run("TombstoneAndEmptyPayload", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "snap", eventstore.TopicConfig{Partitions: 1, Cleanup: eventstore.Compact})
		mustAppend(t, s, "snap", "k", eventstore.Any, eventstore.Event{Type: "s", Payload: []byte{}}, eventstore.Event{Payload: nil})
		recs := collect(t, s.ReadStream(ctx(t), "snap", "k", 0))
		if recs[0].Payload == nil || recs[0].IsTombstone() || len(recs[0].Payload) != 0 {
			t.Errorf("empty payload read back as %#v", recs[0].Payload)
		}
		if !recs[1].IsTombstone() {
			t.Errorf("tombstone read back as %#v", recs[1].Payload)
		}
	})
	t.Run("ConcurrentWritersOnOneStream", func(t *testing.T) {
		// Many writers race on one stream with exact expected versions: every
		// append either lands once or is refused; none is lost or doubled.
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		const writers, each = 8, 25
		var mu sync.Mutex
		landed := map[string]uint64{}
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; {
					head, err := s.HeadVersion(ctx(t), "orders", "hot")
					if err != nil {
						t.Error(err)
						return
					}
					p := fmt.Sprintf("w%d-%d", w, i)
					res, err := s.Append(ctx(t), "orders", "hot", eventstore.Exact(head), []eventstore.Event{ev("inc", p)})
					if errors.Is(err, eventstore.ErrVersionConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					landed[p] = res.FirstVersion
					mu.Unlock()
					i++
				}
			}()
		}
		wg.Wait()
		recs := collect(t, s.ReadStream(ctx(t), "orders", "hot", 0))
		if len(recs) != writers*each || len(landed) != writers*each {
			t.Fatalf("stream has %d events, %d appends acknowledged; want %d", len(recs), len(landed), writers*each)
		}
		for i, r := range recs {
			if r.Version != uint64(i+1) || landed[string(r.Payload)] != r.Version {
				t.Fatalf("event %d: version %d payload %s acknowledged at version %d", i, r.Version, r.Payload, landed[string(r.Payload)])
			}
		}
	})
	t.Run("ConcurrentStreamsShareOrderedPartitions", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 3})
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for v := range 20 {
					if _, err := s.Append(ctx(t), "orders", fmt.Sprintf("o-%d", w), eventstore.Exact(uint64(v)), []eventstore.Event{ev("e", fmt.Sprint(v))}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		total := 0
		for p := range 3 {
			recs := collect(t, s.ReadPartition(ctx(t), "orders", p, 0))
			total += len(recs)
			last := map[string]uint64{}
			for i, r := range recs {
				if r.Offset != int64(i) {
					t.Fatalf("partition %d: record %d at offset %d; offsets must be dense before cleanup", p, i, r.Offset)
				}
				if r.Version != last[r.Key]+1 {
					t.Fatalf("partition %d: %s version %d after %d: a stream is totally ordered in its partition", p, r.Key, r.Version, last[r.Key])
				}
				last[r.Key] = r.Version
			}
		}
		if total != 16*20 {
			t.Fatalf("read %d records, want %d", total, 16*20)
		}
	})
}
