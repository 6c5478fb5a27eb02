package eventstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

// TestAppendsSubscribersAndCleanupTogether runs writers, a live subscriber
// and a cleaner every millisecond on one compacted topic, and checks that
// the subscriber sees offsets in order and each key's versions in order, and
// that the compacted result is each key's newest record.
func TestAppendsSubscribersAndCleanupTogether(t *testing.T) {
	ctx := context.Background()
	s := openMem(t, eventstore.WithCleanupInterval(time.Millisecond))
	if err := s.CreateTopic(ctx, "snap", eventstore.TopicConfig{Partitions: 2, Cleanup: eventstore.Compact}); err != nil {
		t.Fatal(err)
	}
	const writers, keys, each = 4, 10, 150
	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	var subWG sync.WaitGroup
	subErrs := make(chan error, 2)
	for p := range 2 {
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			last := int64(-1)
			versions := map[string]uint64{}
			for rec, err := range s.Subscribe(subCtx, "snap", p, 0) {
				if err != nil {
					subErrs <- err
					return
				}
				if rec.Offset <= last {
					subErrs <- fmt.Errorf("partition %d: offset %d after %d", p, rec.Offset, last)
					return
				}
				if rec.Version <= versions[rec.Key] {
					subErrs <- fmt.Errorf("partition %d: %s version %d after %d", p, rec.Key, rec.Version, versions[rec.Key])
					return
				}
				last, versions[rec.Key] = rec.Offset, rec.Version
			}
		}()
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := fmt.Sprintf("k%d", (w*each+i)%keys)
				if _, err := s.Append(ctx, "snap", key, eventstore.Any, []eventstore.Event{{Type: "s", Payload: []byte(fmt.Sprintf("w%d-%d", w, i))}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, err := s.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	stopSub()
	subWG.Wait()
	close(subErrs)
	for err := range subErrs {
		t.Error(err)
	}
	seen := 0
	for p := range 2 {
		for rec, err := range s.ReadPartition(ctx, "snap", p, 0) {
			if err != nil {
				t.Fatal(err)
			}
			head, err := s.HeadVersion(ctx, "snap", rec.Key)
			if err != nil || rec.Version != head {
				t.Fatalf("after compaction %s has version %d, head %d (%v)", rec.Key, rec.Version, head, err)
			}
			seen++
		}
	}
	if seen != keys {
		t.Fatalf("%d records after compaction, want one per key (%d)", seen, keys)
	}
}
