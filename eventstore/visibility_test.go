package eventstore_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninn-es/muninn/eventstore"
)

// gateFS holds every WAL fsync while closed: the test controls when a
// durable append becomes durable.
type gateFS struct {
	vfs.FS
	closed  atomic.Bool
	release chan struct{}
}

type gateFile struct {
	vfs.File
	fs *gateFS
}

func (f gateFile) Sync() error     { f.fs.wait(); return f.File.Sync() }
func (f gateFile) SyncData() error { f.fs.wait(); return f.File.SyncData() }

func (fs *gateFS) wait() {
	if fs.closed.Load() {
		<-fs.release
	}
}

func (fs *gateFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return gateFile{f, fs}, nil
}

func (fs *gateFS) ReuseForWrite(old, new string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(old, new, c)
	if err != nil || !strings.HasSuffix(new, ".log") {
		return f, err
	}
	return gateFile{f, fs}, nil
}

// visible lists the keys a reader can see in partition 0 of topic t.
func visible(t *testing.T, s *eventstore.PebbleStore) []string {
	t.Helper()
	var keys []string
	for rec, err := range s.ReadPartition(t.Context(), "t", 0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, rec.Key)
	}
	return keys
}

// TestReadersSeeOnlyDurableAppends holds the WAL fsync and checks that no
// read path shows a durable append's records before Append has returned,
// even when a NoSync append to the same partition follows it.
func TestReadersSeeOnlyDurableAppends(t *testing.T) {
	ctx := context.Background()
	fs := &gateFS{FS: vfs.NewMem(), release: make(chan struct{})}
	s, err := eventstore.Open("db", eventstore.WithFS(fs))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "t", "a", eventstore.NoStream, []eventstore.Event{{Type: "x", Payload: []byte("first")}}); err != nil {
		t.Fatal(err)
	}
	fs.closed.Store(true)
	var once sync.Once
	open := func() { once.Do(func() { fs.closed.Store(false); close(fs.release) }) }
	defer open() // before Close, also when the test fails
	durable := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "t", "a", eventstore.Exact(1), []eventstore.Event{{Type: "x", Payload: []byte("durable")}})
		durable <- err
	}()
	noSync := make(chan error, 1)
	time.Sleep(50 * time.Millisecond) // let the durable append reach its fsync; the checks below hold either way
	go func() {
		_, err := s.Append(ctx, "t", "b", eventstore.NoStream, []eventstore.Event{{Type: "x", Payload: []byte("nosync")}}, eventstore.NoSync())
		noSync <- err
	}()
	time.Sleep(50 * time.Millisecond)

	for range 3 {
		if got := visible(t, s); len(got) != 1 {
			t.Fatalf("while the fsync is held, readers see %v; want only the first record", got)
		}
		if v, err := s.HeadVersion(ctx, "t", "a"); err != nil || v != 1 {
			t.Fatalf("HeadVersion while the fsync is held = %d, %v; want 1", v, err)
		}
		n := 0
		for _, err := range s.ReadStream(ctx, "t", "a", 0) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 1 {
			t.Fatalf("ReadStream while the fsync is held sees %d events; want 1", n)
		}
		select {
		case err := <-durable:
			t.Fatalf("durable append returned before its fsync: %v", err)
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}

	open()
	for _, ch := range []chan error{durable, noSync} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if got := visible(t, s); len(got) != 3 {
		t.Fatalf("after the fsync readers see %v; want all three records", got)
	}
}
