package eventstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninn-es/muninn/eventstore"
)

// These tests damage the files of closed stores and check that the damage
// is an error matching eventstore.ErrCorrupt, never an exit of the process,
// a hang, or acknowledged data silently missing.

const corruptTopic = "c"

// expected is what a test appended and had acknowledged.
type expected struct {
	parts   [][]eventstore.Record // by partition, in offset order
	streams map[string][]eventstore.Record
}

func (e *expected) records() int {
	n := 0
	for _, p := range e.parts {
		n += len(p)
	}
	return n
}

// writeCorruptStore writes a store in dir: n events over streams of a
// 3-partition topic; if flushAt >= 0, the first flushAt events are flushed
// to tables and the rest stay in the WAL only. One append in syncEvery is
// durable; the others are NoSync, acknowledged by the Sync at the end.
func writeCorruptStore(t *testing.T, dir string, rng *rand.Rand, n, flushAt, syncEvery int, opts ...eventstore.Option) *expected {
	t.Helper()
	ctx := context.Background()
	s, err := eventstore.Open(dir, append([]eventstore.Option{eventstore.WithCleanupInterval(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTopic(ctx, corruptTopic, eventstore.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	exp := &expected{parts: make([][]eventstore.Record, 3), streams: map[string][]eventstore.Record{}}
	heads := map[string]uint64{}
	for written := 0; written < n; {
		key := fmt.Sprintf("s%02d", rng.IntN(12))
		batch := min(1+rng.IntN(4), n-written)
		evs := make([]eventstore.Event, batch)
		for i := range evs {
			p := make([]byte, 20+rng.IntN(300))
			for j := range p {
				p[j] = byte('a' + rng.IntN(26))
			}
			evs[i] = eventstore.Event{Type: "corrupt.test", Payload: p}
		}
		var opts []eventstore.AppendOption
		if rng.IntN(syncEvery) != 0 {
			opts = append(opts, eventstore.NoSync())
		}
		res, err := s.Append(ctx, corruptTopic, key, eventstore.Exact(heads[key]), evs, opts...)
		if err != nil {
			t.Fatal(err)
		}
		heads[key] = res.LastVersion
		for i, ev := range evs {
			r := eventstore.Record{
				ID: res.EventIDs[i], Topic: corruptTopic, Partition: res.Partition, Offset: res.FirstOffset + int64(i),
				Key: key, Version: res.FirstVersion + uint64(i), Type: ev.Type, Payload: ev.Payload,
			}
			exp.parts[r.Partition] = append(exp.parts[r.Partition], r)
			exp.streams[key] = append(exp.streams[key], r)
		}
		written += batch
		if flushAt >= 0 && written >= flushAt && written-batch < flushAt {
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// NoSync appends are acknowledged once Sync returns.
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return exp
}

func sameRecordData(a, b eventstore.Record) bool {
	return a.ID == b.ID && a.Partition == b.Partition && a.Offset == b.Offset && a.Key == b.Key &&
		a.Version == b.Version && a.Type == b.Type && bytes.Equal(a.Payload, b.Payload)
}

// files returns the store files whose names end with suffix, sorted.
func files(t *testing.T, dir, suffix string) []string {
	t.Helper()
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if !n.IsDir() && strings.HasSuffix(n.Name(), suffix) {
			out = append(out, filepath.Join(dir, n.Name()))
		}
	}
	slices.Sort(out)
	return out
}

// flip XORs one byte of a file with mask.
func flip(t *testing.T, path string, off int64, mask byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= mask
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// openWithin opens dir, failing the test if Open does not return within
// the watchdog's limit: damage must never make Open hang.
func openWithin(t *testing.T, dir string, opts ...eventstore.Option) (*eventstore.PebbleStore, error) {
	t.Helper()
	type result struct {
		s   *eventstore.PebbleStore
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := eventstore.Open(dir, append([]eventstore.Option{eventstore.WithCleanupInterval(0)}, opts...)...)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.s, r.err
	case <-time.After(watchdog):
		t.Fatalf("Open of a damaged store did not return within %s", watchdog)
		return nil, nil
	}
}

// watchdog bounds every operation on a damaged store; only a hang reaches it.
const watchdog = 30 * time.Second

// withinWatchdog runs f, failing the test if it does not return in time.
func withinWatchdog(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(watchdog):
		t.Fatalf("%s on a damaged store did not return within %s", what, watchdog)
	}
}

// checkReads reads every partition and stream (and, if full, every stream
// backward and every head) of an opened store and checks that each read
// yields exactly what was appended, or stops with an error matching
// ErrCorrupt. It returns how many reads ended in corruption.
func checkReads(t *testing.T, s *eventstore.PebbleStore, exp *expected, full bool) (corrupt int) {
	t.Helper()
	ctx := context.Background()
	check := func(what string, want []eventstore.Record, seq func(func(eventstore.Record, error) bool)) {
		i := 0
		var rerr error
		withinWatchdog(t, what, func() {
			for rec, err := range seq {
				if err != nil {
					rerr = err
					break
				}
				if i >= len(want) {
					t.Errorf("%s: record %+v beyond the %d appended", what, rec, len(want))
					return
				}
				if !sameRecordData(rec, want[i]) {
					t.Errorf("%s: got %s/%d@%d %q v%d, want %q v%d at offset %d (not the bytes appended)",
						what, rec.Topic, rec.Partition, rec.Offset, rec.Key, rec.Version, want[i].Key, want[i].Version, want[i].Offset)
					return
				}
				i++
			}
		})
		switch {
		case rerr != nil && !errors.Is(rerr, eventstore.ErrCorrupt):
			t.Errorf("%s: error %v does not match ErrCorrupt", what, rerr)
		case rerr != nil:
			corrupt++
		case i != len(want):
			t.Errorf("%s: %d of %d acknowledged records, and no error", what, i, len(want))
		}
	}
	for p, want := range exp.parts {
		check(fmt.Sprintf("ReadPartition(%d)", p), want, s.ReadPartition(ctx, corruptTopic, p, 0))
	}
	for key, want := range exp.streams {
		check(fmt.Sprintf("ReadStream(%s)", key), want, s.ReadStream(ctx, corruptTopic, key, 0))
		if !full {
			continue
		}
		back := slices.Clone(want)
		slices.Reverse(back)
		check(fmt.Sprintf("ReadStream(%s, Backward)", key), back, s.ReadStream(ctx, corruptTopic, key, 0, eventstore.Backward()))
		var head uint64
		var herr error
		withinWatchdog(t, "HeadVersion", func() { head, herr = s.HeadVersion(ctx, corruptTopic, key) })
		switch {
		case herr != nil && !errors.Is(herr, eventstore.ErrCorrupt):
			t.Errorf("HeadVersion(%s): error %v does not match ErrCorrupt", key, herr)
		case herr != nil:
			corrupt++
		case head != want[len(want)-1].Version:
			t.Errorf("HeadVersion(%s) = %d, want %d", key, head, want[len(want)-1].Version)
		}
	}
	return corrupt
}

// TestSSTableCorruptionIsAnError flips the middle byte of a table: Open or
// the reads of the damaged block fail with ErrCorrupt, naming the table; the
// process does not exit (it did: Pebble's default DataCorruption handler
// calls Fatalf, whose default exits).
func TestSSTableCorruptionIsAnError(t *testing.T) {
	dir := t.TempDir()
	exp := writeCorruptStore(t, dir, rand.New(rand.NewPCG(1, 1)), 1000, 1000, 2)
	ssts := files(t, dir, ".sst")
	if len(ssts) == 0 {
		t.Fatal("no table written")
	}
	sst := ssts[len(ssts)-1]
	flip(t, sst, fileSize(t, sst)/2, 0xff)
	s, err := openWithin(t, dir)
	if err != nil {
		var ce *eventstore.CorruptFileError
		if !errors.Is(err, eventstore.ErrCorrupt) || !errors.As(err, &ce) || ce.Path != sst {
			t.Fatalf("Open: %v; want a *CorruptFileError naming %s", err, sst)
		}
		return
	}
	// Forward reads only: each read of a damaged block costs Pebble a
	// search for the flipped bit, quadratic in the block's size (32 KiB
	// here); the randomized test reads more, on smaller blocks.
	if checkReads(t, s, exp, false) == 0 {
		t.Fatal("no read noticed the damaged table")
	}
	herr := s.Health(context.Background())
	var ce *eventstore.CorruptFileError
	if !errors.As(herr, &ce) || ce.Path != sst {
		t.Errorf("Health = %v, want a *CorruptFileError naming %s", herr, sst)
	}
	_, aerr := s.Append(context.Background(), corruptTopic, "new", eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte("x")}})
	if !errors.Is(aerr, eventstore.ErrCorrupt) {
		t.Errorf("Append on a store with known damage: %v, want an error matching ErrCorrupt", aerr)
	}
	if err := s.Close(); !errors.Is(err, eventstore.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(sst)) {
		t.Errorf("Close = %v, want the damage reported", err)
	}
}

// TestWALCorruptionRefusesOpen flips the middle byte of the live WAL: Open
// fails naming the WAL and the byte. It used to open and drop every
// acknowledged append logged after the damage (818 of 1,000 records left).
func TestWALCorruptionRefusesOpen(t *testing.T) {
	dir := t.TempDir()
	writeCorruptStore(t, dir, rand.New(rand.NewPCG(2, 2)), 1000, -1, 2)
	logs := files(t, dir, ".log")
	wal := logs[len(logs)-1]
	mid := fileSize(t, wal) / 2
	flip(t, wal, mid, 0xff)
	s, err := openWithin(t, dir)
	if err == nil {
		s.Close()
		t.Fatal("Open of a store with a damaged WAL succeeded")
	}
	var ce *eventstore.CorruptFileError
	if !errors.Is(err, eventstore.ErrCorrupt) || !errors.As(err, &ce) {
		t.Fatalf("Open: %v; want a *CorruptFileError", err)
	}
	if ce.Path != wal || ce.Offset < mid-(32<<10) || ce.Offset > mid {
		t.Errorf("error names %s at byte %d; want %s at a chunk at most 32 KiB before byte %d", ce.Path, ce.Offset, wal, mid)
	}
	for _, want := range []string{filepath.Base(wal), "byte " + strconv.FormatInt(ce.Offset, 10), "WithRecoverCorruptWAL", "muninn repair"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// Refusing changed nothing: the next Open refuses again.
	if _, err := openWithin(t, dir); !errors.Is(err, eventstore.ErrCorrupt) {
		t.Errorf("second Open: %v, want ErrCorrupt again", err)
	}
}

// TestWALTornTailIsTolerated cuts the live WAL inside its last records, as
// a crash before their sync does, and zero-fills the rest: Open succeeds,
// and what is left is a prefix of what was appended.
func TestWALTornTailIsTolerated(t *testing.T) {
	for _, cut := range []int64{1, 7, 100, 700} {
		t.Run(fmt.Sprint("cut", cut), func(t *testing.T) {
			dir := t.TempDir()
			exp := writeCorruptStore(t, dir, rand.New(rand.NewPCG(3, uint64(cut))), 200, -1, 2)
			logs := files(t, dir, ".log")
			wal := logs[len(logs)-1]
			size := fileSize(t, wal)
			b, err := os.ReadFile(wal)
			if err != nil {
				t.Fatal(err)
			}
			// The end of the file (the trailer, the last records) is lost,
			// and the space is zeroes, as in a preallocated log.
			clear(b[size-cut:])
			if err := os.WriteFile(wal, b, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := openWithin(t, dir)
			if err != nil {
				t.Fatalf("Open after a torn tail: %v", err)
			}
			defer s.Close()
			ctx := context.Background()
			for p, want := range exp.parts {
				i := 0
				for rec, err := range s.ReadPartition(ctx, corruptTopic, p, 0) {
					if err != nil {
						t.Fatalf("partition %d: %v", p, err)
					}
					if i >= len(want) || !sameRecordData(rec, want[i]) {
						t.Fatalf("partition %d: record %d is not what was appended", p, i)
					}
					i++
				}
			}
			if err := s.Health(ctx); err != nil {
				t.Errorf("Health after a torn tail: %v", err)
			}
		})
	}
}

// TestWALRecovery opens a store with a damaged WAL with
// WithRecoverCorruptWAL: it opens as it was before the damaged record, and
// the report names exactly the offsets and versions that are gone.
func TestWALRecovery(t *testing.T) {
	dir := t.TempDir()
	exp := writeCorruptStore(t, dir, rand.New(rand.NewPCG(4, 4)), 1000, 300, 2)
	logs := files(t, dir, ".log")
	wal := logs[len(logs)-1]
	damaged, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	mid := int64(len(damaged) / 2)
	damaged[mid] ^= 0x10
	if err := os.WriteFile(wal, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	var reports []eventstore.RecoveryReport
	s, err := openWithin(t, dir, eventstore.WithRecoverCorruptWAL(func(r eventstore.RecoveryReport) { reports = append(reports, r) }))
	if err != nil {
		t.Fatalf("Open with recovery: %v", err)
	}
	if len(reports) != 1 {
		t.Fatalf("%d reports, want 1", len(reports))
	}
	rep := reports[0]
	if rep.WAL != wal || rep.Offset > mid || rep.Cut > rep.Offset || rep.DroppedBytes <= 0 || rep.UnreadableBytes <= 0 {
		t.Errorf("report: WAL %s offset %d cut %d dropped %d unreadable %d; want %s, damage at or before byte %d",
			rep.WAL, rep.Offset, rep.Cut, rep.DroppedBytes, rep.UnreadableBytes, wal, mid)
	}
	backup, err := os.ReadFile(filepath.Join(rep.Backup, filepath.Base(wal)))
	if err != nil || !bytes.Equal(backup, damaged) {
		t.Errorf("backup of the damaged log in %q: %v (equal: %v)", rep.Backup, err, bytes.Equal(backup, damaged))
	}
	checkRecovered(t, s, exp, rep, true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The recovered store opens without help, with the same contents.
	s, err = openWithin(t, dir)
	if err != nil {
		t.Fatalf("reopen after recovery: %v", err)
	}
	checkRecovered(t, s, exp, rep, true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// flushHold holds every flush (the creation of a table) until release is
// closed, so that the WAL of each memtable filled meanwhile stays live.
type flushHold struct {
	vfs.FS
	release chan struct{}
}

func (fs flushHold) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if strings.HasSuffix(name, ".sst") {
		<-fs.release
	}
	return fs.FS.Create(name, c)
}

// TestWALRecoveryDropsNewerLogs damages the oldest of several live WALs:
// recovery drops the newer logs whole, and the report names their records
// too, not only those of the damaged log.
func TestWALRecoveryDropsNewerLogs(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewCrashableMem()
	hold := flushHold{FS: mem, release: make(chan struct{})}
	smallMemtables := eventstore.WithPebbleOptions(func(o *pebble.Options) {
		o.MemTableSize = 256 << 10
		o.MemTableStopWritesThreshold = 16
	})
	s, err := eventstore.Open("db", eventstore.WithFS(hold), eventstore.WithCleanupInterval(0), smallMemtables)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTopic(ctx, corruptTopic, eventstore.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	// About 1 MiB of records, twice (log and stream index): several
	// memtables, each with its WAL, none flushed.
	rng := rand.New(rand.NewPCG(8, 8))
	exp := &expected{parts: make([][]eventstore.Record, 3), streams: map[string][]eventstore.Record{}}
	heads := map[string]uint64{}
	for range 1000 {
		key := fmt.Sprintf("s%02d", rng.IntN(12))
		ev := eventstore.Event{Type: "corrupt.test", Payload: bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, 1000)}
		res, err := s.Append(ctx, corruptTopic, key, eventstore.Exact(heads[key]), []eventstore.Event{ev}, eventstore.NoSync())
		if err != nil {
			t.Fatal(err)
		}
		heads[key] = res.LastVersion
		r := eventstore.Record{ID: res.EventIDs[0], Topic: corruptTopic, Partition: res.Partition, Offset: res.FirstOffset,
			Key: key, Version: res.FirstVersion, Type: ev.Type, Payload: ev.Payload}
		exp.parts[r.Partition] = append(exp.parts[r.Partition], r)
		exp.streams[key] = append(exp.streams[key], r)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// What a crash now leaves: every acknowledged append, in the WALs only.
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	close(hold.release)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	names, err := crashed.List("db")
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			logs = append(logs, crashed.PathJoin("db", n))
		}
	}
	slices.Sort(logs)
	if len(logs) < 3 {
		t.Fatalf("WALs %v: want at least 3 live ones for the test", logs)
	}
	oldest, err := crashed.UnsafeGetFileDataBuffer(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	oldest[len(oldest)/2] ^= 0x10

	var reports []eventstore.RecoveryReport
	s, err = eventstore.Open("db", eventstore.WithFS(crashed), eventstore.WithCleanupInterval(0),
		eventstore.WithRecoverCorruptWAL(func(r eventstore.RecoveryReport) { reports = append(reports, r) }))
	if err != nil {
		t.Fatalf("Open with recovery: %v", err)
	}
	defer s.Close()
	if len(reports) != 1 {
		t.Fatalf("%d reports, want 1", len(reports))
	}
	rep := reports[0]
	if rep.WAL != logs[0] || !slices.Equal(rep.LaterWALs, logs[1:]) {
		t.Errorf("report: damaged WAL %s, later %v; want %s, later %v", rep.WAL, rep.LaterWALs, logs[0], logs[1:])
	}
	checkRecovered(t, s, exp, rep, true)
}

// checkRecovered checks a recovered store against what was appended and
// what the report says was dropped. Strictly (one damaged spot): every
// record is there exactly or in a dropped range, nothing in a dropped range
// is there, each range ends at the partition's last append and each stream
// lost exactly the versions reported. Otherwise (more damage, perhaps in
// the dropped part, perhaps in tables): each partition holds exactly a
// prefix of what was appended, or a read fails with ErrCorrupt, and where
// a prefix is short the report says the loss starts there.
func checkRecovered(t *testing.T, s *eventstore.PebbleStore, exp *expected, rep eventstore.RecoveryReport, strict bool) {
	t.Helper()
	ctx := context.Background()
	dropped := map[int]eventstore.DroppedOffsets{}
	for _, d := range rep.Partitions {
		if d.Topic != corruptTopic && (strict || !strings.HasPrefix(d.Topic, "#")) {
			t.Errorf("report names topic %q", d.Topic)
		}
		dropped[d.Partition] = d
	}
	lost := 0
	for p, want := range exp.parts {
		var got []eventstore.Record
		var rerr error
		for rec, err := range s.ReadPartition(ctx, corruptTopic, p, 0) {
			if err != nil {
				rerr = err
				break
			}
			got = append(got, rec)
		}
		if rerr != nil {
			// Without strictness a read may find damage in a table, or the
			// topic may be gone with the damage: then the report names its
			// records, under "#ID" if its name was lost too.
			gone := errors.Is(rerr, eventstore.ErrTopicNotFound) && reportsTopicGone(rep)
			if strict || !(errors.Is(rerr, eventstore.ErrCorrupt) || gone) {
				t.Errorf("partition %d: %v", p, rerr)
			}
			continue
		}
		if len(got) > len(want) {
			t.Errorf("partition %d: %d records, %d appended", p, len(got), len(want))
			continue
		}
		for i, r := range got {
			if !sameRecordData(r, want[i]) {
				t.Errorf("partition %d: %d@%d is not what was appended (the survivors must be a prefix)", p, p, r.Offset)
				break
			}
		}
		d, ok := dropped[p]
		if len(got) == len(want) {
			if ok && d.From <= want[len(want)-1].Offset {
				t.Errorf("partition %d: report drops %d..%d, all %d records are there", p, d.From, d.To, len(want))
			}
			continue
		}
		lost += len(want) - len(got)
		first := want[len(got)].Offset
		switch {
		case !ok && (strict || rep.UnreadableBytes == 0):
			t.Errorf("partition %d: records from offset %d missing, not reported", p, first)
		case !ok:
			// Lost in the part of the logs that does not verify either,
			// which the report counts as unreadable.
		case d.From != first:
			t.Errorf("partition %d: records from offset %d missing, report says from %d", p, first, d.From)
		case strict && d.To != want[len(want)-1].Offset:
			t.Errorf("partition %d: reported dropped up to %d, the last append was at %d", p, d.To, want[len(want)-1].Offset)
		case d.To < d.From:
			t.Errorf("partition %d: reported range %d..%d", p, d.From, d.To)
		}
	}
	if strict && lost == 0 {
		t.Error("recovery dropped nothing, yet the damage was in the middle of the log")
	}
	if !strict {
		return
	}
	versions := map[string]eventstore.DroppedVersions{}
	for _, d := range rep.Streams {
		versions[d.Key] = d
	}
	for key, want := range exp.streams {
		head, err := s.HeadVersion(ctx, corruptTopic, key)
		if err != nil {
			t.Fatal(err)
		}
		last := want[len(want)-1].Version
		if d, ok := versions[key]; ok {
			if d.From != head+1 || d.To != last {
				t.Errorf("stream %s: reported versions %d..%d dropped; head is %d, last appended %d", key, d.From, d.To, head, last)
			}
		} else if head != last {
			t.Errorf("stream %s: head %d, last appended %d, and no versions reported dropped", key, head, last)
		}
		n := 0
		for rec, err := range s.ReadStream(ctx, corruptTopic, key, 0) {
			if err != nil {
				t.Fatalf("stream %s: %v", key, err)
			}
			if !sameRecordData(rec, want[n]) {
				t.Fatalf("stream %s: version %d is not what was appended", key, rec.Version)
			}
			n++
		}
		if uint64(n) != head {
			t.Errorf("stream %s: %d events, head %d", key, n, head)
		}
	}
}

// reportsTopicGone reports whether a recovery report says the test's topic
// was dropped, by name or (if its name was in the unreadable part) by ID.
func reportsTopicGone(rep eventstore.RecoveryReport) bool {
	if slices.Contains(rep.Topics, corruptTopic) {
		return true
	}
	for _, d := range rep.Partitions {
		if strings.HasPrefix(d.Topic, "#") {
			return true
		}
	}
	return false
}

// TestRepair runs Repair on an intact store, on one with a damaged WAL,
// and on one with a damaged table.
func TestRepair(t *testing.T) {
	t.Run("Intact", func(t *testing.T) {
		dir := t.TempDir()
		exp := writeCorruptStore(t, dir, rand.New(rand.NewPCG(5, 5)), 300, 100, 2)
		rep, err := eventstore.Repair(dir)
		if err != nil || !rep.Intact() {
			t.Fatalf("Repair of an intact store: %+v, %v", rep, err)
		}
		if rep.Records < int64(2*exp.records()) {
			t.Errorf("Repair verified %d records, want at least %d (log and stream index)", rep.Records, 2*exp.records())
		}
	})
	t.Run("WAL", func(t *testing.T) {
		dir := t.TempDir()
		exp := writeCorruptStore(t, dir, rand.New(rand.NewPCG(6, 6)), 600, -1, 2)
		logs := files(t, dir, ".log")
		wal := logs[len(logs)-1]
		flip(t, wal, fileSize(t, wal)/3, 0x01)
		rep, err := eventstore.Repair(dir)
		if err != nil || rep.Intact() {
			t.Fatalf("Repair of a damaged WAL: %+v, %v", rep, err)
		}
		s, err := openWithin(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkRecovered(t, s, exp, *rep.WAL, true)
		again, err := eventstore.Repair(dir)
		if err == nil {
			// Locked: the store is open. Repair refuses.
			t.Fatalf("Repair of an open store: %+v", again)
		}
		if !errors.Is(err, eventstore.ErrLocked) {
			t.Errorf("Repair of an open store: %v, want ErrLocked", err)
		}
	})
	t.Run("Table", func(t *testing.T) {
		dir := t.TempDir()
		writeCorruptStore(t, dir, rand.New(rand.NewPCG(7, 7)), 600, 600, 2)
		ssts := files(t, dir, ".sst")
		sst := ssts[len(ssts)-1]
		flip(t, sst, fileSize(t, sst)/4, 0x80)
		_, err := eventstore.Repair(dir)
		if !errors.Is(err, eventstore.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(sst)) {
			t.Fatalf("Repair of a damaged table: %v, want ErrCorrupt naming %s", err, sst)
		}
	})
	t.Run("NoStore", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "missing")
		if _, err := eventstore.Repair(dir); err == nil {
			t.Fatal("Repair of a missing directory succeeded")
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Repair created %s", dir)
		}
		empty := t.TempDir()
		if _, err := eventstore.Repair(empty); err == nil {
			t.Fatal("Repair of an empty directory succeeded")
		}
	})
}

// corruptSeedEnv sets the seed of TestCorruptionRandomized.
const corruptSeedEnv = "MUNINN_CORRUPT_SEED"

// TestCorruptionRandomized is the proof: in each trial it writes a store
// (some appends flushed to tables, some only in the WAL), closes it, flips
// bytes at random places in several of its tables, WALs and manifest, and
// opens it again. Open must return (never exit, never hang); if it
// succeeds, every read must yield exactly the bytes appended or an error
// matching ErrCorrupt, and no acknowledged record may be missing without
// an error. If it refuses, the error must match ErrCorrupt, and when the
// damage is in a WAL, recovery must report exactly what it dropped. Set
// MUNINN_CORRUPT_SEED to replay or explore other trials, and
// MUNINN_CORRUPT_TRIALS for more of them.
func TestCorruptionRandomized(t *testing.T) {
	seed := uint64(20260101)
	if v := os.Getenv(corruptSeedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", corruptSeedEnv, v, err)
		}
	}
	trials := 48
	if v := os.Getenv("MUNINN_CORRUPT_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("MUNINN_CORRUPT_TRIALS=%q: want a positive number", v)
		}
		trials = n
	}
	t.Logf("seed %d (%s=%d replays these trials)", seed, corruptSeedEnv, seed)
	var mu sync.Mutex
	outcomes := map[string]int{}
	count := func(k string) {
		mu.Lock()
		outcomes[k]++
		mu.Unlock()
	}
	t.Cleanup(func() { t.Logf("outcomes of %d trials: %v", trials, outcomes) })
	for i := range trials {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			defer func() {
				if t.Failed() {
					t.Logf("replay with %s=%d -run 'TestCorruptionRandomized/^%d$'", corruptSeedEnv, seed, i)
				}
			}()
			count(corruptionTrial(t, rng))
		})
	}
}

var smallBlocks = eventstore.WithPebbleOptions(func(o *pebble.Options) {
	for i := range o.Levels {
		o.Levels[i].BlockSize = 2 << 10
	}
})

// corruptionTrial runs one trial and names its outcome.
func corruptionTrial(t *testing.T, rng *rand.Rand) string {
	dir := t.TempDir()
	n := 100 + rng.IntN(160)
	// Small table blocks: every read of a damaged block costs Pebble a
	// search for a flipped bit that is quadratic in the block's size.
	exp := writeCorruptStore(t, dir, rng, n, n/4+rng.IntN(n/2), 10, smallBlocks)
	var targets []string
	targets = append(targets, files(t, dir, ".sst")...)
	logs := files(t, dir, ".log")
	targets = append(targets, logs...)
	manifests := files(t, dir, "")
	for _, m := range manifests {
		if strings.HasPrefix(filepath.Base(m), "MANIFEST-") {
			targets = append(targets, m)
		}
	}
	// Two or three files (tables, logs, the manifest), one to three bytes
	// in each.
	var hit []string
	rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	for _, f := range targets[:min(len(targets), 2+rng.IntN(2))] {
		hit = append(hit, filepath.Base(f))
		size := fileSize(t, f)
		if size == 0 {
			continue
		}
		for range 1 + rng.IntN(3) {
			flip(t, f, rng.Int64N(size), byte(1+rng.IntN(255)))
		}
	}
	t.Logf("flipped bytes in %v", hit)
	s, err := openWithin(t, dir)
	if err != nil {
		if !errors.Is(err, eventstore.ErrCorrupt) {
			t.Fatalf("Open: %v; want an error matching ErrCorrupt", err)
		}
		t.Logf("Open: %v", err)
		var ce *eventstore.CorruptFileError
		if errors.As(err, &ce) && strings.HasSuffix(ce.Path, ".log") {
			return recoveryTrial(t, dir, exp)
		}
		return "open refused: " + fileKind(err)
	}
	corrupt := checkReads(t, s, exp, true)
	herr := s.Health(context.Background())
	if corrupt > 0 && !errors.Is(herr, eventstore.ErrCorrupt) {
		t.Errorf("reads found damage, Health = %v", herr)
	}
	var cerr error
	withinWatchdog(t, "Close", func() { cerr = s.Close() })
	if cerr != nil && !errors.Is(cerr, eventstore.ErrCorrupt) {
		t.Errorf("Close: %v; want nil or an error matching ErrCorrupt", cerr)
	}
	if corrupt > 0 {
		return "reads failed"
	}
	return "intact"
}

// fileKind names the kind of file an error names.
func fileKind(err error) string {
	var ce *eventstore.CorruptFileError
	if !errors.As(err, &ce) {
		return "no file"
	}
	switch base := filepath.Base(ce.Path); {
	case strings.HasSuffix(base, ".sst"):
		return "table"
	case strings.HasSuffix(base, ".log"):
		return "WAL"
	case strings.HasPrefix(base, "MANIFEST"):
		return "manifest"
	default:
		return "other"
	}
}

// recoveryTrial opens a store that Open refused for a damaged WAL with
// recovery, and checks the report.
func recoveryTrial(t *testing.T, dir string, exp *expected) string {
	var rep *eventstore.RecoveryReport
	s, err := openWithin(t, dir, eventstore.WithRecoverCorruptWAL(func(r eventstore.RecoveryReport) { rep = &r }))
	if err != nil {
		if !errors.Is(err, eventstore.ErrCorrupt) {
			t.Fatalf("Open with recovery: %v; want an error matching ErrCorrupt", err)
		}
		t.Logf("Open with recovery: %v", err)
		return "WAL refused, recovery refused: " + fileKind(err)
	}
	defer s.Close()
	if rep == nil {
		t.Fatal("Open with recovery succeeded without a report")
	}
	checkRecovered(t, s, exp, *rep, false)
	if s.Health(context.Background()) != nil {
		return "WAL recovered, tables damaged"
	}
	return "WAL recovered"
}

// signalHandler is a slog handler that signals the first record whose
// message contains a string.
type signalHandler struct {
	want string
	once *sync.Once
	ch   chan string
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.want) {
		var attrs strings.Builder
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&attrs, " %s", a); return true })
		h.once.Do(func() { h.ch <- r.Message + attrs.String() })
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

// TestBackgroundCorruption damages a table that Open does not read but a
// compaction, started at Open, does: the store logs the damage, Health
// and Close report it naming the table, and writes are refused.
func TestBackgroundCorruption(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	noCompactions := eventstore.WithPebbleOptions(func(o *pebble.Options) {
		o.L0CompactionThreshold, o.L0CompactionFileThreshold, o.L0StopWritesThreshold = 1000, 1000, 2000
		for i := range o.Levels {
			o.Levels[i].BlockSize = 2 << 10
		}
	})
	s, err := eventstore.Open(dir, noCompactions, eventstore.WithCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTopic(ctx, corruptTopic, eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("p"), 200)
	for i := range 6 {
		for j := range 50 {
			if _, err := s.Append(ctx, corruptTopic, fmt.Sprintf("k%d-%d", i, j), eventstore.NoStream, []eventstore.Event{{Type: "e", Payload: payload}}, eventstore.NoSync()); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ssts := files(t, dir, ".sst")
	if len(ssts) < 4 {
		t.Fatalf("%d tables, want at least 4 in L0", len(ssts))
	}
	// The middle of the first table is a block of records: Open reads
	// counters and topics only, so it is the compaction that finds it.
	sst := ssts[0]
	flip(t, sst, fileSize(t, sst)/2, 0x04)

	found := make(chan string, 1)
	log := slog.New(signalHandler{want: "damaged data found", once: new(sync.Once), ch: found})
	s, err = openWithin(t, dir, eventstore.WithLogger(log))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	var msg string
	select {
	case msg = <-found:
	case <-time.After(watchdog):
		t.Fatal("no compaction reported the damaged table")
	}
	if !strings.Contains(msg, filepath.Base(sst)) {
		t.Errorf("log record %q does not name %s", msg, sst)
	}
	var ce *eventstore.CorruptFileError
	if err := s.Health(ctx); !errors.As(err, &ce) || ce.Path != sst {
		t.Errorf("Health = %v, want a *CorruptFileError naming %s", err, sst)
	}
	if _, err := s.Append(ctx, corruptTopic, "after", eventstore.Any, []eventstore.Event{{Type: "e", Payload: payload}}); !errors.Is(err, eventstore.ErrCorrupt) {
		t.Errorf("Append = %v, want a refusal matching ErrCorrupt", err)
	}
	if _, err := s.Cleanup(ctx); !errors.Is(err, eventstore.ErrCorrupt) {
		t.Errorf("Cleanup = %v, want a refusal matching ErrCorrupt", err)
	}
	// Reads of what is intact go on.
	if _, err := s.DescribeTopic(ctx, corruptTopic); err != nil {
		t.Errorf("DescribeTopic: %v", err)
	}
	if err := s.Close(); !errors.Is(err, eventstore.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(sst)) {
		t.Errorf("Close = %v, want the damage reported", err)
	}
}
