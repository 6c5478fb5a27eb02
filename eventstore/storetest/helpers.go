package storetest

import (
	"fmt"
	"iter"
	"runtime"
	"strings"
	"testing"
	"time"

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

// mustUpdate runs an Update that must succeed.
func mustUpdate(t *testing.T, s Store, fn func(tx eventstore.Txn) error, opts ...eventstore.UpdateOption) {
	t.Helper()
	if err := s.Update(ctx(t), fn, opts...); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// set writes key = value for each pair of kvs in one Update.
func set(t *testing.T, s Store, kvs ...string) {
	t.Helper()
	mustUpdate(t, s, func(tx eventstore.Txn) error {
		for i := 0; i+1 < len(kvs); i += 2 {
			if err := tx.Set([]byte(kvs[i]), []byte(kvs[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
}

// get returns key's value as a string, "<none>" if it has none.
func get(t *testing.T, s Store, key string) string {
	t.Helper()
	v, ok, err := s.Get(ctx(t), []byte(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !ok {
		return "<none>"
	}
	return string(v)
}

// entries drains a Scan into "key=value" strings, failing the test on an
// error.
func entries(t *testing.T, seq iter.Seq2[eventstore.KV, error]) []string {
	t.Helper()
	out, err := scanned(seq)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return out
}

// scanned drains a Scan into "key=value" strings; it stops at the first
// error.
func scanned(seq iter.Seq2[eventstore.KV, error]) ([]string, error) {
	var out []string
	for kv, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, string(kv.Key)+"="+string(kv.Value))
	}
	return out, nil
}

// scanErr returns the first error a Scan yields.
func scanErr(seq iter.Seq2[eventstore.KV, error]) error {
	_, err := scanned(seq)
	return err
}

func tp(topic string, partition int) eventstore.TopicPartition {
	return eventstore.TopicPartition{Topic: topic, Partition: partition}
}

// fill appends n events to every partition of a topic of parts partitions,
// one append (one stream) per partition, and returns each partition's end.
func fill(t *testing.T, s Store, topic string, parts, n int) map[int]int64 {
	t.Helper()
	ends := map[int]int64{}
	for p := range parts {
		events := make([]eventstore.Event, n)
		for i := range events {
			events[i] = ev("e", fmt.Sprintf("%d/%d", p, i))
		}
		res := mustAppend(t, s, topic, keyIn(fmt.Sprint("fill-", p), p, parts), eventstore.Any, events...)
		ends[p] = res.LastOffset + 1
	}
	return ends
}

// mustJoin joins a group; the test's cleanup closes the member.
func mustJoin(t *testing.T, s Store, group string, topics []string, opts ...eventstore.ConsumerOption) eventstore.Consumer {
	t.Helper()
	c, err := s.JoinGroup(ctx(t), group, topics, opts...)
	if err != nil {
		t.Fatalf("JoinGroup(%q, %v): %v", group, topics, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// drain TryPolls c until a short batch says it has caught up, and returns
// what it read.
func drain(t *testing.T, c eventstore.Consumer) []eventstore.Record {
	t.Helper()
	var out []eventstore.Record
	for {
		recs, err := c.TryPoll(ctx(t), 100)
		if err != nil {
			t.Fatalf("TryPoll by %s: %v", c.ID(), err)
		}
		out = append(out, recs...)
		if len(recs) < 100 {
			return out
		}
	}
}

// byPartition groups records by topic and partition, keeping their order.
func byPartition(recs []eventstore.Record) map[eventstore.TopicPartition][]int64 {
	out := map[eventstore.TopicPartition][]int64{}
	for _, r := range recs {
		k := tp(r.Topic, r.Partition)
		out[k] = append(out[k], r.Offset)
	}
	return out
}

// span returns the offsets from..to-1.
func span(from, to int64) []int64 {
	var out []int64
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}

// within waits for a value on ch, failing the test if none comes within a
// generous bound (a guard against a hang, not a timing condition).
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing within 10s", what)
		var zero T
		return zero
	}
}

// letRun yields the processor a while, so that a goroutine just started
// has likely reached its wait when the test acts. It is used only where
// the outcome must be the same whether it has or not: it makes the waiting
// path likely to be exercised, never required, and no result depends on it.
func letRun() {
	for range 100 {
		runtime.Gosched()
	}
}
