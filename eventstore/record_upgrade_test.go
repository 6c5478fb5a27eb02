package eventstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"maps"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninn-es/muninn/clock"
)

// legacyValue returns the format 1 value of r, whose traceparent must be
// canonical: what the encoder wrote before format 2. It encodes r with the
// traceparent's hex in upper case (which format 1 keeps as a header), then
// lowers it and recomputes the checksum.
func legacyValue(t *testing.T, r *Record) []byte {
	t.Helper()
	tp := r.Headers[HeaderTraceparent]
	if _, ok := traceparentBinary(tp); !ok {
		t.Fatalf("traceparent %q is not canonical", tp)
	}
	upper := *r
	upper.Headers = maps.Clone(r.Headers)
	upper.Headers[HeaderTraceparent] = string(bytes.ToUpper([]byte(tp)))
	v := appendRecord(nil, &upper)
	if v[0] != recordFormat {
		t.Fatalf("upper-case traceparent encoded in format %d", v[0])
	}
	i := bytes.Index(v, []byte(upper.Headers[HeaderTraceparent]))
	copy(v[i:], tp)
	binary.BigEndian.PutUint32(v[1:], recordChecksum(v[0], v[5:]))
	return v
}

// TestCleanupCountsStoredSizeOfLegacyRecords replaces a store's records by
// the format 1 values of the same records (a store written before format
// 2), then checks that they read back unchanged and that cleanup counts
// the bytes they take, not the smaller size they would re-encode to.
func TestCleanupCountsStoredSizeOfLegacyRecords(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s, err := OpenMem(WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "logs", TopicConfig{Partitions: 1, Cleanup: Delete, RetentionAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	const n = 5
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for range n {
		if _, err := s.Append(ctx, "logs", "k", Any, []Event{{Type: "e", Payload: []byte("x"),
			Headers: map[string]string{HeaderTraceparent: tp, "tenant": "t1"}}}); err != nil {
			t.Fatal(err)
		}
	}
	topic, _ := s.topic("logs")
	var want []Record
	var legacyBytes int64
	for off := range int64(n) {
		logKey := appendLogKey(nil, topic.meta.ID, 0, off)
		v, closer, err := s.db.Get(logKey)
		if err != nil {
			t.Fatal(err)
		}
		if v[0] != recordFormatTraced {
			t.Fatalf("offset %d stored in format %d, want %d", off, v[0], recordFormatTraced)
		}
		var rec Record
		reason := decodeRecord(cloneValue(v), &rec)
		closer.Close()
		if reason != "" {
			t.Fatal(reason)
		}
		old := legacyValue(t, &rec)
		if len(old) != len(v)+43 {
			t.Fatalf("format 1 value is %d bytes, want %d (43 more than format 2's)", len(old), len(v)+43)
		}
		legacyBytes += int64(len(old))
		for _, key := range [][]byte{logKey, appendStreamKey(nil, topic.meta.ID, "k", rec.Version)} {
			if err := s.db.Set(key, old, pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}
		rec.Topic = "logs"
		want = append(want, rec)
	}
	i := 0
	for rec, err := range s.ReadStream(ctx, "logs", "k", 0) {
		if err != nil {
			t.Fatalf("reading format 1 records: %v", err)
		}
		if diff := equalRecords(&rec, &want[i]); diff != "" {
			t.Fatalf("format 1 record %d read back as %s", i, diff)
		}
		i++
	}
	if i != n {
		t.Fatalf("read %d records, want %d", i, n)
	}
	clk.Advance(2 * time.Hour)
	st, err := s.Cleanup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != n || st.Bytes != legacyBytes {
		t.Fatalf("cleanup removed %d records of %d bytes, want %d of %d (their stored size)", st.Records, st.Bytes, n, legacyBytes)
	}
}
