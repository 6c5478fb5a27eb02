package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/eventstore/postgres"
	"github.com/muninn-es/muninn/examples/shop/order"
	"github.com/muninn-es/muninn/examples/shop/payment"
	"github.com/muninn-es/muninn/internal/pgtest"
)

// replicaLease is the consumer-group lease of the replicas in
// TestReplicasOnPostgres: short, so that a killed replica's partitions move
// soon.
const replicaLease = 2 * time.Second

// takeoverMargin is how much longer than the lease the survivor may take to
// hold a killed replica's partitions: the lease runs out at most
// replicaLease after the kill (the dead replica renewed it last before),
// and then the survivor's rebalance has to commit.
const takeoverMargin = 3 * time.Second

// replicaKills is how many times the test kills replica A.
const replicaKills = 3

// clientPace is how often each of the test's clients places an order.
const clientPace = 200 * time.Millisecond

// TestReplicasOnPostgres is the multi-process proof of the PostgreSQL
// backend: two `muninn serve --postgres` processes on one schema are
// replicas of one shop. Clients send commands over REST to both, for the
// same orders (each placed at one replica and cancelled at the other, with
// If-Match, retried on a conflict); the shop's projection, stream processor
// and sagas run as one consumer group each, split across the two. Replica A
// is killed with SIGKILL while commands and batches are in flight, several
// times, and started again. At the end:
//
//   - every acknowledged command's events are in the log exactly once
//     (each Idempotency-Key placed one order, with one shop.order.placed);
//   - the read models equal a fold over the log (every order's details,
//     every customer's list, the revenue);
//   - every checkout workflow finished once (one terminal order event, the
//     saga instance ended with nothing pending, at most one capture);
//   - after each kill the survivor held every partition of every group the
//     dead replica had shared, within the lease timeout and a margin.
func TestReplicasOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts muninn serve five times")
	}
	url := pgtest.URL(t)
	schema := pgtest.Schema(t)
	ctx := t.Context()
	// The payment deadline is 5 s of real time at serve's time scale of
	// 600 (the payment provider must answer within it, under load).
	args := []string{"--postgres", url, "--schema", schema, "--lease-timeout", replicaLease.String(), "--payment-timeout", "50m"}
	a := startServeWith(t, args...)
	b := startServeWith(t, args...)
	// The test's own view of the store: the log and the groups, read
	// directly, not through either replica.
	store, err := postgres.Open(ctx, url, postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })

	groups := shopGroups(t, store)
	waitSplit(t, store, groups)

	var bases struct {
		sync.RWMutex
		a, b string
	}
	bases.a, bases.b = "http://"+a.http, "http://"+b.http
	pick := func(i int) string {
		bases.RLock()
		defer bases.RUnlock()
		if i%2 == 0 {
			return bases.a
		}
		return bases.b
	}
	c := &replicaClient{t: t, http: &http.Client{Timeout: 30 * time.Second}, pick: pick}

	// The load: clients place orders, alternately at A and B, and cancel
	// some of them at the other replica.
	var (
		mu       sync.Mutex
		orders   = map[string]placed{} // by order ID
		acked    atomic.Int64
		stopLoad = make(chan struct{})
		load     sync.WaitGroup
	)
	methods := []string{"card", "card", "card_declined", "card_timeout"}
	const clients = 4
	for cl := range clients {
		load.Go(func() {
			// Pacing, not a wait for a result: each client places an
			// order every clientPace, so that the shop's runners keep up
			// on two loaded cores and the run stays short.
			pace := time.NewTicker(clientPace)
			defer pace.Stop()
			for n := 0; ; n++ {
				select {
				case <-stopLoad:
					return
				case <-pace.C:
				}
				i := n*clients + cl
				key := fmt.Sprintf("rep-%s-%d", schema, i)
				p := placed{key: key, method: methods[i%len(methods)], customer: fmt.Sprintf("cust-%d", i%7)}
				ans := c.send(i, "POST", "/v1/orders", orderJSONBody(p.customer, p.method, 1+i%3), "Idempotency-Key", key)
				if ans.status != http.StatusOK {
					t.Errorf("place %s -> %d: %s", key, ans.status, ans.raw)
					return
				}
				p.id, _ = ans.body["order_id"].(string)
				if i%3 == 0 { // cancel at the other replica, racing the checkout
					p.cancel = c.cancel(i+1, p.id, "cancel-"+key)
				}
				mu.Lock()
				orders[p.id] = p
				mu.Unlock()
				acked.Add(1)
			}
		})
	}
	stop := func() {
		close(stopLoad)
		load.Wait()
	}
	defer func() {
		select {
		case <-stopLoad:
		default:
			stop()
		}
	}()

	for round := 1; round <= replicaKills; round++ {
		// Kill A in the middle of the load: requests in flight, batches
		// of its runners uncommitted.
		waitAcked(t, &acked, acked.Load()+12)
		before := describeAll(t, store, groups)
		a.kill(t)
		killed := time.Now()
		took := waitTakeover(t, store, groups, before, killed.Add(replicaLease+takeoverMargin))
		t.Logf("round %d: killed A after %d acknowledged orders; B held every partition %s after the kill (lease %s)",
			round, acked.Load(), took.Round(time.Millisecond), replicaLease)

		a = startServeWith(t, args...)
		bases.Lock()
		bases.a = "http://" + a.http
		bases.Unlock()
		waitSplit(t, store, groups)
	}
	waitAcked(t, &acked, acked.Load()+12)
	stop()
	if t.Failed() {
		return
	}

	mu.Lock()
	defer mu.Unlock()
	settleOrders(t, c, orders)
	checkLog(t, store, orders)
	checkReadModels(t, c, store, orders)
	checkWorkflows(t, c, store, orders)
}

// placed is an acknowledged PlaceOrder, and what became of its cancel.
type placed struct {
	key, id, method, customer string
	// cancel is "" if none was sent, "cancelled" if it was acknowledged,
	// else why it was refused ("too late": the order had moved on).
	cancel string
}

// replicaClient sends REST calls to the replicas; a call whose replica
// does not answer (killed) is sent to the other one, with the same
// headers: its Idempotency-Key makes the retry return the first result.
type replicaClient struct {
	t    *testing.T
	http *http.Client
	pick func(i int) string
}

func (c *replicaClient) send(i int, method, path, body string, headers ...string) answer {
	c.t.Helper()
	var last error
	for attempt := range 50 {
		base := c.pick(i + attempt)
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			c.t.Errorf("%s %s: %v", method, path, err)
			return answer{}
		}
		req.Header.Set("Content-Type", "application/json")
		for j := 0; j+1 < len(headers); j += 2 {
			req.Header.Set(headers[j], headers[j+1])
		}
		resp, err := c.http.Do(req)
		if err != nil {
			last = err // the replica is down: the other one answers
			continue
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			last = err // killed while answering
			continue
		}
		a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
		_ = json.Unmarshal(raw, &a.body)
		if a.status >= 500 {
			c.t.Errorf("%s %s at %s -> %d (a 5xx): %s", method, path, base, a.status, raw)
		}
		return a
	}
	c.t.Errorf("%s %s: no replica answered: %v", method, path, last)
	return answer{}
}

// cancel cancels order id at the replica i picks, with If-Match the
// order's version, as a client that read it would: on a conflict (the
// checkout moved the order on meanwhile) it reads the version again and
// retries, until the cancel is acknowledged or refused.
func (c *replicaClient) cancel(i int, id, key string) string {
	c.t.Helper()
	version := "1"
	for range 50 {
		a := c.send(i, "POST", "/v1/orders/"+id+":cancel", `{"reason": "changed my mind"}`,
			"If-Match", `"`+version+`"`, "Idempotency-Key", key)
		switch a.status {
		case http.StatusOK:
			return "cancelled"
		case http.StatusPreconditionFailed:
			return "too late"
		case http.StatusConflict:
			// Read the version the order has now, from the log's side of
			// the replica that took the cancel (its read model may lag).
			got := c.send(i, "GET", "/v1/orders/"+id, "")
			v := fmt.Sprint(got.body["version"])
			if got.status != http.StatusOK || v == version {
				// The read model has not seen the newer version yet:
				// ask the other replica.
				got = c.send(i+1, "GET", "/v1/orders/"+id, "")
				v = fmt.Sprint(got.body["version"])
			}
			if got.status == http.StatusOK {
				version = v
			}
		default:
			c.t.Errorf("cancel %s -> %d: %s", id, a.status, a.raw)
			return "error"
		}
	}
	c.t.Errorf("cancel %s: still conflicting after 50 attempts", id)
	return "error"
}

// shopGroups returns the consumer groups of the shop's runners, once all
// of them exist.
func shopGroups(t *testing.T, store *postgres.Store) []string {
	t.Helper()
	var names []string
	waitCond(t, "the shop's consumer groups", time.Now().Add(30*time.Second), func() (bool, string) {
		var err error
		names, err = store.ListGroups(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var proj, checkout bool
		for _, n := range names {
			proj = proj || strings.HasPrefix(n, "projection.shop-order-details.")
			checkout = checkout || n == "saga.shop-checkout"
		}
		return proj && checkout && len(names) >= 4, fmt.Sprint(names)
	})
	return names
}

// describeAll returns every group's description.
func describeAll(t *testing.T, store *postgres.Store, groups []string) map[string]eventstore.GroupInfo {
	t.Helper()
	out := map[string]eventstore.GroupInfo{}
	for _, g := range groups {
		info, err := store.DescribeGroup(t.Context(), g)
		if err != nil {
			t.Fatal(err)
		}
		out[g] = info
	}
	return out
}

// waitSplit waits until every group has two members (one per replica),
// each holding partitions: the runners of both replicas share the work.
func waitSplit(t *testing.T, store *postgres.Store, groups []string) {
	t.Helper()
	waitCond(t, "every group split across both replicas", time.Now().Add(30*time.Second), func() (bool, string) {
		for g, info := range describeAll(t, store, groups) {
			if len(info.Members) != 2 {
				return false, fmt.Sprintf("%s has %d members", g, len(info.Members))
			}
			for _, m := range info.Members {
				if len(m.Assignment) == 0 {
					return false, fmt.Sprintf("%s: member %s holds nothing", g, m.ID)
				}
			}
		}
		return true, ""
	})
}

// waitTakeover waits, until deadline, for the survivor to hold every
// partition of every group: one member left in each, one of the two
// members before the kill, assigned all the partitions the two held. It
// returns how long after the kill that was.
func waitTakeover(t *testing.T, store *postgres.Store, groups []string, before map[string]eventstore.GroupInfo, deadline time.Time) time.Duration {
	t.Helper()
	start := deadline.Add(-replicaLease - takeoverMargin)
	waitCond(t, "the survivor to take over the killed replica's partitions", deadline, func() (bool, string) {
		for g, info := range describeAll(t, store, groups) {
			var all []eventstore.TopicPartition
			var ids []string
			for _, m := range before[g].Members {
				all = append(all, m.Assignment...)
				ids = append(ids, m.ID)
			}
			if len(info.Members) != 1 {
				return false, fmt.Sprintf("%s has %d members", g, len(info.Members))
			}
			m := info.Members[0]
			if !slices.Contains(ids, m.ID) {
				return false, fmt.Sprintf("%s: member %s was not in the group at the kill (%v)", g, m.ID, ids)
			}
			if !sameTPs(m.Assignment, all) {
				return false, fmt.Sprintf("%s: %s holds %v, not all of %v", g, m.ID, m.Assignment, all)
			}
		}
		return true, ""
	})
	return time.Since(start)
}

func sameTPs(a, b []eventstore.TopicPartition) bool {
	key := func(tp eventstore.TopicPartition) string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }
	as, bs := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		as[i] = key(a[i])
	}
	for i := range b {
		bs[i] = key(b[i])
	}
	slices.Sort(as)
	slices.Sort(bs)
	return slices.Equal(as, bs)
}

// waitCond checks cond until it holds or deadline passes (then the test
// fails with cond's last word). It waits for the condition, re-checking
// it every few milliseconds, never for a duration instead of it.
func waitCond(t *testing.T, what string, deadline time.Time, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %s", what, why)
		}
		<-tick.C
	}
}

// waitAcked waits until n orders have been acknowledged.
func waitAcked(t *testing.T, acked *atomic.Int64, n int64) {
	t.Helper()
	waitCond(t, fmt.Sprintf("%d acknowledged orders", n), time.Now().Add(60*time.Second), func() (bool, string) {
		got := acked.Load()
		return got >= n || t.Failed(), fmt.Sprintf("%d acknowledged", got)
	})
}

// settleOrders waits until every order has ended, completed or cancelled,
// in the read model of replica B.
func settleOrders(t *testing.T, c *replicaClient, orders map[string]placed) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for id, p := range orders {
		waitCond(t, "order "+id+" ("+p.method+") to end", deadline, func() (bool, string) {
			a := c.send(1, "GET", "/v1/orders/"+id, "")
			st, _ := a.body["status"].(string)
			return a.status == 200 && (st == "COMPLETED" || st == "CANCELLED"), a.raw
		})
	}
}

// readStream returns a stream's records.
func readStream(t *testing.T, store eventstore.Store, topic, key string) []eventstore.Record {
	t.Helper()
	var out []eventstore.Record
	for rec, err := range store.ReadStream(t.Context(), topic, key, 0) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

// readTopic returns every record of a topic.
func readTopic(t *testing.T, store eventstore.Store, topic string) []eventstore.Record {
	t.Helper()
	n, err := store.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []eventstore.Record
	for p := range n {
		for rec, err := range store.ReadPartition(t.Context(), topic, p, 0) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
		}
	}
	return out
}

// checkLog: every acknowledged order is in the log exactly once, and the
// log has no order nobody acknowledged.
func checkLog(t *testing.T, store eventstore.Store, orders map[string]placed) {
	t.Helper()
	placedIn := map[string]int{}
	for _, rec := range readTopic(t, store, order.Topic) {
		if rec.Type == "shop.order.placed" {
			placedIn[rec.Key]++
		}
	}
	for id, p := range orders {
		if n := placedIn[id]; n != 1 {
			t.Errorf("order %s (key %s) was placed %d times in the log, want once", id, p.key, n)
		}
	}
	for id, n := range placedIn {
		if _, ok := orders[id]; !ok {
			t.Errorf("order %s is in the log (%d times) but no client had it acknowledged", id, n)
		}
	}
	t.Logf("%d orders acknowledged, %d in the log", len(orders), len(placedIn))
}

// checkReadModels: the order details, the customers' lists and the revenue
// equal a fold over the log.
func checkReadModels(t *testing.T, c *replicaClient, store eventstore.Store, orders map[string]placed) {
	t.Helper()
	ctx := t.Context()
	agg, err := order.New()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := aggregate.NewRepository(ctx, store, agg)
	if err != nil {
		t.Fatal(err)
	}
	perCustomer := map[string]int{}
	for id, p := range orders {
		st, err := repo.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		perCustomer[st.State.CustomerID]++
		for i := range 2 { // both replicas' read model: one shared state
			a := c.send(i, "GET", "/v1/orders/"+id, "")
			if got, want := fmt.Sprint(a.body["status"]), string(st.State.Status); got != want {
				t.Errorf("order %s: read model says %s, the log %s", id, got, want)
			}
			if got, want := fmt.Sprint(a.body["version"]), fmt.Sprint(st.Version); got != want {
				t.Errorf("order %s: read model at version %s, the log at %s", id, got, want)
			}
			if got := fmt.Sprint(a.body["customer_id"]); got != p.customer || st.State.CustomerID != p.customer {
				t.Errorf("order %s: customer %s in the read model, %s in the log, placed for %s", id, got, st.State.CustomerID, p.customer)
			}
		}
		if p.cancel == "cancelled" && st.State.Status != order.StatusCancelled {
			t.Errorf("order %s: its cancel was acknowledged, but it ended %s", id, st.State.Status)
		}
	}
	for cust, n := range perCustomer {
		a := c.send(0, "GET", "/v1/customers/"+cust+"/orders?page_size=1000", "")
		list, _ := a.body["orders"].([]any)
		if len(list) != n {
			t.Errorf("%s has %d orders in the read model, %d in the log", cust, len(list), n)
		}
	}

	// Revenue: the captures in the log, each counted once. The stream
	// processor catches up on its own; wait for it to reach the log's sum.
	var captures, cents int64
	for _, rec := range readTopic(t, store, payment.Topic) {
		if rec.Type != "shop.payment.captured" {
			continue
		}
		var ev payment.Captured
		if err := json.Unmarshal(rec.Payload, &ev); err != nil {
			t.Fatalf("capture %s/%d: %v", rec.Key, rec.Version, err)
		}
		captures, cents = captures+1, cents+ev.AmountCents
	}
	waitCond(t, "the revenue to count every capture", time.Now().Add(60*time.Second), func() (bool, string) {
		a := c.send(0, "GET", "/v1/revenue", "")
		hours, _ := a.body["hours"].([]any)
		var n, sum int64
		for _, h := range hours {
			var o, s int64
			fmt.Sscan(fmt.Sprint(h.(map[string]any)["orders"]), &o)
			fmt.Sscan(fmt.Sprint(h.(map[string]any)["revenue_cents"]), &s)
			n, sum = n+o, sum+s
		}
		if n > captures || (n == captures && sum != cents) {
			t.Fatalf("revenue counts %d captures, %d cents; the log has %d, %d cents", n, sum, captures, cents)
		}
		return n == captures, fmt.Sprintf("revenue counts %d of %d captures", n, captures)
	})
}

// checkWorkflows: every checkout finished once: the order has one
// terminal event, as its last; its payment was captured at most once (and
// only for a card that pays); the saga instance has ended with nothing
// pending.
func checkWorkflows(t *testing.T, c *replicaClient, store eventstore.Store, orders map[string]placed) {
	t.Helper()
	ended := map[string]int{}
	timedOut := 0
	for id, p := range orders {
		recs := readStream(t, store, order.Topic, id)
		terminal := 0
		for _, rec := range recs {
			if rec.Type == "shop.order.completed" || rec.Type == "shop.order.cancelled" {
				terminal++
			}
		}
		last := recs[len(recs)-1].Type
		if terminal != 1 || (last != "shop.order.completed" && last != "shop.order.cancelled") {
			t.Errorf("order %s (%s): %d terminal events, last %s; want exactly one, last", id, p.method, terminal, last)
		}
		ended[last]++
		captured := 0
		for _, rec := range readStream(t, store, payment.Topic, id) {
			if rec.Type == "shop.payment.captured" {
				captured++
			}
		}
		if captured > 1 || (captured == 1 && p.method != "card") {
			t.Errorf("order %s (%s): payment captured %d times", id, p.method, captured)
		}
		if p.method == "card" && p.cancel != "cancelled" && last != "shop.order.completed" {
			// Under load the payment provider may answer after the
			// checkout's payment deadline: a timeout, not a lost step.
			reason := fmt.Sprint(c.send(0, "GET", "/v1/orders/"+id, "").body["cancel_reason"])
			if !strings.Contains(reason, "not answered") {
				t.Errorf("order %s paid by card, never cancelled, ended with %s (%q)", id, last, reason)
			}
			timedOut++
		}
		if p.method != "card" && last != "shop.order.cancelled" {
			t.Errorf("order %s (%s) ended with %s, want cancelled", id, p.method, last)
		}
		a := c.send(1, "GET", "/v1/sagas/shop-checkout/instances/"+id, "")
		st := fmt.Sprint(a.body["status"])
		pending := a.body["pending_commands"] // absent when zero
		if a.status != 200 || (st != "completed" && st != "failed") || (pending != nil && fmt.Sprint(pending) != "0") {
			t.Errorf("checkout of %s: %d %s, want ended with nothing pending", id, a.status, a.raw)
		}
	}
	if ended["shop.order.completed"] == 0 || ended["shop.order.cancelled"] == 0 {
		t.Errorf("outcomes %v: want both completed and cancelled orders", ended)
	}
	t.Logf("outcomes: %v (%d card payments answered after the deadline)", ended, timedOut)
}
