package stream_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/crashtest"
	"github.com/muninn-es/muninn/stream"
)

// The crash test proves that a stateful topology's state is exactly once
// across kill -9. Before each round the parent appends more page views to a
// store on disk; a child process (this test binary, re-executed by
// crashtest to run only TestStreamCrashChild) runs the App on it with small
// durable batches and acknowledges each batch before its commit; the parent kills it with SIGKILL at a
// random moment after the first. At the end the parent runs the App to
// completion itself and checks its state against results computed from the
// input by hand: totals per user, counts per user and minute, late records,
// and the distinct (by event ID) updates in the sink topic.

const (
	crashRounds    = 6
	crashPerRound  = 1500
	crashUsers     = 9
	crashBatchSize = 25
)

// crashInput is view i: its user and event time (seconds after t0). Every
// 50th is 10^6 s in the past, later than any grace; every 10th is 30 s in
// the past, within the grace. The grace (see crashTopology) is longer than
// the whole input's time span: after a kill the backlog is read partition by
// partition, and the partitions hold different shares of the input, so the
// order in which event times reach a repartition partition varies by more
// than a short grace would allow.
func crashInput(i int) (user string, at int) {
	at = i / 3
	switch {
	case i%50 == 49:
		at -= 1_000_000
	case i%10 == 5:
		at -= 30
	}
	return fmt.Sprintf("user-%d", i%crashUsers), at
}

// crashTopology is restartTopology with a grace of 2 hours.
func crashTopology() (*stream.Topology, stream.Table[string, int64], stream.WindowedTable[string, int64]) {
	topo := stream.NewTopology()
	views := stream.Source(topo, "views", codec.String(), codec.JSON[PageView]())
	byUser := stream.GroupBy(views, func(_ string, v PageView) string { return v.User }, codec.String())
	total := stream.Count(byUser, "total")
	perMinute := stream.WindowedCount(stream.WindowedBy(byUser, stream.Tumbling(time.Minute).WithGrace(2*time.Hour)), "per-minute")
	stream.ToTopic(stream.ToStream(total), "totals")
	return topo, total, perMinute
}

// TestStreamCrashChild is the child of TestStreamCrashSafety; it does nothing
// unless started by it.
func TestStreamCrashChild(t *testing.T) {
	if !crashtest.IsChild(t) {
		return
	}
	dir, fail := crashtest.Arg("dir"), crashtest.Fail
	s, err := eventstore.Open(dir)
	if err != nil {
		fail("open: %v", err)
	}
	topo, _, _ := crashTopology()
	app, err := stream.NewApp(s, topo, "crash", stream.WithBatchSize(crashBatchSize))
	if err != nil {
		fail("%v", err)
	}
	stream.SetBeforeUpdate(app, func() error {
		crashtest.Ack("BATCH")
		return nil
	})
	err = app.Run(context.Background())
	fail("Run returned %v", err)
}

func TestStreamCrashSafety(t *testing.T) {
	seed := crashtest.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	ctx := context.Background()

	next := 0
	for round := range crashRounds {
		s, err := eventstore.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			createTopic(t, s, "views", 4, eventstore.Retain)
		}
		for range crashPerRound {
			user, at := crashInput(next)
			put(t, s, "views", fmt.Sprintf("page-%d", next%11), fmt.Appendf(nil, `{"user":%q}`, user), sec(at))
			next++
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(1+rng.IntN(150)) * time.Millisecond
		batches := runStreamCrashRound(t, dir, delay)
		t.Logf("round %d: killed %v after the first batch; %d batches reached their commit", round+1, delay, batches)
	}

	s, err := eventstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	topo, total, perMinute := crashTopology()
	app, err := stream.NewApp(s, topo, "crash", stream.WithBatchSize(crashBatchSize))
	if err != nil {
		t.Fatal(err)
	}
	// The catch-up over everything the children left undone: thousands of
	// durable batches, so a longer bound than runOnce's 30 s, which a
	// loaded machine running the race detector overran.
	r := start(t, app)
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := app.WaitCaughtUp(wctx); err != nil {
		t.Fatalf("WaitCaughtUp: %v", err)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	want := snapshot{total: map[string]int64{}}
	windows := map[string]int{}
	for i := range next {
		user, at := crashInput(i)
		want.total[user]++
		if i%50 == 49 {
			want.late++
			continue
		}
		start := at - ((at%60)+60)%60
		windows[fmt.Sprintf("%s [%d,%d)", user, start, start+60)]++
	}
	got := takeSnapshot(t, s, app, total, perMinute)
	for k, v := range want.total {
		if got.total[k] != v {
			t.Errorf("total of %s = %d, want %d", k, got.total[k], v)
		}
	}
	if len(got.total) != len(want.total) {
		t.Errorf("%d users counted, want %d", len(got.total), len(want.total))
	}
	gotWindows := map[string]int{}
	for _, w := range got.windows {
		i := len(w) - 1
		for w[i] != '=' {
			i--
		}
		n, _ := strconv.Atoi(w[i+1:])
		gotWindows[w[:i]] = n
	}
	for k, v := range windows {
		if gotWindows[k] != v {
			t.Errorf("window %s = %d, want %d", k, gotWindows[k], v)
		}
	}
	if len(gotWindows) != len(windows) {
		t.Errorf("%d windows, want %d", len(gotWindows), len(windows))
	}
	if got.late != want.late {
		t.Errorf("%d late records, want %d", got.late, want.late)
	}
	// Each user's distinct updates are exactly 1, 2, ..., total.
	updates := map[string]map[int64]int{}
	for _, o := range got.outputs {
		i := len(o) - 1
		for o[i] != '=' {
			i--
		}
		user := o[:i]
		n, _ := strconv.ParseInt(o[i+1:], 10, 64)
		if updates[user] == nil {
			updates[user] = map[int64]int{}
		}
		updates[user][n]++
	}
	for user, tot := range want.total {
		for n := int64(1); n <= tot; n++ {
			if updates[user][n] != 1 {
				t.Errorf("user %s: update %d appears %d times among distinct sink records, want once", user, n, updates[user][n])
				break
			}
		}
		if len(updates[user]) != int(tot) {
			t.Errorf("user %s: %d distinct updates, want %d", user, len(updates[user]), tot)
		}
	}
	m, err := app.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Each view is read once from the source and once from each of the two
	// repartition topics (one per stateful step).
	if m.ProcessedRecords-m.DuplicateRecords != int64(3*next) {
		t.Errorf("processed %d - duplicates %d, want %d (every view and its two repartition records once)", m.ProcessedRecords, m.DuplicateRecords, 3*next)
	}
	t.Logf("%d views over %d kills: state exact; %d repartition duplicates dropped", next, crashRounds, m.DuplicateRecords)
}

// runStreamCrashRound runs the child on dir and kills it delay after its
// first batch; it returns how many batches reached their commit.
func runStreamCrashRound(t *testing.T, dir string, delay time.Duration) int {
	t.Helper()
	res := crashtest.Round{
		Child:     crashtest.Child{Test: "TestStreamCrashChild", Args: map[string]string{"dir": dir}},
		Arm:       1,
		KillAfter: delay,
	}.Run(t)
	return len(res.Acks)
}
