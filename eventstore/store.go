package eventstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// storeFormat is the on-disk format version this code reads and writes.
const storeFormat = 1

// PebbleStore is the Store on Pebble: a durable, partitioned, compacting
// log. All methods are safe for concurrent use.
type PebbleStore struct {
	db        *pebble.DB
	unlockDir func()
	opts      options
	log       *slog.Logger
	// health records damage and engine failures (health.go); gate runs
	// Pebble's compactions until then.
	health *health
	gate   *compactionGate

	topicsMu struct {
		sync.RWMutex
		byName map[string]*topicState
		nextID uint32
	}

	// failed holds the first fsync error; the store then refuses writes.
	failed atomic.Pointer[error]

	cleanupMu sync.Mutex
	// stateMu serializes Updates of the state space (state.go).
	stateMu sync.Mutex
	groups  coordinator
	bgDone  chan struct{}
	// inflight counts running operations; Close waits for it to drain.
	inflight    atomic.Int64
	closedFlag  atomic.Bool
	drained     chan struct{}
	closeMu     sync.Mutex
	closing     chan struct{}
	closed      chan struct{} // closed when Close has finished
	closeErr    error
	closeCalled bool
	// metrics are the store's instruments (metrics.go).
	metrics *storeMetrics
}

// Open opens (creating if needed) the store in directory dir. Only one Store
// may have a directory open at a time; a second Open, from this process or
// another, fails with an error wrapping ErrLocked. A store with damaged
// files (a write-ahead log damaged before its end, a table Open reads) is
// refused with an error matching ErrCorrupt that names the file; see the
// package documentation on damaged data, WithRecoverCorruptWAL and Repair.
func Open(dir string, opts ...Option) (s *PebbleStore, err error) {
	unlockDir := func() {}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.fs == nil {
		o.fs = vfs.Default
		if dir == "" {
			return nil, invalid("dir", "is empty (use OpenMem for an in-memory store)")
		}
		canonical, release, err := lockDir(dir)
		if err != nil {
			return nil, err
		}
		dir = canonical
		defer func() {
			if s == nil {
				release()
			}
		}()
		unlockDir = release
	}
	cache := pebble.NewCache(o.cacheBytes)
	defer cache.Unref()
	h := newHealth(o.logger)
	gate := newCompactionGate(h)
	guard := &openGuard{recovering: o.recoverWAL != nil, now: o.clock.Now}
	listener := h.eventListener()
	popts := &pebble.Options{
		FS:       o.fs,
		Logger:   pebbleLogger{o.logger, h},
		Cache:    cache,
		Comparer: comparer,
	}
	popts.EventListener = listener
	popts.Experimental.CompactionScheduler = gate
	// 16 KiB data blocks on every level (later levels inherit L0's): a
	// random stream read loads and decompresses less than with 32 KiB,
	// a partition scan seeks less often than with Pebble's 4 KiB. The
	// measurement is in BENCHMARKS.md ("Cost as the data grows").
	popts.Levels[0].BlockSize = 16 << 10
	popts.MemTableSize = 64 << 20
	popts.EnsureDefaults()
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	if o.pebble != nil {
		o.pebble(popts)
	}
	if o.internalPebble != nil {
		o.internalPebble(popts)
	}
	guardPebbleOptions(popts, h, gate, guard, listener)
	guard.active.Store(true)
	db, err := openPebble(dir, popts, h)
	guard.active.Store(false)
	if err == nil {
		if ferr := h.fatalErr(); ferr != nil {
			// Not closed: see Close.
			db, err = nil, ferr
		}
	}
	if err != nil {
		gate.stopTicker()
		guard.mu.Lock()
		gerr := guard.mu.err
		guard.mu.Unlock()
		switch {
		case gerr != nil:
			err = fmt.Errorf("eventstore: open %s: %w", dir, gerr)
		case isLockError(err):
			err = fmt.Errorf("%w: %s: %v", ErrLocked, dir, err)
		case corruptionOf(err) != nil:
			err = fmt.Errorf("eventstore: open %s: %w", dir, corruptionOf(err))
		default:
			err = fmt.Errorf("eventstore: open %s: %w", dir, err)
		}
		return nil, err
	}
	s = &PebbleStore{
		unlockDir: unlockDir,
		db:        db,
		opts:      o,
		log:       o.logger,
		health:    h,
		gate:      gate,
		bgDone:    make(chan struct{}),
		closing:   make(chan struct{}),
		drained:   make(chan struct{}, 1),
		closed:    make(chan struct{}),
	}
	s.topicsMu.byName = map[string]*topicState{}
	s.groups.init()
	if err := s.load(); err != nil {
		if h.fatalErr() == nil { // else left open: see Close
			_ = closeDB(db)
		}
		gate.stopTicker()
		s = nil
		return nil, fmt.Errorf("eventstore: open %s: %w", dir, err)
	}
	if guard.mu.rec != nil {
		rep, err := s.recoveryReport(guard)
		if err != nil {
			_ = closeDB(db)
			s = nil
			return nil, fmt.Errorf("eventstore: open %s: report of the WAL recovery: %w", dir, err)
		}
		o.logger.Warn("eventstore: recovered a damaged write-ahead log; writes logged after the damage were dropped",
			"wal", rep.WAL, "offset", rep.Offset, "reason", rep.Reason, "dropped_bytes", rep.DroppedBytes,
			"partitions", len(rep.Partitions), "streams", len(rep.Streams), "backup", rep.Backup)
		o.recoverWAL(rep)
	}
	if s.metrics, err = newStoreMetrics(o.meters, s); err != nil {
		_ = closeDB(db)
		gate.stopTicker()
		s = nil
		return nil, fmt.Errorf("eventstore: open %s: metrics: %w", dir, err)
	}
	// The first deadline is taken now, not when the goroutine starts, so
	// that a clock moved right after Open is not missed.
	go s.runCleanup(s.opts.clock.Now().Add(s.opts.cleanupInterval))
	return s, nil
}

// openPebble opens Pebble's DB. Pebble panics on some damage it finds while
// it opens (after releasing what it had allocated); that is an error here.
// If the engine fails while it opens (h.failed), Pebble's Open may wait
// forever for the work that failure ended: openPebble returns the failure
// and leaves that Open behind.
func openPebble(dir string, popts *pebble.Options, h *health) (*pebble.DB, error) {
	type result struct {
		db  *pebble.DB
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r = result{err: &CorruptFileError{Offset: -1, Reason: fmt.Sprintf("the storage engine failed while opening the store: %v", p)}}
			}
			done <- r
		}()
		r.err = pebbleCall(func() error {
			var err error
			r.db, err = pebble.Open(dir, popts)
			return err
		})
	}()
	select {
	case r := <-done:
		return r.db, r.err
	case <-h.failed:
		return nil, h.fatalErr()
	}
}

// guardPebbleOptions puts back what guards the store against damage, after
// the user's WithPebbleOptions function may have changed it.
func guardPebbleOptions(popts *pebble.Options, h *health, gate *compactionGate, guard *openGuard, listener *pebble.EventListener) {
	if popts.FS == nil {
		popts.FS = vfs.Default
	}
	guard.fs = popts.FS
	popts.FS = guardFS{FS: popts.FS, g: guard}
	if _, ok := popts.Logger.(pebbleLogger); !ok && popts.Logger != nil {
		popts.Logger = guardedLogger{popts.Logger, h}
	}
	if popts.LoggerAndTracer != nil {
		popts.LoggerAndTracer = guardedTracer{popts.LoggerAndTracer, h}
	}
	if popts.EventListener != listener {
		user := pebble.EventListener{}
		if popts.EventListener != nil {
			user = *popts.EventListener
		}
		if user.DataCorruption == nil {
			// Pebble's default would call Fatalf: the store's listener
			// handles it.
			user.DataCorruption = func(pebble.DataCorruptionInfo) {}
		}
		user.EnsureDefaults(nil)
		tee := pebble.TeeEventListener(*listener, user)
		popts.EventListener = &tee
	}
	switch sch := popts.Experimental.CompactionScheduler; sch {
	case gate:
	case nil:
		popts.Experimental.CompactionScheduler = gate
	default:
		popts.Experimental.CompactionScheduler = gatedScheduler{sch, h}
	}
}

// guardedLogger is a Logger set with WithPebbleOptions whose Fatalf fails
// the store instead of (possibly) exiting.
type guardedLogger struct {
	pebble.Logger
	h *health
}

// Fatalf logs as an error and fails the store (see health.engineFatal).
func (l guardedLogger) Fatalf(format string, args ...any) {
	l.Logger.Errorf(format, args...)
	l.h.engineFatal(fmt.Sprintf(format, args...))
}

// guardedTracer is guardedLogger for a LoggerAndTracer.
type guardedTracer struct {
	pebble.LoggerAndTracer
	h *health
}

// Fatalf logs as an error and fails the store (see health.engineFatal).
func (l guardedTracer) Fatalf(format string, args ...any) {
	l.LoggerAndTracer.Errorf(format, args...)
	l.h.engineFatal(fmt.Sprintf(format, args...))
}

// OpenMem opens an empty store held in memory, on Pebble's vfs.NewMem(): the
// real engine, for tests, examples and the demo. Its contents are lost on
// Close.
func OpenMem(opts ...Option) (*PebbleStore, error) {
	return Open("", append([]Option{WithFS(vfs.NewMem())}, opts...)...)
}

// openDirs holds the directories open in this process, by device and inode,
// so that a second Open through another spelling of the path (a symlink, a
// relative path) is refused too. Pebble's own lock is keyed by the path
// string, and the operating system's file lock does not stop the process
// that holds it.
var openDirs struct {
	sync.Mutex
	m map[[2]uint64]string
}

// lockDir creates dir if needed, resolves it to one canonical spelling and
// registers it as open in this process.
func lockDir(dir string) (string, func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("eventstore: create %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", nil, fmt.Errorf("eventstore: resolve %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", nil, fmt.Errorf("eventstore: stat %s: %w", dir, err)
	}
	var id [2]uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id = [2]uint64{uint64(st.Dev), uint64(st.Ino)}
	}
	openDirs.Lock()
	defer openDirs.Unlock()
	if openDirs.m == nil {
		openDirs.m = map[[2]uint64]string{}
	}
	if other, ok := openDirs.m[id]; ok && id != [2]uint64{} {
		return "", nil, fmt.Errorf("%w: %s is already open in this process (as %s)", ErrLocked, dir, other)
	}
	openDirs.m[id] = abs
	var once sync.Once
	return abs, func() {
		once.Do(func() {
			openDirs.Lock()
			delete(openDirs.m, id)
			openDirs.Unlock()
		})
	}, nil
}

func isLockError(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "lock held")
}

// load reads the format marker, the topics and their partition counters.
func (s *PebbleStore) load() error {
	v, closer, err := s.db.Get(formatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], storeFormat)
		if err := pebbleCall(func() error { return s.db.Set(formatKey, b[:], pebble.Sync) }); err != nil {
			return fmt.Errorf("eventstore: write format marker: %w", err)
		}
	case err != nil:
		return fmt.Errorf("eventstore: read format marker: %w", s.engineErr(err))
	default:
		ok := len(v) == 8 && binary.BigEndian.Uint64(v) == storeFormat
		closer.Close()
		if !ok {
			return fmt.Errorf("%w: store format marker %x is not format %d", ErrCorrupt, v, storeFormat)
		}
	}

	if v, closer, err := s.db.Get(nextTopicKey); err == nil {
		if len(v) == 4 {
			s.topicsMu.nextID = binary.BigEndian.Uint32(v)
		}
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("eventstore: read next topic ID: %w", s.engineErr(err))
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindTopic}, UpperBound: []byte{kindTopic + 1}})
	if err != nil {
		return fmt.Errorf("eventstore: read topics: %w", s.engineErr(err))
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		var m topicMeta
		if err := json.Unmarshal(it.Value(), &m); err != nil || m.Name != string(it.Key()[1:]) {
			return fmt.Errorf("%w: metadata of topic %q: %v", ErrCorrupt, it.Key()[1:], err)
		}
		t := newTopicState(m)
		for p := range t.parts {
			if err := s.loadPartition(t, p); err != nil {
				return err
			}
		}
		s.topicsMu.byName[m.Name] = t
		s.topicsMu.nextID = max(s.topicsMu.nextID, m.ID+1)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("eventstore: read topics: %w", s.engineErr(err))
	}
	return nil
}

func (s *PebbleStore) loadPartition(t *topicState, p int) error {
	v, closer, err := s.db.Get(appendPartitionKey(nil, t.meta.ID, p))
	if err != nil {
		return fmt.Errorf("%w: metadata of partition %s/%d: %w", ErrCorrupt, t.meta.Name, p, s.engineErr(err))
	}
	defer closer.Close()
	if len(v) != partMetaLen {
		return fmt.Errorf("%w: metadata of partition %s/%d has %d bytes", ErrCorrupt, t.meta.Name, p, len(v))
	}
	ps := &t.parts[p]
	ps.mu.next = int64(binary.BigEndian.Uint64(v[0:]))
	ps.mu.start = int64(binary.BigEndian.Uint64(v[8:]))
	ps.mu.records = int64(binary.BigEndian.Uint64(v[16:]))
	ps.mu.bytes = int64(binary.BigEndian.Uint64(v[24:]))
	// The counters are checkpointed every metaEvery offsets: count the
	// records written after the checkpoint.
	lo := appendLogKey(nil, t.meta.ID, p, max(ps.mu.next, ps.mu.start))
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: appendLogPrefix(nil, t.meta.ID, p+1)})
	if err != nil {
		return fmt.Errorf("eventstore: recover partition %s/%d: %w", t.meta.Name, p, s.engineErr(err))
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		ps.mu.next = int64(binary.BigEndian.Uint64(it.Key()[9:])) + 1
		ps.mu.records++
		ps.mu.bytes += int64(len(it.Value()))
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("eventstore: recover partition %s/%d: %w", t.meta.Name, p, s.engineErr(err))
	}
	ps.publishCountersLocked()
	ps.end.Store(ps.mu.next)
	return nil
}

// checkpointCounters writes every partition's counters, so that the next
// Open has nothing to count.
func (s *PebbleStore) checkpointCounters() error {
	s.topicsMu.RLock()
	defer s.topicsMu.RUnlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, t := range s.topicsMu.byName {
		for i := range t.parts {
			p := &t.parts[i]
			p.mu.Lock()
			_ = b.Set(appendPartitionKey(nil, t.meta.ID, i), encodePartMeta(nil, p.mu.next, p.mu.start, p.mu.records, p.mu.bytes), nil)
			p.mu.Unlock()
		}
	}
	return b.Commit(pebble.Sync)
}

func encodePartMeta(dst []byte, next, start, records, bytes int64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(next))
	dst = binary.BigEndian.AppendUint64(dst, uint64(start))
	dst = binary.BigEndian.AppendUint64(dst, uint64(records))
	return binary.BigEndian.AppendUint64(dst, uint64(bytes))
}

// acquire registers an operation that uses the database; it fails once Close
// has begun. Every successful acquire is paired with release. It is two
// atomic operations, so that appenders never contend on a lock here.
func (s *PebbleStore) acquire() error {
	s.inflight.Add(1)
	if s.closedFlag.Load() {
		s.release()
		return ErrClosed
	}
	if err := s.health.fatalErr(); err != nil {
		s.release()
		return err
	}
	return nil
}

func (s *PebbleStore) release() {
	if s.inflight.Add(-1) == 0 && s.closedFlag.Load() {
		select {
		case s.drained <- struct{}{}:
		default:
		}
	}
}

// Close stops background work, waits for running reads and appends to end
// (subscriptions and consumers end with ErrClosed), and closes the database.
// Its error reports, besides a failure to close, what Health reports: damage
// the store found while it was open, a failed WAL sync, an engine failure.
// It is idempotent: later calls return the first call's result.
func (s *PebbleStore) Close() error {
	s.closeMu.Lock()
	if s.closeCalled {
		s.closeMu.Unlock()
		<-s.closed
		return s.closeErr
	}
	s.closeCalled = true
	s.closedFlag.Store(true)
	close(s.closing)
	s.closeMu.Unlock()
	merr := s.metrics.close()

	<-s.bgDone
	for s.inflight.Load() != 0 {
		<-s.drained
	}
	var err error
	if s.failure() == nil {
		err = pebbleCall(s.checkpointCounters)
	}
	if s.health.fatalErr() == nil {
		err = errors.Join(err, closeDB(s.db))
	} else {
		// Pebble's work that hit the failure was ended where it stood;
		// closing the DB would wait for it forever. The DB stays open
		// (with its directory lock) until the process exits.
		err = errors.Join(err, errors.New("eventstore: the storage engine failed and was left open: restart the process to open the store again"))
	}
	err = errors.Join(s.health.report(), s.syncFailure(), err, merr)
	if err != nil {
		err = fmt.Errorf("eventstore: close: %w", err)
	}
	s.unlockDir()
	s.closeErr = err
	close(s.closed)
	return err
}

// Sync makes every append acknowledged so far durable, including those made
// with NoSync. ctx is checked before the fsync starts; an fsync cannot be
// interrupted.
func (s *PebbleStore) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	if err := s.failure(); err != nil {
		return err
	}
	return pebbleCall(func() error { return s.db.LogData([]byte{0}, pebble.Sync) })
}

// Flush writes Pebble's memtables to tables on disk and waits for it. The
// store never needs it for durability (appends are durable once they
// return); it shortens the next Open's log replay and puts reads on the
// tables, as in benchmarks.
func (s *PebbleStore) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	var flushed <-chan struct{}
	err := pebbleCall(func() error {
		var err error
		flushed, err = s.db.AsyncFlush()
		return err
	})
	if err != nil {
		return fmt.Errorf("eventstore: flush: %w", s.engineErr(err))
	}
	select {
	case <-flushed:
		return nil
	case <-s.health.failed:
		// The flush hit an engine failure and was ended: it never completes.
		return fmt.Errorf("eventstore: flush: %w", s.health.fatalErr())
	}
}

// closeDB closes Pebble's DB; a panic is an error rather than the end of
// the host.
func closeDB(db *pebble.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: storage engine failed to close: %v", ErrStoreFailed, r)
		}
	}()
	return pebbleCall(db.Close)
}

// failure returns why the store refuses writes, nil if it takes them: an
// engine failure, a failed WAL sync, or damage found in its data.
func (s *PebbleStore) failure() error {
	if err := s.health.fatalErr(); err != nil {
		return err
	}
	if err := s.syncFailure(); err != nil {
		return err
	}
	if s.health.damaged.Load() {
		return fmt.Errorf("eventstore: the store refuses writes, it has found damaged data (see Health): %w", s.health.damageErr())
	}
	return nil
}

func (s *PebbleStore) syncFailure() error {
	if p := s.failed.Load(); p != nil {
		return fmt.Errorf("%w: %v", ErrStoreFailed, *p)
	}
	return nil
}

// CreateTopic creates a topic. It fails with ErrTopicExists if the name is
// taken and with an error wrapping ErrInvalidArgument, naming each bad
// field, if the name or config is invalid.
func (s *PebbleStore) CreateTopic(ctx context.Context, name string, cfg TopicConfig) error {
	if s.closedFlag.Load() {
		return ErrClosed
	}
	if err := errors.Join(ValidateTopicName(name), cfg.Validate()); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	if err := s.failure(); err != nil {
		return err
	}
	s.topicsMu.Lock()
	defer s.topicsMu.Unlock()
	if _, ok := s.topicsMu.byName[name]; ok {
		return fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	m := topicMeta{ID: s.topicsMu.nextID, Name: name, Config: cfg.normalized(), Created: s.opts.clock.Now().UTC()}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(topicKey(name), m.marshal(), nil)
	_ = b.Set(nextTopicKey, binary.BigEndian.AppendUint32(nil, m.ID+1), nil)
	meta := encodePartMeta(nil, 0, 0, 0, 0)
	for p := 0; p < cfg.Partitions; p++ {
		_ = b.Set(appendPartitionKey(nil, m.ID, p), meta, nil)
	}
	if err := pebbleCall(func() error { return b.Commit(pebble.Sync) }); err != nil {
		return fmt.Errorf("eventstore: create topic %q: %w", name, err)
	}
	s.topicsMu.byName[name] = newTopicState(m)
	s.topicsMu.nextID++
	return nil
}

// UpdateTopic changes a topic's cleanup policy and retention settings. The
// partition count cannot change: a different count is refused with an error
// naming Partitions.
func (s *PebbleStore) UpdateTopic(ctx context.Context, name string, cfg TopicConfig) error {
	if s.closedFlag.Load() {
		return ErrClosed
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	if err := s.failure(); err != nil {
		return err
	}
	s.topicsMu.Lock()
	defer s.topicsMu.Unlock()
	t, ok := s.topicsMu.byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrTopicNotFound, name)
	}
	if cfg.Partitions != t.meta.Config.Partitions {
		return invalid("Partitions", "topic %q has %d partitions; the count of an existing topic cannot change (got %d)",
			name, t.meta.Config.Partitions, cfg.Partitions)
	}
	m := t.meta
	m.Config = cfg.normalized()
	if err := pebbleCall(func() error { return s.db.Set(topicKey(name), m.marshal(), pebble.Sync) }); err != nil {
		return fmt.Errorf("eventstore: update topic %q: %w", name, err)
	}
	t.meta.Config = m.Config
	c := m.Config
	t.config.Store(&c)
	return nil
}

// DeleteTopic deletes a topic with all its records, stream heads and the
// consumer groups' committed offsets on it. Appends to it then fail with
// ErrTopicNotFound, and its subscriptions end with that error; reads that
// are already running finish on the data they started with. A topic that a
// consumer group member in this process subscribes to is not deleted: the
// error wraps ErrTopicInUse. The topic's ID is never reused, so a new topic
// of the same name starts empty.
func (s *PebbleStore) DeleteTopic(ctx context.Context, name string) error {
	if s.closedFlag.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	if err := s.failure(); err != nil {
		return err
	}
	s.cleanupMu.Lock() // no cleanup pass may be half-way through the topic
	defer s.cleanupMu.Unlock()
	s.topicsMu.Lock()
	defer s.topicsMu.Unlock()
	t, ok := s.topicsMu.byName[name]
	if !ok {
		if err := ValidateTopicName(name); err != nil {
			return err
		}
		return fmt.Errorf("%w: %q", ErrTopicNotFound, name)
	}
	t.deleting.Store(true)
	defer t.deleting.Store(false)
	if g := s.groups.subscriber(t); g != "" {
		return fmt.Errorf("eventstore: delete topic %q: %w: group %q has members subscribed to it", name, ErrTopicInUse, g)
	}
	// Wait for appends in flight, and keep new ones out until the topic is
	// gone from the map.
	for i := range t.parts {
		t.parts[i].mu.Lock()
		defer t.parts[i].mu.Unlock()
	}
	b := s.db.NewBatch()
	defer b.Close()
	id := binary.BigEndian.AppendUint32(nil, t.meta.ID)
	_ = b.Delete(topicKey(name), nil)
	for _, kind := range []byte{kindPartition, kindLog, kindStream, kindHead} {
		prefix := append([]byte{kind}, id...)
		_ = b.DeleteRange(prefix, PrefixEnd(prefix), nil)
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{kindGroup}, UpperBound: []byte{kindGroup + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) >= 9 && bytes.Equal(k[len(k)-8:len(k)-4], id) {
			_ = b.Delete(k, nil)
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("eventstore: delete topic %q: %w", name, s.engineErr(err))
	}
	if err := pebbleCall(func() error { return b.Commit(pebble.Sync) }); err != nil {
		return fmt.Errorf("eventstore: delete topic %q: %w", name, err)
	}
	t.deleted.Store(true)
	delete(s.topicsMu.byName, name)
	t.wake()
	return nil
}

// topic returns the state of a topic.
func (s *PebbleStore) topic(name string) (*topicState, error) {
	if s.closedFlag.Load() {
		return nil, ErrClosed
	}
	s.topicsMu.RLock()
	t, ok := s.topicsMu.byName[name]
	s.topicsMu.RUnlock()
	if !ok {
		if err := ValidateTopicName(name); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %q", ErrTopicNotFound, name)
	}
	return t, nil
}

// topicsByID returns the topics by their IDs, as keys hold them.
func (s *PebbleStore) topicsByID() map[uint32]*topicState {
	s.topicsMu.RLock()
	defer s.topicsMu.RUnlock()
	byID := make(map[uint32]*topicState, len(s.topicsMu.byName))
	for _, t := range s.topicsMu.byName {
		byID[t.meta.ID] = t
	}
	return byID
}

// ListTopics returns the names of all topics, sorted.
func (s *PebbleStore) ListTopics(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.release()
	s.topicsMu.RLock()
	defer s.topicsMu.RUnlock()
	names := make([]string, 0, len(s.topicsMu.byName))
	for n := range s.topicsMu.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// DescribeTopic returns a topic's configuration and, per partition, its
// offsets and size.
func (s *PebbleStore) DescribeTopic(ctx context.Context, name string) (TopicInfo, error) {
	if err := ctx.Err(); err != nil {
		return TopicInfo{}, err
	}
	if err := s.acquire(); err != nil {
		return TopicInfo{}, err
	}
	defer s.release()
	t, err := s.topic(name)
	if err != nil {
		return TopicInfo{}, err
	}
	info := TopicInfo{Name: name, Config: *t.config.Load(), Created: t.meta.Created}
	for i := range t.parts {
		p := &t.parts[i]
		info.Partitions = append(info.Partitions, PartitionInfo{
			Partition:   i,
			StartOffset: p.start.Load(),
			EndOffset:   p.end.Load(),
			Records:     p.records.Load(),
			Bytes:       p.bytes.Load(),
		})
	}
	return info, nil
}

// Partitions returns a topic's partition count.
func (s *PebbleStore) Partitions(name string) (int, error) {
	t, err := s.topic(name)
	if err != nil {
		return 0, err
	}
	return len(t.parts), nil
}

// PartitionFor returns the partition of key in topic, as Append places it.
func (s *PebbleStore) PartitionFor(topic, key string) (int, error) {
	t, err := s.topic(topic)
	if err != nil {
		return 0, err
	}
	return PartitionFor(key, len(t.parts)), nil
}
