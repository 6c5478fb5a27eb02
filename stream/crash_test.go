package stream_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

// The crash test proves that a stateful topology's state is exactly once
// across kill -9. Before each round the parent appends more page views to a
// store on disk; a child process (this test binary, re-executed to run only
// TestStreamCrashChild) runs the App on it with small durable batches and
// prints a line before each commit; the parent kills it with SIGKILL at a
// random moment after the first. At the end the parent runs the App to
// completion itself and checks its state against results computed from the
// input by hand: totals per user, counts per user and minute, late records,
// and the distinct (by event ID) updates in the sink topic.

const (
	crashDirEnv    = "MUNINN_STREAM_CRASH_DIR"
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
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "stream crash child: "+format+"\n", args...)
		os.Exit(3)
	}
	time.AfterFunc(60*time.Second, func() { fail("not killed after 60s") })
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
		_, err := os.Stdout.Write([]byte("BATCH\n"))
		return err
	})
	err = app.Run(context.Background())
	fail("Run returned %v", err)
}

func TestStreamCrashSafety(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("MUNINN_STREAM_CRASH_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (rerun with MUNINN_STREAM_CRASH_SEED=%d)", seed, seed)
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
	runOnce(t, app)

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
	cmd := exec.Command(os.Args[0], "-test.run=^TestStreamCrashChild$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan struct{})
	done := make(chan int, 1)
	go func() {
		n := 0
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "BATCH" {
				n++
				if n == 1 {
					close(first)
				}
			}
		}
		done <- n
	}()
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("no batch within 30s\nstderr:\n%s", stderr.String())
	}
	time.Sleep(delay) // the crash point
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	n := <-done
	_ = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL but ended with %v\nstderr:\n%s", cmd.ProcessState, stderr.String())
	}
	return n
}
