package saga_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/crashtest"
	"github.com/muninn-es/muninn/internal/fulfillment"
	"github.com/muninn-es/muninn/saga"
)

// The crash test proves "a process killed in the middle of a workflow and
// restarted finishes it with no duplicated command and with deadlines still
// firing". A child process (this test binary, re-executed by crashtest to
// run only TestSagaCrashChild) runs the fulfillment saga on a store in a directory
// and places orders of four kinds: ones that complete, ones whose payment
// is declined, ones whose payment never answers (the payment timeout must
// cancel them) and ones without an address (the shipment is rejected and
// the payment refunded), one every few milliseconds until it is killed.
// The parent kills it with SIGKILL at a random moment, twelve rounds on one
// directory, each child first placing again (with the same command IDs)
// the orders of the round before, whose placing the kill cut short. Then
// the parent runs the saga in-process, places every order once more, waits
// until every workflow has ended, and checks from the log and the saga's
// instances that each order went exactly its way: every event its workflow
// should cause, each once, and nothing else; every instance ended as its
// kind must, with nothing pending; every payment timeout that was pending
// at a kill fired in a later life.
//
// Processes cannot share a manual clock, so the saga runs on
// clock.ScaledAt, a clock crashSpeed times faster than real time, so that
// PaymentTimeout passes in a few real seconds. Time stands still while no
// process runs: each life's clock starts at the time its predecessor's
// read when it was killed (the parent computes it from the real time the
// child's clock started, which the child reports with READY, and the
// real time of the kill). So time moves on, never back, across restarts,
// and deadlines pending when a child is killed fall due in the next life;
// but a restart that is slow on a loaded machine does not use up an
// order's payment timeout.

const (
	// crashSpeed makes PaymentTimeout (15 min) last 3 s of a process's
	// real time: long enough that an order that pays is not given up while
	// its payment goes through the contexts of one life on a loaded machine
	// (restarts do not count: time stands still between lives), short
	// enough that most deadlines fire in a child's life, some of them as it
	// is killed.
	crashSpeed  = 300
	crashRounds = 12
)

type crashKind string

const (
	crashHappy     crashKind = "happy"
	crashDeclined  crashKind = "declined"
	crashNoAnswer  crashKind = "noanswer"
	crashNoAddress crashKind = "noaddress"
)

// crashOrder is one order of the test and how its workflow must end.
type crashOrder struct {
	id    string
	round int
	kind  crashKind
	place fulfillment.PlaceOrder
}

var crashSKUs = []string{"sku-a", "sku-b", "sku-c"}

// crashOrderOf returns order n of round: the kinds take turns, one that
// never answers first. Orders share three SKUs, so stock streams see many
// workflows at once.
func crashOrderOf(round, n int) crashOrder {
	kind := []crashKind{crashNoAnswer, crashHappy, crashDeclined, crashNoAddress}[n%4]
	o := crashOrder{id: fmt.Sprintf("r%d-%d-%s", round, n, kind), round: round, kind: kind}
	o.place = fulfillment.PlaceOrder{
		Customer: "c" + strconv.Itoa(n), Total: 1000 + int64(10*n),
		SKU: crashSKUs[(round+n)%len(crashSKUs)], Qty: 1 + n%3, Address: o.id + " Main St",
	}
	switch kind {
	case crashDeclined:
		o.place.Total = fulfillment.DeclineAbove + 1 + int64(n)
	case crashNoAnswer:
		o.place.Total = fulfillment.NeverAnswer
	case crashNoAddress:
		o.place.Address = ""
	}
	return o
}

// crashOrders returns the orders of rounds 1 to len(placed), placed[r-1]
// of round r.
func crashOrders(placed []int) []crashOrder {
	var out []crashOrder
	for r, n := range placed {
		for i := range n {
			out = append(out, crashOrderOf(r+1, i))
		}
	}
	return out
}

// placeCrashOrder places o with a command ID derived from its ID, so that
// placing it again, in any life, appends nothing.
func placeCrashOrder(ctx context.Context, h *fulfillment.Handlers, o crashOrder) (command.Result, error) {
	return h.Orders.Dispatch(command.WithCorrelationID(ctx, "request-"+o.id), o.id, o.place, command.WithCommandID("place-"+o.id))
}

func crashQuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// crashWorld opens the store in dir with the bus, the four contexts and
// the fulfillment saga on the crash clock: what every life of the test
// runs.
func crashWorld(ctx context.Context, dir string, base time.Time) (eventstore.Store, *command.Bus, *fulfillment.Handlers, *saga.Saga[fulfillment.Fulfillment], error) {
	s, err := eventstore.Open(dir, eventstore.WithLogger(crashQuietLogger()))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("open: %w", err)
	}
	bus, err := command.New(s)
	if err != nil {
		s.Close()
		return nil, nil, nil, nil, fmt.Errorf("bus: %w", err)
	}
	h, err := fulfillment.Register(ctx, bus)
	if err == nil {
		var sg *saga.Saga[fulfillment.Fulfillment]
		if sg, err = saga.New(s, bus, fulfillment.Saga(), saga.WithClock(clock.ScaledAt(base, crashSpeed))); err == nil {
			return s, bus, h, sg, nil
		}
	}
	bus.Close()
	s.Close()
	return nil, nil, nil, nil, err
}

// TestSagaCrashChild is the child of TestSagaCrash; without its
// environment it does nothing.
func TestSagaCrashChild(t *testing.T) {
	if !crashtest.IsChild(t) {
		return
	}
	fail := crashtest.Fail
	dir, round, seed := crashtest.Arg("dir"), crashtest.IntArg("round"), crashtest.Uint64Arg("seed")
	baseNanos, err := strconv.ParseInt(crashtest.Arg("base"), 10, 64)
	if err != nil {
		fail("bad base time: %v", err)
	}
	// placed lists, for each earlier round, how many orders it may have
	// placed.
	var placed []int
	for f := range strings.FieldsSeq(crashtest.Arg("placed")) {
		n, err := strconv.Atoi(f)
		if err != nil {
			fail("bad placed counts: %v", err)
		}
		placed = append(placed, n)
	}
	ctx := context.Background()
	// The clock starts no earlier than this, so the parent's reckoning of
	// this life's time from it is never behind the clock's.
	start := time.Now().UnixNano()
	_, _, h, sg, err := crashWorld(ctx, dir, time.Unix(0, baseNanos))
	if err != nil {
		fail("%v", err)
	}
	go func() {
		err := sg.Run(ctx)
		fail("saga Run returned: %v", err)
	}()
	// The orders of the round before first, as a client would retry
	// them: its kill may have cut their placing short (the rounds before it
	// were placed again by their successors). Then new ones, one every few
	// milliseconds until the kill, so that it finds workflows at every
	// step.
	for _, o := range crashOrders(placed) {
		if o.round != round-1 {
			continue
		}
		if _, err := placeCrashOrder(ctx, h, o); err != nil {
			fail("place %s again: %v", o.id, err)
		}
	}
	crashtest.Ack("READY %d", start)
	go func() {
		// What this life did, for the parent's log.
		for range time.Tick(20 * time.Millisecond) {
			st := sg.Stats()
			crashtest.Ack("STATS %d %d %d", st.Commands, st.Duplicates, st.DeadlinesFired)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, uint64(round)))
	for n := 0; ; n++ {
		o := crashOrderOf(round, n)
		if _, err := placeCrashOrder(ctx, h, o); err != nil {
			fail("place %s: %v", o.id, err)
		}
		crashtest.Ack("PLACED %d", n)
		time.Sleep(time.Duration(2+rng.IntN(10)) * time.Millisecond) // pacing, not a wait for a result
	}
}

func TestSagaCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process repeatedly; skipped with -short")
	}
	seed := crashtest.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	// base is the crash clock's time when the next life starts: wall clock
	// only, as the children read it.
	base := time.Unix(0, time.Now().UnixNano())

	// placed holds how many orders each round may have placed: one more
	// than it said, as the kill may have come after an order was placed
	// and before the child said so. pendingAtKill holds the orders that
	// never answer whose payment timeout was pending, durably, when a
	// child was killed: their deadline must fire in a later life.
	var placed []int
	pendingAtKill := map[string]bool{}
	for round := 1; round <= crashRounds; round++ {
		// Early kills cut placing and the first steps short; late ones
		// land among deadlines firing and compensations.
		delay := time.Duration(200+rng.IntN(800)) * time.Millisecond
		if round%3 == 1 {
			delay = time.Duration(rng.IntN(150)) * time.Millisecond
		}
		life := runSagaCrashRound(t, dir, round, base, rng.Uint64(), delay, placed)
		// The child's clock read base at life.start (or a little after) and
		// stopped at the kill, which was before now.
		base = base.Add(time.Duration(float64(time.Now().UnixNano()-life.start) * crashSpeed))
		placed = append(placed, life.placed+1)
		pending := 0
		for _, key := range crashPendingDeadlines(t, dir, base) {
			if strings.HasSuffix(key, "-"+string(crashNoAnswer)) {
				pendingAtKill[key] = true
				pending++
			}
		}
		t.Logf("round %d: killed %v after READY, having placed %d new orders, dispatched %d commands (%d duplicates) and fired %d deadlines; %d payment timeouts of orders that never pay pending",
			round, delay, life.placed, life.commands, life.duplicates, life.fired, pending)
	}

	// The last life runs in-process until every workflow has ended.
	orders := crashOrders(placed)
	ctx := t.Context()
	s, bus, h, sg, err := crashWorld(ctx, dir, base)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer bus.Close()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sg.Run(rctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("saga Run: %v", err)
		}
	}
	defer stop()
	for _, o := range orders {
		if _, err := placeCrashOrder(ctx, h, o); err != nil {
			t.Fatalf("place %s: %v", o.id, err)
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, waitTime)
	defer wcancel()
	for _, o := range orders {
		if _, err := sg.WaitFor(wctx, o.id, func(in saga.Instance[fulfillment.Fulfillment]) bool {
			return (in.Status == saga.StatusCompleted || in.Status == saga.StatusFailed) && in.PendingCommands == 0
		}); err != nil {
			t.Errorf("order %s (%s) did not end: %v; stats %+v", o.id, o.kind, err, sg.Stats())
			for in, err := range sg.Instances(ctx, saga.WithStatus(saga.StatusRunning, saga.StatusCompensating)) {
				t.Errorf("instance %s: %s, %d commands pending, deadlines %v, last error %q (%v)",
					in.Key, in.Status, in.PendingCommands, in.Deadlines, in.LastError, err)
			}
			t.FailNow()
		}
	}
	stop()
	stats := sg.Stats()

	checkCrashInstances(t, sg, orders, pendingAtKill)
	checkCrashLog(t, s, orders)
	checkCrashStock(t, s, h, orders)
	if t.Failed() {
		return
	}
	if len(pendingAtKill) == 0 {
		t.Errorf("no payment timeout was pending at any kill: the test did not kill a workflow waiting for its deadline")
	}
	t.Logf("%d orders over %d kills ended exactly as expected; %d payment timeouts pending at a kill fired in a later life; "+
		"last life: %d commands dispatched, %d of them duplicates the bus recognized, %d deadlines fired",
		len(orders), crashRounds, len(pendingAtKill), stats.Commands, stats.Duplicates, stats.DeadlinesFired)
}

// crashLife is what a child said it did before it was killed: orders
// placed in its round, and its saga's last stats.
type crashLife struct {
	placed, commands, duplicates, fired int
	// start is the real time (Unix nanoseconds) at which the child's
	// clock started, or a little before.
	start int64
}

// runSagaCrashRound runs a child on dir, kills it delay after it is ready,
// and returns what it said it did.
func runSagaCrashRound(t *testing.T, dir string, round int, base time.Time, seed uint64, delay time.Duration, placed []int) crashLife {
	t.Helper()
	var counts []string
	for _, n := range placed {
		counts = append(counts, strconv.Itoa(n))
	}
	var life crashLife
	crashtest.Round{
		Child: crashtest.Child{
			Test: "TestSagaCrashChild",
			Args: map[string]string{
				"dir":    dir,
				"round":  strconv.Itoa(round),
				"base":   strconv.FormatInt(base.UnixNano(), 10),
				"seed":   strconv.FormatUint(seed, 10),
				"placed": strings.Join(counts, " "),
			},
			OnAck: func(line string) error {
				switch {
				case strings.HasPrefix(line, "READY "):
					if _, err := fmt.Sscanf(line, "READY %d", &life.start); err != nil {
						return err
					}
				case strings.HasPrefix(line, "PLACED "):
					life.placed++ // orders are placed, and said placed, in turn
				case strings.HasPrefix(line, "STATS "):
					if _, err := fmt.Sscanf(line, "STATS %d %d %d", &life.commands, &life.duplicates, &life.fired); err != nil {
						return err
					}
				default:
					return errors.New("unknown acknowledgement")
				}
				return nil
			},
		},
		Arm:       1, // READY
		KillAfter: delay,
	}.Run(t)
	return life
}

// crashPendingDeadlines returns the instance keys of the deadlines pending
// in the store in dir.
func crashPendingDeadlines(t *testing.T, dir string, base time.Time) []string {
	t.Helper()
	s, bus, _, sg, err := crashWorld(t.Context(), dir, base)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer bus.Close()
	var keys []string
	for d, err := range sg.Deadlines(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, d.Key)
	}
	return keys
}

// checkCrashInstances checks that every order's instance ended as its kind
// must, with nothing pending, and that no other instance or deadline is
// left.
func checkCrashInstances(t *testing.T, sg *saga.Saga[fulfillment.Fulfillment], orders []crashOrder, pendingAtKill map[string]bool) {
	t.Helper()
	ctx := t.Context()
	want := map[string]crashOrder{}
	for _, o := range orders {
		want[o.id] = o
	}
	seen := 0
	for in, err := range sg.Instances(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		o, ok := want[in.Key]
		if !ok {
			t.Errorf("instance %q is no order's", in.Key)
			continue
		}
		seen++
		if in.PendingCommands != 0 || len(in.Deadlines) != 0 || len(in.CompensationErrors) != 0 {
			t.Errorf("order %s (%s): %d commands pending, deadlines %v, compensation errors %v",
				o.id, o.kind, in.PendingCommands, in.Deadlines, in.CompensationErrors)
		}
		st, f := in.State, in.Failure
		var ok2 bool
		switch o.kind {
		case crashHappy:
			ok2 = in.Status == saga.StatusCompleted && f == nil && st.Outcome == "completed" && st.Paid && st.Shipped
		case crashDeclined:
			ok2 = in.Status == saga.StatusFailed && f != nil && strings.Contains(st.Outcome, "payment declined") && !st.Paid
		case crashNoAnswer:
			// Cancelled by its deadline, and by nothing else.
			ok2 = in.Status == saga.StatusFailed && f != nil && strings.Contains(f.Reason, "not answered") &&
				strings.Contains(st.Outcome, "not answered") && !st.Paid
		case crashNoAddress:
			ok2 = in.Status == saga.StatusFailed && f != nil && f.Command == "shipment.schedule" &&
				strings.Contains(f.Reason, "no shipping address") && st.Paid && !st.Shipped
		}
		if !ok2 {
			hint := ""
			if o.kind != crashNoAnswer && f != nil && strings.Contains(f.Reason, "not answered") {
				hint = fmt.Sprintf(" (its payment was not seen within %v of real time: a machine too slow for crashSpeed?)", fulfillment.PaymentTimeout/crashSpeed)
			}
			t.Errorf("order %s (%s) ended as %s, state %+v, failure %+v, last error %q (deadline pending at a kill: %t)%s",
				o.id, o.kind, in.Status, st, f, in.LastError, pendingAtKill[o.id], hint)
		}
	}
	if seen != len(orders) {
		t.Errorf("%d instances of the %d orders", seen, len(orders))
	}
	for d, err := range sg.Deadlines(ctx) {
		t.Errorf("deadline %+v (%v) left after every workflow ended", d, err)
	}
}

// checkCrashLog reads every event of the orders, payments and shipments
// topics and checks that each order's streams hold exactly the events its
// kind causes, each once: a command sent twice would append twice, or be
// rejected and fail its workflow the wrong way.
func checkCrashLog(t *testing.T, s eventstore.Store, orders []crashOrder) {
	t.Helper()
	want := map[string]map[string][]string{} // topic -> key -> event types
	for _, topic := range []string{fulfillment.OrdersTopic, fulfillment.PaymentsTopic, fulfillment.ShipmentsTopic} {
		want[topic] = map[string][]string{}
	}
	for _, o := range orders {
		var ord, pay, ship []string
		switch o.kind {
		case crashHappy:
			ord, pay, ship = []string{"order.placed", "order.completed"}, []string{"payment.captured"}, []string{"shipment.scheduled"}
		case crashDeclined:
			ord, pay = []string{"order.placed", "order.cancelled"}, []string{"payment.declined"}
		case crashNoAnswer:
			ord = []string{"order.placed", "order.cancelled"}
		case crashNoAddress:
			ord, pay = []string{"order.placed", "order.cancelled"}, []string{"payment.captured", "payment.refunded"}
		}
		want[fulfillment.OrdersTopic][o.id] = ord
		if pay != nil {
			want[fulfillment.PaymentsTopic][o.id] = pay
		}
		if ship != nil {
			want[fulfillment.ShipmentsTopic][o.id] = ship
		}
	}
	kinds := map[string]crashKind{}
	for _, o := range orders {
		kinds[o.id] = o.kind
	}
	causes := map[string]string{} // command ID -> the event it caused
	for topic, byKey := range want {
		got := map[string][]string{}
		cancelReasons := map[string]string{}
		for _, rec := range crashReadTopic(t, s, topic) {
			got[rec.Key] = append(got[rec.Key], rec.Type)
			if prev, dup := causes[rec.CausationID]; dup {
				t.Errorf("command %s caused %s and %s/%s %s", rec.CausationID, prev, topic, rec.Key, rec.Type)
			}
			causes[rec.CausationID] = topic + "/" + rec.Key + " " + rec.Type
			if rec.Type == "order.cancelled" {
				var e fulfillment.OrderCancelled
				if err := json.Unmarshal(rec.Payload, &e); err != nil {
					t.Fatalf("%s/%s: %v", topic, rec.Key, err)
				}
				cancelReasons[rec.Key] = e.Reason
			}
		}
		for _, key := range slices.Sorted(maps.Keys(got)) {
			if !slices.Equal(got[key], byKey[key]) {
				t.Errorf("%s/%s (%s): events %v, want %v", topic, key, kinds[key], got[key], byKey[key])
			}
		}
		for key, types := range byKey {
			if _, ok := got[key]; !ok {
				t.Errorf("%s/%s (%s): no events, want %v", topic, key, kinds[key], types)
			}
		}
		for key, reason := range cancelReasons {
			var wantReason string
			switch kinds[key] {
			case crashDeclined:
				wantReason = "payment declined"
			case crashNoAnswer:
				wantReason = "not answered"
			case crashNoAddress:
				wantReason = "no shipping address"
			}
			if wantReason == "" || !strings.Contains(reason, wantReason) {
				t.Errorf("order %s (%s) cancelled with reason %q, want one containing %q", key, kinds[key], reason, wantReason)
			}
		}
	}
}

// checkCrashStock checks, by order, that each reservation was made once
// and released once exactly when the workflow failed, and that the SKUs'
// stock is what the completed orders hold.
func checkCrashStock(t *testing.T, s eventstore.Store, h *fulfillment.Handlers, orders []crashOrder) {
	t.Helper()
	byOrder := map[string][]string{}
	for _, rec := range crashReadTopic(t, s, fulfillment.StockTopic) {
		var e struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(rec.Payload, &e); err != nil {
			t.Fatalf("stock/%s: %v", rec.Key, err)
		}
		byOrder[e.OrderID] = append(byOrder[e.OrderID], rec.Type)
	}
	wantAvail := map[string]int{}
	wantRes := map[string]map[string]int{}
	for _, sku := range crashSKUs {
		wantAvail[sku] = fulfillment.InitialStock
		wantRes[sku] = map[string]int{}
	}
	for _, o := range orders {
		want := []string{"stock.reserved", "stock.released"}
		if o.kind == crashHappy {
			want = want[:1]
			wantAvail[o.place.SKU] -= o.place.Qty
			wantRes[o.place.SKU][o.id] = o.place.Qty
		}
		if got := byOrder[o.id]; !slices.Equal(got, want) {
			t.Errorf("stock of order %s (%s): events %v, want %v", o.id, o.kind, got, want)
		}
		delete(byOrder, o.id)
	}
	for id, types := range byOrder {
		t.Errorf("stock events %v for %q, no order of the test", types, id)
	}
	for _, sku := range crashSKUs {
		st, err := h.StockOf(t.Context(), sku)
		if err != nil {
			t.Fatal(err)
		}
		if st.Available != wantAvail[sku] || !maps.Equal(st.Reservations, wantRes[sku]) {
			t.Errorf("stock of %s: %d available, reservations %v; want %d and %v", sku, st.Available, st.Reservations, wantAvail[sku], wantRes[sku])
		}
	}
}

// crashReadTopic returns every record of topic, partition by partition.
func crashReadTopic(t *testing.T, s eventstore.Store, topic string) []eventstore.Record {
	t.Helper()
	parts, err := s.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []eventstore.Record
	for p := range parts {
		for rec, err := range s.ReadPartition(t.Context(), topic, p, 0) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
		}
	}
	return out
}
