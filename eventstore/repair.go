package eventstore

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/batchrepr"
)

// RecoveryReport says what Open dropped to open a store whose write-ahead
// log is damaged (see WithRecoverCorruptWAL and Repair): everything logged
// from the damaged record on, in that log and in every newer one. It
// compares what the dropped part of the logs held with what survived, so
// that the offsets and versions it names are exactly those that are gone:
// a partition's end and a stream's head went back to From.
type RecoveryReport struct {
	// WAL is the damaged log and Offset the byte of its first chunk that
	// does not verify; Reason says what failed ("chunk checksum mismatch").
	WAL    string
	Offset int64
	Reason string
	// Cut is where the replay stopped: the start of the record holding the
	// damage. The log's bytes from Cut on were dropped, and so were the
	// newer logs in LaterWALs.
	Cut       int64
	LaterWALs []string
	// DroppedBytes counts the bytes dropped in all logs; UnreadableBytes
	// those that did not verify (the damaged record among them), whose
	// contents are unknown. Backup is the directory holding copies of the
	// logs as they were.
	DroppedBytes, UnreadableBytes int64
	Backup                        string
	// Partitions lists, per partition, the offsets dropped; Streams, per
	// stream, the versions dropped. Both are sorted.
	Partitions []DroppedOffsets
	Streams    []DroppedVersions
	// Topics are topics whose creation was dropped: they no longer exist.
	Topics []string
	// GroupCommits are consumer-group offset commits dropped; the groups
	// resume from their earlier commits.
	GroupCommits []DroppedCommit
	// StateWrites counts dropped writes to the state space (Update,
	// WithState); OtherWrites counts the store's own dropped writes
	// (deletions by cleanup, topic changes, counters).
	StateWrites, OtherWrites int
}

// DroppedOffsets is a range of offsets of one partition that recovery
// dropped: [From, To]. Records is how many of them the readable part of
// the logs held (the others were in the damaged part, or never existed:
// offsets have gaps after cleanup).
type DroppedOffsets struct {
	Topic     string
	Partition int
	From, To  int64
	Records   int
}

// DroppedVersions is a range of versions of one stream that recovery
// dropped: [From, To]. Events is how many of them the readable part of the
// logs held.
type DroppedVersions struct {
	Topic    string
	Key      string
	From, To uint64
	Events   int
}

// DroppedCommit is a consumer group's offset commit that recovery dropped.
type DroppedCommit struct {
	Group     string
	Topic     string
	Partition int
	Offset    int64
}

// WithRecoverCorruptWAL makes Open recover a store whose write-ahead log is
// damaged before its end, which Open otherwise refuses with a
// *CorruptFileError (errors.Is ErrCorrupt) naming the log and byte. The
// store opens as it was just before the damaged record: everything logged
// from there on, in that log and every newer one, is dropped, and report is
// called, before Open returns, with exactly what was: partitions and
// offsets, streams and versions, topics, group commits. The logs are first
// copied into a directory named recovered-wal-<time> inside the store's
// directory. Without damage, report is not called.
//
// Dropping acknowledged writes is a decision for a person: prefer Repair
// (the muninn repair command), which also verifies every table.
func WithRecoverCorruptWAL(report func(RecoveryReport)) Option {
	return func(o *options) {
		if report == nil {
			report = func(RecoveryReport) {}
		}
		o.recoverWAL = report
	}
}

// tailContent is what the dropped part of the logs held, decoded.
type tailContent struct {
	reason   string
	readable int64
	logs     map[tpID]*DroppedOffsets
	ends     map[tpID]int64 // next offsets of dropped counter checkpoints
	streams  map[streamID]*DroppedVersions
	topics   map[uint32]topicMeta
	groups   map[groupID]int64
	state    int
	other    int
}

type tpID struct {
	topic     uint32
	partition int
}

type streamID struct {
	topic uint32
	key   string
}

type groupID struct {
	group string
	tp    tpID
}

// addBatch decodes one dropped Pebble batch.
func (c *tailContent) addBatch(repr []byte) {
	if c.logs == nil {
		c.logs = map[tpID]*DroppedOffsets{}
		c.ends = map[tpID]int64{}
		c.streams = map[streamID]*DroppedVersions{}
		c.topics = map[uint32]topicMeta{}
		c.groups = map[groupID]int64{}
	}
	r := batchrepr.Read(repr)
	for {
		kind, k, v, ok, err := r.Next()
		if err != nil || !ok {
			return
		}
		if kind != pebble.InternalKeyKindSet || len(k) == 0 {
			if kind != pebble.InternalKeyKindLogData {
				c.other++
			}
			continue
		}
		switch k[0] {
		case kindLog:
			if len(k) != 17 {
				c.other++
				continue
			}
			id := tpID{binary.BigEndian.Uint32(k[1:]), int(binary.BigEndian.Uint32(k[5:]))}
			off := int64(binary.BigEndian.Uint64(k[9:]))
			d := c.logs[id]
			if d == nil {
				d = &DroppedOffsets{Partition: id.partition, From: off, To: off}
				c.logs[id] = d
			}
			d.From, d.To = min(d.From, off), max(d.To, off)
			d.Records++
		case kindStream:
			n := splitKey(k)
			if n == len(k) {
				c.other++
				continue
			}
			id := streamID{binary.BigEndian.Uint32(k[1:]), streamKeyOf(k[:n])}
			ver := binary.BigEndian.Uint64(k[n:])
			d := c.streams[id]
			if d == nil {
				d = &DroppedVersions{Key: id.key, From: ver, To: ver}
				c.streams[id] = d
			}
			d.From, d.To = min(d.From, ver), max(d.To, ver)
			d.Events++
		case kindPartition:
			// A checkpoint of the partition's counters: its next offset
			// bounds the dropped ones, even those in unreadable bytes.
			if len(k) != 9 || len(v) != partMetaLen {
				c.other++
				continue
			}
			id := tpID{binary.BigEndian.Uint32(k[1:]), int(binary.BigEndian.Uint32(k[5:]))}
			c.ends[id] = max(c.ends[id], int64(binary.BigEndian.Uint64(v)))
		case kindTopic:
			var m topicMeta
			if json.Unmarshal(v, &m) == nil {
				c.topics[m.ID] = m
			}
		case kindGroup:
			n, w := binary.Uvarint(k[1:])
			rest := k[1:]
			if w <= 0 || uint64(len(rest)-w) != n+8 || len(v) != 8 {
				c.other++
				continue
			}
			g := string(rest[w : w+int(n)])
			t := rest[w+int(n):]
			c.groups[groupID{g, tpID{binary.BigEndian.Uint32(t), int(binary.BigEndian.Uint32(t[4:]))}}] = int64(binary.BigEndian.Uint64(v))
		case kindState:
			c.state++
		default:
			c.other++
		}
	}
}

// streamKeyOf returns the stream (aggregate) key of a stream prefix.
func streamKeyOf(prefix []byte) string {
	_, w := binary.Uvarint(prefix[5:])
	return string(prefix[5+w:])
}

// recoveryReport compares what a recovery dropped with what survived.
func (s *PebbleStore) recoveryReport(g *openGuard) (RecoveryReport, error) {
	rec := g.mu.rec
	rep := RecoveryReport{
		WAL: rec.wal, Offset: rec.scan.Bad, Reason: rec.tail.reason, Cut: rec.scan.Cut,
		LaterWALs: rec.later, DroppedBytes: rec.dropped, Backup: g.mu.backup,
		StateWrites: rec.tail.state, OtherWrites: rec.tail.other,
	}
	rep.UnreadableBytes = max(rep.DroppedBytes-rec.tail.readable, 0)
	byID := s.topicsByID()
	name := func(id uint32) string {
		if t := byID[id]; t != nil {
			return t.meta.Name
		}
		if m, ok := rec.tail.topics[id]; ok {
			return m.Name
		}
		return fmt.Sprintf("#%d", id) // a topic deleted since
	}
	for id, m := range rec.tail.topics {
		if byID[id] == nil {
			rep.Topics = append(rep.Topics, m.Name)
		}
	}
	slices.Sort(rep.Topics)
	for id, next := range rec.tail.ends {
		// Offsets below a dropped checkpoint's next offset were logged
		// before it: the range reaches at least that far.
		if d := rec.tail.logs[id]; d != nil {
			d.To = max(d.To, next-1)
		} else if t := byID[id.topic]; t == nil || id.partition >= len(t.parts) || next > t.parts[id.partition].end.Load() {
			rec.tail.logs[id] = &DroppedOffsets{Partition: id.partition, From: next - 1, To: next - 1}
		}
	}
	for id, d := range rec.tail.logs {
		d.Topic = name(id.topic)
		if t := byID[id.topic]; t != nil && id.partition < len(t.parts) {
			// Every offset from the surviving end on is gone, the damaged
			// record's among them.
			end := t.parts[id.partition].end.Load()
			if d.To < end {
				continue // survived after all (cannot happen: the tail is newest)
			}
			d.From = end
		}
		rep.Partitions = append(rep.Partitions, *d)
	}
	slices.SortFunc(rep.Partitions, func(a, b DroppedOffsets) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	for id, d := range rec.tail.streams {
		d.Topic = name(id.topic)
		if t := byID[id.topic]; t != nil {
			head, err := s.streamHead(t, id.key, -1)
			if err != nil {
				return rep, err
			}
			if d.To <= head {
				continue
			}
			d.From = head + 1
		}
		rep.Streams = append(rep.Streams, *d)
	}
	slices.SortFunc(rep.Streams, func(a, b DroppedVersions) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Key, b.Key))
	})
	for id, off := range rec.tail.groups {
		rep.GroupCommits = append(rep.GroupCommits, DroppedCommit{Group: id.group, Topic: name(id.tp.topic), Partition: id.tp.partition, Offset: off})
	}
	slices.SortFunc(rep.GroupCommits, func(a, b DroppedCommit) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return rep, nil
}

// RepairReport is what Repair did and found.
type RepairReport struct {
	// Dir is the store's directory.
	Dir string
	// WAL is what recovery dropped from a damaged write-ahead log, nil if
	// the logs were intact.
	WAL *RecoveryReport
	// Keys is how many keys Repair read back, Records how many of them were
	// log or stream records whose checksums it verified.
	Keys, Records int64
}

// Intact reports whether Repair dropped nothing.
func (r RepairReport) Intact() bool { return r.WAL == nil }

// Repair opens the store in dir, which must exist, recovering a damaged
// write-ahead log as WithRecoverCorruptWAL does, then reads back every key
// of every table (checking every block and record checksum) and closes it.
// The report says what recovery dropped, nil WAL if nothing. Damage that
// cannot be dropped (in a table, in the manifest) is an error matching
// ErrCorrupt, naming the file: restore such a store from a backup. A store
// open elsewhere is refused with ErrLocked. Options are those of Open.
func Repair(dir string, opts ...Option) (RepairReport, error) {
	rep := RepairReport{Dir: dir}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return rep, fmt.Errorf("eventstore: repair %s: %w", dir, err)
	}
	opts = append(opts, WithRecoverCorruptWAL(func(r RecoveryReport) { rep.WAL = &r }), WithCleanupInterval(0),
		withPebbleOptions(func(o *pebble.Options) { o.ErrorIfNotExists = true }))
	s, err := Open(dir, opts...)
	if err != nil {
		return rep, fmt.Errorf("eventstore: repair: %w", err)
	}
	err = s.verify(&rep)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rep, fmt.Errorf("eventstore: repair %s: %w", dir, err)
	}
	return rep, nil
}

// verify reads every key and checks every record.
func (s *PebbleStore) verify(rep *RepairReport) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	if err := s.db.CheckLevels(nil); err != nil {
		if ce := s.engineErr(err); errors.Is(ce, ErrCorrupt) {
			return ce
		}
		return fmt.Errorf("%w: check of the tables: %v", ErrCorrupt, err)
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		return s.engineErr(err)
	}
	defer it.Close()
	byID := s.topicsByID()
	var errs []error
	for it.First(); it.Valid() && len(errs) < maxProblems; it.Next() {
		rep.Keys++
		k := it.Key()
		if len(k) == 0 || (k[0] != kindLog && k[0] != kindStream) {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			errs = append(errs, s.engineErr(err))
			continue
		}
		rep.Records++
		var rec Record
		if reason := decodeRecord(cloneValue(v), &rec); reason != "" {
			t, p, off := "?", -1, int64(-1)
			if len(k) >= 9 {
				if tt := byID[binary.BigEndian.Uint32(k[1:])]; tt != nil {
					t = tt.meta.Name
				}
			}
			if k[0] == kindLog && len(k) == 17 {
				p, off = int(binary.BigEndian.Uint32(k[5:])), int64(binary.BigEndian.Uint64(k[9:]))
			} else if n := splitKey(k); n < len(k) {
				reason = fmt.Sprintf("stream %q version %d: %s", streamKeyOf(k[:n]), binary.BigEndian.Uint64(k[n:]), reason)
			}
			errs = append(errs, s.recordCorrupt(&CorruptRecordError{Topic: t, Partition: p, Offset: off, Reason: reason}))
		}
	}
	if err := it.Error(); err != nil {
		errs = append(errs, s.engineErr(err))
	}
	return errors.Join(errs...)
}
