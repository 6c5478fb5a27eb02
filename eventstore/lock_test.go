package eventstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/crashtest"
)

// TestLockChild is the child of TestLockOtherProcess. It does nothing unless
// started by it; then it opens the store, acknowledges READY and holds the
// store open until it is killed.
func TestLockChild(t *testing.T) {
	if !crashtest.IsChild(t) {
		return
	}
	s, err := eventstore.Open(crashtest.Arg("dir"))
	if err != nil {
		crashtest.Fail("open: %v", err)
	}
	defer s.Close() // never runs: the parent kills the child holding it open
	crashtest.Ack("READY")
	select {}
}

func TestLockOtherProcess(t *testing.T) {
	dir := t.TempDir()
	child := crashtest.Start(t, crashtest.Child{Test: "TestLockChild", Args: map[string]string{"dir": dir}})
	if acks := child.WaitAcks(1); acks[0] != "READY" {
		t.Fatalf("child acknowledged %q, want READY", acks[0])
	}

	s, err := eventstore.Open(dir)
	if err == nil {
		s.Close()
		t.Fatal("Open of a directory another process has open succeeded")
	}
	if !errors.Is(err, eventstore.ErrLocked) {
		t.Fatalf("Open of a directory another process has open: %v; want an error wrapping ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory %s", err, dir)
	}
	t.Logf("second process: %v", err)

	child.Kill()
	s, err = eventstore.Open(dir)
	if err != nil {
		t.Fatalf("Open after the other process died: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLockSameProcess(t *testing.T) {
	dir := t.TempDir()
	s, err := eventstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	_, err = eventstore.Open(dir)
	if !errors.Is(err, eventstore.ErrLocked) {
		t.Fatalf("second Open in the same process: %v; want an error wrapping ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory %s", err, dir)
	}
	// Another spelling of the same path.
	if _, err := eventstore.Open(dir + "/./"); !errors.Is(err, eventstore.ErrLocked) {
		t.Errorf("Open(%q) of an open directory: %v; want an error wrapping ErrLocked", dir+"/./", err)
	}

	// The first store still works, and once closed the directory opens again.
	ctx := context.Background()
	if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := eventstore.Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLockSameProcessOtherPath opens one directory through a symlink while
// it is open under its own name. Pebble's in-process lock table is keyed by
// the path as given, and POSIX record locks do not exclude the process that
// holds them, so without eventstore's own table of open directories (by
// device and inode) the second Open would succeed, two Pebble instances
// would share one directory, and acknowledged appends would be lost.
func TestLockSameProcessOtherPath(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	link := t.TempDir() + "/link"
	if err := os.Symlink(dir, link); err != nil {
		t.Skip(err)
	}
	s, err := eventstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s2, err := eventstore.Open(link)
	if err == nil {
		// Show what it costs: acknowledged appends through the first store
		// do not survive the second one.
		if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if _, err := s.Append(ctx, "t", "k", eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte("x")}}); err != nil {
				t.Fatal(err)
			}
		}
		err2, err1 := s2.Close(), s.Close()
		var head uint64
		var herr error
		if s3, err := eventstore.Open(dir); err != nil {
			herr = err
		} else {
			head, herr = s3.HeadVersion(ctx, "t", "k")
			s3.Close()
		}
		t.Fatalf("Open(%q), a symlink to the open directory %s, succeeded: two stores share one directory "+
			"(close: %v, %v); after reopening, the stream that got 10 acknowledged appends has head %d (%v)",
			link, dir, err2, err1, head, herr)
	}
	if !errors.Is(err, eventstore.ErrLocked) {
		t.Fatalf("Open through a symlink to an open directory: %v; want an error wrapping ErrLocked", err)
	}
}

func TestLockCloseIdempotent(t *testing.T) {
	ctx := context.Background()
	s, err := eventstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "orders", "o-1", eventstore.NoStream, []eventstore.Event{{Type: "placed", Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	checks := map[string]error{}
	_, checks["Append"] = s.Append(ctx, "orders", "o-1", eventstore.Exact(1), []eventstore.Event{{Type: "paid", Payload: []byte("y")}})
	checks["CreateTopic"] = s.CreateTopic(ctx, "more", eventstore.TopicConfig{Partitions: 1})
	_, checks["HeadVersion"] = s.HeadVersion(ctx, "orders", "o-1")
	_, checks["DescribeTopic"] = s.DescribeTopic(ctx, "orders")
	_, checks["ListTopics"] = s.ListTopics(ctx)
	checks["Sync"] = s.Sync(ctx)
	checks["ReadStream"] = errors.New("yielded nothing")
	for rec, err := range s.ReadStream(ctx, "orders", "o-1", 0) {
		checks["ReadStream"] = err
		if err == nil {
			checks["ReadStream"] = fmt.Errorf("first yield is a record: %+v", rec)
		}
		break
	}
	checks["ReadPartition"] = errors.New("yielded nothing")
	for rec, err := range s.ReadPartition(ctx, "orders", 0, 0) {
		checks["ReadPartition"] = err
		if err == nil {
			checks["ReadPartition"] = fmt.Errorf("first yield is a record: %+v", rec)
		}
		break
	}
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		if err := checks[name]; !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("%s after Close: %v; want ErrClosed", name, err)
		}
	}
}

// TestLockCloseConcurrent closes a store from two goroutines at once: once
// both calls have returned, the directory must be free again.
func TestLockCloseConcurrent(t *testing.T) {
	dir := t.TempDir()
	for range 20 {
		s, err := eventstore.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- s.Close() }()
		}
		// Whichever Close returns first, the store is closed once it has.
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		s2, err := eventstore.Open(dir)
		if err != nil {
			t.Fatalf("Open after a Close returned: %v", err)
		}
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReopenKeepsState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := eventstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	configs := map[string]eventstore.TopicConfig{
		"orders":    {Partitions: 3},
		"snapshots": {Partitions: 2, Cleanup: eventstore.Compact, TombstoneGrace: time.Hour},
		"audit":     {Partitions: 1, Cleanup: eventstore.Delete, RetentionAge: 48 * time.Hour},
	}
	for name, cfg := range configs {
		if err := s.CreateTopic(ctx, name, cfg); err != nil {
			t.Fatal(err)
		}
	}
	heads := map[string]uint64{}
	for i := range 40 {
		key := fmt.Sprintf("o-%d", i%7)
		n := 1 + i%3
		events := make([]eventstore.Event, n)
		for j := range events {
			events[j] = eventstore.Event{Type: "t", Payload: fmt.Appendf(nil, "%s-%d-%d", key, i, j), Headers: map[string]string{"i": fmt.Sprint(i)}}
		}
		var opts []eventstore.AppendOption
		if i%5 == 0 {
			opts = append(opts, eventstore.NoSync())
		}
		res, err := s.Append(ctx, "orders", key, eventstore.Exact(heads[key]), events, opts...)
		if err != nil {
			t.Fatal(err)
		}
		heads[key] = res.LastVersion
	}
	if _, err := s.Append(ctx, "snapshots", "o-1", eventstore.Any, []eventstore.Event{{Type: "snap", Payload: []byte("s")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "audit", "a", eventstore.Any, []eventstore.Event{{Type: "seen", Payload: []byte("a")}}); err != nil {
		t.Fatal(err)
	}

	type snapshot struct {
		topics  []string
		infos   map[string]eventstore.TopicInfo
		heads   map[string]uint64
		records map[string][]eventstore.Record
	}
	take := func(s *eventstore.PebbleStore) snapshot {
		t.Helper()
		var sn snapshot
		var err error
		if sn.topics, err = s.ListTopics(ctx); err != nil {
			t.Fatal(err)
		}
		sn.infos, sn.heads, sn.records = map[string]eventstore.TopicInfo{}, map[string]uint64{}, map[string][]eventstore.Record{}
		for _, name := range sn.topics {
			if sn.infos[name], err = s.DescribeTopic(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		for key := range heads {
			if sn.heads[key], err = s.HeadVersion(ctx, "orders", key); err != nil {
				t.Fatal(err)
			}
			for rec, err := range s.ReadStream(ctx, "orders", key, 0) {
				if err != nil {
					t.Fatal(err)
				}
				sn.records[key] = append(sn.records[key], rec)
			}
		}
		return sn
	}
	before := take(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = eventstore.Open(dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	after := take(s)

	if !slices.Equal(before.topics, after.topics) || len(after.topics) != len(configs) {
		t.Errorf("topics: before %v, after reopen %v", before.topics, after.topics)
	}
	for name, b := range before.infos {
		a := after.infos[name]
		if a.Config != b.Config || !a.Created.Equal(b.Created) || !slices.Equal(a.Partitions, b.Partitions) {
			t.Errorf("topic %s:\nbefore %+v\nafter  %+v", name, b, a)
		}
	}
	for key, h := range heads {
		if before.heads[key] != h || after.heads[key] != h {
			t.Errorf("head of %s: appended to %d, HeadVersion %d before and %d after reopen", key, h, before.heads[key], after.heads[key])
		}
		b, a := before.records[key], after.records[key]
		if uint64(len(a)) != h || len(a) != len(b) {
			t.Errorf("stream %s: %d records before, %d after reopen, head %d", key, len(b), len(a), h)
			continue
		}
		for i := range a {
			if !sameRecord(a[i], b[i]) {
				t.Errorf("stream %s record %d:\nbefore %+v\nafter  %+v", key, i, b[i], a[i])
			}
		}
	}

	// Appends go on from the old heads and end offsets.
	key := "o-3"
	p := after.records[key][0].Partition
	res, err := s.Append(ctx, "orders", key, eventstore.Exact(heads[key]), []eventstore.Event{{Type: "t", Payload: []byte("after")}})
	if err != nil {
		t.Fatalf("append after reopen at the old head: %v", err)
	}
	if res.FirstVersion != heads[key]+1 || res.Partition != p || res.FirstOffset != after.infos["orders"].Partitions[p].EndOffset {
		t.Errorf("append after reopen landed at v%d %d@%d; want v%d %d@%d",
			res.FirstVersion, res.Partition, res.FirstOffset, heads[key]+1, p, after.infos["orders"].Partitions[p].EndOffset)
	}
	if _, err := s.Append(ctx, "orders", key, eventstore.Exact(heads[key]), []eventstore.Event{{Type: "t", Payload: []byte("stale")}}); !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Errorf("append after reopen at a stale version: %v; want a version conflict", err)
	}
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 3}); !errors.Is(err, eventstore.ErrTopicExists) {
		t.Errorf("CreateTopic of an existing topic after reopen: %v; want ErrTopicExists", err)
	}
	// A topic created after reopen gets a fresh ID: it does not see the
	// records of another topic.
	if err := s.CreateTopic(ctx, "fresh", eventstore.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	for rec, err := range s.ReadPartition(ctx, "fresh", p, 0) {
		t.Fatalf("new topic after reopen yields %+v, %v", rec, err)
	}
}

func sameRecord(a, b eventstore.Record) bool {
	return a.ID == b.ID && a.Topic == b.Topic && a.Partition == b.Partition && a.Offset == b.Offset &&
		a.Key == b.Key && a.Version == b.Version && a.Type == b.Type && a.SchemaVersion == b.SchemaVersion &&
		bytes.Equal(a.Payload, b.Payload) && a.Timestamp.Equal(b.Timestamp) &&
		a.CorrelationID == b.CorrelationID && a.CausationID == b.CausationID &&
		fmt.Sprint(a.Headers) == fmt.Sprint(b.Headers)
}
