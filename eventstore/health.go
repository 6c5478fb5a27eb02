package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// A store never exits its host and never carries on silently on damaged
// data. What Pebble would have treated as fatal (its logger's Fatalf, which
// by default calls os.Exit) makes the store refuse every further call;
// damage found anywhere (by a read, a compaction, cleanup or Open) is
// recorded, logged and reported by Health and Close, stops automatic
// compactions (they would fail on the damaged file again and again) and
// makes the store refuse writes, while reads of intact data go on.

// maxProblems bounds how many distinct problems a store remembers.
const maxProblems = 16

// health is what a store knows about its own damage and failures. It exists
// before Pebble's DB does, so that Pebble's logger and event listener can
// report into it while the DB opens.
type health struct {
	log *slog.Logger
	// fatal is set when Pebble reports an error it cannot continue from;
	// failed is closed then.
	fatal  atomic.Pointer[error]
	failed chan struct{}
	// damaged is set once any damage has been found.
	damaged atomic.Bool

	mu struct {
		sync.Mutex
		problems []error
		seen     map[string]bool
		dropped  int // problems beyond maxProblems
	}
}

func newHealth(l *slog.Logger) *health {
	h := &health{log: l, failed: make(chan struct{})}
	h.mu.seen = map[string]bool{}
	return h
}

// fail records an error Pebble cannot continue from.
func (h *health) fail(err error) {
	if h.fatal.CompareAndSwap(nil, &err) {
		close(h.failed)
		h.log.Error("eventstore: the storage engine cannot continue; the store refuses every further call", "err", err)
	}
}

func (h *health) fatalErr() error {
	if p := h.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

// corrupt records damage: it is logged once per distinct description, and
// the store stops compactions and writes.
func (h *health) corrupt(err error) {
	h.damaged.Store(true)
	key := err.Error()
	h.mu.Lock()
	first := !h.mu.seen[key]
	if first {
		if len(h.mu.problems) < maxProblems {
			h.mu.seen[key] = true
			h.mu.problems = append(h.mu.problems, err)
		} else {
			h.mu.dropped++
			first = false
		}
	}
	h.mu.Unlock()
	if first {
		h.log.Error("eventstore: damaged data found; compactions stop and the store refuses writes", "err", err)
	}
}

// damageErr returns the recorded damage, nil if there is none.
func (h *health) damageErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	errs := append([]error(nil), h.mu.problems...)
	if h.mu.dropped > 0 {
		errs = append(errs, fmt.Errorf("%w: and %d more problems", ErrCorrupt, h.mu.dropped))
	}
	return errors.Join(errs...)
}

// report returns everything recorded, nil if the store is healthy.
func (h *health) report() error {
	return errors.Join(h.fatalErr(), h.damageErr())
}

// Health reports what the store knows to be wrong with it: damaged data
// found by any read, compaction, cleanup pass or at Open (errors matching
// ErrCorrupt, naming the file, partition or stream), an error the storage
// engine cannot continue from, or a failed WAL sync (both matching
// ErrStoreFailed). It returns nil for a store that knows of no problem; it
// does not read the disk to look for damage (Repair does). After Close it
// returns ErrClosed.
//
// A store that has found damage keeps serving reads (those of damaged data
// fail with ErrCorrupt) but refuses writes, and its automatic compactions
// stop; Close reports the damage too. See the package documentation on
// corruption.
func (s *PebbleStore) Health(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closedFlag.Load() {
		return ErrClosed
	}
	return errors.Join(s.health.report(), s.syncFailure())
}

// CorruptFileError reports damage in one of the store's files: a block of a
// table whose checksum does not verify, a write-ahead log or manifest whose
// records stop verifying before their end, a file the engine cannot read.
// It matches ErrCorrupt. Errors of reads wrap it with the partition or
// stream being read.
type CorruptFileError struct {
	// Path is the damaged file; empty if the engine did not say.
	Path string
	// Offset is the byte offset of the damage in the file, or -1 if unknown.
	Offset int64
	// Reason says what failed to verify.
	Reason string
	// Err is the storage engine's error, if there was one.
	Err error
}

// Error names the file, the offset if known and what failed to verify.
func (e *CorruptFileError) Error() string {
	var b strings.Builder
	b.WriteString("eventstore: corrupt data")
	if e.Path != "" {
		b.WriteString(" in ")
		b.WriteString(e.Path)
	}
	if e.Offset >= 0 {
		fmt.Fprintf(&b, " at byte %d", e.Offset)
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptFileError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the engine's error.
func (e *CorruptFileError) Unwrap() error { return e.Err }

// corruptionOf turns an error of Pebble's that reports corruption into a
// *CorruptFileError naming the file; it returns nil for any other error.
func corruptionOf(err error) *CorruptFileError {
	if err == nil || !pebble.IsCorruptionError(err) {
		return nil
	}
	var ce *CorruptFileError
	if errors.As(err, &ce) {
		return ce
	}
	e := &CorruptFileError{Offset: -1, Err: err, Reason: pebbleMessage(err)}
	if info := pebble.ExtractDataCorruptionInfo(err); info != nil {
		e.Path = info.Path
		if info.Details != nil {
			e.Reason = pebbleMessage(info.Details)
		}
	}
	return e
}

// pebbleMessage is the first line of a Pebble error, without the marker
// Pebble joins to corruption errors.
func pebbleMessage(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// engineErr converts an error from Pebble for the store's callers: a
// corruption becomes a *CorruptFileError (recorded in the store's health),
// anything else is returned as it is.
func (s *PebbleStore) engineErr(err error) error {
	if ce := corruptionOf(err); ce != nil {
		s.health.corrupt(ce)
		return ce
	}
	return err
}

// recordCorrupt records damage the store found in a record it decoded.
func (s *PebbleStore) recordCorrupt(err error) error {
	if err != nil && errors.Is(err, ErrCorrupt) {
		s.health.corrupt(err)
	}
	return err
}

// pebbleLogger sends Pebble's messages to slog, and turns its fatal errors
// into a failed store rather than an exit.
type pebbleLogger struct {
	l *slog.Logger
	h *health
}

// Infof logs Pebble's informational messages at debug level.
func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

// Errorf logs Pebble's errors.
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by Pebble on an error it cannot continue from (a failed
// write of its manifest, a broken commit pipeline); see health.engineFatal.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.h.engineFatal(fmt.Sprintf(format, args...))
}

// engineFatal handles a Fatalf of Pebble's. Pebble's default logger exits
// the process there, and Pebble's code expects Fatalf not to return: when
// it does, Pebble carries on with state it did not unwind (a commit that
// failed is applied as if it had not, a flush whose manifest write failed
// is retried at once, forever). So Fatalf never returns. The store fails
// first: from then on every call returns the error (wrapping
// ErrStoreFailed), the store makes no further call into Pebble, and
// Health and Close report it. Then, on a goroutine running a store call
// into Pebble (see pebbleCall), it panics, and the store call returns the
// error; on a goroutine of Pebble's own (a flush, a compaction) it ends the
// goroutine with runtime.Goexit, which runs its deferred unlocks, so that
// this work stops where it cannot go on and no other is held up.
func (h *health) engineFatal(msg string) {
	err := fmt.Errorf("%w: storage engine: %s", ErrStoreFailed, msg)
	h.fail(err)
	if inPebbleCall() {
		panic(fatalPanic{err})
	}
	runtime.Goexit()
}

// fatalPanic carries a Fatalf up to the pebbleCall that reached it.
type fatalPanic struct{ err error }

// pebbleCall runs f, a store call into Pebble that may reach Pebble's
// Fatalf on this goroutine, and returns such a Fatalf as an error.
func pebbleCall(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			fp, ok := r.(fatalPanic)
			if !ok {
				panic(r)
			}
			err = fp.err
		}
	}()
	return f()
}

var pebbleCallName = runtime.FuncForPC(reflect.ValueOf(pebbleCall).Pointer()).Name()

// inPebbleCall reports whether the calling goroutine runs in a pebbleCall,
// which recovers a fatalPanic.
func inPebbleCall() bool {
	var pcs [256]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs[:])])
	for {
		f, more := frames.Next()
		if f.Function == pebbleCallName {
			return true
		}
		if !more {
			return false
		}
	}
}

// stopped reports whether compactions must stop: damage found, or the
// engine failed.
func (h *health) stopped() bool { return h.damaged.Load() || h.fatal.Load() != nil }

// eventListener returns the Pebble listener that records corruption into h
// instead of Pebble's default, which exits the process.
func (h *health) eventListener() *pebble.EventListener {
	l := &pebble.EventListener{
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			e := &CorruptFileError{Path: info.Path, Offset: -1, Err: info.Details}
			if info.Details != nil {
				e.Reason = pebbleMessage(info.Details)
			}
			h.corrupt(e)
		},
		BackgroundError: func(err error) {
			if ce := corruptionOf(err); ce != nil {
				h.corrupt(ce)
				return
			}
			h.log.Error("eventstore: storage engine background error", "err", err)
		},
	}
	l.EnsureDefaults(nil)
	return l
}

// compactionGate is the store's Pebble CompactionScheduler. It runs as many
// compactions as the DB allows, as Pebble's default scheduler does, until
// the store has found damage; then it grants no more, so that Pebble does
// not retry a compaction over a damaged table forever.
type compactionGate struct {
	h        *health
	db       pebble.DBForCompaction
	stopOnce sync.Once
	stopTick chan struct{}
	tickDone chan struct{}
	poke     chan struct{}
	mu       struct {
		sync.Mutex
		running      int
		unregistered bool
		granting     bool
		cond         *sync.Cond
	}
}

func newCompactionGate(h *health) *compactionGate {
	g := &compactionGate{h: h, stopTick: make(chan struct{}), poke: make(chan struct{}, 1)}
	g.mu.cond = sync.NewCond(&g.mu.Mutex)
	return g
}

// grantInterval is how often the gate looks for compactions to start
// besides when one ends, as Pebble's default scheduler does: the allowed
// count can grow without the scheduler being told (after a flush).
const grantInterval = 100 * time.Millisecond

// Register implements pebble.CompactionScheduler.
func (g *compactionGate) Register(_ int, db pebble.DBForCompaction) {
	g.db = db
	g.tickDone = make(chan struct{})
	go func() {
		defer close(g.tickDone)
		t := time.NewTicker(grantInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				g.mu.Lock()
				g.grantLockedAndUnlock()
			case <-g.poke:
				g.mu.Lock()
				g.grantLockedAndUnlock()
			case <-g.stopTick:
				return
			}
		}
	}()
}

// Unregister implements pebble.CompactionScheduler: it returns once no
// grant is under way, and grants nothing afterwards.
func (g *compactionGate) Unregister() {
	g.stopTicker()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.unregistered = true
	for g.mu.granting {
		g.mu.cond.Wait()
	}
}

// stopTicker ends the periodic grants, if they were started. Open calls it
// too when Pebble fails to open after registering.
func (g *compactionGate) stopTicker() {
	g.stopOnce.Do(func() {
		close(g.stopTick)
		if g.tickDone != nil {
			<-g.tickDone
		}
	})
}

// TrySchedule implements pebble.CompactionScheduler. Pebble calls it with
// its mutex held, so it only counts.
func (g *compactionGate) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.unregistered || g.h.stopped() {
		return false, nil
	}
	if g.db.GetAllowedWithoutPermission() > g.mu.running {
		g.mu.running++
		return true, g
	}
	return false, nil
}

// UpdateGetAllowedWithoutPermission implements pebble.CompactionScheduler.
// Pebble calls it with its mutex held (after a flush), so the grant, which
// takes that mutex, happens on the granting goroutine.
func (g *compactionGate) UpdateGetAllowedWithoutPermission() {
	select {
	case g.poke <- struct{}{}:
	default:
	}
}

// Started implements pebble.CompactionGrantHandle.
func (g *compactionGate) Started() {}

// MeasureCPU implements pebble.CompactionGrantHandle.
func (g *compactionGate) MeasureCPU(pebble.CompactionGoroutineKind) {}

// CumulativeStats implements pebble.CompactionGrantHandle.
func (g *compactionGate) CumulativeStats(pebble.CompactionGrantHandleStats) {}

// Done implements pebble.CompactionGrantHandle: a compaction has ended.
func (g *compactionGate) Done() {
	g.mu.Lock()
	g.mu.running--
	g.grantLockedAndUnlock()
}

// grantLockedAndUnlock starts waiting compactions while the DB allows more
// than are running. It is called with g.mu held and releases it; only one
// goroutine grants at a time.
func (g *compactionGate) grantLockedAndUnlock() {
	defer g.mu.Unlock()
	for g.mu.granting {
		g.mu.cond.Wait()
	}
	if g.mu.unregistered || g.h.stopped() {
		return
	}
	n := g.db.GetAllowedWithoutPermission() - g.mu.running
	if n <= 0 {
		return
	}
	g.mu.granting = true
	g.mu.Unlock()
	for ; n > 0 && !g.h.stopped(); n-- {
		if waiting, _ := g.db.GetWaitingCompaction(); !waiting {
			break
		}
		g.mu.Lock()
		g.mu.running++ // before Schedule: the compaction may end at once
		g.mu.Unlock()
		if !g.db.Schedule(g) {
			g.mu.Lock()
			g.mu.running--
			g.mu.Unlock()
			break
		}
	}
	g.mu.Lock()
	g.mu.granting = false
	g.mu.cond.Broadcast()
}

// gatedScheduler puts the damage switch in front of a CompactionScheduler
// the user set with WithPebbleOptions.
type gatedScheduler struct {
	pebble.CompactionScheduler
	h *health
}

// Register implements pebble.CompactionScheduler.
func (s gatedScheduler) Register(n int, db pebble.DBForCompaction) {
	s.CompactionScheduler.Register(n, gatedDB{db, s.h})
}

// TrySchedule implements pebble.CompactionScheduler.
func (s gatedScheduler) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	if s.h.stopped() {
		return false, nil
	}
	return s.CompactionScheduler.TrySchedule()
}

type gatedDB struct {
	pebble.DBForCompaction
	h *health
}

func (d gatedDB) GetWaitingCompaction() (bool, pebble.WaitingCompaction) {
	if d.h.stopped() {
		return false, pebble.WaitingCompaction{}
	}
	return d.DBForCompaction.GetWaitingCompaction()
}
