package stream_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

// Two Apps of one application ID share the partitions; members joining and
// leaving mid-way (rebalances) leave the state exact.
func TestMembersShareTheWork(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	createTopic(t, s, "views", 4, eventstore.Retain)
	want := map[string]int64{}
	add := func(from, to int) {
		for i := from; i < to; i++ {
			user := fmt.Sprintf("user-%d", i%13)
			put(t, s, "views", fmt.Sprintf("page-%d", i%17), fmt.Appendf(nil, `{"user":%q}`, user), sec(i))
			want[user]++
		}
	}
	topo := stream.NewTopology()
	views := stream.Source(topo, "views", codec.String(), codec.JSON[PageView]())
	total := stream.Count(stream.GroupBy(views, func(_ string, v PageView) string { return v.User }, codec.String()), "total")

	m1, err := stream.NewApp(s, topo, "shared", stream.WithMemberID("m1"), stream.WithBatchSize(7))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := stream.NewApp(s, topo, "shared", stream.WithMemberID("m2"), stream.WithBatchSize(7))
	if err != nil {
		t.Fatal(err)
	}
	add(0, 300)
	r1 := start(t, m1)
	add(300, 600)
	r2 := start(t, m2) // rebalance: m1 loses half its partitions
	add(600, 900)
	waitAny(t, m1, m2)
	info, err := s.DescribeGroup(ctx, "shared")
	if err != nil || len(info.Members) != 2 {
		t.Fatalf("group = %+v, %v; want two members", info, err)
	}
	if err := r1.stop(); err != nil { // rebalance: m2 takes everything
		t.Fatal(err)
	}
	add(900, 1200)
	waitCaughtUp(t, m2)
	if err := r2.stop(); err != nil {
		t.Fatal(err)
	}
	for user, n := range want {
		if got, ok, err := total.Get(ctx, m2, user); err != nil || !ok || got != n {
			t.Errorf("total of %s = %d, %v, %v; want %d", user, got, ok, err, n)
		}
	}
	m, err := m2.Metrics(ctx)
	if err != nil || m.ProcessedRecords-m.DuplicateRecords != 2400 {
		t.Errorf("metrics %+v, %v; want 2400 records processed once", m, err)
	}
}

// waitAny returns once the group of apps has caught up: each App's
// WaitCaughtUp wakes on its own commits, so the member that commits last
// returns first.
func waitAny(t *testing.T, apps ...*stream.App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, len(apps))
	for _, a := range apps {
		go func() { done <- a.WaitCaughtUp(ctx) }()
	}
	err := <-done
	cancel()
	for range len(apps) - 1 {
		<-done
	}
	if err != nil {
		t.Fatalf("WaitCaughtUp: %v", err)
	}
}

// Records a member read before their partition went to another member and
// came back are not applied again: the other member applied them, and the
// consumer's fence no longer sees the old read once the member has polled
// since. The member reads the partition again from the committed offset.
func TestRecordsReadBeforeAPartitionCameBackApplyOnce(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	createTopic(t, s, "in", 2, eventstore.Retain)
	kA, kB := keyOn(t, s, "in", 0), keyOn(t, s, "in", 1)
	put(t, s, "in", kA, []byte("a"), sec(1))
	put(t, s, "in", kA, []byte("a"), sec(2))
	put(t, s, "in", kB, []byte("b"), sec(10))
	put(t, s, "in", kB, []byte("b"), sec(11))
	topo := stream.NewTopology()
	counts := stream.Count(stream.GroupByKey(stream.Source(topo, "in", codec.String(), codec.String())), "c")

	var log syncBuffer
	first, blocked, release := true, make(chan struct{}), make(chan struct{})
	// m1 reads both partitions in batches of 2: the first, in/0's records
	// (older), and in/1's first record waits in its inbox.
	m1, err := stream.NewApp(s, topo, "comeback", stream.WithMemberID("m1"), stream.WithBatchSize(2),
		stream.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	if err != nil {
		t.Fatal(err)
	}
	stream.SetBeforeUpdate(m1, func() error {
		if first {
			first = false
			close(blocked)
			<-release
		}
		return nil
	})
	m2, err := stream.NewApp(s, topo, "comeback", stream.WithMemberID("m2"))
	if err != nil {
		t.Fatal(err)
	}
	start(t, m1)
	<-blocked
	r2 := start(t, m2) // m2 takes in/1 and applies both its records
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m2.WaitFor(wctx, eventstore.Position{Topic: "in", Partition: 1, Offset: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r2.stop(); err != nil { // in/1 comes back to m1
		t.Fatal(err)
	}
	close(release)
	waitCaughtUp(t, m1)

	for _, k := range []string{kA, kB} {
		if n, ok, err := counts.Get(ctx, m1, k); err != nil || !ok || n != 2 {
			t.Errorf("count of %s = %d, %v, %v; want 2", k, n, ok, err)
		}
	}
	if off, ok, err := s.CommittedOffset(ctx, "comeback", "in", 1); err != nil || !ok || off != 2 {
		t.Errorf("committed offset of in/1 = %d, %v, %v; want 2", off, ok, err)
	}
	if !strings.Contains(log.String(), "went to another member and came back") {
		t.Errorf("m1 did not find its inbox stale; log:\n%s", log.String())
	}
}
