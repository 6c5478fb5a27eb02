package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

func runCleanup(t *testing.T, h Harness) {
	t.Run("DeleteByAge", func(t *testing.T) {
		s, c := open(t, h)
		mustCreate(t, s, "logs", eventstore.TopicConfig{Partitions: 1, Cleanup: eventstore.Delete, RetentionAge: time.Hour})
		for i := range 10 {
			mustAppend(t, s, "logs", fmt.Sprint("k", i%3), eventstore.Any, ev("e", fmt.Sprint(i)))
			c.Advance(10 * time.Minute)
		}
		// Now is 100 minutes after the first record: records 0..3 (written
		// at 0, 10, 20, 30 min) are older than an hour, record 4 (40 min) is not.
		st, err := s.Cleanup(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		recs := collect(t, s.ReadPartition(ctx(t), "logs", 0, 0))
		if !slices.Equal(offsets(recs), []int64{4, 5, 6, 7, 8, 9}) || st.Records != 4 {
			t.Fatalf("after cleanup: offsets %v, stats %+v; want 4..9 and 4 removed", offsets(recs), st)
		}
		info, _ := s.DescribeTopic(ctx(t), "logs")
		if p := info.Partitions[0]; p.StartOffset != 4 || p.EndOffset != 10 || p.Records != 6 {
			t.Errorf("partition after cleanup: %+v", p)
		}
		// Streams lose the removed events too, and keep their versions.
		if got := versions(collect(t, s.ReadStream(ctx(t), "logs", "k0", 0))); got != "3,4" {
			t.Errorf("stream k0 after cleanup: versions %s, want 3,4", got)
		}
		if v, _ := s.HeadVersion(ctx(t), "logs", "k1"); v != 3 {
			t.Errorf("HeadVersion of k1 = %d, want 3", v)
		}
		// Offsets continue after the gap.
		res := mustAppend(t, s, "logs", "k0", eventstore.Exact(4), ev("e", "new"))
		if res.FirstOffset != 10 || res.FirstVersion != 5 {
			t.Errorf("append after cleanup landed at offset %d version %d", res.FirstOffset, res.FirstVersion)
		}
	})
	t.Run("DeleteByBytes", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "logs", eventstore.TopicConfig{Partitions: 1, Cleanup: eventstore.Delete, RetentionBytes: 4000})
		for i := range 20 {
			mustAppend(t, s, "logs", "k", eventstore.Any, eventstore.Event{Type: "e", Payload: make([]byte, 500)})
			_ = i
		}
		if _, err := s.Cleanup(ctx(t)); err != nil {
			t.Fatal(err)
		}
		info, _ := s.DescribeTopic(ctx(t), "logs")
		p := info.Partitions[0]
		if p.Bytes > 4000 || p.Bytes < 3000 || p.EndOffset != 20 {
			t.Fatalf("partition after size cleanup: %+v; want at most 4000 bytes, close to it", p)
		}
		recs := collect(t, s.ReadPartition(ctx(t), "logs", 0, 0))
		if int64(len(recs)) != p.Records || recs[len(recs)-1].Offset != 19 || recs[0].Offset != p.StartOffset {
			t.Fatalf("read %d records from %d; describe says %+v", len(recs), recs[0].Offset, p)
		}
	})
	t.Run("CompactKeepsNewestPerKey", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "snap", eventstore.TopicConfig{Partitions: 1, Cleanup: eventstore.Compact})
		for i := range 5 {
			for _, k := range []string{"a", "b", "c"} {
				mustAppend(t, s, "snap", k, eventstore.Any, ev("s", fmt.Sprintf("%s%d", k, i)))
			}
		}
		st, err := s.Cleanup(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		recs := collect(t, s.ReadPartition(ctx(t), "snap", 0, 0))
		if payloads(recs) != "a4,b4,c4" || !slices.Equal(offsets(recs), []int64{12, 13, 14}) || st.Records != 12 {
			t.Fatalf("compacted: %s at %v (stats %+v); want a4,b4,c4 at their original offsets 12,13,14", payloads(recs), offsets(recs), st)
		}
		if got := collect(t, s.ReadStream(ctx(t), "snap", "b", 0)); versions(got) != "5" {
			t.Errorf("stream b after compaction: versions %s, want 5", versions(got))
		}
		// Compaction is idempotent.
		if st, _ := s.Cleanup(ctx(t)); st.Records != 0 {
			t.Errorf("second compaction removed %d records", st.Records)
		}
	})
	t.Run("TombstoneRemovedAfterGrace", func(t *testing.T) {
		s, c := open(t, h)
		mustCreate(t, s, "snap", eventstore.TopicConfig{Partitions: 1, Cleanup: eventstore.Compact, TombstoneGrace: time.Hour})
		mustAppend(t, s, "snap", "a", eventstore.Any, ev("s", "a1"))
		mustAppend(t, s, "snap", "b", eventstore.Any, ev("s", "b1"))
		mustAppend(t, s, "snap", "a", eventstore.Any, eventstore.Event{Payload: nil})
		if _, err := s.Cleanup(ctx(t)); err != nil {
			t.Fatal(err)
		}
		recs := collect(t, s.ReadPartition(ctx(t), "snap", 0, 0))
		if payloads(recs) != "b1,<nil>" {
			t.Fatalf("within grace: %s, want b1 and a's tombstone", payloads(recs))
		}
		c.Advance(61 * time.Minute)
		if _, err := s.Cleanup(ctx(t)); err != nil {
			t.Fatal(err)
		}
		recs = collect(t, s.ReadPartition(ctx(t), "snap", 0, 0))
		if payloads(recs) != "b1" {
			t.Fatalf("after grace: %s, want b1", payloads(recs))
		}
		if v, _ := s.HeadVersion(ctx(t), "snap", "a"); v != 0 {
			t.Errorf("deleted key a has head %d, want 0", v)
		}
		// The key can start again from scratch; offsets keep growing.
		res := mustAppend(t, s, "snap", "a", eventstore.NoStream, ev("s", "a-again"))
		if res.FirstOffset != 3 || res.FirstVersion != 1 {
			t.Errorf("re-created key at offset %d version %d", res.FirstOffset, res.FirstVersion)
		}
	})
	t.Run("RetainNeverRemoves", func(t *testing.T) {
		s, c := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		for i := range 5 {
			mustAppend(t, s, "orders", "o", eventstore.Exact(uint64(i)), ev("e", "x"))
		}
		c.Advance(10000 * time.Hour)
		if st, err := s.Cleanup(ctx(t)); err != nil || st.Records != 0 {
			t.Fatalf("cleanup of a retain topic: %+v, %v", st, err)
		}
		if n := len(collect(t, s.ReadPartition(ctx(t), "orders", 0, 0))); n != 5 {
			t.Fatalf("%d records left of 5", n)
		}
	})
	t.Run("ReadersStayCorrectDuringCleanup", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "snap", eventstore.TopicConfig{Partitions: 1, Cleanup: eventstore.Compact})
		for i := range 300 {
			mustAppend(t, s, "snap", fmt.Sprint("k", i%10), eventstore.Any, ev("s", fmt.Sprint(i)))
		}
		// A reader that is half-way through when compaction runs sees
		// records in increasing offset order, each intact.
		var last int64 = -1
		n := 0
		for rec, err := range s.ReadPartition(ctx(t), "snap", 0, 0) {
			if err != nil {
				t.Fatal(err)
			}
			if rec.Offset <= last || string(rec.Payload) != fmt.Sprint(rec.Offset) {
				t.Fatalf("record %d after %d with payload %s", rec.Offset, last, rec.Payload)
			}
			last = rec.Offset
			if n++; n == 50 {
				if _, err := s.Cleanup(ctx(t)); err != nil {
					t.Fatal(err)
				}
			}
		}
		recs := collect(t, s.ReadPartition(ctx(t), "snap", 0, 0))
		if len(recs) != 10 || recs[0].Offset != 290 {
			t.Fatalf("after compaction: %d records from %d", len(recs), recs[0].Offset)
		}
	})
}
