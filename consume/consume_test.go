package consume_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
)

func openStore(t *testing.T, opts ...eventstore.Option) *eventstore.PebbleStore {
	t.Helper()
	s, err := eventstore.OpenMem(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendN(t *testing.T, s eventstore.Store, topic string, keys, each int) []eventstore.Position {
	t.Helper()
	var last []eventstore.Position
	for k := range keys {
		for i := range each {
			res, err := s.Append(t.Context(), topic, fmt.Sprintf("k%d", k), eventstore.Any,
				[]eventstore.Event{{Type: "n", Payload: []byte(fmt.Sprint(i))}})
			if err != nil {
				t.Fatal(err)
			}
			if i == each-1 {
				last = append(last, res.Position())
			}
		}
	}
	return last
}

var counts = keyspace.New(keyspace.App, "counts")

// counter counts records per key in the state space.
func counter(fail func(rec eventstore.Record) error) consume.Func {
	return func(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) error {
		if fail != nil {
			if err := fail(rec); err != nil {
				return err
			}
		}
		k := counts.String(rec.Key)
		v, _, err := tx.Get(k)
		if err != nil {
			return err
		}
		var n uint64
		if len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return tx.Set(k, binary.BigEndian.AppendUint64(nil, n+1))
	}
}

func countOf(t *testing.T, s eventstore.Store, key string) uint64 {
	t.Helper()
	v, ok, err := s.Get(t.Context(), counts.String(key))
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// run runs l in the background and returns a function that stops it and
// returns Run's error.
func run(t *testing.T, l *consume.Loop) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func waitState(t *testing.T, l *consume.Loop, want consume.State) {
	t.Helper()
	for {
		ch := l.Changed()
		if l.State() == want {
			return
		}
		select {
		case <-ch:
		case <-t.Context().Done():
			t.Fatalf("state %s, want %s", l.State(), want)
		}
	}
}

func waitFor(t *testing.T, l *consume.Loop, pos ...eventstore.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := l.WaitFor(ctx, pos...); err != nil {
		t.Fatal(err)
	}
}

func TestAppliesOnceAndResumes(t *testing.T) {
	s := openStore(t)
	if err := s.CreateTopic(t.Context(), "orders", eventstore.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	last := appendN(t, s, "orders", 5, 20)
	l, err := consume.New(s, "counter", []string{"orders"}, counter(nil), consume.WithBatchSize(7))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, l)
	waitFor(t, l, last...)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for k := range 5 {
		if n := countOf(t, s, fmt.Sprintf("k%d", k)); n != 20 {
			t.Fatalf("k%d counted %d times, want 20", k, n)
		}
	}
	// A new loop of the same group resumes after what was committed.
	more := appendN(t, s, "orders", 5, 3)
	l2, err := consume.New(s, "counter", []string{"orders"}, counter(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, l2, more...)
	for k := range 5 {
		if n := countOf(t, s, fmt.Sprintf("k%d", k)); n != 23 {
			t.Fatalf("after resuming, k%d counted %d times, want 23", k, n)
		}
	}
	st, err := l2.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.State != consume.StateLive || st.Lag != 0 || st.Counters.Applied != 15 || len(st.Partitions) != 3 {
		t.Fatalf("status after catching up: %+v", st)
	}
}

// TestSplitRetryStop fails one record: the records before it commit, the
// record is retried after back-offs on the loop's clock, and under Stop the
// loop returns a *HandlerError and applies the record again on restart.
func TestSplitRetryStop(t *testing.T) {
	s := openStore(t)
	if err := s.CreateTopic(t.Context(), "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "t", 1, 10) // offsets 0..9 of key k0
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var failing atomic.Bool
	failing.Store(true)
	var attempts atomic.Int32
	h := counter(func(rec eventstore.Record) error {
		if rec.Offset == 4 && failing.Load() {
			attempts.Add(1)
			return errors.New("boom")
		}
		return nil
	})
	l, err := consume.New(s, "g", []string{"t"}, h, consume.WithClock(clk), consume.WithRetries(2),
		consume.WithBackoff(clock.Constant(time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(t.Context()) }()
	for i := range 2 {
		if err := clk.BlockUntil(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			waitFor(t, l, eventstore.Position{Topic: "t", Partition: 0, Offset: 3})
			if n := countOf(t, s, "k0"); n != 4 {
				t.Fatalf("records before the failing one: counted %d, want 4", n)
			}
		}
		clk.Advance(time.Second)
	}
	err = <-done
	var he *consume.HandlerError
	if !errors.As(err, &he) || he.Offset != 4 || he.Attempts != 3 || attempts.Load() != 3 || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Run = %v (attempts %d), want a *HandlerError at offset 4 after 3 attempts", err, attempts.Load())
	}
	if st, _ := l.Status(t.Context()); st.State != consume.StateFailed || st.Error == "" || st.Counters.Retries != 2 {
		t.Fatalf("status after failing: %+v", st)
	}
	if err := l.WaitFor(t.Context(), eventstore.Position{Topic: "t", Offset: 9}); !errors.Is(err, consume.ErrFailed) {
		t.Fatalf("WaitFor on a failed loop = %v, want ErrFailed", err)
	}
	failing.Store(false)
	if err := l.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := countOf(t, s, "k0"); n != 10 {
		t.Fatalf("after restart counted %d, want 10", n)
	}
}

func TestPanicIsPermanent(t *testing.T) {
	s := openStore(t)
	if err := s.CreateTopic(t.Context(), "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "t", 1, 3)
	var calls atomic.Int32
	var id atomic.Value
	h := consume.Func(func(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) error {
		if rec.Offset == 1 {
			calls.Add(1)
			id.Store(rec.ID)
			panic("bug")
		}
		return nil
	})
	l, _ := consume.New(s, "g", []string{"t"}, h, consume.WithRetries(5))
	err := l.Run(t.Context())
	var he *consume.HandlerError
	if !errors.As(err, &he) || he.Attempts != 1 || calls.Load() != 1 || !consume.IsPermanent(he.Err) || he.EventID != id.Load() {
		t.Fatalf("Run = %v after %d calls, want a permanent *HandlerError after one attempt", err, calls.Load())
	}
}

// flaky makes Stage fail once, after a record was parked: as a crash
// between parking it and committing past it.
type flaky struct {
	consume.Source
	fail *atomic.Bool
}

func (f flaky) Stage(tx eventstore.Txn, recs []eventstore.Record) error {
	if len(recs) == 1 && recs[0].Offset == 2 && f.fail.CompareAndSwap(true, false) {
		return errors.New("crash")
	}
	return f.Source.Stage(tx, recs)
}

func TestParkReplayDiscard(t *testing.T) {
	s := openStore(t)
	if err := s.CreateTopic(t.Context(), "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "t", 1, 6)
	var broken atomic.Bool
	broken.Store(true)
	h := counter(func(rec eventstore.Record) error {
		if (rec.Offset == 2 || rec.Offset == 4) && broken.Load() {
			return consume.Permanent(fmt.Errorf("cannot apply %d", rec.Offset))
		}
		return nil
	})
	var crash atomic.Bool
	crash.Store(true)
	opts := []consume.Option{consume.WithErrorPolicy(consume.Park("t.dlq")),
		consume.WithSourceWrapper(func(g *consume.GroupSource) consume.Source { return flaky{g, &crash} })}
	l, err := consume.New(s, "g", []string{"t"}, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	// The commit past the first parked record fails: Run stops, the record
	// is parked but not committed past.
	if err := l.CatchUp(t.Context()); err == nil || !strings.Contains(err.Error(), "crash") {
		t.Fatalf("first run = %v, want the crash", err)
	}
	if err := l.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := countOf(t, s, "k0"); n != 4 {
		t.Fatalf("counted %d, want 4 (two parked)", n)
	}
	parked, err := l.Parked(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 2 || parked[0].Record.Offset != 2 || parked[1].Record.Offset != 4 || parked[0].Attempts != 1 ||
		parked[0].Error != "cannot apply 2" || string(parked[0].Record.Payload) != "2" || parked[0].Record.Key != "k0" {
		t.Fatalf("Parked = %+v", parked)
	}
	info, _ := s.DescribeTopic(t.Context(), "t.dlq")
	if info.Partitions[0].Records != 2 {
		t.Fatalf("dead-letter topic holds %d records, want 2 (parked once each, across the crash)", info.Partitions[0].Records)
	}
	broken.Store(false)
	if err := l.Replay(t.Context(), parked[0].Record.Position()); err != nil {
		t.Fatal(err)
	}
	if err := l.Replay(t.Context(), parked[0].Record.Position()); !errors.Is(err, consume.ErrNotParked) {
		t.Fatalf("second Replay = %v, want ErrNotParked", err)
	}
	if err := l.Discard(t.Context(), parked[1].Record.Position()); err != nil {
		t.Fatal(err)
	}
	if n := countOf(t, s, "k0"); n != 5 {
		t.Fatalf("after replay counted %d, want 5", n)
	}
	parked, _ = l.Parked(t.Context())
	if len(parked) != 1 || parked[0].ReplayedAt.IsZero() {
		t.Fatalf("after replay and discard: %+v", parked)
	}
	st, _ := l.Status(t.Context())
	b, _ := json.Marshal(st)
	if !strings.Contains(string(b), `"state":"live"`) || !strings.Contains(string(b), `"policy":"park(t.dlq)"`) {
		t.Fatalf("status JSON %s", b)
	}
}

type failBatch struct {
	consume.Batch
	tx     eventstore.Txn
	failed *[]int64
}

func (f failBatch) Fail(rec *eventstore.Record, herr *consume.HandlerError) error {
	*f.failed = append(*f.failed, rec.Offset)
	return f.tx.Set(keyspace.New(keyspace.App, "failed").Int(rec.Offset), []byte(herr.Err.Error()))
}

type failer struct {
	consume.Func
	failed *[]int64
}

func (f failer) Begin(ctx context.Context, tx eventstore.Txn) (consume.Batch, error) {
	b, _ := f.Func.Begin(ctx, tx)
	return failBatch{b, tx, f.failed}, nil
}

func TestHandOffAndDeadLetter(t *testing.T) {
	s := openStore(t)
	if err := s.CreateTopic(t.Context(), "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	last := appendN(t, s, "t", 1, 4)
	bad := func(rec eventstore.Record) error {
		if rec.Offset == 1 {
			return consume.Permanent(errors.New("no"))
		}
		return nil
	}
	var failed []int64
	l, _ := consume.New(s, "handoff", []string{"t"}, failer{counter(bad), &failed}, consume.WithErrorPolicy(consume.HandOff()))
	if err := l.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0] != 1 {
		t.Fatalf("Fail saw %v, want [1]", failed)
	}
	if _, ok, _ := s.Get(t.Context(), keyspace.New(keyspace.App, "failed").Int(1)); !ok {
		t.Fatal("Fail's write did not commit")
	}
	var published []int64
	pubErr := errors.New("engine down")
	var tries int
	clk := clock.NewManual(time.Now())
	dl := consume.DeadLetter(func(ctx context.Context, rec eventstore.Record, herr *consume.HandlerError) error {
		tries++
		if tries == 1 {
			return pubErr
		}
		published = append(published, rec.Offset)
		return nil
	})
	l2, _ := consume.New(s, "dl", []string{"t"}, counter(bad), consume.WithErrorPolicy(dl), consume.WithClock(clk))
	done := make(chan error, 1)
	go func() { done <- l2.CatchUp(t.Context()) }()
	if err := clk.BlockUntil(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, l2, last...)
	if len(published) != 1 || published[0] != 1 || tries != 2 {
		t.Fatalf("published %v after %d tries", published, tries)
	}
}

// TestRebalanceNeverAppliesTwice runs two loops of one group while records
// arrive: partitions move between them, batches made void by a rebalance are
// read again from the committed offsets, and every record counts once.
func TestRebalanceNeverAppliesTwice(t *testing.T) {
	s := openStore(t)
	if err := s.CreateTopic(t.Context(), "t", eventstore.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	newLoop := func(id string) *consume.Loop {
		l, err := consume.New(s, "g", []string{"t"}, counter(nil), consume.WithBatchSize(5),
			consume.WithConsumerOptions(eventstore.WithMemberID(id)))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a := newLoop("a")
	stopA := run(t, a)
	appendN(t, s, "t", 8, 10)
	b := newLoop("b")
	stopB := run(t, b)
	last := appendN(t, s, "t", 8, 10)
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, last...)
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	for k := range 8 {
		if n := countOf(t, s, fmt.Sprintf("k%d", k)); n != 20 {
			t.Fatalf("k%d counted %d times, want 20", k, n)
		}
	}
}

func TestValidationAndErrRunning(t *testing.T) {
	s := openStore(t)
	_, err := consume.New(nil, "bad name!", nil, nil, consume.WithBatchSize(0), consume.WithRetries(-1),
		consume.WithErrorPolicy(consume.Park("")), consume.WithBackoff(clock.Backoff{Multiplier: 0.5}))
	if !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Fatalf("New = %v, want ErrInvalidArgument", err)
	}
	for _, want := range []string{"store", "handler", "consumer group", "topics", "WithBatchSize", "WithRetries", "Park", "Multiplier"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if err := s.CreateTopic(t.Context(), "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	l, _ := consume.New(s, "g", []string{"t"}, counter(nil))
	run(t, l)
	waitState(t, l, consume.StateLive)
	if err := l.Run(t.Context()); !errors.Is(err, consume.ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
	missing, _ := consume.New(s, "g2", []string{"nope"}, counter(nil))
	if err := missing.Run(t.Context()); !errors.Is(err, eventstore.ErrTopicNotFound) {
		t.Fatalf("Run on a missing topic = %v", err)
	}
}

func TestStatusLagAge(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := openStore(t, eventstore.WithClock(clk))
	if err := s.CreateTopic(t.Context(), "t", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "t", 1, 3)
	clk.Advance(90 * time.Second)
	l, _ := consume.New(s, "g", []string{"t"}, counter(nil), consume.WithClock(clk))
	st, err := l.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.State != consume.StateIdle || st.Lag != 3 || st.LagSeconds != 90 {
		t.Fatalf("status before running: %+v", st)
	}
	b, _ := json.Marshal(st)
	if !strings.Contains(string(b), `"state":"idle"`) || !strings.Contains(string(b), `"lag_seconds":90`) {
		t.Fatalf("status JSON %s", b)
	}
}

// TestLiveWithTheCommitThatCatchesUp checks that a WaitFor woken by the
// commit of the last records there were sees the loop live at once.
func TestLiveWithTheCommitThatCatchesUp(t *testing.T) {
	s := openStore(t)
	if err := s.CreateTopic(t.Context(), "t", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	l, _ := consume.New(s, "g", []string{"t"}, counter(nil))
	run(t, l)
	for round := range 20 {
		last := appendN(t, s, "t", 3, 2)
		waitFor(t, l, last...)
		if st := l.State(); st != consume.StateLive {
			t.Fatalf("round %d: state %s right after WaitFor, want live", round, st)
		}
	}
}
