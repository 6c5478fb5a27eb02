package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/eventstore/postgres"
	"github.com/muninn-es/muninn/internal/pgtest"
)

// openOn opens another Store on schema; the test's cleanup closes it.
func openOn(t *testing.T, schema string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), pgtest.URL(t), append([]postgres.Option{postgres.WithSchema(schema), postgres.WithCleanupInterval(0)}, opts...)...)
	if err != nil {
		t.Fatalf("Open on schema %s: %v", schema, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// eventually waits for cond, checking it every few milliseconds, and fails
// the test if it does not hold within a generous bound (a guard against a
// hang, not a timing condition).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(5 * time.Millisecond) // between checks of the condition
	}
}

// TestConcurrentAppendersNeverSkip appends from 16 goroutines through two
// Stores on one schema, while a subscriber on each partition (on the first
// Store) and a reader (on the second) check that offsets are gapless and
// that nobody ever sees offset n+1 before n.
func TestConcurrentAppendersNeverSkip(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	a := openOn(t, schema)
	b := openOn(t, schema)
	const parts, writers, each = 2, 16, 15
	if err := a.CreateTopic(t.Context(), "orders", eventstore.TopicConfig{Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var readers sync.WaitGroup
	seen := make([]atomic.Int64, parts)
	for p := range parts {
		readers.Go(func() {
			next := int64(0)
			for rec, err := range a.Subscribe(ctx, "orders", p, 0) {
				if err != nil {
					t.Errorf("subscriber %d: %v", p, err)
					return
				}
				if rec.Offset != next {
					t.Errorf("subscriber of partition %d saw offset %d, expected %d", p, rec.Offset, next)
					return
				}
				next++
				seen[p].Store(next)
			}
		})
	}
	stopReader := make(chan struct{})
	readers.Go(func() {
		for {
			select {
			case <-stopReader:
				return
			default:
			}
			for p := range parts {
				next := int64(0)
				for rec, err := range b.ReadPartition(ctx, "orders", p, 0) {
					if err != nil {
						if ctx.Err() == nil {
							t.Errorf("reader: %v", err)
						}
						return
					}
					if rec.Offset != next {
						t.Errorf("reader of partition %d saw offset %d, expected %d", p, rec.Offset, next)
						return
					}
					next++
				}
			}
		}
	})
	var wg sync.WaitGroup
	for w := range writers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for i := range each {
				// Two events per append, to several streams, some contended.
				key := fmt.Sprintf("k%d", (w*each+i)%7)
				if _, err := s.Append(context.Background(), "orders", key, eventstore.Any,
					[]eventstore.Event{{Type: "e", Payload: []byte("x")}, {Type: "e", Payload: []byte("y")}}); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stopReader)
	info, err := a.DescribeTopic(t.Context(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, p := range info.Partitions {
		total += p.EndOffset
		if p.Records != p.EndOffset {
			t.Errorf("partition %d: %d records below end %d", p.Partition, p.Records, p.EndOffset)
		}
	}
	if total != writers*each*2 {
		t.Fatalf("%d records in the topic, want %d", total, writers*each*2)
	}
	eventually(t, "subscribers see every record", func() bool {
		for p := range parts {
			if seen[p].Load() != info.Partitions[p].EndOffset {
				return false
			}
		}
		return true
	})
	cancel()
	readers.Wait()
	// Every stream's versions are consecutive, in offset order.
	for k := range 7 {
		key := fmt.Sprintf("k%d", k)
		var v uint64
		var off int64 = -1
		for rec, err := range b.ReadStream(t.Context(), "orders", key, 0) {
			if err != nil {
				t.Fatal(err)
			}
			if rec.Version != v+1 || rec.Offset <= off {
				t.Fatalf("stream %s: version %d at offset %d after version %d at %d", key, rec.Version, rec.Offset, v, off)
			}
			v, off = rec.Version, rec.Offset
		}
	}
}

// TestConcurrentOpenMigratesOnce opens four Stores on a new schema at once:
// all succeed, and the schema is migrated once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, 4)
	errs := make([]error, 4)
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(t.Context(), pgtest.URL(t), postgres.WithSchema(schema), postgres.WithCleanupInterval(0))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	conn, err := pgx.Connect(t.Context(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n, top int
	if err := conn.QueryRow(t.Context(), "SELECT count(*), max(version) FROM "+pgx.Identifier{schema}.Sanitize()+".schema_migrations").Scan(&n, &top); err != nil {
		t.Fatal(err)
	}
	if n != postgres.SchemaVersion || top != postgres.SchemaVersion {
		t.Fatalf("%d migrations recorded up to version %d, want each of %d once", n, top, postgres.SchemaVersion)
	}
	// They share one store.
	if err := stores[0].CreateTopic(t.Context(), "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if err := stores[3].CreateTopic(t.Context(), "t", eventstore.TopicConfig{Partitions: 1}); !errors.Is(err, eventstore.ErrTopicExists) {
		t.Fatalf("second CreateTopic through another Store: %v, want ErrTopicExists", err)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	_, err := postgres.Open(t.Context(), url, postgres.WithSchema("Bad-Name"), postgres.WithLeaseTimeout(-time.Second))
	if !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Fatalf("Open with bad options: %v, want ErrInvalidArgument", err)
	}
	for _, field := range []string{"WithSchema", "WithLeaseTimeout"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	if _, err := postgres.Open(t.Context(), "::not a url::"); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("Open of a malformed URL: %v, want ErrInvalidArgument", err)
	}
}

func assignments(ms ...eventstore.Consumer) [][]eventstore.TopicPartition {
	out := make([][]eventstore.TopicPartition, len(ms))
	for i, m := range ms {
		out[i] = m.Assignment()
	}
	return out
}

// spread reports whether the members' assignments cover n partitions of
// topic, each once, counts differing by at most one.
func spread(topic string, n int, as [][]eventstore.TopicPartition) bool {
	seen := map[eventstore.TopicPartition]bool{}
	lo, hi := n, 0
	for _, a := range as {
		lo, hi = min(lo, len(a)), max(hi, len(a))
		for _, k := range a {
			if seen[k] || k.Topic != topic {
				return false
			}
			seen[k] = true
		}
	}
	return len(seen) == n && hi-lo <= 1
}

// drain TryPolls c until a short batch.
func drain(t *testing.T, c eventstore.Consumer) []eventstore.Record {
	t.Helper()
	var out []eventstore.Record
	for {
		recs, err := c.TryPoll(t.Context(), 100)
		if err != nil {
			t.Fatalf("TryPoll by %s: %v", c.ID(), err)
		}
		out = append(out, recs...)
		if len(recs) < 100 {
			return out
		}
	}
}

func fill(t *testing.T, s eventstore.Store, topic string, n int) {
	t.Helper()
	for i := range n {
		if _, err := s.Append(t.Context(), topic, fmt.Sprint("k", i), eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGroupAcrossThreeStores: members in three Stores share a group's
// partitions, rebalance when one joins or closes, read every record once
// between them, and a member that lost a partition can no longer commit it.
func TestGroupAcrossThreeStores(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	stores := []*postgres.Store{openOn(t, schema), openOn(t, schema), openOn(t, schema)}
	const parts = 6
	if err := stores[0].CreateTopic(t.Context(), "orders", eventstore.TopicConfig{Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	fill(t, stores[1], "orders", 30)
	var ms []eventstore.Consumer
	for i, s := range stores[:2] {
		m, err := s.JoinGroup(t.Context(), "g", []string{"orders"}, eventstore.WithMemberID(fmt.Sprint("m", i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		ms = append(ms, m)
	}
	eventually(t, "two members in two Stores share the partitions", func() bool { return spread("orders", parts, assignments(ms...)) })
	// m0 reads its partitions; then m2 joins from the third Store and takes
	// some of them.
	read0 := drain(t, ms[0])
	before := ms[0].Assignment()
	m2, err := stores[2].JoinGroup(t.Context(), "g", []string{"orders"}, eventstore.WithMemberID("m2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m2.Close() })
	ms = append(ms, m2)
	eventually(t, "three members in three Stores share the partitions", func() bool {
		as := assignments(ms...)
		return spread("orders", parts, as) && len(as[0]) == 2 && len(as[2]) == 2
	})
	var lost eventstore.TopicPartition
	for _, k := range before {
		if !slices.Contains(ms[0].Assignment(), k) {
			lost = k
			break
		}
	}
	if lost.Topic == "" {
		t.Fatalf("m0 lost none of %v to the new member (now %v)", before, ms[0].Assignment())
	}
	var lostRec eventstore.Record
	for _, r := range read0 {
		if r.Topic == lost.Topic && r.Partition == lost.Partition {
			lostRec = r
		}
	}
	if err := ms[0].Commit(t.Context(), lostRec); !errors.Is(err, eventstore.ErrNotAssigned) {
		t.Fatalf("m0 committing %s, which went to another Store's member: %v, want ErrNotAssigned", lost, err)
	}
	err = stores[0].Update(t.Context(), func(tx eventstore.Txn) error {
		return errors.Join(tx.Set([]byte("model"), []byte("stale")),
			tx.CommitOffsets(ms[0], map[eventstore.TopicPartition]int64{lost: lostRec.Offset + 1}))
	})
	if !errors.Is(err, eventstore.ErrNotAssigned) {
		t.Fatalf("Update committing a lost partition: %v, want ErrNotAssigned", err)
	}
	if _, ok, _ := stores[1].Get(t.Context(), []byte("model")); ok {
		t.Fatal("the fenced Update wrote its state")
	}
	// Between them the members read every record once.
	seen := map[eventstore.TopicPartition][]int64{}
	for _, r := range read0 {
		if k := (eventstore.TopicPartition{Topic: r.Topic, Partition: r.Partition}); slices.Contains(ms[0].Assignment(), k) {
			seen[k] = append(seen[k], r.Offset)
		}
	}
	for _, m := range ms {
		for _, r := range drain(t, m) {
			k := eventstore.TopicPartition{Topic: r.Topic, Partition: r.Partition}
			if !slices.Contains(m.Assignment(), k) {
				t.Errorf("%s read %s, not one of its partitions", m.ID(), k)
			}
			seen[k] = append(seen[k], r.Offset)
		}
	}
	info, _ := stores[0].DescribeTopic(t.Context(), "orders")
	for _, p := range info.Partitions {
		k := eventstore.TopicPartition{Topic: "orders", Partition: p.Partition}
		got := seen[k]
		slices.Sort(got)
		if int64(len(got)) != p.EndOffset || (len(got) > 0 && got[len(got)-1] != p.EndOffset-1) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Errorf("%s read as %v, want each of 0..%d once", k, got, p.EndOffset-1)
		}
	}
	// m1 closes: the members left in the other Stores take its partitions.
	if err := ms[1].Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two members share the partitions after the third closed", func() bool {
		as := assignments(ms[0], ms[2])
		return spread("orders", parts, as) && len(as[0]) == 3
	})
	gi, err := stores[2].DescribeGroup(t.Context(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(gi.Members) != 2 || gi.Members[0].ID != "m0" || gi.Members[1].ID != "m2" {
		t.Errorf("DescribeGroup through the third Store: members %+v, want m0 and m2", gi.Members)
	}
}

// TestLeaseExpiryOfPausedMember: a member whose Store stops renewing its
// lease (its clock stands still, as a paused process's timers do) is
// removed from the group once the lease has run out by the other Store's
// clock; it can commit nothing for the partition it lost, its Update is
// void, and when its Store runs again it joins again and reads from the
// group's committed offset.
func TestLeaseExpiryOfPausedMember(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	start := time.Now()
	clkA, clkB := clock.NewManual(start), clock.NewManual(start)
	a := openOn(t, schema, postgres.WithClock(clkA), postgres.WithLeaseTimeout(10*time.Second))
	b := openOn(t, schema, postgres.WithClock(clkB), postgres.WithLeaseTimeout(10*time.Second))
	if err := a.CreateTopic(t.Context(), "orders", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	fill(t, a, "orders", 10)
	ma, err := a.JoinGroup(t.Context(), "g", []string{"orders"}, eventstore.WithMemberID("a"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ma.Close() })
	mb, err := b.JoinGroup(t.Context(), "g", []string{"orders"}, eventstore.WithMemberID("b"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mb.Close() })
	eventually(t, "a and b share the partitions", func() bool { return spread("orders", 2, assignments(ma, mb)) })
	pb := mb.Assignment()[0]
	readB := drain(t, mb)
	if len(readB) == 0 {
		t.Fatal("b read nothing of its partition")
	}
	last := readB[len(readB)-1]
	// b commits part of what it read, then its Store pauses (clkB stands
	// still) while a's clock moves past b's lease.
	if err := mb.CommitOffsets(t.Context(), map[eventstore.TopicPartition]int64{pb: 1}); err != nil {
		t.Fatal(err)
	}
	clkA.Advance(11 * time.Second)
	eventually(t, "a takes over b's partition after b's lease ran out", func() bool { return len(ma.Assignment()) == 2 })
	if err := mb.Commit(t.Context(), last); !errors.Is(err, eventstore.ErrNotAssigned) {
		t.Fatalf("the paused member committing its lost partition: %v, want ErrNotAssigned", err)
	}
	err = b.Update(t.Context(), func(tx eventstore.Txn) error {
		return errors.Join(tx.Set([]byte("model"), []byte("stale")), tx.CommitOffsets(mb, map[eventstore.TopicPartition]int64{pb: last.Offset + 1}))
	})
	if !errors.Is(err, eventstore.ErrNotAssigned) {
		t.Fatalf("the paused member's Update: %v, want ErrNotAssigned", err)
	}
	if _, ok, _ := a.Get(t.Context(), []byte("model")); ok {
		t.Fatal("the fenced Update wrote its state")
	}
	// a reads b's old partition from b's commit.
	var fromB []int64
	dra := drain(t, ma)
	for _, r := range dra {
		if r.Partition == pb.Partition {
			fromB = append(fromB, r.Offset)
		}
	}
	if len(fromB) == 0 || fromB[0] != 1 {
		t.Fatalf("a read %v of %s after taking it over, want from b's committed offset 1", fromB, pb)
	}
	if err := ma.CommitOffsets(t.Context(), map[eventstore.TopicPartition]int64{pb: 2}); err != nil {
		t.Fatal(err)
	}
	// b's Store runs again: it finds b gone and joins it again; b gets a
	// partition back, with a new epoch, and reads from the committed offset.
	clkB.Advance(11 * time.Second)
	eventually(t, "b joins again", func() bool { return spread("orders", 2, assignments(ma, mb)) && len(mb.Assignment()) == 1 })
	back := mb.Assignment()[0]
	if err := mb.CommitOffsets(t.Context(), map[eventstore.TopicPartition]int64{back: last.Offset + 1}); !errors.Is(err, eventstore.ErrNotAssigned) {
		t.Fatalf("b committing what it read before its lease ran out: %v, want ErrNotAssigned", err)
	}
	got := drain(t, mb)
	if back == pb && (len(got) == 0 || got[0].Offset != 2) {
		t.Fatalf("b read %d records of %s after it came back, first %v; want from a's commit at 2", len(got), back, got)
	}
	if err := mb.Commit(t.Context(), got[len(got)-1]); err != nil {
		t.Fatalf("b commits after reading again: %v", err)
	}
}

// TestSameMemberIDInTwoStores: member IDs need be unique only within a
// Store, so every replica can run a consumer with a fixed ID (as a
// projection's "live" member is).
func TestSameMemberIDInTwoStores(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	a, b := openOn(t, schema), openOn(t, schema)
	if err := a.CreateTopic(t.Context(), "orders", eventstore.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	var ms []eventstore.Consumer
	for _, s := range []*postgres.Store{a, b} {
		m, err := s.JoinGroup(t.Context(), "g", []string{"orders"}, eventstore.WithMemberID("live"))
		if err != nil {
			t.Fatalf("JoinGroup as live: %v", err)
		}
		t.Cleanup(func() { _ = m.Close() })
		ms = append(ms, m)
	}
	if _, err := a.JoinGroup(t.Context(), "g", []string{"orders"}, eventstore.WithMemberID("live")); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("a second live member in one Store: %v, want ErrInvalidArgument", err)
	}
	eventually(t, "the two live members share the partitions", func() bool {
		as := assignments(ms...)
		return spread("orders", 4, as) && len(as[0]) == 2
	})
	info, err := b.DescribeGroup(t.Context(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Members) != 2 || info.Members[0].ID != "live" || info.Members[1].ID != "live" || len(info.Members[0].Assignment) != 2 {
		t.Errorf("DescribeGroup: %+v", info.Members)
	}
}

// TestListenerReconnects: when a Store's LISTEN connection breaks (here the
// server terminates it), the Store connects again and wakes its waiters,
// so a subscription on it still sees what another Store appends, including
// what was appended while no one listened.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	a, b := openOn(t, schema), openOn(t, schema)
	if err := a.CreateTopic(t.Context(), "orders", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan int64, 10)
	go func() {
		for rec, err := range a.Subscribe(ctx, "orders", 0, 0) {
			if err != nil {
				return
			}
			got <- rec.Offset
		}
	}()
	appendB := func() {
		if _, err := b.Append(t.Context(), "orders", "k", eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	next := func(want int64) {
		t.Helper()
		select {
		case off := <-got:
			if off != want {
				t.Fatalf("subscriber saw offset %d, want %d", off, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("subscriber did not see offset %d", want)
		}
	}
	appendB()
	next(0)
	conn, err := pgx.Connect(t.Context(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Every Store on the schema has one listener; terminate them all.
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = $1`,
		"LISTEN "+pgx.Identifier{"muninn." + schema}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("terminated %d listeners, want 2", n)
	}
	appendB()
	next(1)
	appendB()
	next(2)
}

// TestNotifierWakesOtherStores: when an append's own notification does not
// go out (WithNotifyApart takes that path for every append), the Store's
// notifier goroutine tells the other Stores, and a subscriber on another
// Store sees every record, in order, without polling.
func TestNotifierWakesOtherStores(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	a := openOn(t, schema)
	b := openOn(t, schema, postgres.WithNotifyApart())
	if err := b.CreateTopic(t.Context(), "orders", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan eventstore.Record, 100)
	for p := range 2 {
		go func() {
			for rec, err := range a.Subscribe(ctx, "orders", p, 0) {
				if err != nil {
					return
				}
				got <- rec
			}
		}()
	}
	// One append at a time, each waited for: a record that only a later
	// append's notification would reveal would hang here.
	for i := range 20 {
		key := "k" + strconv.Itoa(i)
		res, err := b.Append(t.Context(), "orders", key, eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte("x")}})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case rec := <-got:
			if rec.Key != key || rec.Partition != res.Partition || rec.Offset != res.FirstOffset {
				t.Fatalf("append %d: subscriber saw %s at %d/%d, want %s at %d/%d", i, rec.Key, rec.Partition, rec.Offset, key, res.Partition, res.FirstOffset)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("append %d (%s): the other Store's subscriber was not woken", i, key)
		}
	}
}

// TestWithPool: a Store on the caller's pool leaves it open at Close.
func TestWithPool(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(t.Context(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := postgres.Open(t.Context(), "", postgres.WithPool(pool), postgres.WithSchema(pgtest.Schema(t)), postgres.WithCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTopic(t.Context(), "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListTopics(t.Context()); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("ListTopics after Close: %v, want ErrClosed", err)
	}
	if err := pool.Ping(t.Context()); err != nil {
		t.Errorf("the caller's pool after Close: %v", err)
	}
}

// TestDamagedRecordIsAnError: a record whose stored bytes were changed
// behind the store's back fails its checksum on every read path, and is
// never returned as data.
func TestDamagedRecordIsAnError(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	s := openOn(t, schema)
	if err := s.CreateTopic(t.Context(), "orders", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(t.Context(), "orders", "o", eventstore.NoStream, []eventstore.Event{{Type: "e", Payload: []byte("paid 12")}}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Flip a byte of the payload (the record's last byte).
	if _, err := conn.Exec(t.Context(), `UPDATE `+pgx.Identifier{schema}.Sanitize()+`.records
		SET data = set_byte(data, length(data) - 1, get_byte(data, length(data) - 1) # 1)`); err != nil {
		t.Fatal(err)
	}
	check := func(what string, seq func(func(eventstore.Record, error) bool)) {
		t.Helper()
		for rec, err := range seq {
			var corrupt *eventstore.CorruptRecordError
			if !errors.Is(err, eventstore.ErrCorrupt) || !errors.As(err, &corrupt) {
				t.Errorf("%s of a damaged record: %+v, %v; want a *CorruptRecordError", what, rec, err)
			}
			return
		}
		t.Errorf("%s of a damaged record yielded nothing", what)
	}
	check("ReadPartition", s.ReadPartition(t.Context(), "orders", 0, 0))
	check("ReadStream", s.ReadStream(t.Context(), "orders", "o", 0))
	check("Subscribe", s.Subscribe(t.Context(), "orders", 0, 0))
	c, err := s.JoinGroup(t.Context(), "g", []string{"orders"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if recs, err := c.TryPoll(t.Context(), 10); !errors.Is(err, eventstore.ErrCorrupt) || len(recs) != 0 {
		t.Errorf("TryPoll of a damaged record: %d records, %v; want ErrCorrupt", len(recs), err)
	}
}
