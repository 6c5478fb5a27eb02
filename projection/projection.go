package projection

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

// Sentinel errors. Errors returned by the package wrap them with the name
// of what was wrong.
var (
	// ErrInvalidArgument is wrapped by every error about bad input: a bad
	// name, option, key or pagination token.
	// It is the framework's one bad-input error,
	// eventstore.ErrInvalidArgument.
	ErrInvalidArgument = eventstore.ErrInvalidArgument
	// ErrRunning is returned by Run when the projection is already running
	// in this process, and by Rebuild when a rebuild is already running.
	ErrRunning = errors.New("projection: already running")
	// ErrNotReached is wrapped by the error of WaitFor (and of a query with
	// AtLeast) when its context ends before the projection has applied the
	// position waited for. The error also wraps the context's error
	// (context.DeadlineExceeded for a timeout).
	ErrNotReached = errors.New("projection: position not reached")
	// ErrFailed is wrapped by the error of WaitFor when the projection has
	// stopped with an error: it will not reach the position by itself.
	ErrFailed = errors.New("projection: projection failed")
	// ErrNotParked is returned by Replay for a record that is not parked
	// in the current generation, or was replayed already.
	ErrNotParked = errors.New("projection: record not parked")
)

// errGenChanged ends a live runner whose generation was swapped out by a
// rebuild; Run rejoins on the new generation.
var errGenChanged = errors.New("projection: generation changed")

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}

// checkName checks a projection, table or index name: 1 to 128 letters,
// digits, '.', '_' or '-', as topic names.
func checkName(what, name string) error {
	if name == "" {
		return invalid(what, "name is empty")
	}
	if len(name) > 128 {
		return invalid(what, "name %q is %d bytes, longer than 128", name, len(name))
	}
	if i := strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}); i >= 0 {
		return invalid(what, "name %q has character %q at %d; use only letters, digits, '.', '_' and '-'", name, name[i], i)
	}
	return nil
}

// Handler applies one record to a read model, through tx. It runs inside
// the store's Update of the record's batch: it must be quick, must not call
// the store itself, and should be deterministic, since a batch that fails
// is applied again. An error is retried (see WithRetries), then handled by
// the ErrorPolicy.
type Handler interface {
	Handle(tx *Tx, rec eventstore.Record) error
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(tx *Tx, rec eventstore.Record) error

// Handle calls f(tx, rec).
func (f HandlerFunc) Handle(tx *Tx, rec eventstore.Record) error { return f(tx, rec) }

// PermanentError marks a handler error that retrying cannot fix (a payload
// that does not decode): the record goes to the ErrorPolicy at once.
type PermanentError struct{ Err error }

// Error returns the wrapped error's message.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that it is not retried. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// HandlerError reports a record whose handler failed after every retry.
// Run returns it under the Stop policy; a parked record records its text.
type HandlerError struct {
	Projection string
	Topic      string
	Partition  int
	Offset     int64
	EventType  string
	// Attempts is how many times the handler ran on the record.
	Attempts int
	Err      error
}

// Error names the projection, the record and the handler's error.
func (e *HandlerError) Error() string {
	return fmt.Sprintf("projection %q: handler failed on %s/%d@%d (%s) after %d attempts: %v",
		e.Projection, e.Topic, e.Partition, e.Offset, e.EventType, e.Attempts, e.Err)
}

// Unwrap returns the handler's error.
func (e *HandlerError) Unwrap() error { return e.Err }

// ErrorPolicy says what a projection does with a record whose handler still
// fails after its retries.
type ErrorPolicy int

const (
	// Stop fails the projection: its state becomes StateFailed and Run
	// returns the *HandlerError. The record is applied again when Run
	// restarts. The default.
	Stop ErrorPolicy = iota
	// Park appends the record, with its error, to the dead-letter topic and
	// goes on with the next record. Parked lists parked records; Replay
	// applies one again.
	Park
)

// String returns "stop" or "park".
func (p ErrorPolicy) String() string {
	switch p {
	case Stop:
		return "stop"
	case Park:
		return "park"
	}
	return fmt.Sprintf("ErrorPolicy(%d)", int(p))
}

// Option configures New.
type Option func(*options)

type options struct {
	batch    int
	retries  int
	backoff  func(attempt int) time.Duration
	sleep    func(ctx context.Context, d time.Duration) error
	now      func() time.Time
	policy   ErrorPolicy
	dlq      string
	tables   []AnyTable
	progress time.Duration
}

// Defaults of the options.
const (
	// DefaultBatchSize is how many records one Update applies at most.
	DefaultBatchSize = 1000
	// DefaultRetries is how many times a failed record is retried.
	DefaultRetries = 3
)

// WithBatchSize sets how many records are polled and applied in one Update
// (one fsync) at most. Default DefaultBatchSize. Larger batches catch up
// faster; smaller ones hold the store's update lock for less time.
func WithBatchSize(n int) Option { return func(o *options) { o.batch = n } }

// WithRetries sets how many times a record whose handler failed is tried
// again, each time after a backoff, before the ErrorPolicy applies. Zero
// means no retries. Default DefaultRetries.
func WithRetries(n int) Option { return func(o *options) { o.retries = n } }

// WithBackoff sets the wait before retry number attempt (from 1). Default:
// 100ms doubling per attempt, at most 10s.
func WithBackoff(f func(attempt int) time.Duration) Option {
	return func(o *options) { o.backoff = f }
}

// WithSleep replaces the function that waits out a backoff (default: a
// timer, ended early by ctx), so that tests need not wait for real.
func WithSleep(f func(ctx context.Context, d time.Duration) error) Option {
	return func(o *options) { o.sleep = f }
}

// WithClock sets the clock of parking times and rebuild rates (default
// time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithErrorPolicy sets what happens to a record whose handler still fails
// after its retries. Default Stop.
func WithErrorPolicy(p ErrorPolicy) Option { return func(o *options) { o.policy = p } }

// WithDeadLetterTopic sets the topic parked records go to (default the
// projection's name followed by ".dlq"). It is created, with one
// partition, if it does not exist.
func WithDeadLetterTopic(topic string) Option { return func(o *options) { o.dlq = topic } }

// WithTables makes tables (and their indexes) part of the projection's
// read model: the handler writes them through its Tx, queries read them
// from the live generation, and a rebuild builds them anew. A table
// belongs to one projection; add its indexes before passing it here.
func WithTables(tables ...AnyTable) Option {
	return func(o *options) {
		for _, t := range tables {
			o.tables = append(o.tables, t)
		}
	}
}

// AnyTable is any *Table, whatever its key and value types, for
// WithTables. Only this package implements it.
type AnyTable interface {
	tableName() string
	bind(*Projection) error
}

// WithProgressInterval sets how often a rebuild reports its progress at
// most (default 200ms); it always reports at the end.
func WithProgressInterval(d time.Duration) Option { return func(o *options) { o.progress = d } }

func defaultBackoff(attempt int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < attempt && d < 10*time.Second; i++ {
		d *= 2
	}
	return min(d, 10*time.Second)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// State is what a projection is doing.
type State int

const (
	// StateIdle: Run has not been called in this process.
	StateIdle State = iota
	// StateCatchingUp: Run is applying a backlog (its last poll was full).
	StateCatchingUp
	// StateLive: Run has applied everything in the log and follows it.
	StateLive
	// StateStopped: Run returned because its context ended.
	StateStopped
	// StateFailed: Run returned an error (Status.Err).
	StateFailed
)

// String returns "idle", "catching up", "live", "stopped" or "failed".
func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateCatchingUp:
		return "catching up"
	case StateLive:
		return "live"
	case StateStopped:
		return "stopped"
	case StateFailed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Position is a place in the log: the record at Offset of a topic's
// partition. A projection has reached it once it has applied that record.
type Position struct {
	Topic     string
	Partition int
	Offset    int64
}

// String returns "topic/partition@offset".
func (p Position) String() string { return fmt.Sprintf("%s/%d@%d", p.Topic, p.Partition, p.Offset) }

// PositionOf returns the position of the last event of an append: a
// projection that has reached it has applied every event of the append.
func PositionOf(res eventstore.AppendResult) Position {
	return Position{Topic: res.Topic, Partition: res.Partition, Offset: res.LastOffset}
}

// Projection consumes topics as a consumer group and maintains a read model
// (its tables) in the store's state space. The read model and the group's
// offsets are written in one batch per polled batch of records, so a crash
// never applies a record twice nor skips one.
//
// The read model is kept per generation, under
// "projection/<name>/g/<generation>/". Queries read the current
// generation; Rebuild builds the next one from offset zero and swaps it in.
// Each generation has its own consumer group, "projection.<name>.<0|1>"
// (alternating), whose offsets are the generation's checkpoint.
//
// Run one Projection per name and store: a second runner of the same name
// in the process is refused.
type Projection struct {
	s       eventstore.Store
	name    string
	topics  []string
	parts   map[string]int
	handler Handler
	opts    options
	base    []byte

	running atomic.Bool
	// rebuilding is held by a running Rebuild.
	rebuilding sync.Mutex

	// mu guards the generation: queries read under RLock; a swap, and the
	// live runner's join, hold Lock.
	mu     sync.RWMutex
	loaded bool
	gen    uint64
	live   eventstore.Consumer

	st struct {
		sync.Mutex
		state     State
		err       error
		positions map[eventstore.TopicPartition]int64
		advanced  chan struct{}
		rebuild   *Progress
	}
}

// New returns a projection called name (letters, digits, '.', '_', '-')
// of topics, which must exist, applying every record with handler. It does
// no I/O; Run starts it.
func New(s eventstore.Store, name string, topics []string, handler Handler, opts ...Option) (*Projection, error) {
	o := options{
		batch:    DefaultBatchSize,
		retries:  DefaultRetries,
		backoff:  defaultBackoff,
		sleep:    sleepCtx,
		now:      time.Now,
		dlq:      name + ".dlq",
		progress: 200 * time.Millisecond,
	}
	for _, opt := range opts {
		opt(&o)
	}
	var errs []error
	if s == nil {
		errs = append(errs, invalid("store", "is nil"))
	}
	errs = append(errs, checkName("projection", name))
	if handler == nil {
		errs = append(errs, invalid("handler", "is nil"))
	}
	if len(topics) == 0 {
		errs = append(errs, invalid("topics", "none given"))
	}
	parts := map[string]int{}
	for _, t := range topics {
		if _, dup := parts[t]; dup {
			errs = append(errs, invalid("topics", "%q is given twice", t))
			continue
		}
		if s == nil {
			continue
		}
		n, err := s.Partitions(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("topics: %w", err))
			continue
		}
		parts[t] = n
	}
	if o.batch < 1 || o.batch > 100_000 {
		errs = append(errs, invalid("WithBatchSize", "must be between 1 and 100000, got %d", o.batch))
	}
	if o.retries < 0 {
		errs = append(errs, invalid("WithRetries", "must not be negative, got %d", o.retries))
	}
	if o.backoff == nil {
		errs = append(errs, invalid("WithBackoff", "is nil"))
	}
	if o.sleep == nil {
		errs = append(errs, invalid("WithSleep", "is nil"))
	}
	if o.now == nil {
		errs = append(errs, invalid("WithClock", "is nil"))
	}
	if o.policy != Stop && o.policy != Park {
		errs = append(errs, invalid("WithErrorPolicy", "unknown policy %d", int(o.policy)))
	}
	if o.progress < 0 {
		errs = append(errs, invalid("WithProgressInterval", "must not be negative, got %s", o.progress))
	}
	if o.policy == Park {
		if err := eventstore.ValidateTopicName(o.dlq); err != nil {
			errs = append(errs, fmt.Errorf("WithDeadLetterTopic: %w", err))
		} else if _, ok := parts[o.dlq]; ok {
			errs = append(errs, invalid("WithDeadLetterTopic", "%q is one of the projection's own topics", o.dlq))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("projection: new %q: %w", name, err)
	}
	p := &Projection{
		s: s, name: name, topics: slices.Clone(topics), parts: parts, handler: handler, opts: o,
		base: []byte("projection/" + name + "/"),
	}
	p.st.advanced = make(chan struct{})
	seen := map[string]bool{}
	for _, t := range o.tables {
		if t == nil {
			errs = append(errs, invalid("WithTables", "nil table"))
			continue
		}
		if err := t.bind(p); err != nil {
			errs = append(errs, err)
			continue
		}
		n := t.tableName()
		if seen[n] {
			errs = append(errs, invalid("WithTables", "two tables are named %q", n))
		}
		seen[n] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("projection: new %q: %w", name, err)
	}
	return p, nil
}

// Name returns the projection's name.
func (p *Projection) Name() string { return p.name }

// Topics returns the topics the projection consumes.
func (p *Projection) Topics() []string { return slices.Clone(p.topics) }

// DeadLetterTopic returns the topic parked records go to.
func (p *Projection) DeadLetterTopic() string { return p.opts.dlq }

// Key layout, under "projection/<name>/":
//
//	gen                               current generation (8 bytes)
//	building                          generation a rebuild is writing
//	g/<gen 8 bytes>/t/<table>/<key>   table rows
//	g/<gen>/i/<table>/<index>/<ordered index key><key>  index entries
//	g/<gen>/dlq/<topic>/<partition 4><offset 8>         parked records
func (p *Projection) genKey() []byte      { return append(slices.Clip(p.base), "gen"...) }
func (p *Projection) buildingKey() []byte { return append(slices.Clip(p.base), "building"...) }

func (p *Projection) genPrefix(gen uint64) []byte {
	b := append(slices.Clip(p.base), "g/"...)
	b = binary.BigEndian.AppendUint64(b, gen)
	return append(b, '/')
}

// groupName is the consumer group of a generation. Two names alternate, so
// that a rebuild's group never is the live one and no stale group's offsets
// pile up; a rebuild resets its group's offsets to zero first.
func (p *Projection) groupName(gen uint64) string {
	return fmt.Sprintf("projection.%s.%d", p.name, gen%2)
}

func decodeGen(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("projection: generation value has %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// load reads the current generation and its checkpoint once.
func (p *Projection) load(ctx context.Context) error {
	p.mu.RLock()
	ok := p.loaded
	p.mu.RUnlock()
	if ok {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loaded {
		return nil
	}
	gen := uint64(1)
	v, ok, err := p.s.Get(ctx, p.genKey())
	if err != nil {
		return fmt.Errorf("projection %q: load generation: %w", p.name, err)
	}
	if ok {
		if gen, err = decodeGen(v); err != nil {
			return err
		}
	}
	positions := map[eventstore.TopicPartition]int64{}
	for _, t := range p.topics {
		for part := range p.parts[t] {
			off, _, err := p.s.CommittedOffset(ctx, p.groupName(gen), t, part)
			if err != nil {
				return fmt.Errorf("projection %q: load checkpoint: %w", p.name, err)
			}
			positions[eventstore.TopicPartition{Topic: t, Partition: part}] = off
		}
	}
	p.gen, p.loaded = gen, true
	p.setPositions(positions, true)
	return nil
}

// Generation returns the generation queries read.
func (p *Projection) Generation(ctx context.Context) (uint64, error) {
	if err := p.load(ctx); err != nil {
		return 0, err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.gen, nil
}

// setPositions records committed positions of the current generation and
// wakes WaitFor. With replace, positions replace the known ones.
func (p *Projection) setPositions(positions map[eventstore.TopicPartition]int64, replace bool) {
	p.setPositionsState(positions, replace, nil)
}

// setPositionsState is setPositions that also sets the state, if state is
// not nil, in the same step: a waiter woken by a commit that caught up
// sees the projection live.
func (p *Projection) setPositionsState(positions map[eventstore.TopicPartition]int64, replace bool, state *State) {
	p.st.Lock()
	defer p.st.Unlock()
	if state != nil {
		p.st.state, p.st.err = *state, nil
	}
	if replace || p.st.positions == nil {
		p.st.positions = map[eventstore.TopicPartition]int64{}
	}
	for tp, off := range positions {
		p.st.positions[tp] = off
	}
	close(p.st.advanced)
	p.st.advanced = make(chan struct{})
}

func (p *Projection) setState(s State, err error) {
	p.st.Lock()
	defer p.st.Unlock()
	p.st.state, p.st.err = s, err
	close(p.st.advanced)
	p.st.advanced = make(chan struct{})
}

// Tx is a handler's view of the transaction that applies its record: table
// writes and reads go through it, into the generation being written.
type Tx struct {
	txn    eventstore.Txn
	p      *Projection
	gen    uint64
	prefix []byte
	// writes holds the Tx's writes, last one per key, until flush stages
	// them into txn: a batch that bumps one counter a thousand times
	// writes it once, and reads of a key written in the batch cost a map
	// lookup.
	writes map[string]txWrite
	// scratch is reused to build keys.
	scratch []byte
	done    bool
}

var errTxDone = errors.New("projection: Tx used after its handler returned")

func (tx *Tx) close() { tx.done = true }

type txWrite struct {
	val []byte
	del bool
}

func newTx(txn eventstore.Txn, p *Projection, gen uint64) *Tx {
	return &Tx{txn: txn, p: p, gen: gen, prefix: p.genPrefix(gen), writes: map[string]txWrite{}}
}

func (tx *Tx) get(key []byte) ([]byte, bool, error) {
	if tx.done {
		return nil, false, errTxDone
	}
	if w, ok := tx.writes[string(key)]; ok {
		return w.val, !w.del, nil
	}
	return tx.txn.Get(key)
}

func (tx *Tx) set(key, val []byte) error {
	if tx.done {
		return errTxDone
	}
	if len(key) > eventstore.MaxStateKeyBytes {
		return invalid("key", "state key of %d bytes is longer than %d", len(key), eventstore.MaxStateKeyBytes)
	}
	if len(val) > eventstore.MaxStateValueBytes {
		return invalid("value", "of %d bytes is longer than %d", len(val), eventstore.MaxStateValueBytes)
	}
	// val is the Tx's own: a fresh encoding, or nil.
	tx.writes[string(key)] = txWrite{val: val}
	return nil
}

func (tx *Tx) del(key []byte) error {
	if tx.done {
		return errTxDone
	}
	tx.writes[string(key)] = txWrite{del: true}
	return nil
}

// flush stages the Tx's writes into its transaction.
func (tx *Tx) flush() error {
	for k, w := range tx.writes {
		var err error
		if w.del {
			err = tx.txn.Delete([]byte(k))
		} else {
			err = tx.txn.Set([]byte(k), w.val)
		}
		if err != nil {
			return err
		}
	}
	clear(tx.writes)
	return nil
}

// Generation returns the generation the Tx writes.
func (tx *Tx) Generation() uint64 { return tx.gen }

// Projection returns the projection the Tx belongs to.
func (tx *Tx) Projection() *Projection { return tx.p }

// Run consumes the projection's topics until ctx ends (then it returns
// nil) or a record fails under the Stop policy (then it returns the
// *HandlerError). It resumes from the checkpoint of the current generation,
// applies records in batches of up to WithBatchSize, each batch with its
// checkpoint in one durable Update, and follows the log live once caught
// up. When a Rebuild swaps in a new generation, Run continues on it.
func (p *Projection) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return fmt.Errorf("projection %q: Run: %w", p.name, ErrRunning)
	}
	defer p.running.Store(false)
	if err := p.load(ctx); err != nil {
		p.setState(StateFailed, err)
		return err
	}
	if err := p.dropAbandonedRebuild(ctx); err != nil {
		if ctx.Err() != nil {
			p.setState(StateStopped, nil)
			return nil
		}
		p.setState(StateFailed, err)
		return err
	}
	p.setState(StateCatchingUp, nil)
	for {
		p.mu.Lock()
		gen := p.gen
		c, err := p.s.JoinGroup(ctx, p.groupName(gen), p.topics, eventstore.WithMemberID("live"))
		if err == nil {
			p.live = c
		}
		p.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				p.setState(StateStopped, nil)
				return nil
			}
			err = fmt.Errorf("projection %q: join group: %w", p.name, err)
			p.setState(StateFailed, err)
			return err
		}
		r := &runner{p: p, c: c, gen: gen, live: true}
		err = r.loop(ctx)
		p.mu.Lock()
		if p.live == c {
			p.live = nil
		}
		swapped := p.gen != gen
		p.mu.Unlock()
		_ = c.Close()
		switch {
		case ctx.Err() != nil:
			p.setState(StateStopped, nil)
			return nil
		case swapped && (errors.Is(err, errGenChanged) || errors.Is(err, eventstore.ErrConsumerClosed) || errors.Is(err, eventstore.ErrNotAssigned)):
			p.setState(StateCatchingUp, nil)
			continue
		}
		p.setState(StateFailed, err)
		return err
	}
}

// dropAbandonedRebuild deletes what a rebuild interrupted by a crash or a
// cancellation left behind (its partial generation), unless a rebuild is
// running in this process.
func (p *Projection) dropAbandonedRebuild(ctx context.Context) error {
	if !p.rebuilding.TryLock() {
		return nil
	}
	defer p.rebuilding.Unlock()
	p.mu.RLock()
	cur := p.gen
	p.mu.RUnlock()
	err := p.s.Update(ctx, func(txn eventstore.Txn) error {
		v, ok, err := txn.Get(p.buildingKey())
		if err != nil || !ok {
			return err
		}
		b, err := decodeGen(v)
		if err != nil {
			return err
		}
		if b != cur {
			gp := p.genPrefix(b)
			if err := txn.DeleteRange(gp, eventstore.PrefixEnd(gp)); err != nil {
				return err
			}
		}
		return txn.Delete(p.buildingKey())
	})
	if err != nil {
		return fmt.Errorf("projection %q: drop abandoned rebuild: %w", p.name, err)
	}
	return nil
}

// runner applies polled records of one consumer into one generation.
type runner struct {
	p    *Projection
	c    eventstore.Consumer
	gen  uint64
	live bool
	// caughtUp is true while the runner applies a poll that read all there
	// was.
	caughtUp bool
	// parked holds, per partition, the offset of a record found parked at
	// the partition's first position of this session: a crash between
	// parking it and committing past it leaves it there.
	checked map[eventstore.TopicPartition]bool
	parked  map[eventstore.TopicPartition]int64
	// positions are the committed next offsets of this session.
	positions map[eventstore.TopicPartition]int64
	offsets   map[eventstore.TopicPartition]int64
}

func (r *runner) init() {
	r.checked = map[eventstore.TopicPartition]bool{}
	r.parked = map[eventstore.TopicPartition]int64{}
	r.positions = map[eventstore.TopicPartition]int64{}
	r.offsets = map[eventstore.TopicPartition]int64{}
}

// loop polls and applies until an error or ctx's end.
func (r *runner) loop(ctx context.Context) error {
	r.init()
	for {
		recs, err := r.c.Poll(ctx, r.p.opts.batch)
		if err != nil {
			return err
		}
		// A short poll read everything there was: the commit that applies
		// it makes the projection live (see committed).
		r.caughtUp = len(recs) < r.p.opts.batch
		if err := r.apply(ctx, recs); err != nil {
			return err
		}
		if r.caughtUp {
			r.p.setState(StateLive, nil)
		} else {
			r.p.setState(StateCatchingUp, nil)
		}
	}
}

// apply applies recs, in batches that each commit with their offsets; a
// failing record is retried alone and then stopped on or parked.
func (r *runner) apply(ctx context.Context, recs []eventstore.Record) error {
	for len(recs) > 0 {
		n, herr, err := r.tryBatch(ctx, recs)
		if err != nil {
			return err
		}
		recs = recs[n:]
		if herr == nil {
			continue
		}
		if err := r.retry(ctx, recs[0], herr); err != nil {
			return err
		}
		recs = recs[1:]
	}
	return nil
}

var errAbort = errors.New("projection: batch aborted")

// tryBatch applies recs in one Update. If the handler fails on recs[i], it
// applies recs[:i] alone and returns i and the handler's error.
func (r *runner) tryBatch(ctx context.Context, recs []eventstore.Record) (int, error, error) {
	failed := -1
	var herr error
	clear(r.offsets)
	err := r.p.s.Update(ctx, func(txn eventstore.Txn) error {
		clear(r.offsets)
		if err := r.checkGen(txn); err != nil {
			return err
		}
		tx := newTx(txn, r.p, r.gen)
		defer tx.close()
		for i := range recs {
			rec := &recs[i]
			tp := eventstore.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}
			skip, err := r.isParked(tx, tp, rec.Offset)
			if err != nil {
				return err
			}
			if !skip {
				if err := r.p.call(tx, *rec); err != nil {
					failed, herr = i, err
					return errAbort
				}
			}
			r.offsets[tp] = rec.Offset + 1
		}
		if err := tx.flush(); err != nil {
			return err
		}
		return txn.CommitOffsets(r.c, r.offsets)
	})
	if errors.Is(err, errAbort) {
		if failed == 0 {
			return 0, herr, nil
		}
		n, herr2, err := r.tryBatch(ctx, recs[:failed])
		if err != nil || herr2 != nil {
			return n, herr2, err
		}
		return failed, herr, nil
	}
	if err != nil {
		return 0, nil, r.wrap(err)
	}
	r.committed(r.offsets, len(recs))
	return len(recs), nil, nil
}

func (r *runner) wrap(err error) error {
	if errors.Is(err, errGenChanged) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("projection %q: apply batch: %w", r.p.name, err)
}

// committed records offsets that an Update committed.
func (r *runner) committed(offsets map[eventstore.TopicPartition]int64, recs int) {
	for tp, off := range offsets {
		r.positions[tp] = off
	}
	if r.live {
		var state *State
		if r.caughtUp {
			live := StateLive
			state = &live
		}
		r.p.setPositionsState(offsets, false, state)
	}
}

// checkGen makes a live runner's Update fail if a rebuild swapped the
// generation: its writes would land in a deleted generation.
func (r *runner) checkGen(txn eventstore.Txn) error {
	if !r.live {
		return nil
	}
	v, ok, err := txn.Get(r.p.genKey())
	if err != nil {
		return err
	}
	gen := uint64(1)
	if ok {
		if gen, err = decodeGen(v); err != nil {
			return err
		}
	}
	if gen != r.gen {
		return errGenChanged
	}
	return nil
}

// call runs the handler, turning a panic into an error.
func (p *Projection) call(tx *Tx, rec eventstore.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Permanent(fmt.Errorf("handler panicked: %v", v))
		}
	}()
	return p.handler.Handle(tx, rec)
}

// retry runs rec's handler again, alone, after backoffs, and applies the
// ErrorPolicy if it keeps failing.
func (r *runner) retry(ctx context.Context, rec eventstore.Record, herr error) error {
	attempts := 1
	var perm *PermanentError
	for attempts <= r.p.opts.retries && !errors.As(herr, &perm) {
		if err := r.p.opts.sleep(ctx, r.p.opts.backoff(attempts)); err != nil {
			return err
		}
		attempts++
		_, e, err := r.tryBatch(ctx, []eventstore.Record{rec})
		if err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		herr = e
	}
	he := &HandlerError{Projection: r.p.name, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
		EventType: rec.Type, Attempts: attempts, Err: herr}
	if r.p.opts.policy == Stop {
		return he
	}
	return r.park(ctx, rec, he)
}

// WaitFor returns once the projection has applied every position (the
// record at each Offset) in its current generation, or when ctx ends, with
// an error wrapping ErrNotReached and ctx's error; give ctx a timeout. It
// fails at once with ErrFailed if Run has failed, and with
// ErrInvalidArgument for a position outside the projection's topics. It is
// woken by commits, not by polling.
func (p *Projection) WaitFor(ctx context.Context, positions ...Position) error {
	for _, pos := range positions {
		n, ok := p.parts[pos.Topic]
		if !ok {
			return invalid("position", "%s: topic %q is not consumed by projection %q", pos, pos.Topic, p.name)
		}
		if pos.Partition < 0 || pos.Partition >= n || pos.Offset < 0 {
			return invalid("position", "%s: no such partition or offset (topic has %d partitions)", pos, n)
		}
	}
	if err := p.load(ctx); err != nil {
		return err
	}
	for {
		p.st.Lock()
		var missing *Position
		for i, pos := range positions {
			if p.st.positions[eventstore.TopicPartition{Topic: pos.Topic, Partition: pos.Partition}] <= pos.Offset {
				missing = &positions[i]
				break
			}
		}
		state, serr, ch := p.st.state, p.st.err, p.st.advanced
		reached := int64(0)
		if missing != nil {
			reached = p.st.positions[eventstore.TopicPartition{Topic: missing.Topic, Partition: missing.Partition}]
		}
		p.st.Unlock()
		if missing == nil {
			return nil
		}
		if state == StateFailed {
			return fmt.Errorf("projection %q: waiting for %s: %w: %v", p.name, missing, ErrFailed, serr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("projection %q: waiting for %s (applied up to offset %d): %w: %w",
				p.name, missing, reached-1, ErrNotReached, ctx.Err())
		}
	}
}

// PartitionStatus is a projection's position on one partition.
type PartitionStatus struct {
	eventstore.TopicPartition
	// Position is the committed next offset to apply.
	Position int64
	// End is the partition's end offset.
	End int64
	// Lag is End - Position (never negative).
	Lag int64
}

// Status is a snapshot of a projection.
type Status struct {
	Name       string
	State      State
	Err        error
	Generation uint64
	Partitions []PartitionStatus
	// Lag is the sum of the partitions' lags.
	Lag int64
	// Rebuild is the progress of a running rebuild, or nil.
	Rebuild *Progress
}

// Status returns the projection's state and its position and lag per
// partition. It is safe to call at any time, also while Run runs.
func (p *Projection) Status(ctx context.Context) (Status, error) {
	if err := p.load(ctx); err != nil {
		return Status{}, err
	}
	p.mu.RLock()
	gen := p.gen
	p.mu.RUnlock()
	st := Status{Name: p.name, Generation: gen}
	p.st.Lock()
	st.State, st.Err = p.st.state, p.st.err
	positions := maps.Clone(p.st.positions)
	if p.st.rebuild != nil {
		pr := *p.st.rebuild
		st.Rebuild = &pr
	}
	p.st.Unlock()
	for _, t := range p.topics {
		info, err := p.s.DescribeTopic(ctx, t)
		if err != nil {
			return Status{}, err
		}
		for _, pi := range info.Partitions {
			tp := eventstore.TopicPartition{Topic: t, Partition: pi.Partition}
			pos := max(positions[tp], pi.StartOffset)
			ps := PartitionStatus{TopicPartition: tp, Position: positions[tp], End: pi.EndOffset, Lag: max(pi.EndOffset-pos, 0)}
			st.Partitions = append(st.Partitions, ps)
			st.Lag += ps.Lag
		}
	}
	return st, nil
}
