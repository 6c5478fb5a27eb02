package command_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/crashtest"
)

// The crash test proves that a command's events and its idempotency record
// are written together: a child process (this test binary, re-executed by
// crashtest to run only TestCommandCrashChild) dispatches commands with IDs
// from several goroutines, some of them resent, and acknowledges each
// dispatch after it returned. The parent kills it with SIGKILL, reopens the
// store and checks that every acknowledged command is remembered with its
// result, that every event has the record of the command that caused it and
// every record its events, and that resending any acknowledged command
// appends nothing.

const cmdCrashWorkers = 6

func crashAggregate(t testing.TB) *aggregate.Aggregate[Order, OrderCommand, OrderEvent] {
	return orderAggregate(t, aggregate.WithTopic("crash-orders"), aggregate.WithPartitions(4), aggregate.WithSnapshots(20))
}

// TestCommandCrashChild is the child of TestCommandCrashSafety; without its
// environment it does nothing.
func TestCommandCrashChild(t *testing.T) {
	if !crashtest.IsChild(t) {
		return
	}
	dir, round, seed := crashtest.Arg("dir"), crashtest.IntArg("round"), crashtest.Uint64Arg("seed")
	fail := crashtest.Fail
	ctx := context.Background()
	s, err := eventstore.Open(dir)
	if err != nil {
		fail("open: %v", err)
	}
	b, err := command.New(s)
	if err != nil {
		fail("bus: %v", err)
	}
	orders, err := command.Register(ctx, b, crashAggregate(t))
	if err != nil {
		fail("register: %v", err)
	}
	for g := range cmdCrashWorkers {
		go func() {
			rng := rand.New(rand.NewPCG(seed, uint64(round)<<8|uint64(g)))
			id := fmt.Sprintf("g%d", g) // every round adds to the same orders
			if _, err := orders.Dispatch(ctx, id, PlaceOrder{"c"}, command.WithCommandID("place-"+id)); err != nil {
				fail("place %s: %v", id, err)
			}
			var sent []string
			for n := 0; ; n++ {
				cmdID := fmt.Sprintf("r%d-g%d-n%d", round, g, n)
				if len(sent) > 0 && rng.IntN(5) == 0 {
					cmdID = sent[rng.IntN(len(sent))] // a resend
				} else {
					sent = append(sent, cmdID)
				}
				res, err := orders.Dispatch(ctx, id, AddItem{cmdID, 1}, command.WithCommandID(cmdID))
				if err != nil {
					fail("dispatch %s: %v", cmdID, err)
				}
				if len(res.EventIDs) != 1 {
					fail("dispatch %s: %d events", cmdID, len(res.EventIDs))
				}
				crashtest.Ack("%s %s %d %s %t", cmdID, id, res.Version, res.EventIDs[0], res.Duplicate)
			}
		}()
	}
	select {}
}

type cmdAck struct {
	cmdID, aggID string
	version      uint64
	eventID      uuid.UUID
	duplicate    bool
}

func TestCommandCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process repeatedly; skipped with -short")
	}
	seed := crashtest.Seed(t)
	dir := t.TempDir()
	acked := map[string]cmdAck{}
	for round := 1; round <= 4; round++ {
		for _, a := range runCommandCrashRound(t, dir, round, seed, time.Duration(30+40*round)*time.Millisecond) {
			if prev, ok := acked[a.cmdID]; ok && (prev.version != a.version || prev.eventID != a.eventID) {
				t.Fatalf("command %s acknowledged twice with different results: %+v and %+v", a.cmdID, prev, a)
			}
			acked[a.cmdID] = a
		}
		verifyCommandStore(t, dir, round, acked)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d acknowledged commands over 4 kills, all remembered with their events", len(acked))
}

// runCommandCrashRound runs the child on dir, kills it delay after its
// first acknowledged command, and returns every command it acknowledged.
func runCommandCrashRound(t *testing.T, dir string, round int, seed uint64, delay time.Duration) []cmdAck {
	t.Helper()
	var acks []cmdAck
	crashtest.Round{
		Child: crashtest.Child{
			Test: "TestCommandCrashChild",
			Args: map[string]string{"dir": dir, "round": strconv.Itoa(round), "seed": strconv.FormatUint(seed, 10)},
			OnAck: func(line string) error {
				var a cmdAck
				var eid string
				if _, err := fmt.Sscanf(line, "%s %s %d %s %t", &a.cmdID, &a.aggID, &a.version, &eid, &a.duplicate); err != nil {
					return err
				}
				var err error
				if a.eventID, err = uuid.Parse(eid); err != nil {
					return err
				}
				acks = append(acks, a)
				return nil
			},
		},
		Arm:       1,
		KillAfter: delay,
	}.Run(t)
	return acks
}

func verifyCommandStore(t *testing.T, dir string, round int, acked map[string]cmdAck) {
	t.Helper()
	ctx := t.Context()
	s, err := eventstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := command.New(s)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	orders, err := command.Register(ctx, b, crashAggregate(t))
	if err != nil {
		t.Fatal(err)
	}
	// Every event is caused by a command whose record names it.
	events := map[uuid.UUID]string{} // event ID -> causation
	for p := range 4 {
		for rec, err := range s.ReadPartition(ctx, "crash-orders", p, 0) {
			if err != nil {
				t.Fatal(err)
			}
			events[rec.ID] = rec.CausationID
		}
	}
	byCause := map[string]uuid.UUID{}
	for id, cause := range events {
		if _, dup := byCause[cause]; dup {
			t.Errorf("round %d: command %s caused more than one event", round, cause)
		}
		byCause[cause] = id
		raw, ok, err := s.Get(ctx, idemKey("default", cause))
		if err != nil || !ok {
			t.Errorf("round %d: event %s of command %s has no idempotency record (%v)", round, id, cause, err)
			continue
		}
		if !bytes.Contains(raw, id[:]) {
			t.Errorf("round %d: the record of command %s does not name its event %s", round, cause, id)
		}
	}
	records := 0
	for cmdID, value := range idemRecords(t, s, "default") {
		records++
		id, ok := byCause[cmdID]
		if !ok || !bytes.Contains(value, id[:]) {
			t.Errorf("round %d: the record of command %s has no event in the log", round, cmdID)
		}
	}
	// Every acknowledged command is remembered: resending it appends nothing.
	for _, a := range acked {
		res, err := orders.Dispatch(ctx, a.aggID, AddItem{a.cmdID, 1}, command.WithCommandID(a.cmdID))
		if err != nil || !res.Duplicate || res.Version != a.version || len(res.EventIDs) != 1 || res.EventIDs[0] != a.eventID {
			t.Errorf("round %d: resent acknowledged %s = %+v, %v; want the first result (v%d, %s)", round, a.cmdID, res, err, a.version, a.eventID)
		}
	}
	// No command was applied twice: each order holds each SKU once.
	for g := range cmdCrashWorkers {
		st, err := orders.Load(ctx, fmt.Sprintf("g%d", g))
		if err != nil {
			t.Fatal(err)
		}
		for sku, qty := range st.State.Items {
			if qty != 1 {
				t.Errorf("round %d: command %s applied %d times", round, sku, qty)
			}
		}
	}
	if len(events) == 0 || records != len(events) {
		t.Errorf("round %d: %d events, %d records; want one record per event", round, len(events), records)
	}
	t.Logf("round %d: %d events, each with its command's record", round, len(events))
}
