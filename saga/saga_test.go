package saga_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/backends"
	"github.com/muninn-es/muninn/internal/fulfillment"
	"github.com/muninn-es/muninn/saga"
)

// The test domain: jobs, whose events the sagas under test react to, and a
// ledger of accounts, which their commands go to.

// job is the state of a job.
type job struct{ Open bool }

type jobCommand interface{ isJobCommand() }

// openJob opens a job for Account with Amount; Mode tells the saga under
// test what to do.
type openJob struct {
	Account string
	Amount  int
	Mode    string
}

// pokeJob pokes an open job: the saga's next step, Mode saying what it
// does.
type pokeJob struct{ Mode string }

// noteJob notes something about any job, open or not. Sagas route it with
// an empty key, so that it concerns no instance: tests use it as a barrier.
type noteJob struct{}

func (openJob) isJobCommand() {}
func (pokeJob) isJobCommand() {}
func (noteJob) isJobCommand() {}

type jobEvent interface{ isJobEvent() }

type jobOpened struct {
	Account string `json:"account"`
	Amount  int    `json:"amount"`
	Mode    string `json:"mode"`
}

type jobPoked struct {
	Mode string `json:"mode"`
}

type jobNoted struct{}

func (jobOpened) isJobEvent() {}
func (jobPoked) isJobEvent()  {}
func (jobNoted) isJobEvent()  {}

func decideJob(j job, cmd jobCommand) ([]jobEvent, error) {
	switch cmd := cmd.(type) {
	case openJob:
		if j.Open {
			return nil, command.Rejected("job is already open")
		}
		return []jobEvent{jobOpened{Account: cmd.Account, Amount: cmd.Amount, Mode: cmd.Mode}}, nil
	case pokeJob:
		if !j.Open {
			return nil, command.NotFound("no such job")
		}
		return []jobEvent{jobPoked{Mode: cmd.Mode}}, nil
	case noteJob:
		return []jobEvent{jobNoted{}}, nil
	}
	return nil, command.Invalid("unknown job command %T", cmd)
}

func evolveJob(j job, e jobEvent) job {
	if _, ok := e.(jobOpened); ok {
		j.Open = true
	}
	return j
}

// account is the state of a ledger account.
type account struct{ Balance int }

type ledgerCommand interface{ isLedgerCommand() }

// credit adds a positive Amount to an account.
type credit struct {
	Amount int
	Ref    string
}

// debit takes Amount from an account; it is rejected if the balance is
// lower.
type debit struct {
	Amount int
	Ref    string
}

func (credit) isLedgerCommand() {}
func (debit) isLedgerCommand()  {}

type ledgerEvent interface{ isLedgerEvent() }

type credited struct {
	Amount int    `json:"amount"`
	Ref    string `json:"ref"`
}

type debited struct {
	Amount int    `json:"amount"`
	Ref    string `json:"ref"`
}

func (credited) isLedgerEvent() {}
func (debited) isLedgerEvent()  {}

func decideLedger(a account, cmd ledgerCommand) ([]ledgerEvent, error) {
	switch cmd := cmd.(type) {
	case credit:
		if cmd.Amount <= 0 {
			return nil, command.Invalid("credit of %d: the amount must be positive", cmd.Amount)
		}
		return []ledgerEvent{credited(cmd)}, nil
	case debit:
		if cmd.Amount > a.Balance {
			return nil, command.Rejected("debit of %d: the balance is %d", cmd.Amount, a.Balance)
		}
		return []ledgerEvent{debited(cmd)}, nil
	}
	return nil, command.Invalid("unknown ledger command %T", cmd)
}

func evolveLedger(a account, e ledgerEvent) account {
	switch e := e.(type) {
	case credited:
		a.Balance += e.Amount
	case debited:
		a.Balance -= e.Amount
	}
	return a
}

// env is the two aggregates on a bus on an in-memory store, and a manual
// clock for the sagas.
type env struct {
	t      *testing.T
	store  eventstore.Store
	bus    *command.Bus
	jobs   *command.Handler[job, jobCommand, jobEvent]
	ledger *command.Handler[account, ledgerCommand, ledgerEvent]
	clock  *clock.Manual
}

func newEnv(t *testing.T) *env {
	t.Helper()
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return newEnvOn(t, store)
}

// newEnvOn is newEnv on a store of the test's (see package
// internal/backends).
func newEnvOn(t *testing.T, store eventstore.Store) *env {
	t.Helper()
	e := &env{t: t, store: store, clock: clock.NewManual(t0)}
	ctx := t.Context()
	jobEvents, err := aggregate.NewEvents[jobEvent](
		aggregate.Type[jobOpened]("job.opened"),
		aggregate.Type[jobPoked]("job.poked"),
		aggregate.Type[jobNoted]("job.noted"),
	)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := aggregate.New("jobs", aggregate.Decider[job, jobCommand, jobEvent]{Decide: decideJob, Evolve: evolveJob},
		jobEvents, aggregate.WithPartitions(4))
	if err != nil {
		t.Fatal(err)
	}
	ledgerEvents, err := aggregate.NewEvents[ledgerEvent](
		aggregate.Type[credited]("ledger.credited"),
		aggregate.Type[debited]("ledger.debited"),
	)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := aggregate.New("ledger", aggregate.Decider[account, ledgerCommand, ledgerEvent]{Decide: decideLedger, Evolve: evolveLedger},
		ledgerEvents, aggregate.WithPartitions(4))
	if err != nil {
		t.Fatal(err)
	}
	if e.bus, err = command.New(store); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.bus.Close() })
	if e.jobs, err = command.Register(ctx, e.bus, jobs); err != nil {
		t.Fatal(err)
	}
	if e.ledger, err = command.Register(ctx, e.bus, ledger); err != nil {
		t.Fatal(err)
	}
	return e
}

// open opens job id and returns the ID of its job.opened event.
func (e *env) open(id, account string, amount int, mode string) string {
	e.t.Helper()
	res, err := e.jobs.Dispatch(e.t.Context(), id, openJob{Account: account, Amount: amount, Mode: mode})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.EventIDs[0].String()
}

// poke pokes job id with mode.
func (e *env) poke(id, mode string) {
	e.t.Helper()
	if _, err := e.jobs.Dispatch(e.t.Context(), id, pokeJob{Mode: mode}); err != nil {
		e.t.Fatal(err)
	}
}

// entries returns the ledger events of acct as "<type> <amount> <ref>".
func (e *env) entries(acct string) []string {
	e.t.Helper()
	var out []string
	for _, rec := range e.ledgerRecords(acct) {
		ev, err := codec.Unmarshal[credited](codec.DefaultFormat, rec.Payload)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %d %s", strings.TrimPrefix(rec.Type, "ledger."), ev.Amount, ev.Ref))
	}
	return out
}

// ledgerRecords returns the ledger events of acct.
func (e *env) ledgerRecords(acct string) []eventstore.Record {
	e.t.Helper()
	var out []eventstore.Record
	for rec, err := range e.store.ReadStream(e.t.Context(), "ledger", acct, 1) {
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

func wantEntries(t *testing.T, e *env, acct string, want ...string) {
	t.Helper()
	if got := e.entries(acct); !slices.Equal(got, want) {
		t.Errorf("ledger of %s: %q, want %q", acct, got, want)
	}
}

// rewind moves group's committed offsets of topic back to the start of
// every partition, as if it had never committed: its next member reads
// everything again.
func (e *env) rewind(group, topic string) {
	e.t.Helper()
	ctx := e.t.Context()
	c, err := e.store.JoinGroup(ctx, group, []string{topic})
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	offsets := map[eventstore.TopicPartition]int64{}
	for _, tp := range c.Assignment() {
		offsets[tp] = 0
	}
	if len(offsets) != 4 {
		e.t.Fatalf("rewind: assigned %v, want the 4 partitions of %s", c.Assignment(), topic)
	}
	if err := c.CommitOffsets(ctx, offsets); err != nil {
		e.t.Fatal(err)
	}
}

// running is a saga running on an env's store until stop, which returns
// Run's error.
type running[S any] struct {
	*saga.Saga[S]
	stop func() error
}

// tinyBackoff is the back-off of the tests' sagas: one millisecond on their clock.
var tinyBackoff = clock.Constant(time.Millisecond)

// start runs def on e's store with dispatcher d, on e's clock and with a
// tiny backoff, until the test ends or stop is called.
func start[S any](e *env, d saga.Dispatcher, def *saga.Definition[S], opts ...saga.Option) running[S] {
	e.t.Helper()
	opts = append([]saga.Option{saga.WithClock(e.clock), saga.WithBackoff(tinyBackoff)}, opts...)
	s, err := saga.New(e.store, d, def, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
		}
		return runErr
	}
	e.t.Cleanup(func() {
		if stopped {
			return
		}
		if err := stop(); err != nil {
			e.t.Errorf("saga %s: Run: %v", s.Name(), err)
		}
	})
	return running[S]{Saga: s, stop: stop}
}

// waitTime bounds the tests' waits for a condition: only a guard against a
// hang, long enough for a machine under any load (a wait returns as soon as
// its condition holds).
const waitTime = 2 * time.Minute

// waitInstance waits until instance key satisfies cond.
func waitInstance[S any](t *testing.T, s *saga.Saga[S], key string, cond func(saga.Instance[S]) bool) saga.Instance[S] {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTime)
	defer cancel()
	in, err := s.WaitFor(ctx, key, cond)
	if err != nil {
		t.Fatalf("%v; instance %+v; stats %+v", err, in, s.Stats())
	}
	return in
}

// waitStats waits until the saga's Stats satisfy cond: WaitFor is woken by
// every commit and dispatch of the saga, which update the Stats first.
func waitStats[S any](t *testing.T, s *saga.Saga[S], what string, cond func(saga.Stats) bool) saga.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTime)
	defer cancel()
	if _, err := s.WaitFor(ctx, "-", func(saga.Instance[S]) bool { return cond(s.Stats()) }); err != nil {
		t.Fatalf("waiting for %s: %v; stats %+v", what, err, s.Stats())
	}
	return s.Stats()
}

// barrier returns once the saga has handled everything the test did
// before it and looked at its clock since the test last moved it: the
// saga handles two notes (events it ignores) one after the other, and
// between them it dispatches what it has to and fires the deadlines due.
func barrier[S any](t *testing.T, e *env, s *saga.Saga[S]) {
	t.Helper()
	for range 2 {
		n := s.Stats().Ignored
		if _, err := e.jobs.Dispatch(t.Context(), "notes", noteJob{}); err != nil {
			t.Fatal(err)
		}
		waitStats(t, s, "a note to be ignored", func(st saga.Stats) bool { return st.Ignored > n })
	}
}

// jobState is the state of the job sagas.
type jobState struct {
	Account string   `json:"account"`
	Amount  int      `json:"amount"`
	Pokes   []string `json:"pokes,omitempty"`
	// Offsets are the offsets of the job.opened records the instance saw.
	Offsets []int64 `json:"offsets,omitempty"`
}

// tick is the timeout message of the job sagas.
type tick struct {
	N int `json:"n"`
}

// jobSaga defines the saga name over topic jobs: job.opened starts an
// instance keyed by the job ID (no instance if its mode is "unkeyed") and
// runs begin on it, job.poked runs poke with the poke's mode on the job's
// instance, job.noted concerns no instance. It declares credit and debit.
func jobSaga(name string, begin func(s *saga.Step[jobState]) error, poke func(s *saga.Step[jobState], mode string) error) *saga.Definition[jobState] {
	d := saga.Define[jobState](name, "jobs")
	saga.Command[credit](d, "ledger.credit")
	saga.Command[debit](d, "ledger.debit")
	saga.StartOn(d, "job.opened", func(rec eventstore.Record, e jobOpened) string {
		if e.Mode == "unkeyed" {
			return ""
		}
		return rec.Key
	}, func(s *saga.Step[jobState], e jobOpened) error {
		rec, _ := s.Event()
		s.State.Account, s.State.Amount = e.Account, e.Amount
		s.State.Offsets = append(s.State.Offsets, rec.Offset)
		if begin == nil {
			return nil
		}
		return begin(s)
	})
	saga.On(d, "job.poked", saga.RecordKey[jobPoked], func(s *saga.Step[jobState], e jobPoked) error {
		s.State.Pokes = append(s.State.Pokes, e.Mode)
		if poke == nil {
			return nil
		}
		return poke(s, e.Mode)
	})
	saga.On(d, "job.noted", func(eventstore.Record, jobNoted) string { return "" }, func(*saga.Step[jobState], jobNoted) error {
		return errors.New("job.noted reached an instance")
	})
	return d
}

// --- Policies ---

// bonusPolicy credits a job's account with its amount whenever a job is
// opened.
func bonusPolicy() *saga.Policy {
	p := saga.DefinePolicy("bonus", "jobs")
	saga.Command[credit](p, "ledger.credit")
	saga.Whenever(p, "job.opened", func(s *saga.Step[struct{}], e jobOpened) error {
		rec, _ := s.Event()
		s.Send(e.Account, credit{Amount: e.Amount, Ref: "bonus " + rec.Key})
		return nil
	})
	return p
}

func TestPolicySendsOnceForEveryEvent(t *testing.T) {
	backends.Run(t, testPolicySendsOnceForEveryEvent)
}

func testPolicySendsOnceForEveryEvent(t *testing.T, backend backends.Backend) {
	e := newEnvOn(t, backend.Open(t))
	p := start(e, e.bus, bonusPolicy())
	var eventIDs []string
	for i := range 5 {
		eventIDs = append(eventIDs, e.open(fmt.Sprintf("job-%d", i), "acct", i+1, ""))
	}
	st := waitStats(t, p.Saga, "5 commands", func(st saga.Stats) bool { return st.Commands == 5 && st.PendingCommands == 0 })
	if st.Started != 5 || st.Duplicates != 0 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
	// Every event is its own instance, and instances are dispatched side
	// by side: the credits come in any order, each naming the event that
	// caused it.
	got := e.entries("acct")
	slices.Sort(got)
	if want := []string{"credited 1 bonus job-0", "credited 2 bonus job-1", "credited 3 bonus job-2",
		"credited 4 bonus job-3", "credited 5 bonus job-4"}; !slices.Equal(got, want) {
		t.Errorf("ledger %q, want %q", got, want)
	}
	for _, rec := range e.ledgerRecords("acct") {
		ev, _ := codec.Unmarshal[credited](codec.DefaultFormat, rec.Payload)
		if want := eventIDs[ev.Amount-1]; rec.Headers[command.CausationHeader] != want {
			t.Errorf("credit %+v: causation %q, want the job.opened event %s", ev, rec.Headers[command.CausationHeader], want)
		}
	}
	// A policy's instances are gone once their commands are dispatched.
	for in, err := range p.Instances(t.Context()) {
		t.Errorf("instance %+v (%v) left", in, err)
	}
	for _, id := range eventIDs {
		if in, err := p.Get(t.Context(), id); !errors.Is(err, saga.ErrNotFound) {
			t.Errorf("Get(%s): %+v, %v; want ErrNotFound", id, in, err)
		}
	}

	// The policy reads every event again, as it would if its offsets had
	// not been committed: it derives the same command IDs, and the bus
	// applies none of them twice.
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	e.rewind(p.Group(), "jobs")
	again := start(e, e.bus, bonusPolicy())
	st = waitStats(t, again.Saga, "5 duplicates", func(st saga.Stats) bool { return st.Duplicates == 5 && st.PendingCommands == 0 })
	if st.Commands != 5 || st.Started != 5 || st.Failed != 0 {
		t.Errorf("stats after the rewind %+v", st)
	}
	if n := len(e.entries("acct")); n != 5 {
		t.Errorf("ledger has %d entries after the redelivery, want 5: %q", n, e.entries("acct"))
	}
	for in, err := range again.Instances(t.Context()) {
		t.Errorf("instance %+v (%v) left after the redelivery", in, err)
	}
}

func TestPolicyAndSagaRegistrationErrors(t *testing.T) {
	e := newEnv(t)
	noop := func(*saga.Step[struct{}], jobOpened) error { return nil }

	s := saga.Define[struct{}]("not-a-policy", "jobs")
	saga.StartOn(s, "job.opened", saga.RecordKey[jobOpened], noop)
	saga.Whenever(s, "job.poked", func(*saga.Step[struct{}], jobPoked) error { return nil })
	_, err := saga.New(e.store, e.bus, s)
	wantInvalid(t, err, `Whenever("job.poked"): a saga reacts with StartOn and On`)

	p := saga.DefinePolicy("not-a-saga", "jobs")
	saga.Whenever(p, "job.opened", noop)
	saga.StartOn(p, "job.poked", saga.RecordKey[jobPoked], func(*saga.Step[struct{}], jobPoked) error { return nil })
	saga.On(p, "job.noted", saga.RecordKey[jobNoted], func(*saga.Step[struct{}], jobNoted) error { return nil })
	_, err = saga.New(e.store, e.bus, p)
	wantInvalid(t, err, `StartOn("job.poked"): a policy reacts with Whenever`, `On("job.noted"): a policy reacts with Whenever`)

	_, err = saga.New(e.store, e.bus, saga.DefinePolicy("idle", "jobs"))
	wantInvalid(t, err, "it reacts to no event (Whenever)")
}

// wantInvalid checks that err is an ErrInvalidArgument that names every one of
// problems.
func wantInvalid(t *testing.T, err error, problems ...string) {
	t.Helper()
	if !errors.Is(err, saga.ErrInvalidArgument) {
		t.Errorf("error %v, want ErrInvalidArgument", err)
		return
	}
	for _, p := range problems {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not name %q:\n%v", p, err)
		}
	}
}

// --- Deadlines ---

// reminderSaga schedules a reminder when a job opens: a credit of the
// job's amount in an hour. Pokes cancel it ("cancel"), reschedule it in
// three hours ("later") or a minute ago ("past"), or complete the instance
// ("complete").
func reminderSaga() *saga.Definition[jobState] {
	remind := func(s *saga.Step[jobState], after time.Duration, ref string) {
		s.ScheduleCommand("remind", s.Now().Add(after), s.State.Account, credit{Amount: s.State.Amount, Ref: ref + " " + s.Key()})
	}
	return jobSaga("reminder", func(s *saga.Step[jobState]) error {
		remind(s, time.Hour, "remind")
		return nil
	}, func(s *saga.Step[jobState], mode string) error {
		switch mode {
		case "cancel":
			s.Cancel("remind")
		case "later":
			remind(s, 3*time.Hour, "later")
		case "past":
			remind(s, -time.Minute, "past")
		case "complete":
			s.Complete()
		}
		return nil
	})
}

// pokes is the condition of an instance that has taken n pokes and
// dispatched its commands.
func pokes(n int) func(saga.Instance[jobState]) bool {
	return func(in saga.Instance[jobState]) bool {
		return in.Status != "" && len(in.State.Pokes) == n && in.PendingCommands == 0
	}
}

// deadlinesOf lists the saga's pending deadlines.
func deadlinesOf[S any](t *testing.T, s *saga.Saga[S]) []saga.Deadline {
	t.Helper()
	var out []saga.Deadline
	for d, err := range s.Deadlines(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// fired is the condition of a saga that has fired n deadlines and
// dispatched its commands.
func fired(n int) func(saga.Stats) bool {
	return func(st saga.Stats) bool { return st.DeadlinesFired == n && st.PendingCommands == 0 }
}

func TestScheduleCommand(t *testing.T) {
	backends.Run(t, testScheduleCommand)
}

func testScheduleCommand(t *testing.T, backend backends.Backend) {
	t.Run("fires at its time, once", func(t *testing.T) {
		e := newEnvOn(t, backend.Open(t))
		s := start(e, e.bus, reminderSaga())
		e.open("j", "acct", 5, "")
		in := waitInstance(t, s.Saga, "j", pokes(0))
		if len(in.Deadlines) != 1 || in.Deadlines[0].Name != "remind" || !in.Deadlines[0].At.Equal(t0.Add(time.Hour)) ||
			in.Deadlines[0].Command != "ledger.credit" {
			t.Fatalf("deadlines %+v", in.Deadlines)
		}
		if listed := deadlinesOf(t, s.Saga); len(listed) != 1 || listed[0].ID != in.Deadlines[0].ID || listed[0].Key != "j" {
			t.Errorf("Deadlines %+v, instance has %+v", listed, in.Deadlines)
		}
		e.clock.Advance(59 * time.Minute)
		barrier(t, e, s.Saga)
		wantEntries(t, e, "acct")
		e.clock.Advance(time.Minute)
		waitStats(t, s.Saga, "the reminder", fired(1))
		wantEntries(t, e, "acct", "credited 5 remind j")
		if rec := e.ledgerRecords("acct")[0]; rec.Headers[command.CausationHeader] != in.Deadlines[0].ID {
			t.Errorf("the reminder's causation %q, want the deadline's ID %s", rec.Headers[command.CausationHeader], in.Deadlines[0].ID)
		}
		if in, _ := s.Get(t.Context(), "j"); len(in.Deadlines) != 0 || in.Status != saga.StatusRunning {
			t.Errorf("instance after the reminder %+v", in)
		}
		if listed := deadlinesOf(t, s.Saga); len(listed) != 0 {
			t.Errorf("Deadlines after firing: %+v", listed)
		}
		e.clock.Advance(24 * time.Hour)
		barrier(t, e, s.Saga)
		wantEntries(t, e, "acct", "credited 5 remind j")
		if st := s.Stats(); st.DeadlinesFired != 1 || st.Commands != 1 {
			t.Errorf("stats %+v", st)
		}
	})

	t.Run("cancelled before its time", func(t *testing.T) {
		e := newEnvOn(t, backend.Open(t))
		s := start(e, e.bus, reminderSaga())
		e.open("j", "acct", 5, "")
		e.poke("j", "cancel")
		if in := waitInstance(t, s.Saga, "j", pokes(1)); len(in.Deadlines) != 0 {
			t.Errorf("deadlines after Cancel: %+v", in.Deadlines)
		}
		if listed := deadlinesOf(t, s.Saga); len(listed) != 0 {
			t.Errorf("Deadlines after Cancel: %+v", listed)
		}
		e.clock.Advance(2 * time.Hour)
		barrier(t, e, s.Saga)
		wantEntries(t, e, "acct")
		if st := s.Stats(); st.DeadlinesFired != 0 {
			t.Errorf("stats %+v", st)
		}
	})

	t.Run("rescheduled under the same name", func(t *testing.T) {
		e := newEnvOn(t, backend.Open(t))
		s := start(e, e.bus, reminderSaga())
		e.open("j", "acct", 5, "")
		e.poke("j", "later")
		in := waitInstance(t, s.Saga, "j", pokes(1))
		if len(in.Deadlines) != 1 || !in.Deadlines[0].At.Equal(t0.Add(3*time.Hour)) {
			t.Fatalf("deadlines after rescheduling: %+v", in.Deadlines)
		}
		if listed := deadlinesOf(t, s.Saga); len(listed) != 1 || !listed[0].At.Equal(t0.Add(3*time.Hour)) {
			t.Errorf("Deadlines after rescheduling: %+v", listed)
		}
		e.clock.Advance(time.Hour) // the old time
		barrier(t, e, s.Saga)
		wantEntries(t, e, "acct")
		e.clock.Advance(2 * time.Hour)
		waitStats(t, s.Saga, "the rescheduled reminder", fired(1))
		e.clock.Advance(24 * time.Hour)
		barrier(t, e, s.Saga)
		wantEntries(t, e, "acct", "credited 5 later j")
		if st := s.Stats(); st.DeadlinesFired != 1 {
			t.Errorf("stats %+v", st)
		}
	})

	t.Run("completion cancels it", func(t *testing.T) {
		e := newEnvOn(t, backend.Open(t))
		s := start(e, e.bus, reminderSaga())
		e.open("j", "acct", 5, "")
		e.poke("j", "complete")
		in := waitInstance(t, s.Saga, "j", func(in saga.Instance[jobState]) bool { return in.Status == saga.StatusCompleted })
		if len(in.Deadlines) != 0 || in.Ended.IsZero() {
			t.Errorf("instance after Complete %+v", in)
		}
		if listed := deadlinesOf(t, s.Saga); len(listed) != 0 {
			t.Errorf("Deadlines after Complete: %+v", listed)
		}
		e.clock.Advance(2 * time.Hour)
		barrier(t, e, s.Saga)
		wantEntries(t, e, "acct")
	})

	t.Run("a time in the past fires at once", func(t *testing.T) {
		e := newEnvOn(t, backend.Open(t))
		s := start(e, e.bus, reminderSaga())
		e.open("j", "acct", 5, "")
		e.poke("j", "past")
		waitStats(t, s.Saga, "the past reminder", fired(1))
		wantEntries(t, e, "acct", "credited 5 past j")
		barrier(t, e, s.Saga)
		wantEntries(t, e, "acct", "credited 5 past j")
	})
}

// --- Handler errors ---

// undeclared is a command type no saga declares.
type undeclared struct{}

func TestHandlerErrors(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	attempts := map[string]int{}
	attempt := func(key string) int {
		mu.Lock()
		defer mu.Unlock()
		attempts[key]++
		return attempts[key]
	}
	d := jobSaga("errors", func(s *saga.Step[jobState]) error {
		// The step to compensate: a credit, undone by a debit.
		s.Send(s.State.Account, credit{Amount: s.State.Amount, Ref: "open " + s.Key()},
			saga.CompensateWith(s.State.Account, debit{Amount: s.State.Amount, Ref: "undo " + s.Key()}))
		return nil
	}, func(s *saga.Step[jobState], mode string) error {
		switch mode {
		case "flaky":
			if attempt(s.Key()) < 3 {
				return errors.New("flaky")
			}
			s.Send(s.State.Account, credit{Amount: 1, Ref: "flaky " + s.Key()})
		case "boom":
			attempt(s.Key())
			return errors.New("boom")
		case "permanent":
			attempt(s.Key())
			return consume.Permanent(errors.New("bad input"))
		case "panic":
			attempt(s.Key())
			panic("kaboom")
		case "undeclared":
			s.Send(s.State.Account, undeclared{})
		case "unknown timeout":
			s.Schedule("nope", s.Now().Add(time.Hour), tick{})
		case "wrong message":
			s.Schedule("tick", s.Now().Add(time.Hour), "a string")
		case "complete":
			s.Complete()
		}
		return nil
	})
	saga.OnTimeout(d, "tick", func(*saga.Step[jobState], tick) error { return nil })
	// The retries wait out their back-off, a millisecond, on the saga's
	// clock: here the system's, as no deadline of this test is moved
	// (TestRetriesWaitOnTheSagaClock moves a manual one).
	s := start(e, e.bus, d, saga.WithRetries(2), saga.WithClock(clock.System()))

	cases := []struct {
		key, mode string
		attempts  int      // handler runs, or 0 if not counted
		errs      []string // in LastError; none: the instance does not fail
	}{
		{"j-flaky", "flaky", 3, nil},
		{"j-boom", "boom", 3, []string{"handler failed after 3 attempts: boom"}},
		{"j-permanent", "permanent", 1, []string{"handler failed after 1 attempts: bad input"}},
		{"j-panic", "panic", 1, []string{"handler panicked: kaboom"}},
		{"j-undeclared", "undeclared", 0, []string{"saga_test.undeclared is not declared", "saga.Command[saga_test.undeclared]"}},
		{"j-unknown", "unknown timeout", 0, []string{`Schedule("nope"): no OnTimeout handler`}},
		{"j-wrong", "wrong message", 0, []string{`Schedule("tick"): message of type string, want saga_test.tick`}},
		{"j-ok", "complete", 0, nil},
	}
	for _, c := range cases {
		e.open(c.key, "acct-"+c.key, 10, "")
	}
	for _, c := range cases {
		waitInstance(t, s.Saga, c.key, pokes(0))
		e.poke(c.key, c.mode)
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			in := waitInstance(t, s.Saga, c.key, func(in saga.Instance[jobState]) bool {
				return in.PendingCommands == 0 && in.Status != saga.StatusRunning && in.Status != saga.StatusCompensating ||
					c.mode == "flaky" && len(in.State.Pokes) == 1 && in.Steps == 2 && in.PendingCommands == 0
			})
			mu.Lock()
			n := attempts[c.key]
			mu.Unlock()
			if c.attempts != 0 && n != c.attempts {
				t.Errorf("handler ran %d times, want %d", n, c.attempts)
			}
			acct := "acct-" + c.key
			if c.errs == nil {
				if in.LastError != "" || in.Failure != nil {
					t.Errorf("instance %+v", in)
				}
				if c.mode == "flaky" {
					wantEntries(t, e, acct, "credited 10 open j-flaky", "credited 1 flaky j-flaky")
				} else {
					wantEntries(t, e, acct, "credited 10 open j-ok")
				}
				return
			}
			if in.Status != saga.StatusFailed || in.Failure == nil || in.Failure.Reason != in.LastError {
				t.Errorf("instance %+v", in)
			}
			for _, want := range c.errs {
				if !strings.Contains(in.LastError, want) {
					t.Errorf("LastError %q does not say %q", in.LastError, want)
				}
			}
			// The earlier step's credit is compensated.
			wantEntries(t, e, acct, "credited 10 open "+c.key, "debited 10 undo "+c.key)
		})
	}
	if st := s.Stats(); st.Failed != 6 || st.Compensations != 6 || st.Completed != 1 || st.Started != len(cases) {
		t.Errorf("stats %+v", st)
	}
}

// --- Errors that concern no instance ---

func TestPayloadThatDoesNotDecodeStopsRun(t *testing.T) {
	e := newEnv(t)
	s := start(e, e.bus, jobSaga("strict", nil, nil))
	appendRaw := func(payload string) eventstore.AppendResult {
		t.Helper()
		res, err := e.store.Append(t.Context(), "jobs", "j", eventstore.Any, []eventstore.Event{{Type: "job.opened", Payload: []byte(payload)}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	good := appendRaw(`{"account":"acct","amount":10}`)
	waitInstance(t, s.Saga, "j", func(in saga.Instance[jobState]) bool { return in.Status == saga.StatusRunning })
	bad := appendRaw(`{"account":"acct","amount":"ten"}`)
	if bad.Partition != good.Partition || bad.FirstOffset != good.FirstOffset+1 {
		t.Fatalf("appends at %+v and %+v", good, bad)
	}
	waitStats(t, s.Saga, "Run to fail", func(st saga.Stats) bool { return st.State == saga.RunFailed })
	err := s.stop()
	at := fmt.Sprintf("jobs/%d@%d (job.opened)", bad.Partition, bad.FirstOffset)
	if err == nil || !strings.Contains(err.Error(), at) || !strings.Contains(err.Error(), "decode job.opened payload") {
		t.Errorf("Run: %v; want an error naming %s and the decoding", err, at)
	}
	if st := s.Stats(); st.Err == nil || st.Err.Error() != err.Error() {
		t.Errorf("Stats.Err %v, Run's %v", st.Err, err)
	}
	off, ok, err := e.store.CommittedOffset(t.Context(), s.Group(), "jobs", bad.Partition)
	if err != nil || !ok || off != bad.FirstOffset {
		t.Errorf("committed offset %d (%v, %v), want %d: just before the bad record", off, ok, err, bad.FirstOffset)
	}

	// Fixed: a saga of the same name that takes the amount as it comes
	// reads the record at fault again, and goes on.
	type looseOpened struct {
		Account string `json:"account"`
		Amount  any    `json:"amount"`
	}
	fixed := saga.Define[jobState]("strict", "jobs")
	saga.StartOn(fixed, "job.opened", saga.RecordKey[looseOpened], func(s *saga.Step[jobState], e looseOpened) error {
		rec, _ := s.Event()
		s.State.Offsets = append(s.State.Offsets, rec.Offset)
		return nil
	})
	f := start(e, e.bus, fixed)
	in := waitInstance(t, f.Saga, "j", func(in saga.Instance[jobState]) bool { return len(in.State.Offsets) == 2 })
	if !slices.Equal(in.State.Offsets, []int64{good.FirstOffset, bad.FirstOffset}) || in.Steps != 2 {
		t.Errorf("instance after the fix %+v", in)
	}
	if st := f.Stats(); st.State != saga.RunRunning {
		t.Errorf("stats after the fix %+v", st)
	}
}

func TestPanickingKeyStopsRun(t *testing.T) {
	e := newEnv(t)
	d := saga.Define[jobState]("panicky", "jobs")
	saga.StartOn(d, "job.opened", func(eventstore.Record, jobOpened) string { panic("no key") }, func(*saga.Step[jobState], jobOpened) error { return nil })
	s := start(e, e.bus, d)
	e.open("j", "acct", 1, "")
	waitStats(t, s.Saga, "Run to fail", func(st saga.Stats) bool { return st.State == saga.RunFailed })
	if err := s.stop(); err == nil || !strings.Contains(err.Error(), "key function of job.opened panicked: no key") {
		t.Errorf("Run: %v", err)
	}
}

func TestEventsForNoInstanceAreIgnored(t *testing.T) {
	e := newEnv(t)
	s := start(e, e.bus, jobSaga("ignoring", nil, nil))
	e.open("unkeyed", "acct", 1, "unkeyed") // the start key is ""
	e.poke("unkeyed", "x")                  // no instance to reach
	if _, err := e.jobs.Dispatch(t.Context(), "j", noteJob{}); err != nil {
		t.Fatal(err) // the key is ""
	}
	st := waitStats(t, s.Saga, "3 ignored events", func(st saga.Stats) bool { return st.Ignored == 3 })
	if st.Started != 0 || st.Steps != 0 || st.State != saga.RunRunning {
		t.Errorf("stats %+v", st)
	}
	for in, err := range s.Instances(t.Context()) {
		t.Errorf("instance %+v (%v)", in, err)
	}
}

// --- Validation ---

func TestNewReportsEveryProblem(t *testing.T) {
	e := newEnv(t)
	noop := func(*saga.Step[jobState], jobOpened) error { return nil }

	d := saga.Define[jobState]("", "jobs", "jobs", "bad topic!")
	_, err := saga.New(nil, nil, d, saga.WithBatchSize(0), saga.WithConcurrency(0), saga.WithRetries(-1),
		saga.WithRetention(0), saga.WithPurgeInterval(-time.Second), saga.WithBackoff(clock.Backoff{Initial: -time.Second}), saga.WithClock(nil),
		saga.WithCodec(nil), saga.WithLogger(nil), nil)
	wantInvalid(t, err, "nil store", "nil dispatcher",
		"saga: name is empty", `topic "jobs" is listed twice`, `topic "bad topic!"`, "no event starts it (StartOn)",
		"WithBatchSize: 0, want 1 to 1000000", "WithConcurrency: 0, want at least 1", "WithRetries: -1, want at least 0",
		"WithRetention: 0s", "WithPurgeInterval: -1s", "WithBackoff: Backoff.Initial is negative", "WithClock: nil clock",
		"WithCodec: nil codec", "WithLogger: nil logger", "nil option")

	_, err = saga.New(e.store, e.bus, saga.Define[jobState]("no-topics"))
	wantInvalid(t, err, "no topics to read")

	_, err = saga.New[jobState](e.store, e.bus, nil)
	wantInvalid(t, err, "nil definition")

	d = saga.Define[jobState]("twice", "jobs")
	saga.StartOn(d, "job.opened", saga.RecordKey[jobOpened], noop)
	saga.On(d, "job.opened", saga.RecordKey[jobOpened], noop)
	saga.StartOn(d, "", saga.RecordKey[jobOpened], noop)
	saga.On(d, "job.poked", nil, func(*saga.Step[jobState], jobPoked) error { return nil })
	saga.OnTimeout(d, "tick", func(*saga.Step[jobState], tick) error { return nil })
	saga.OnTimeout(d, "tick", func(*saga.Step[jobState], tick) error { return nil })
	saga.OnTimeout(d, "", func(*saga.Step[jobState], tick) error { return nil })
	saga.Command[jobCommand](d, "job.any")
	saga.Command[credit](d, "ledger.credit")
	saga.Command[debit](d, "ledger.credit")
	saga.Command[credit](d, "ledger.credit-again")
	saga.Command[debit](d, "")
	saga.OnFailure(d, func(*saga.Step[jobState], saga.Failure) error { return nil })
	saga.OnFailure(d, func(*saga.Step[jobState], saga.Failure) error { return nil })
	if d.Err() == nil {
		t.Error("Err: nil")
	}
	_, err = saga.New(e.store, e.bus, d, saga.WithBatchSize(0))
	wantInvalid(t, err,
		`On: event type "job.opened" already has a handler`,
		"StartOn: empty event type",
		`On("job.poked"): nil key or handler`,
		`OnTimeout("tick"): timeout already has a handler`,
		"OnTimeout: empty timeout name",
		"Command[saga_test.jobCommand]: an interface type",
		`Command[saga_test.debit]: name "ledger.credit" is already command type saga_test.credit`,
		`Command[saga_test.credit]: already declared as "ledger.credit"`,
		"Command[saga_test.debit]: empty command type name",
		"OnFailure: registered twice",
		"WithBatchSize: 0")
}

// --- Restart ---

// gate is a Dispatcher in front of the real bus that fails every dispatch
// with a transient error (command.KindUnavailable, as a remote bus that is
// down would) while it is closed. With lose set, it dispatches one command
// and then loses the reply, failing the same way.
type gate struct {
	bus     *command.Bus
	mu      sync.Mutex
	open    bool
	lose    bool
	refused chan string // receives the aggregate ID of every refused dispatch
}

func newGate(bus *command.Bus) *gate { return &gate{bus: bus, refused: make(chan string, 10_000)} }

func (g *gate) Dispatch(ctx context.Context, id string, cmd any, opts ...command.DispatchOption) (command.Result, error) {
	g.mu.Lock()
	open, lose := g.open, g.lose
	g.lose = false
	g.mu.Unlock()
	if lose {
		if _, err := g.bus.Dispatch(ctx, id, cmd, opts...); err != nil {
			return command.Result{}, err
		}
	}
	if !open || lose {
		select {
		case g.refused <- id:
		default:
		}
		return command.Result{}, &command.Error{Kind: command.KindUnavailable, Msg: "the ledger service is down"}
	}
	return g.bus.Dispatch(ctx, id, cmd, opts...)
}

func (g *gate) set(open, lose bool) {
	g.mu.Lock()
	g.open, g.lose = open, lose
	g.mu.Unlock()
}

// retried waits until the gate has refused n dispatches more: the first,
// then each retry after the saga's clock has passed its back-off.
func (g *gate) retried(t *testing.T, e *env, n int) {
	t.Helper()
	g.waitRefused(t, 1)
	for range n - 1 {
		e.passBackoff(t)
		g.waitRefused(t, 1)
	}
}

// passBackoff moves the clock past the back-off of a command's retry,
// once the saga waits for it: then it waits twice, for the retry and for
// its next deadline or purge.
func (e *env) passBackoff(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTime)
	defer cancel()
	if err := e.clock.BlockUntil(ctx, 2); err != nil {
		t.Fatalf("the saga does not wait to retry its command: %v", err)
	}
	e.clock.Advance(tinyBackoff.Initial)
}

// waitRefused waits until the gate has refused n dispatches more.
func (g *gate) waitRefused(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(waitTime)
	for range n {
		select {
		case <-g.refused:
		case <-timeout:
			t.Fatal("the saga does not retry its command")
		}
	}
}

// restartSaga credits a job's amount when it opens, reminds of it (a
// credit) in an hour, and in two hours credits its amount plus the tick's
// and completes.
func restartSaga() *saga.Definition[jobState] {
	d := jobSaga("restart", func(s *saga.Step[jobState]) error {
		acct := s.State.Account
		s.Send(acct, credit{Amount: s.State.Amount, Ref: "open " + s.Key()}, saga.CompensateWith(acct, debit{Amount: s.State.Amount, Ref: "undo"}))
		s.ScheduleCommand("remind", s.Now().Add(time.Hour), acct, credit{Amount: 1, Ref: "remind " + s.Key()})
		s.Schedule("expire", s.Now().Add(2*time.Hour), tick{N: 7})
		return nil
	}, nil)
	saga.OnTimeout(d, "expire", func(s *saga.Step[jobState], m tick) error {
		s.Send(s.State.Account, credit{Amount: s.State.Amount + m.N, Ref: "expire " + s.Key()})
		s.Complete()
		return nil
	})
	return d
}

func TestTransientDispatchErrorsAreRetried(t *testing.T) {
	e := newEnv(t)
	g := newGate(e.bus)
	s := start(e, g, restartSaga())

	// The ledger is down: the credit waits in the outbox, retried, and the
	// instance neither fails nor compensates.
	e.open("j", "acct", 5, "")
	g.retried(t, e, 3)
	in, err := s.Get(t.Context(), "j")
	if err != nil || in.Status != saga.StatusRunning || in.PendingCommands != 1 || in.Failure != nil || in.LastError != "" {
		t.Errorf("instance while the ledger is down: %+v, %v", in, err)
	}
	if st := s.Stats(); !strings.Contains(st.LastError, "the ledger service is down") || st.Failed != 0 || st.PendingCommands != 1 {
		t.Errorf("stats while the ledger is down: %+v", st)
	}
	// It comes back, but the reply to the first command it applies is
	// lost: the saga sends it again, with the same ID, and the bus says it
	// is a duplicate.
	g.set(true, true)
	e.passBackoff(t)
	g.waitRefused(t, 1) // applied, but its reply lost
	e.passBackoff(t)
	waitInstance(t, s.Saga, "j", pokes(0))
	wantEntries(t, e, "acct", "credited 5 open j")
	st := waitStats(t, s.Saga, "the dispatch", func(st saga.Stats) bool { return st.Commands == 1 })
	if st.Duplicates != 1 || st.Failed != 0 || st.Compensations != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestRestart(t *testing.T) {
	backends.Run(t, testRestart)
}

func testRestart(t *testing.T, backend backends.Backend) {
	e := newEnvOn(t, backend.Open(t))
	g := newGate(e.bus)
	first := start(e, g, restartSaga())
	e.open("j", "acct", 5, "")
	g.retried(t, e, 2)

	// Stopped while its credit is still in the outbox: the instance is as
	// it was, its command and deadlines still pending.
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	in, err := first.Get(t.Context(), "j")
	if err != nil || in.Status != saga.StatusRunning || in.PendingCommands != 1 || len(in.Deadlines) != 2 || in.Failure != nil {
		t.Fatalf("instance after the stop: %+v, %v", in, err)
	}
	wantEntries(t, e, "acct")

	// Time passes while it is down; a new saga on the same store
	// dispatches the outbox, then fires the reminder that fell due.
	e.clock.Advance(time.Hour)
	g.set(true, false)
	second := start(e, g, restartSaga())
	waitStats(t, second.Saga, "the reminder", fired(1))
	wantEntries(t, e, "acct", "credited 5 open j", "credited 1 remind j")

	// The timeout fires on the state the first saga left.
	e.clock.Advance(time.Hour)
	in = waitInstance(t, second.Saga, "j", func(in saga.Instance[jobState]) bool {
		return in.Status == saga.StatusCompleted && in.PendingCommands == 0
	})
	wantEntries(t, e, "acct", "credited 5 open j", "credited 1 remind j", "credited 12 expire j")
	if in.Steps != 2 || in.Failure != nil || len(in.Deadlines) != 0 {
		t.Errorf("instance %+v", in)
	}
	if st := second.Stats(); st.Failed != 0 || st.Compensations != 0 || st.DeadlinesFired != 2 || st.Duplicates != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestStopDuringCompensation(t *testing.T) {
	backends.Run(t, testStopDuringCompensation)
}

func testStopDuringCompensation(t *testing.T, backend backends.Backend) {
	e := newEnvOn(t, backend.Open(t))
	g := newGate(e.bus)
	g.set(true, false)
	d := jobSaga("compensate", func(s *saga.Step[jobState]) error {
		s.Send(s.State.Account, credit{Amount: s.State.Amount, Ref: "open"}, saga.CompensateWith(s.State.Account, debit{Amount: s.State.Amount, Ref: "undo"}))
		return nil
	}, func(s *saga.Step[jobState], mode string) error {
		s.Fail("given up")
		return nil
	})
	first := start(e, g, d)
	e.open("j", "acct", 5, "")
	waitInstance(t, first.Saga, "j", pokes(0))

	// The ledger goes down as the instance fails: its compensation waits
	// in the outbox, and stopping the saga leaves it there.
	g.set(false, false)
	e.poke("j", "fail")
	g.retried(t, e, 2)
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	in, err := first.Get(t.Context(), "j")
	if err != nil || in.Status != saga.StatusCompensating || in.PendingCommands != 1 || len(in.CompensationErrors) != 0 {
		t.Fatalf("instance after the stop: %+v, %v", in, err)
	}

	g.set(true, false)
	second := start(e, g, d)
	in = waitInstance(t, second.Saga, "j", func(in saga.Instance[jobState]) bool { return in.Status == saga.StatusFailed })
	if in.LastError != "given up" || len(in.CompensationErrors) != 0 || in.PendingCommands != 0 {
		t.Errorf("instance %+v", in)
	}
	wantEntries(t, e, "acct", "credited 5 open", "debited 5 undo")
}

// --- Inspection ---

func TestInspection(t *testing.T) {
	backends.Run(t, testInspection)
}

func testInspection(t *testing.T, backend backends.Backend) {
	e := newEnvOn(t, backend.Open(t))
	// Each instance schedules two deadlines, the later one first.
	d := jobSaga("inspect", func(s *saga.Step[jobState]) error {
		at := func(n int) time.Time { return s.Now().Add(time.Duration(n*s.State.Amount) * time.Minute) }
		s.ScheduleCommand("late", at(2), s.State.Account, credit{Amount: 1, Ref: "late"})
		s.ScheduleCommand("early", at(1), s.State.Account, credit{Amount: 1, Ref: "early"})
		return nil
	}, func(s *saga.Step[jobState], mode string) error {
		if mode == "complete" {
			s.Complete()
		}
		return nil
	})
	s := start(e, e.bus, d, saga.WithRetention(time.Hour), saga.WithPurgeInterval(1000*time.Hour))
	for _, j := range []struct {
		key    string
		amount int
	}{{"c", 40}, {"a", 10}, {"b", 25}} {
		e.open(j.key, "acct-"+j.key, j.amount, "")
		waitInstance(t, s.Saga, j.key, pokes(0))
	}
	in, _ := s.Get(t.Context(), "b")
	if len(in.Deadlines) != 2 || in.Deadlines[0].Name != "early" || !in.Deadlines[0].At.Equal(t0.Add(25*time.Minute)) ||
		in.Deadlines[1].Name != "late" || !in.Deadlines[1].At.Equal(t0.Add(50*time.Minute)) {
		t.Errorf("deadlines of b, soonest first: %+v", in.Deadlines)
	}
	var order []string
	for _, d := range deadlinesOf(t, s.Saga) {
		order = append(order, fmt.Sprintf("%s/%s@%s", d.Key, d.Name, d.At.Sub(t0)))
	}
	if want := []string{"a/early@10m0s", "a/late@20m0s", "b/early@25m0s", "c/early@40m0s", "b/late@50m0s", "c/late@1h20m0s"}; !slices.Equal(order, want) {
		t.Errorf("Deadlines %q, want %q", order, want)
	}

	e.poke("b", "complete")
	waitInstance(t, s.Saga, "b", func(in saga.Instance[jobState]) bool { return in.Status == saga.StatusCompleted })
	list := func(opts ...saga.ListOption) []string {
		t.Helper()
		var keys []string
		for in, err := range s.Instances(t.Context(), opts...) {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, fmt.Sprintf("%s:%s", in.Key, in.Status))
		}
		return keys
	}
	for _, c := range []struct {
		opts []saga.ListOption
		want []string
	}{
		{nil, []string{"a:running", "b:completed", "c:running"}},
		{[]saga.ListOption{saga.WithStatus(saga.StatusRunning)}, []string{"a:running", "c:running"}},
		{[]saga.ListOption{saga.WithStatus(saga.StatusCompleted)}, []string{"b:completed"}},
		{[]saga.ListOption{saga.WithStatus(saga.StatusFailed, saga.StatusCompensating)}, nil},
		{[]saga.ListOption{saga.After("a")}, []string{"b:completed", "c:running"}},
		{[]saga.ListOption{saga.After("b"), saga.WithStatus(saga.StatusRunning)}, []string{"c:running"}},
		{[]saga.ListOption{saga.After("c")}, nil},
	} {
		if got := list(c.opts...); !slices.Equal(got, c.want) {
			t.Errorf("Instances with %d options: %q, want %q", len(c.opts), got, c.want)
		}
	}
	st := s.Stats()
	if st.State != saga.RunRunning || st.Started != 3 || st.Completed != 1 || st.Steps != 4 || st.Failed != 0 || st.Commands != 0 {
		t.Errorf("stats %+v", st)
	}

	// WaitFor gives up when its context does, saying where the instance is.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := s.WaitFor(ctx, "a", func(in saga.Instance[jobState]) bool { return in.Status == saga.StatusFailed })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `status "running"`) {
		t.Errorf("WaitFor: %v", err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err = s.WaitFor(ctx, "zz", func(in saga.Instance[jobState]) bool { return in.Status != "" })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `status ""`) {
		t.Errorf("WaitFor of a missing instance: %v", err)
	}

	// Purge deletes the ended instance once its retention has passed, and
	// never a running one, however old.
	if n, err := s.Purge(t.Context()); n != 0 || err != nil {
		t.Errorf("Purge within the retention: %d, %v", n, err)
	}
	e.clock.Advance(59 * time.Minute)
	if n, err := s.Purge(t.Context()); n != 0 || err != nil {
		t.Errorf("Purge a minute before the retention ends: %d, %v", n, err)
	}
	e.clock.Advance(2 * time.Minute)
	if n, err := s.Purge(t.Context()); n != 1 || err != nil {
		t.Errorf("Purge after the retention: %d, %v", n, err)
	}
	if _, err := s.Get(t.Context(), "b"); !errors.Is(err, saga.ErrNotFound) {
		t.Errorf("Get of a purged instance: %v", err)
	}
	if got := list(); !slices.Equal(got, []string{"a:running", "c:running"}) {
		t.Errorf("Instances after the purge: %q", got)
	}
	// A late event for the purged instance reaches nothing: it is ignored.
	ignored := s.Stats().Ignored
	e.poke("b", "late")
	waitStats(t, s.Saga, "the late poke", func(st saga.Stats) bool { return st.Ignored > ignored })
	if _, err := s.Get(t.Context(), "b"); !errors.Is(err, saga.ErrNotFound) {
		t.Errorf("Get after a late event: %v", err)
	}
}

// --- Many instances ---

func TestManyWorkflowsAtOnce(t *testing.T) {
	for _, c := range []struct {
		name string
		n    int
		opts []saga.Option
	}{
		{"default concurrency", 200, nil},
		{"concurrency 1", 40, []saga.Option{saga.WithConcurrency(1)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, c.opts...)
			// Four outcomes in turn: completed, payment declined, shipment
			// rejected (no address), payment timed out.
			id := func(i int) string { return fmt.Sprintf("o-%03d", i) }
			var wg sync.WaitGroup
			for i := range c.n {
				o := fulfillment.PlaceOrder{Customer: "c", Total: 1000, SKU: fmt.Sprintf("sku-%d", i%7), Qty: 1, Address: "1 Main St"}
				switch i % 4 {
				case 1:
					o.Total = fulfillment.DeclineAbove + 1
				case 2:
					o.Address = ""
				case 3:
					o.Total = fulfillment.NeverAnswer
				}
				wg.Go(func() {
					if _, err := w.h.Orders.Dispatch(t.Context(), id(i), o); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			// Every workflow gets as far as it can before its payment
			// times out; then the unanswered payments time out.
			want := func(i int) saga.Status {
				switch i % 4 {
				case 0:
					return saga.StatusCompleted
				case 3:
					return saga.StatusRunning
				}
				return saga.StatusFailed
			}
			for i := range c.n {
				w.settle(id(i), want(i))
			}
			w.clock.Advance(fulfillment.PaymentTimeout)
			for i := range c.n {
				if i%4 == 3 {
					w.settle(id(i), saga.StatusFailed)
				}
				order, err := w.h.Order(t.Context(), id(i))
				if err != nil || order.Completed != (i%4 == 0) || order.Cancelled == (i%4 == 0) {
					t.Errorf("order %s: %+v, %v", id(i), order, err)
				}
			}
			st := waitStats(t, w.saga, "the counts", func(st saga.Stats) bool { return st.Completed+st.Failed == c.n })
			if st.Started != c.n || st.Completed != c.n/4 || st.DeadlinesFired != c.n/4 || st.Duplicates != 0 || st.PendingCommands != 0 {
				t.Errorf("stats %+v", st)
			}
			// Every unit reserved was released, except the completed orders'.
			for sku := range 7 {
				stock, err := w.h.StockOf(t.Context(), fmt.Sprintf("sku-%d", sku))
				if err != nil {
					t.Fatal(err)
				}
				completed := 0
				for i := sku; i < c.n; i += 7 {
					if i%4 == 0 {
						completed++
					}
				}
				if reserved := fulfillment.InitialStock - stock.Available; reserved != completed {
					t.Errorf("sku-%d: %d units reserved, want %d", sku, reserved, completed)
				}
			}
		})
	}
}

// --- One clock ---

// A handler's retry waits out its back-off on the saga's clock: the step
// runs again only once the clock has passed it.
func TestRetriesWaitOnTheSagaClock(t *testing.T) {
	e := newEnv(t)
	ran := make(chan int, 10)
	n := 0
	d := jobSaga("retry-clock", nil, func(s *saga.Step[jobState], mode string) error {
		n++
		ran <- n
		if n == 1 {
			return errors.New("not yet")
		}
		return nil
	})
	s := start(e, e.bus, d, saga.WithBackoff(clock.Constant(time.Minute)))
	e.open("j", "acct", 1, "")
	waitInstance(t, s.Saga, "j", pokes(0))
	e.poke("j", "retry")
	<-ran
	ctx, cancel := context.WithTimeout(t.Context(), waitTime)
	defer cancel()
	// The loop waits for its retry only: it does not poll meanwhile.
	if err := e.clock.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if next, ok := e.clock.Next(); !ok || !next.Equal(e.clock.Now().Add(time.Minute)) {
		t.Fatalf("the saga waits until %v (%t), want the back-off's end %v", next, ok, e.clock.Now().Add(time.Minute))
	}
	select {
	case <-ran:
		t.Fatal("the step ran again before the clock passed its back-off")
	default:
	}
	e.clock.Advance(time.Minute)
	in := waitInstance(t, s.Saga, "j", pokes(1))
	if in.Status != saga.StatusRunning || in.Failure != nil {
		t.Errorf("instance after the retry %+v", in)
	}
	if got := <-ran; got != 2 {
		t.Errorf("the step ran %d times", got)
	}
}

// --- Failure ---

// A rejected command's failure carries the rejection's kind and message,
// in the instance as in JSON.
func TestRejectionKindAndMessage(t *testing.T) {
	e := newEnv(t)
	d := jobSaga("overdraw", func(s *saga.Step[jobState]) error {
		s.Send(s.State.Account, debit{Amount: s.State.Amount, Ref: "overdraw " + s.Key()})
		return nil
	}, func(s *saga.Step[jobState], mode string) error {
		s.Fail("given up")
		return nil
	})
	s := start(e, e.bus, d)
	e.open("j", "empty", 10, "")
	in := waitInstance(t, s.Saga, "j", func(in saga.Instance[jobState]) bool { return in.Status == saga.StatusFailed })
	f := in.Failure
	if f == nil || f.Kind != command.KindFailedPrecondition || f.Message != "debit of 10: the balance is 0" ||
		f.Command != "ledger.debit" || f.AggregateID != "empty" || !strings.Contains(f.Reason, "rejected") {
		t.Fatalf("failure %+v", f)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"reason":` + strconv.Quote(f.Reason) + `,"command":"ledger.debit","aggregate_id":"empty","kind":"failed precondition","message":"debit of 10: the balance is 0"}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	var back saga.Failure
	if err := json.Unmarshal(b, &back); err != nil || back != *f {
		t.Errorf("JSON reads back as %+v, %v", back, err)
	}

	// A failure no command caused has no kind.
	e.open("k", "acct", 0, "")
	e.poke("k", "fail")
	in = waitInstance(t, s.Saga, "k", func(in saga.Instance[jobState]) bool { return in.Status == saga.StatusFailed })
	if in.Failure == nil || in.Failure.Kind != 0 || in.Failure.Message != "" {
		t.Errorf("failure of a step %+v", in.Failure)
	}
}

// --- Status ---

func TestStatus(t *testing.T) {
	e := newEnv(t)
	s := start(e, e.bus, reminderSaga())
	st, err := s.Status(t.Context())
	if err != nil || st.Name != "reminder" || st.Group != "saga.reminder" || st.Loop.Name != "saga.reminder" {
		t.Fatalf("status before anything: %+v, %v", st, err)
	}
	e.open("j", "acct", 5, "")
	waitInstance(t, s.Saga, "j", pokes(0))
	st, err = s.Status(t.Context())
	if err != nil || st.State != saga.RunRunning || st.Counters.Started != 1 || st.Deadlines != 1 || len(st.Loop.Partitions) != 4 {
		t.Fatalf("status %+v, %v", st, err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"state":"running"`, `"deadlines":1`, `"started":1`, `"pending_commands":0`, `"loop":{"name":"saga.reminder"`, `"lag_seconds":`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s does not have %s", b, want)
		}
	}
	e.clock.Advance(time.Hour)
	waitStats(t, s.Saga, "the reminder", fired(1))
	if st, err := s.Status(t.Context()); err != nil || st.Deadlines != 0 || st.Counters.DeadlinesFired != 1 || st.Counters.Commands != 1 {
		t.Errorf("status after the reminder: %+v, %v", st, err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Status(t.Context()); err != nil || st.State != saga.RunStopped || st.Error != "" {
		t.Errorf("status after the stop: %+v, %v", st, err)
	}
}

// A saga's name must leave room for its group's prefix.
func TestNameTooLongForItsGroup(t *testing.T) {
	e := newEnv(t)
	name := strings.Repeat("n", eventstore.MaxNameLen-len("saga.")+1)
	d := saga.Define[jobState](name, "jobs")
	saga.StartOn(d, "job.opened", saga.RecordKey[jobOpened], func(*saga.Step[jobState], jobOpened) error { return nil })
	_, err := saga.New(e.store, e.bus, d)
	wantInvalid(t, err, fmt.Sprintf("its consumer group %q+name would be %d bytes, longer than %d", "saga.", eventstore.MaxNameLen+1, eventstore.MaxNameLen))
	ok := saga.Define[jobState](name[1:], "jobs")
	saga.StartOn(ok, "job.opened", saga.RecordKey[jobOpened], func(*saga.Step[jobState], jobOpened) error { return nil })
	if _, err := saga.New(e.store, e.bus, ok); err != nil {
		t.Errorf("a name whose group fits: %v", err)
	}
}

// --- Rebalance ---

// A second runner of a saga joins its group while the first has polled
// records of every partition and not yet written them: the first's batch
// is void (its commit is fenced), and it reads again, from the committed
// offsets, the partitions it keeps. Every record then starts its instance
// once: none is lost, none applied twice.
func TestRebalanceVoidsABatch(t *testing.T) {
	backends.Run(t, testRebalanceVoidsABatch)
}

func testRebalanceVoidsABatch(t *testing.T, backend backends.Backend) {
	e := newEnvOn(t, backend.Open(t))
	parts := map[int]bool{}
	var keys []string
	for i := 0; len(parts) < 4 || len(keys) < 8; i++ {
		key := fmt.Sprintf("j-%d", i)
		res, err := e.jobs.Dispatch(t.Context(), key, openJob{Account: "acct", Amount: 1})
		if err != nil {
			t.Fatal(err)
		}
		parts[res.Position().Partition] = true
		keys = append(keys, key)
	}
	blocked, unblock := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	def := func() *saga.Definition[jobState] {
		d := saga.Define[jobState]("rebalance", "jobs")
		saga.StartOn(d, "job.opened", func(rec eventstore.Record, _ jobOpened) string {
			// The first runner's first poll waits here, before its batch.
			if first.CompareAndSwap(false, true) {
				close(blocked)
				<-unblock
			}
			return rec.Key
		}, func(s *saga.Step[jobState], _ jobOpened) error {
			rec, _ := s.Event()
			s.State.Offsets = append(s.State.Offsets, rec.Offset)
			return nil
		})
		return d
	}
	one := start(e, e.bus, def())
	<-blocked
	two := start(e, e.bus, def())
	// The second runner has joined once it has started an instance of
	// the partitions the rebalance gave it.
	waitStats(t, two.Saga, "the second runner's first instance", func(st saga.Stats) bool { return st.Started > 0 })
	close(unblock)
	for _, key := range keys {
		in := waitInstance(t, one.Saga, key, func(in saga.Instance[jobState]) bool { return in.Status == saga.StatusRunning })
		if len(in.State.Offsets) != 1 || in.Steps != 1 {
			t.Errorf("instance %s: steps %d, offsets %v; want one step", key, in.Steps, in.State.Offsets)
		}
	}
	a, b := one.Stats(), two.Stats()
	if a.Started+b.Started != len(keys) || a.Steps+b.Steps != len(keys) {
		t.Errorf("the runners started %d and %d instances in %d and %d steps, want %d in all", a.Started, b.Started, a.Steps, b.Steps, len(keys))
	}
}
