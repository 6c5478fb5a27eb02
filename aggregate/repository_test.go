package aggregate_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/eventstore"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// add saves n Add commands on id, one per save, through Decide.
func add(t testing.TB, r *aggregate.Repository[Tally, TallyCommand, TallyEvent], id string, n int) *aggregate.State[Tally] {
	t.Helper()
	ctx := t.Context()
	var st *aggregate.State[Tally]
	for i := range n {
		var err error
		if st, err = r.Load(ctx, id); err != nil {
			t.Fatal(err)
		}
		evs, err := r.Aggregate().Decide(st.State, Add{N: i + 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Save(ctx, st, evs); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func TestRepositoryLoadSave(t *testing.T) {
	s := openMem(t)
	r := newRepo(t, s, newTally(t))
	ctx := t.Context()
	st, err := r.Load(ctx, "t-1")
	if err != nil || st.Version != 0 || !reflect.DeepEqual(st.State, Tally{}) {
		t.Fatalf("Load of a new aggregate = %+v, %v", st, err)
	}
	res, err := r.Save(ctx, st, []TallyEvent{Added{Amount: 2}, Added{Amount: 3, Note: "x"}},
		aggregate.WithLineage("corr", "cause"), aggregate.WithHeaders(map[string]string{"h": "v"}))
	if err != nil {
		t.Fatal(err)
	}
	if res.FirstVersion != 1 || res.LastVersion != 2 || st.Version != 2 || st.State.Total != 5 {
		t.Fatalf("Save = %+v, state %+v", res, st)
	}
	for rec, err := range s.ReadStream(ctx, "tally", "t-1", 0) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type != "tally.added" || rec.SchemaVersion != 3 || rec.CorrelationID != "corr" || rec.CausationID != "cause" || rec.Headers["h"] != "v" {
			t.Errorf("stored record %+v", rec)
		}
	}
	again, err := r.Load(ctx, "t-1")
	if err != nil || again.Version != 2 || !reflect.DeepEqual(again.State, st.State) || again.Replayed != 2 {
		t.Fatalf("reload = %+v, %v; want %+v", again, err, st)
	}

	// A stale state conflicts and writes nothing.
	stale, _ := r.Load(ctx, "t-1")
	if _, err := r.Save(ctx, again, []TallyEvent{Cleared{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Save(ctx, stale, []TallyEvent{Added{Amount: 1}}); !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("stale save = %v, want a version conflict", err)
	}
	if h, _ := s.HeadVersion(ctx, "tally", "t-1"); h != 3 {
		t.Fatalf("head = %d after a conflicting save, want 3", h)
	}

	// Bad input.
	if _, err := r.Load(ctx, ""); !errors.Is(err, aggregate.ErrInvalidArgument) {
		t.Errorf("Load(\"\") = %v", err)
	}
	if _, err := r.Save(ctx, &aggregate.State[Tally]{ID: "x"}, []TallyEvent{unregistered{}}); !errors.Is(err, aggregate.ErrUnknownEventType) {
		t.Errorf("Save(unregistered) = %v", err)
	}
	if h, _ := s.HeadVersion(ctx, "tally", "x"); h != 0 {
		t.Errorf("an unregistered event was appended")
	}
}

func TestLoadNamesUndecodableEvent(t *testing.T) {
	s := openMem(t)
	r := newRepo(t, s, newTally(t))
	add(t, r, "t-1", 2)
	if _, err := s.Append(t.Context(), "tally", "t-1", eventstore.Exact(2), []eventstore.Event{{Type: "tally.bogus", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	_, err := r.Load(t.Context(), "t-1")
	if !errors.Is(err, aggregate.ErrUnknownEventType) || !strings.Contains(err.Error(), `stream "t-1" version 3`) || !strings.Contains(err.Error(), "tally.bogus") {
		t.Fatalf("Load = %v, want an unknown-type error naming stream, version and type", err)
	}
}

func TestLoadUpcastsStoredOldVersions(t *testing.T) {
	s := openMem(t)
	r := newRepo(t, s, newTally(t))
	ctx := t.Context()
	// Events as an older program wrote them.
	old := []eventstore.Event{
		{Type: "tally.add", SchemaVersion: 1, Payload: []byte(`{"n":1}`)},
		{Type: "tally.added", SchemaVersion: 2, Payload: []byte(`{"amount":10}`)},
		{Type: "tally.added", SchemaVersion: 3, Payload: []byte(`{"amount":100,"note":"now"}`)},
	}
	if _, err := s.Append(ctx, "tally", "t-1", eventstore.NoStream, old); err != nil {
		t.Fatal(err)
	}
	st, err := r.Load(ctx, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	want := Tally{Total: 111, Count: 3, Notes: []string{"from v2", "from v2", "now"}}
	if !reflect.DeepEqual(st.State, want) || st.Version != 3 {
		t.Fatalf("state = %+v at v%d, want %+v at v3", st.State, st.Version, want)
	}
}

func TestSnapshotsEveryN(t *testing.T) {
	s := openMem(t)
	r := newRepo(t, s, newTally(t, aggregate.WithSnapshots(10)))
	ctx := t.Context()
	st := add(t, r, "t-1", 25)
	got, err := r.Load(ctx, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.SnapshotVersion != 20 || got.Replayed != 5 || got.Version != 25 || got.SnapshotSkipped != "" {
		t.Fatalf("Load: snapshot v%d, replayed %d, version %d, skipped %q; want snapshot v20, 5 replayed, v25",
			got.SnapshotVersion, got.Replayed, got.Version, got.SnapshotSkipped)
	}
	if !reflect.DeepEqual(got.State, st.State) || got.State.Total != 25*26/2 {
		t.Fatalf("state from snapshot %+v, want %+v", got.State, st.State)
	}
	info, err := s.DescribeTopic(ctx, "tally.snapshots")
	if err != nil || info.Config.Cleanup != eventstore.Compact {
		t.Fatalf("snapshot topic = %+v, %v; want a compacted topic", info.Config, err)
	}
	// Two snapshots were written (v10, v20); compaction keeps the newest.
	if _, err := s.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range s.ReadStream(ctx, "tally.snapshots", "t-1", 0) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("%d snapshot records after compaction, want 1", n)
	}
	// A save of several events that crosses a multiple snapshots too.
	st, _ = r.Load(ctx, "t-1")
	if _, err := r.Save(ctx, st, []TallyEvent{Added{Amount: 1}, Added{Amount: 1}, Added{Amount: 1}, Added{Amount: 1}, Added{Amount: 1}, Added{Amount: 1}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Load(ctx, "t-1"); got.SnapshotVersion != 31 || got.Replayed != 0 {
		t.Errorf("after a save of 6 from v25: snapshot v%d, replayed %d; want v31, 0", got.SnapshotVersion, got.Replayed)
	}
}

func TestSnapshotSchemaChangeReplays(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	v1 := newRepo(t, s, newTally(t, aggregate.WithSnapshots(10)))
	want := add(t, v1, "t-1", 15).State

	// The program changes its state's shape and says so.
	v2 := newRepo(t, s, newTally(t, aggregate.WithSnapshots(10), aggregate.WithSnapshotSchema(2)))
	got, err := v2.Load(ctx, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.SnapshotVersion != 0 || got.Replayed != 15 || !strings.Contains(got.SnapshotSkipped, "schema v1, want v2") {
		t.Fatalf("Load with a new schema: snapshot v%d, replayed %d, skipped %q; want a full replay",
			got.SnapshotVersion, got.Replayed, got.SnapshotSkipped)
	}
	if !reflect.DeepEqual(got.State, want) {
		t.Fatalf("replayed state %+v, want %+v", got.State, want)
	}
	// The next snapshot is written at the new schema and used.
	add(t, v2, "t-1", 5)
	if got, _ := v2.Load(ctx, "t-1"); got.SnapshotVersion != 20 || got.SnapshotSkipped != "" {
		t.Fatalf("after new snapshot: snapshot v%d, skipped %q", got.SnapshotVersion, got.SnapshotSkipped)
	}
	// The old program ignores the new schema in turn.
	if got, _ := v1.Load(ctx, "t-1"); got.SnapshotVersion != 0 || got.Replayed != 20 {
		t.Fatalf("old program: snapshot v%d, replayed %d", got.SnapshotVersion, got.Replayed)
	}
}

func TestBadSnapshotsAreIgnored(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	r := newRepo(t, s, newTally(t))
	want := add(t, r, "t-1", 5).State
	put := func(payload []byte) {
		t.Helper()
		if _, err := s.Append(ctx, "tally.snapshots", "t-1", eventstore.Any, []eventstore.Event{{Type: "muninn.snapshot", Payload: payload}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		skipped string
	}{
		{"newer than the stream (restored store)", aggregate.EncodeSnapshot(aggregate.Snapshot{StreamVersion: 100, Schema: 1, State: []byte(`{"Total":1}`)}), "newer than the stream"},
		{"garbage", []byte("garbage"), "bad magic"},
		{"undecodable state", aggregate.EncodeSnapshot(aggregate.Snapshot{StreamVersion: 3, Schema: 1, State: []byte(`{"Total":"x"}`)}), "undecodable state"},
		{"truncated", aggregate.EncodeSnapshot(aggregate.Snapshot{StreamVersion: 3, Schema: 1})[:4], "bad stream version"},
	} {
		put(tc.payload)
		got, err := r.Load(ctx, "t-1")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.SnapshotVersion != 0 || got.Replayed != 5 || !strings.Contains(got.SnapshotSkipped, tc.skipped) || !reflect.DeepEqual(got.State, want) {
			t.Errorf("%s: snapshot v%d, replayed %d, skipped %q, state %+v", tc.name, got.SnapshotVersion, got.Replayed, got.SnapshotSkipped, got.State)
		}
	}
	// A tombstone deletes the snapshot: a plain replay.
	if _, err := s.Append(ctx, "tally.snapshots", "t-1", eventstore.Any, []eventstore.Event{{}}); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Load(ctx, "t-1"); err != nil || got.Replayed != 5 || got.SnapshotSkipped != "" {
		t.Errorf("after a tombstone: %+v, %v", got, err)
	}
	// A good snapshot written by hand is used.
	if err := r.Snapshot(ctx, &aggregate.State[Tally]{ID: "t-1", Version: 4, State: Tally{Total: 1000, Count: 4}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Load(ctx, "t-1"); got.SnapshotVersion != 4 || got.State.Total != 1005 {
		t.Errorf("hand-written snapshot not used: %+v", got)
	}
}

func TestRepositoryTopics(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	a := newTally(t, aggregate.WithTopic("tallies"), aggregate.WithPartitions(3))
	newRepo(t, s, a)
	for name, policy := range map[string]eventstore.CleanupPolicy{"tallies": eventstore.Retain, "tallies.snapshots": eventstore.Compact} {
		info, err := s.DescribeTopic(ctx, name)
		if err != nil || len(info.Partitions) != 3 || info.Config.Cleanup != policy {
			t.Errorf("topic %s = %+v, %v", name, info.Config, err)
		}
	}
	newRepo(t, s, a) // existing topics are fine

	if err := s.CreateTopic(ctx, "other.snapshots", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := aggregate.NewRepository(ctx, s, newTally(t, aggregate.WithTopic("other")))
	if !errors.Is(err, aggregate.ErrInvalidArgument) || !strings.Contains(err.Error(), "cleanup policy") {
		t.Errorf("NewRepository with a retained snapshot topic = %v", err)
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := aggregate.New[Tally, TallyCommand, TallyEvent]("bad name!", aggregate.Decider[Tally, TallyCommand, TallyEvent]{}, nil,
		aggregate.WithPartitions(0), aggregate.WithSnapshots(-1), aggregate.WithSnapshotSchema(0), aggregate.WithSnapshotCodec(nil))
	if err == nil {
		t.Fatal("New accepted a bad definition")
	}
	for _, want := range []string{"Decide is nil", "Evolve is nil", "registry is nil", "topic", "WithPartitions", "WithSnapshots", "WithSnapshotSchema", "WithSnapshotCodec"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestPanicsBecomeErrors(t *testing.T) {
	d := tallyDecider()
	d.Decide = func(Tally, TallyCommand) ([]TallyEvent, error) { panic("decide") }
	d.Evolve = func(Tally, TallyEvent) Tally { panic("evolve") }
	a, err := aggregate.New("p", d, tallyEvents(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Decide(Tally{}, Add{}); !errors.Is(err, aggregate.ErrPanic) {
		t.Errorf("Decide panic = %v", err)
	}
	// Save refuses events its Evolve cannot apply, before appending.
	s := openMem(t)
	r, err := aggregate.NewRepository(t.Context(), s, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Save(t.Context(), &aggregate.State[Tally]{ID: "x"}, []TallyEvent{Added{}}); !errors.Is(err, aggregate.ErrPanic) {
		t.Errorf("Save with a panicking Evolve = %v", err)
	}
	if h, _ := s.HeadVersion(t.Context(), "p", "x"); h != 0 {
		t.Errorf("events were appended although Evolve panicked")
	}
}

func TestLoadHonoursContext(t *testing.T) {
	s := openMem(t)
	r := newRepo(t, s, newTally(t))
	add(t, r, "t-1", 3)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Load(ctx, "t-1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context = %v", err)
	}
}

func ExampleRepository() {
	ctx := context.Background()
	store, _ := eventstore.OpenMem()
	defer store.Close()
	events, _ := aggregate.NewEvents[TallyEvent](aggregate.Type[Added]("tally.added", aggregate.Schema(3)))
	tally, _ := aggregate.New("tally", tallyDecider(), events, aggregate.WithSnapshots(2))
	repo, _ := aggregate.NewRepository(ctx, store, tally)

	for i := range 3 {
		st, _ := repo.Load(ctx, "t-1")
		evs, _ := tally.Decide(st.State, Add{N: i + 1})
		_, _ = repo.Save(ctx, st, evs)
	}
	st, _ := repo.Load(ctx, "t-1")
	fmt.Printf("total %d at version %d (snapshot at %d, %d replayed)\n", st.State.Total, st.Version, st.SnapshotVersion, st.Replayed)
	// Output: total 6 at version 3 (snapshot at 2, 1 replayed)
}

func TestStateCache(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	r := newRepo(t, s, newTally(t, aggregate.WithCache(2)))
	want := add(t, r, "t-1", 5).State
	st, err := r.Load(ctx, "t-1")
	if err != nil || !st.Cached || st.Replayed != 0 || st.Version != 5 || !reflect.DeepEqual(st.State, want) {
		t.Fatalf("cached load = %+v, %v", st, err)
	}
	// A loaded state is a copy: changing it in place does not reach the cache.
	st.State.Notes = append(st.State.Notes, "scribble")
	st.State.Total = -1
	if again, _ := r.Load(ctx, "t-1"); !reflect.DeepEqual(again.State, want) {
		t.Fatalf("cache was changed through a loaded state: %+v", again.State)
	}
	// Events appended elsewhere are read after the cached state.
	if _, err := s.Append(ctx, "tally", "t-1", eventstore.Exact(5), []eventstore.Event{{Type: "tally.added", SchemaVersion: 3, Payload: []byte(`{"amount":100}`)}}); err != nil {
		t.Fatal(err)
	}
	st, err = r.Load(ctx, "t-1")
	if err != nil || !st.Cached || st.Replayed != 1 || st.State.Total != want.Total+100 {
		t.Fatalf("load after a foreign append = %+v, %v", st, err)
	}
	// Least recently used out.
	add(t, r, "t-2", 1)
	add(t, r, "t-3", 1)
	if st, _ := r.Load(ctx, "t-1"); st.Cached {
		t.Error("t-1 still cached after two newer aggregates in a cache of 2")
	}
	// A stream rewound below the cached version (a restored store) is
	// replayed, not trusted.
	if err := s.DeleteTopic(ctx, "tally"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTopic(ctx, "tally", eventstore.TopicConfig{Partitions: 8}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "tally", "t-1", eventstore.NoStream, []eventstore.Event{{Type: "tally.added", SchemaVersion: 3, Payload: []byte(`{"amount":7}`)}}); err != nil {
		t.Fatal(err)
	}
	// The first load trusts the cache; its save conflicts and drops it.
	st, err = r.Load(ctx, "t-1")
	if err != nil || !st.Cached {
		t.Fatalf("load of a rewound stream = %+v, %v", st, err)
	}
	if _, err := r.Save(ctx, st, []TallyEvent{Added{Amount: 1}}); !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("save on a stale cached state = %v, want a conflict", err)
	}
	st, err = r.Load(ctx, "t-1")
	if err != nil || st.Cached || st.Version != 1 || st.State.Total != 7 {
		t.Fatalf("load after the conflict = %+v, %v", st, err)
	}
}

func TestTrustCacheAndCatchUp(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	r := newRepo(t, s, newTally(t, aggregate.WithCache(10)))
	add(t, r, "t-1", 3)
	if _, err := s.Append(ctx, "tally", "t-1", eventstore.Exact(3), []eventstore.Event{{Type: "tally.added", SchemaVersion: 3, Payload: []byte(`{"amount":100}`)}}); err != nil {
		t.Fatal(err)
	}
	st, err := r.Load(ctx, "t-1", aggregate.TrustCache())
	if err != nil || !st.Unverified || st.Version != 3 {
		t.Fatalf("trusted load = %+v, %v; want the cached, unverified v3", st, err)
	}
	stale := *st
	moved, err := r.CatchUp(ctx, st)
	if err != nil || !moved || st.Unverified || st.Version != 4 || st.State.Total != 106 {
		t.Fatalf("CatchUp = %v, %v; state %+v", moved, err, st)
	}
	if moved, err := r.CatchUp(ctx, st); err != nil || moved {
		t.Fatalf("second CatchUp = %v, %v", moved, err)
	}
	// The catch-up refreshed the cache.
	if st, _ := r.Load(ctx, "t-1", aggregate.TrustCache()); st.Version != 4 {
		t.Fatalf("cache after CatchUp at v%d, want v4", st.Version)
	}
	// A save on the stale state conflicts; the cache keeps the newer entry.
	if _, err := r.Save(ctx, &stale, []TallyEvent{Added{Amount: 1}}); !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("save on a stale state = %v", err)
	}
	if st, _ := r.Load(ctx, "t-1", aggregate.TrustCache()); !st.Cached || st.Version != 4 {
		t.Fatalf("cache after a stale conflict: %+v", st)
	}
	// Without a cache, TrustCache changes nothing.
	plain := newRepo(t, openMem(t), newTally(t))
	add(t, plain, "x", 2)
	if st, err := plain.Load(ctx, "x", aggregate.TrustCache()); err != nil || st.Unverified || st.Version != 2 {
		t.Fatalf("TrustCache without a cache = %+v, %v", st, err)
	}
}

// TestProtobufStateAndEvents runs a repository whose state and events are
// proto messages: events and snapshots go through Protobuf's binary form.
func TestProtobufStateAndEvents(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	events, err := aggregate.NewEvents[*wrapperspb.Int64Value](aggregate.Type[*wrapperspb.Int64Value]("counter.added"))
	if err != nil {
		t.Fatal(err)
	}
	counter, err := aggregate.New("counter", aggregate.Decider[*wrapperspb.Int64Value, int64, *wrapperspb.Int64Value]{
		Initial: func() *wrapperspb.Int64Value { return wrapperspb.Int64(0) },
		Decide: func(_ *wrapperspb.Int64Value, n int64) ([]*wrapperspb.Int64Value, error) {
			return []*wrapperspb.Int64Value{wrapperspb.Int64(n)}, nil
		},
		Evolve: func(s *wrapperspb.Int64Value, e *wrapperspb.Int64Value) *wrapperspb.Int64Value {
			return wrapperspb.Int64(s.GetValue() + e.GetValue())
		},
	}, events, aggregate.WithSnapshots(3), aggregate.WithCache(4))
	if err != nil {
		t.Fatal(err)
	}
	r, err := aggregate.NewRepository(ctx, s, counter)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		st, err := r.Load(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		evs, _ := counter.Decide(st.State, int64(i+1))
		if _, err := r.Save(ctx, st, evs); err != nil {
			t.Fatal(err)
		}
	}
	for rec, err := range s.ReadStream(ctx, "counter", "c", 0) {
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Payload) != 2 { // field 1, varint: two bytes, not JSON
			t.Errorf("payload %x is not Protobuf's binary form", rec.Payload)
		}
	}
	cold, err := aggregate.NewRepository(ctx, s, counter) // an empty cache
	if err != nil {
		t.Fatal(err)
	}
	st, err := cold.Load(ctx, "c")
	if err != nil || st.State.GetValue() != 10 || st.SnapshotVersion != 3 || st.Replayed != 1 {
		t.Fatalf("load = %v at v%d from snapshot v%d (%d replayed), %v", st.State, st.Version, st.SnapshotVersion, st.Replayed, err)
	}
	if st, _ := r.Load(ctx, "c"); !st.Cached || st.State.GetValue() != 10 {
		t.Fatalf("cached load = %+v", st)
	}
}
