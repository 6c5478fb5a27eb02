package eventstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/crashtest"
)

// The crash test proves "an acknowledged append survives kill -9". A child
// process (this test binary, re-executed by crashtest to run only
// TestCrashChild) appends durably from several goroutines and acknowledges
// each append after Append has returned. The parent kills it with SIGKILL
// at a random moment, reopens the store and checks that every acknowledged
// append is present and intact, that no append is visible in part, and that
// offsets, versions and heads are consistent. Every round appends to the
// same directory, partly to streams that earlier rounds wrote, so recovery
// of offsets and stream heads is exercised as well.

const (
	crashTopic      = "crash"
	crashPartitions = 4
	crashWriters    = 8
	crashEventType  = "crash.appended"
)

// TestCrashChild is the child of TestCrashSafety. It does nothing unless
// started by it; then it appends until it is killed and never returns.
func TestCrashChild(t *testing.T) {
	if !crashtest.IsChild(t) {
		return
	}
	dir, round, seed := crashtest.Arg("dir"), crashtest.IntArg("round"), crashtest.Uint64Arg("seed")
	ctx := context.Background()
	s, err := eventstore.Open(dir)
	if err != nil {
		crashtest.Fail("open: %v", err)
	}
	err = s.CreateTopic(ctx, crashTopic, eventstore.TopicConfig{Partitions: crashPartitions})
	if err != nil && !errors.Is(err, eventstore.ErrTopicExists) {
		crashtest.Fail("create topic: %v", err)
	}
	for g := range crashWriters {
		go crashWriter(ctx, s, round, g, rand.New(rand.NewPCG(seed, uint64(round)<<8|uint64(g))))
	}
	select {}
}

// crashWriter appends batches of 1-5 events to streams of its own: some that
// every round writes ("g3-k1"), whose heads it learns from the store, and
// some new to this round ("r2-g3-k1").
func crashWriter(ctx context.Context, s *eventstore.PebbleStore, round, g int, rng *rand.Rand) {
	var keys []string
	for k := range 6 {
		keys = append(keys, fmt.Sprintf("g%d-k%d", g, k))
	}
	for k := range 4 {
		keys = append(keys, fmt.Sprintf("r%d-g%d-k%d", round, g, k))
	}
	heads := map[string]uint64{}
	for n := 0; ; n++ {
		key := keys[rng.IntN(len(keys))]
		head, ok := heads[key]
		if !ok {
			var err error
			if head, err = s.HeadVersion(ctx, crashTopic, key); err != nil {
				crashtest.Fail("head of %s: %v", key, err)
			}
		}
		batch := fmt.Sprintf("r%d-g%d-b%d", round, g, n)
		size := 1 + rng.IntN(5)
		events := make([]eventstore.Event, size)
		for i := range events {
			filler := 1 + rng.IntN(200)
			if rng.IntN(25) == 0 {
				filler = 4<<10 + rng.IntN(12<<10) // now and then cross WAL blocks
			}
			events[i] = eventstore.Event{
				Type:    crashEventType,
				Payload: crashPayload(rng, batch, key, head+1+uint64(i), i, size, filler),
				Headers: map[string]string{"batch": batch},
			}
		}
		res, err := s.Append(ctx, crashTopic, key, eventstore.Exact(head), events)
		if err != nil {
			crashtest.Fail("append %s to %s at %d: %v", batch, key, head, err)
		}
		if res.FirstVersion != head+1 || res.LastVersion != head+uint64(size) ||
			res.LastOffset-res.FirstOffset != int64(size-1) {
			crashtest.Fail("append %s to %s at %d: unexpected result %+v", batch, key, head, res)
		}
		heads[key] = res.LastVersion
		// An acknowledgement exists only for an append that has returned.
		crashtest.Ack("%s %d %d %s %d %d", key, res.FirstVersion, res.LastVersion, batch, res.Partition, res.FirstOffset)
	}
}

// crashPayload returns "batch|key|version|index|size|filler|sha256" where the
// hash covers everything before it.
func crashPayload(rng *rand.Rand, batch, key string, version uint64, index, size, filler int) []byte {
	raw := make([]byte, filler/2+1)
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	p := fmt.Appendf(nil, "%s|%s|%d|%d|%d|%x|", batch, key, version, index, size, raw)
	sum := sha256.Sum256(p)
	return hex.AppendEncode(p, sum[:])
}

// crashEvent is a decoded payload.
type crashEvent struct {
	batch, key    string
	version       uint64
	index, size   int
	offset        int64
	partition     int
	id            string
	correlationID string
}

func decodeCrashPayload(p []byte) (crashEvent, error) {
	i := bytes.LastIndexByte(p, '|')
	if i < 0 {
		return crashEvent{}, errors.New("no hash")
	}
	sum := sha256.Sum256(p[:i+1])
	if hex.EncodeToString(sum[:]) != string(p[i+1:]) {
		return crashEvent{}, errors.New("hash mismatch")
	}
	f := strings.Split(string(p[:i]), "|")
	if len(f) != 6 {
		return crashEvent{}, fmt.Errorf("%d fields", len(f))
	}
	var e crashEvent
	var err1, err2, err3 error
	e.batch, e.key = f[0], f[1]
	e.version, err1 = strconv.ParseUint(f[2], 10, 64)
	e.index, err2 = strconv.Atoi(f[3])
	e.size, err3 = strconv.Atoi(f[4])
	if err := errors.Join(err1, err2, err3); err != nil {
		return crashEvent{}, err
	}
	if e.size < 1 || e.index < 0 || e.index >= e.size {
		return crashEvent{}, fmt.Errorf("index %d of size %d", e.index, e.size)
	}
	return e, nil
}

// crashAck is one acknowledged append, as the child reported it.
type crashAck struct {
	key                       string
	firstVersion, lastVersion uint64
	batch                     string
	partition                 int
	firstOffset               int64
	round                     int
}

func parseCrashAck(line string) (crashAck, error) {
	var a crashAck
	_, err := fmt.Sscanf(line, "%s %d %d %s %d %d", &a.key, &a.firstVersion, &a.lastVersion, &a.batch, &a.partition, &a.firstOffset)
	return a, err
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process repeatedly; skipped with -short")
	}
	const rounds = 12
	seed := crashtest.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()

	acked := map[string]crashAck{} // by batch ID
	totalAcks := 0
	for round := 1; round <= rounds; round++ {
		delay := time.Duration(20+rng.IntN(380)) * time.Millisecond
		acks := runCrashRound(t, dir, round, seed, delay)
		for _, a := range acks {
			if _, dup := acked[a.batch]; dup {
				t.Fatalf("round %d: batch %s acknowledged twice", round, a.batch)
			}
			acked[a.batch] = a
		}
		totalAcks += len(acks)
		st := verifyCrashStore(t, dir, acked)
		t.Logf("round %2d: killed %v after the first ack; %4d acks this round; store holds %5d events in %4d batches, %d of them never acknowledged (in flight at a kill)",
			round, delay, len(acks), st.events, st.batches, st.unacked)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d acknowledged appends over %d kills, all intact", totalAcks, rounds)
}

// runCrashRound runs the child on dir, kills it delay after its first
// acknowledged append, and returns every append it acknowledged.
func runCrashRound(t *testing.T, dir string, round int, seed uint64, delay time.Duration) []crashAck {
	t.Helper()
	var acks []crashAck
	crashtest.Round{
		Child: crashtest.Child{
			Test: "TestCrashChild",
			Args: map[string]string{"dir": dir, "round": strconv.Itoa(round), "seed": strconv.FormatUint(seed, 10)},
			OnAck: func(line string) error {
				a, err := parseCrashAck(line)
				if err != nil {
					return fmt.Errorf("round %d: malformed: %w", round, err)
				}
				a.round = round
				acks = append(acks, a)
				return nil
			},
		},
		Arm:       1,
		KillAfter: delay,
	}.Run(t)
	return acks
}

type crashStats struct {
	events, batches, unacked int
}

// verifyCrashStore opens the store in dir and checks it against every
// acknowledged append, then closes it.
func verifyCrashStore(t *testing.T, dir string, acked map[string]crashAck) crashStats {
	t.Helper()
	ctx := context.Background()
	s, err := eventstore.Open(dir)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()

	problems := 0
	problem := func(format string, args ...any) {
		t.Helper()
		if problems++; problems <= 25 {
			t.Errorf(format, args...)
		}
	}
	defer func() {
		if problems > 25 {
			t.Errorf("... and %d more problems", problems-25)
		}
	}()

	info, err := s.DescribeTopic(ctx, crashTopic)
	if err != nil {
		t.Fatalf("describe topic: %v", err)
	}
	if len(info.Partitions) != crashPartitions {
		t.Fatalf("topic has %d partitions, want %d", len(info.Partitions), crashPartitions)
	}

	// Scan every partition: offsets dense and increasing, each record where
	// its key and its payload say it belongs.
	batches := map[string][]crashEvent{}
	streams := map[string][]crashEvent{} // in offset order
	events := 0
	for p, pi := range info.Partitions {
		if pi.StartOffset != 0 {
			problem("partition %d: start offset %d, want 0 (nothing is cleaned up)", p, pi.StartOffset)
		}
		next := int64(0)
		var size int64
		for rec, err := range s.ReadPartition(ctx, crashTopic, p, 0) {
			if err != nil {
				t.Fatalf("read partition %d at offset %d: %v", p, next, err)
			}
			if rec.Offset != next {
				problem("partition %d: offset %d follows %d", p, rec.Offset, next-1)
			}
			next = rec.Offset + 1
			events++
			size++
			if rec.Partition != p || eventstore.PartitionFor(rec.Key, crashPartitions) != p {
				problem("partition %d@%d: record of key %q claims partition %d", p, rec.Offset, rec.Key, rec.Partition)
			}
			e, err := decodeCrashPayload(rec.Payload)
			if err != nil {
				problem("partition %d@%d: payload of %q v%d does not verify: %v", p, rec.Offset, rec.Key, rec.Version, err)
				continue
			}
			if rec.Type != crashEventType || e.key != rec.Key || e.version != rec.Version || rec.Headers["batch"] != e.batch {
				problem("partition %d@%d: record %q v%d type %q header %q holds payload of batch %s for %q v%d",
					p, rec.Offset, rec.Key, rec.Version, rec.Type, rec.Headers["batch"], e.batch, e.key, e.version)
			}
			e.offset, e.partition, e.id, e.correlationID = rec.Offset, p, rec.ID.String(), rec.CorrelationID
			batches[e.batch] = append(batches[e.batch], e)
			streams[rec.Key] = append(streams[rec.Key], e)
		}
		if next != pi.EndOffset || size != pi.Records {
			problem("partition %d: read offsets up to %d and %d records; DescribeTopic says end %d, %d records",
				p, next, size, pi.EndOffset, pi.Records)
		}
	}

	// No batch visible in part: all its events, in order, at consecutive
	// offsets and versions of one stream.
	for id, evs := range batches {
		size := evs[0].size
		if len(evs) != size {
			problem("batch %s of key %q: %d of its %d events are in the store", id, evs[0].key, len(evs), size)
			continue
		}
		for i, e := range evs {
			if e.index != i || e.size != size || e.key != evs[0].key ||
				e.version != evs[0].version+uint64(i) || e.offset != evs[0].offset+int64(i) {
				problem("batch %s: event %d is index %d/%d of %q v%d @%d; the batch starts with %q v%d @%d",
					id, i, e.index, e.size, e.key, e.version, e.offset, evs[0].key, evs[0].version, evs[0].offset)
			}
			if e.correlationID != evs[0].id {
				problem("batch %s: event %d has correlation ID %s, want the first event's ID %s", id, i, e.correlationID, evs[0].id)
			}
		}
	}

	// Streams: versions 1..head without a gap, the stream index agrees with
	// the partition, and HeadVersion is the newest version.
	for key, evs := range streams {
		for i, e := range evs {
			if e.version != uint64(i+1) {
				problem("stream %q: version %d at position %d (offset %d)", key, e.version, i+1, e.offset)
				break
			}
		}
		i := 0
		for rec, err := range s.ReadStream(ctx, crashTopic, key, 0) {
			if err != nil {
				t.Fatalf("read stream %q: %v", key, err)
			}
			if i >= len(evs) || rec.ID.String() != evs[i].id || rec.Offset != evs[i].offset || rec.Version != evs[i].version {
				problem("stream %q: ReadStream yields v%d @%d (%s) at position %d, the partition disagrees", key, rec.Version, rec.Offset, rec.ID, i+1)
				break
			}
			i++
		}
		if i != len(evs) {
			problem("stream %q: ReadStream yields %d events, the partition holds %d", key, i, len(evs))
		}
		head, err := s.HeadVersion(ctx, crashTopic, key)
		if err != nil {
			t.Fatalf("head of %q: %v", key, err)
		}
		if want := evs[len(evs)-1].version; head != want {
			problem("stream %q: HeadVersion %d, newest event is v%d", key, head, want)
		}
	}

	// Every acknowledged append is there, where the child was told it went.
	lost := 0
	for _, id := range slices.Sorted(maps.Keys(acked)) {
		a := acked[id]
		evs, ok := batches[id]
		if !ok {
			lost++
			problem("LOST: acknowledged append %s (round %d) to %q v%d..v%d @%d/%d is not in the store",
				id, a.round, a.key, a.firstVersion, a.lastVersion, a.partition, a.firstOffset)
			continue
		}
		if evs[0].key != a.key || evs[0].version != a.firstVersion || evs[0].version+uint64(len(evs)-1) != a.lastVersion ||
			evs[0].partition != a.partition || evs[0].offset != a.firstOffset {
			problem("append %s was acknowledged as %q v%d..v%d @%d/%d; the store has %q v%d..v%d @%d/%d",
				id, a.key, a.firstVersion, a.lastVersion, a.partition, a.firstOffset,
				evs[0].key, evs[0].version, evs[0].version+uint64(len(evs)-1), evs[0].partition, evs[0].offset)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged appends lost", lost, len(acked))
	}
	return crashStats{events: events, batches: len(batches), unacked: len(batches) - (len(acked) - lost)}
}
