package saga

import (
	"context"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
)

// The source delivers the due deadlines before the group's records, and
// Rewind, after a rebalance voided a batch, delivers again both the
// deadlines in flight and the records past the group's committed offsets;
// a committed deadline is not delivered again.
func TestSourceRewind(t *testing.T) {
	ctx := t.Context()
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.CreateTopic(ctx, "jobs", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a", "b", "c"} {
		if _, err := store.Append(ctx, "jobs", key, eventstore.Any, []eventstore.Event{{Type: "job.opened", Payload: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	bus, err := command.New(store)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	def := Define[struct{}]("rewind", "jobs")
	StartOn(def, "job.opened", RecordKey[struct{}], func(*Step[struct{}], struct{}) error { return nil })
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := New(store, bus, def, WithClock(clock.NewManual(t0)))
	if err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run[struct{}]{s: s, d: newDispatcher(s, dctx, func(error) {}), inflight: map[string]timer{}, works: map[recPos]prepared[struct{}]{}, purgeAt: t0.Add(time.Hour)}
	r.timers.push(timer{at: t0.Add(-time.Minute), key: "a", name: "remind", id: "d-1"})
	r.timers.push(timer{at: t0.Add(time.Minute), key: "b", name: "remind", id: "d-2"})
	g, err := consume.JoinGroup(ctx, store, s.group, def.topics)
	if err != nil {
		t.Fatal(err)
	}
	src := &source[struct{}]{g: g, r: r}
	defer src.Close()

	poll := func(what string, want ...string) []eventstore.Record {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		recs, err := src.Poll(pctx, 10)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var got []string
		for _, rec := range recs {
			if rec.Topic == "" {
				got = append(got, "deadline "+rec.CausationID+" of "+rec.Key)
			} else {
				got = append(got, "record of "+rec.Key)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: polled %q, want %q", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: polled %q, want %q", what, got, want)
			}
		}
		return recs
	}
	records := []string{"record of a", "record of b", "record of c"}
	poll("first poll", "deadline d-1 of a")
	poll("second poll", records...)
	if err := src.Rewind(ctx); err != nil {
		t.Fatal(err)
	}
	due := poll("after a rewind", "deadline d-1 of a")
	recs := poll("after a rewind, the records", records...)

	// The deadline's batch commits, the records' does not.
	src.Committed(due)
	if err := src.Rewind(ctx); err != nil {
		t.Fatal(err)
	}
	poll("after the deadline committed", records...)

	// The records commit up to b: the next rewind starts at c.
	if err := store.Update(ctx, func(tx eventstore.Txn) error { return src.Stage(tx, recs[:2]) }); err != nil {
		t.Fatal(err)
	}
	src.Committed(recs[:2])
	if err := src.Rewind(ctx); err != nil {
		t.Fatal(err)
	}
	poll("after b committed", "record of c")
	if r.timers.len() != 2 || len(r.inflight) != 0 {
		t.Errorf("%d live timers (the committed deadline is unset by its batch), %d in flight", r.timers.len(), len(r.inflight))
	}
}
