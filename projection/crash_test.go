package projection_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/crashtest"
	"github.com/muninn-es/muninn/projection"
)

// The crash test proves "a crash neither applies an event twice nor skips
// one". A child process (this test binary, re-executed to run only
// TestProjectionCrashChild) appends events durably and, at the same time,
// runs a projection over the topic into non-idempotent read models:
// counters per key and sums per event type, with an index on the counter.
// The parent kills it with SIGKILL at a random moment, several rounds on
// one directory, then catches the projection up in-process and compares
// the read model with a plain fold over every event in the log. A record
// applied twice would inflate a counter; a record skipped would lose one.

const (
	projCrashTopic = "events"
	projCrashParts = 4
)

type crashPayload struct {
	N int64 `json:"n"`
}

// crashModel is the projection under test and its tables.
type crashModel struct {
	p      *projection.Projection
	counts *projection.Table[string, int64]
	sums   *projection.Table[string, int64]
	byN    *projection.Index[string, int64, int64]
}

func newCrashModel(s eventstore.Store) (*crashModel, error) {
	m := &crashModel{}
	var err error
	if m.counts, err = projection.NewTable("counts", projection.StringKey(), codec.Int64()); err != nil {
		return nil, err
	}
	if m.sums, err = projection.NewTable("sums", projection.StringKey(), codec.JSON[int64]()); err != nil {
		return nil, err
	}
	if m.byN, err = projection.NewIndex(m.counts, "by-count", projection.Int64Key(), func(_ string, n int64) []int64 { return []int64{n} }); err != nil {
		return nil, err
	}
	h := projection.HandlerFunc(func(tx *projection.Tx, rec eventstore.Record) error {
		var pl crashPayload
		if err := json.Unmarshal(rec.Payload, &pl); err != nil {
			return consume.Permanent(err)
		}
		n, _, err := m.counts.Load(tx, rec.Key)
		if err != nil {
			return err
		}
		if err := m.counts.Put(tx, rec.Key, n+1); err != nil {
			return err
		}
		sum, _, err := m.sums.Load(tx, rec.Type)
		if err != nil {
			return err
		}
		return m.sums.Put(tx, rec.Type, sum+pl.N)
	})
	m.p, err = projection.New(s, "crash", []string{projCrashTopic}, h,
		projection.WithTables(m.counts, m.sums), projection.WithBatchSize(37))
	return m, err
}

// TestProjectionCrashChild is the child of TestProjectionCrash: it does
// nothing unless started by it.
func TestProjectionCrashChild(t *testing.T) {
	if !crashtest.IsChild(t) {
		return
	}
	dir, seed, rebuild := crashtest.Arg("dir"), crashtest.Uint64Arg("seed"), crashtest.Arg("rebuild") == "true"
	childFail := crashtest.Fail
	ctx := context.Background()
	s, err := eventstore.Open(dir, eventstore.WithLogger(quietLogger()))
	if err != nil {
		childFail("open: %v", err)
	}
	m, err := newCrashModel(s)
	if err != nil {
		childFail("model: %v", err)
	}
	go func() {
		rng := rand.New(rand.NewPCG(seed, 1))
		for i := 0; ; i++ {
			if err := appendCrashEvents(ctx, s, rng, 1+rng.IntN(4)); err != nil {
				childFail("append: %v", err)
			}
		}
	}()
	go func() {
		// READY once the projection has committed something in this life.
		st, err := m.p.Status(ctx)
		if err != nil {
			childFail("status: %v", err)
		}
		var pos []projection.Position
		for _, ps := range st.Partitions {
			pos = append(pos, projection.Position{Topic: ps.Topic, Partition: ps.Partition, Offset: ps.Position})
		}
		if err := m.p.WaitFor(ctx, pos[0]); err != nil {
			childFail("wait: %v", err)
		}
		crashtest.Ack("READY")
		if rebuild {
			// Rebuild beside the live run: the kill may land in the
			// rebuild, its swap, or the live run on either generation.
			if err := m.p.Rebuild(ctx); err != nil {
				childFail("rebuild: %v", err)
			}
		}
	}()
	if err := m.p.Run(ctx); err != nil {
		childFail("run: %v", err)
	}
	select {}
}

var crashTypes = []string{"a.happened", "b.happened", "c.happened"}

func appendCrashEvents(ctx context.Context, s eventstore.Store, rng *rand.Rand, n int, opts ...eventstore.AppendOption) error {
	events := make([]eventstore.Event, n)
	for i := range events {
		events[i] = eventstore.Event{Type: crashTypes[rng.IntN(len(crashTypes))], Payload: fmt.Appendf(nil, `{"n":%d}`, rng.IntN(1000))}
	}
	_, err := s.Append(ctx, projCrashTopic, fmt.Sprintf("key-%d", rng.IntN(60)), eventstore.Any, events, opts...)
	return err
}

func TestProjectionCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process repeatedly; skipped with -short")
	}
	const rounds = 8
	seed := crashtest.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	ctx := context.Background()

	// A backlog, so that the first rounds are killed while catching up.
	s, err := eventstore.Open(dir, eventstore.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTopic(ctx, projCrashTopic, eventstore.TopicConfig{Partitions: projCrashParts}); err != nil {
		t.Fatal(err)
	}
	for range 1500 {
		if err := appendCrashEvents(ctx, s, rng, 1+rng.IntN(3), eventstore.NoSync()); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(s.Sync(ctx), s.Close()); err != nil {
		t.Fatal(err)
	}

	for round := 1; round <= rounds; round++ {
		delay := time.Duration(5+rng.IntN(150)) * time.Millisecond
		rebuild := round%2 == 0
		if rebuild {
			// Sometimes in the rebuild, sometimes after its swap.
			delay = time.Duration(5+rng.IntN(800)) * time.Millisecond
		}
		runProjectionCrashRound(t, dir, rng.Uint64(), delay, rebuild)
		committed, events, gen := crashProgress(t, dir)
		t.Logf("round %d: killed %v after READY (rebuilding: %v); log holds %d events, projection committed %d, generation %d",
			round, delay, rebuild, events, committed, gen)
	}

	s, err = eventstore.Open(dir, eventstore.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := newCrashModel(s)
	if err != nil {
		t.Fatal(err)
	}
	catchUp(t, s, m.p, projCrashTopic)
	wantCounts, wantSums := map[string]int64{}, map[string]int64{}
	for part := range projCrashParts {
		for rec, err := range s.ReadPartition(ctx, projCrashTopic, part, 0) {
			if err != nil {
				t.Fatal(err)
			}
			var pl crashPayload
			if err := json.Unmarshal(rec.Payload, &pl); err != nil {
				t.Fatal(err)
			}
			wantCounts[rec.Key]++
			wantSums[rec.Type] += pl.N
		}
	}
	gotCounts := scanAll(t, m.counts)
	gotSums := scanAll(t, m.sums)
	if !equalMaps(gotCounts, wantCounts) {
		t.Errorf("counts after %d kills differ from the fold:\n got %v\nwant %v", rounds, gotCounts, wantCounts)
	}
	if !equalMaps(gotSums, wantSums) {
		t.Errorf("sums after %d kills differ from the fold:\n got %v\nwant %v", rounds, gotSums, wantSums)
	}
	// The index holds exactly one entry per row, for its current count.
	entries, bad := 0, 0
	for n := range int64(10_000) {
		page, err := m.byN.Lookup(ctx, n, projection.Limit(projection.MaxLimit))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entries {
			entries++
			if wantCounts[e.Key] != n && bad < 5 {
				bad++
				t.Errorf("index by-count has %s under %d; its count is %d", e.Key, n, wantCounts[e.Key])
			}
		}
		if entries >= len(wantCounts) {
			break
		}
	}
	if entries != len(wantCounts) {
		t.Errorf("index by-count has %d entries, want %d", entries, len(wantCounts))
	}
	total := int64(0)
	for _, n := range wantCounts {
		total += n
	}
	t.Logf("%d events over %d keys projected exactly once across %d kills", total, len(wantCounts), rounds)
}

// runProjectionCrashRound runs the child on dir and kills it delay after it
// is ready.
func runProjectionCrashRound(t *testing.T, dir string, seed uint64, delay time.Duration, rebuild bool) {
	t.Helper()
	crashtest.Round{
		Child: crashtest.Child{
			Test: "TestProjectionCrashChild",
			Args: map[string]string{"dir": dir, "seed": strconv.FormatUint(seed, 10), "rebuild": strconv.FormatBool(rebuild)},
		},
		Arm:       1, // READY
		KillAfter: delay,
	}.Run(t)
}

// crashProgress returns the projection's committed offsets and the log's
// size, summed over partitions, and its generation.
func crashProgress(t *testing.T, dir string) (committed, events int64, gen uint64) {
	t.Helper()
	ctx := context.Background()
	s, err := eventstore.Open(dir, eventstore.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := newCrashModel(s)
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.p.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range st.Partitions {
		committed += ps.Position
		events += ps.End
	}
	return committed, events, st.Generation
}
