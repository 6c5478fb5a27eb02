package storetest

import (
	"fmt"
	"iter"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/eventstore"
)

func mustCreate(t *testing.T, s Store, name string, cfg eventstore.TopicConfig) {
	t.Helper()
	if err := s.CreateTopic(ctx(t), name, cfg); err != nil {
		t.Fatalf("CreateTopic(%q): %v", name, err)
	}
}

func mustAppend(t *testing.T, s Store, topic, key string, expected eventstore.ExpectedVersion, events ...eventstore.Event) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(ctx(t), topic, key, expected, events)
	if err != nil {
		t.Fatalf("Append(%s, %q, %s): %v", topic, key, expected, err)
	}
	return res
}

func ev(typ, payload string) eventstore.Event {
	return eventstore.Event{Type: typ, Payload: []byte(payload)}
}

// collect drains a sequence, failing the test on an error.
func collect(t *testing.T, seq iter.Seq2[eventstore.Record, error]) []eventstore.Record {
	t.Helper()
	var out []eventstore.Record
	for rec, err := range seq {
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		out = append(out, rec)
	}
	return out
}

// firstErr returns the first error a sequence yields.
func firstErr(seq iter.Seq2[eventstore.Record, error]) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}

func payloads(recs []eventstore.Record) string {
	var b strings.Builder
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		if r.Payload == nil {
			b.WriteString("<nil>")
		} else {
			b.Write(r.Payload)
		}
	}
	return b.String()
}

func versions(recs []eventstore.Record) string {
	var b strings.Builder
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, r.Version)
	}
	return b.String()
}

func offsets(recs []eventstore.Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Offset
	}
	return out
}

// keyIn returns a key that lands in the given partition of n.
func keyIn(prefix string, partition, n int) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s-%d", prefix, i)
		if eventstore.PartitionFor(k, n) == partition {
			return k
		}
	}
}
