package stream_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
	"github.com/muninn-es/muninn/stream"
)

// A store whose state was deleted is restored from its changelog, up to
// the changelog offsets committed with the state: a changelog record
// written after them (as a crash between writing and committing leaves)
// is not restored.
func TestRestoreFromChangelog(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	loadViews(t, s, 600)
	topo, total, perMinute := restartTopology()
	app, err := stream.NewApp(s, topo, "restore", stream.WithBatchSize(100))
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)
	before := takeSnapshot(t, s, app, total, perMinute)
	if len(readTopic(t, s, "restore-total-changelog")) == 0 || len(readTopic(t, s, "restore-per-minute-changelog")) == 0 {
		t.Fatal("the changelogs are empty")
	}

	// A changelog record past the committed offsets: must not be restored.
	bogus := eventstore.Event{Type: "stream.changelog", Payload: []byte{0, 0, 0, 0, 0, 0, 0x30, 0x39}}
	if _, err := s.Append(ctx, "restore-total-changelog", "user-0", eventstore.Any, []eventstore.Event{bogus}); err != nil {
		t.Fatal(err)
	}
	// Delete both stores' state and their markers.
	err = s.Update(ctx, func(tx eventstore.Txn) error {
		for _, store := range []string{"total", "per-minute"} {
			lo, hi := keyspace.New(keyspace.Stream, "restore").String("store").String(store).Range()
			if err := tx.DeleteRange(lo, hi); err != nil {
				return err
			}
			if err := tx.Delete(keyspace.New(keyspace.Stream, "restore").String("init").String(store)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := total.Get(ctx, app, "user-0"); ok {
		t.Fatal("state not deleted")
	}

	runOnce(t, app) // restores, finds nothing new to process
	after := takeSnapshot(t, s, app, total, perMinute)
	compareSnapshots(t, after, before)

	// The restored window store keeps working, index included: more input
	// counts on top of the restored state.
	for i := range 9 {
		put(t, s, "views", "page-x", fmt.Appendf(nil, `{"user":"user-%d"}`, i), sec(10))
	}
	runOnce(t, app)
	got := takeSnapshot(t, s, app, total, perMinute)
	want := maps.Clone(before.total)
	for u := range want {
		want[u]++
	}
	if !maps.Equal(got.total, want) {
		t.Errorf("after more input: %v, want %v", got.total, want)
	}
	var index int
	lo, hi := keyspace.New(keyspace.Stream, "restore").String("store").String("per-minute").String("x").Range()
	for _, err := range s.Scan(ctx, lo, hi, false) {
		if err != nil {
			t.Fatal(err)
		}
		index++
	}
	if index != len(got.windows) {
		t.Errorf("%d window index entries for %d windows", index, len(got.windows))
	}
	if !slices.Contains(got.windows, "user-0 [0,60)="+fmt.Sprint(countOf(before.windows, "user-0 [0,60)")+1)) {
		t.Errorf("window user-0 [0,60) did not count the new record: %q", got.windows)
	}
}

func countOf(windows []string, prefix string) int {
	for _, w := range windows {
		var n int
		if len(w) > len(prefix) && w[:len(prefix)] == prefix {
			fmt.Sscanf(w[len(prefix)+1:], "%d", &n)
			return n
		}
	}
	return 0
}
