package projection

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
)

// ErrInvalidArgument is wrapped by every error about bad input: a bad
// name, option, key, position or pagination token. It is the framework's
// one bad-input error, eventstore.ErrInvalidArgument.
var ErrInvalidArgument = eventstore.ErrInvalidArgument

// errGenChanged fails a batch of a live loop whose generation a rebuild
// swapped out; Run goes on with the new generation.
var errGenChanged = errors.New("projection: generation changed")

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}

// Position is a place in the log, eventstore.Position: the record at Offset
// of a topic's partition. A projection has reached it once it has applied
// that record. Its text form is "topic/partition@offset"
// (eventstore.ParsePosition reads it back), so a client can carry it
// from a command's response to a query.
type Position = eventstore.Position

// PositionOf returns the position of what r appended: an
// eventstore.AppendResult or a command.Result (the position of its last
// event; a command that appended nothing has Offset -1, which every
// projection has reached). A projection that has reached it has applied
// everything r appended.
func PositionOf(r interface{ Position() eventstore.Position }) Position { return r.Position() }

// Projection consumes topics with a consume.Loop and maintains a read model
// (its tables) in the store's state space. The read model and the loop's
// progress are written in one batch per polled batch of records, so a
// crash never applies a record twice nor skips one.
//
// The read model is kept per generation (see the package documentation for
// the key layout). Queries read the current generation; Rebuild builds the
// next one from offset zero and swaps it in. Each generation has its own
// consumer group, "projection.<name>.<0|1>" (alternating), whose offsets
// are the generation's checkpoint.
//
// Run one Projection per name and store: a second runner of the same name
// in the process is refused.
type Projection struct {
	s       eventstore.Store
	name    string
	topics  []string
	handler Handler
	opts    options
	key     keyspace.Key

	running atomic.Bool
	// rebuilding is held by a running Rebuild.
	rebuilding sync.Mutex

	// mu guards the generation: queries read under RLock; a swap, and the
	// start and end of the live loop's runs, hold Lock.
	mu     sync.RWMutex
	loaded bool
	gen    uint64
	// loop is the current generation's live consume loop.
	loop *consume.Loop
	// base holds committed positions of the current generation learnt
	// when it became current (loaded from the store, or the rebuild's), so
	// that WaitFor knows them before the loop has run.
	base map[eventstore.TopicPartition]int64
	// stopLive ends the live loop's run, and liveDone is closed once it
	// has returned; both are set while Run runs the loop.
	stopLive context.CancelFunc
	liveDone chan struct{}

	st struct {
		sync.Mutex
		// err is why Run failed outside the loop (loading, waiting for
		// topics); stopped is set when Run returned before the loop ran.
		err     error
		stopped bool
		rebuild *Progress
		// changed is closed and replaced when the generation or the
		// projection's own state changes, for WaitFor.
		changed chan struct{}
	}
}

// New returns a projection called name (checked with
// eventstore.ValidateName; its consumer group names, name with
// "projection." before and ".0" or ".1" after, must fit
// eventstore.MaxNameLen too) of topics, applying every record with handler.
// It does no I/O: the topics need not exist yet, and Run waits for them
// (see Run). Every problem with the arguments is reported at once.
func New(s eventstore.Store, name string, topics []string, handler Handler, opts ...Option) (*Projection, error) {
	o := newOptions(opts)
	var errs []error
	nameOK := true
	if err := eventstore.ValidateName("projection", name); err != nil {
		errs, nameOK = append(errs, err), false
	} else if g := groupName(name, 0); len(g) > eventstore.MaxNameLen {
		errs, nameOK = append(errs, invalid("projection", "name %q is %d bytes, too long for its consumer groups (%q is %d bytes, longer than %d); use at most %d",
			name, len(name), g, len(g), eventstore.MaxNameLen, eventstore.MaxNameLen-len(g)+len(name))), false
	}
	if handler == nil {
		errs = append(errs, invalid("handler", "is nil"))
	}
	switch {
	case o.policy.String() == consume.HandOff().String():
		errs = append(errs, invalid("WithErrorPolicy", "%s needs a batch with a Fail method, which a projection's has not; use consume.Stop, consume.Park or consume.DeadLetter", o.policy))
	case o.policy.DeadLetterTopic() != "" && slices.Contains(topics, o.policy.DeadLetterTopic()):
		errs = append(errs, invalid("WithErrorPolicy", "the dead-letter topic %q is one the projection consumes", o.policy.DeadLetterTopic()))
	}
	p := &Projection{s: s, name: name, topics: slices.Clone(topics), handler: handler, opts: o,
		key: keyspace.New(keyspace.Projection, name)}
	p.st.changed = make(chan struct{})
	// A generation's loop checks the store, the topics and the loop's
	// options, without I/O (under a stand-in group name if name is bad).
	group := groupName("x", 1)
	if nameOK {
		group = p.groupName(1)
	}
	if _, err := p.newLoopIn(group, 1); err != nil {
		// Without consume's prefix, which names the stand-in.
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		errs = append(errs, err)
	}
	if o.metersSet && o.meters == nil {
		errs = append(errs, invalid("WithMeterProvider", "nil meter provider"))
	}
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
	if err := p.registerMetrics(); err != nil {
		return nil, fmt.Errorf("projection: new %q: metrics: %w", name, err)
	}
	return p, nil
}

// Name returns the projection's name.
func (p *Projection) Name() string { return p.name }

// Topics returns the topics the projection consumes.
func (p *Projection) Topics() []string { return slices.Clone(p.topics) }

// DeadLetterTopic returns the topic the Park policy puts records in, ""
// under another policy.
func (p *Projection) DeadLetterTopic() string { return p.opts.policy.DeadLetterTopic() }

func (p *Projection) genKey() []byte      { return p.key.String("gen") }
func (p *Projection) buildingKey() []byte { return p.key.String("building") }

// genPrefix is the key of everything a generation holds.
func (p *Projection) genPrefix(gen uint64) keyspace.Key { return p.key.String("g").Uint(gen) }

// groupName is the consumer group of a generation. Two names alternate, so
// that a rebuild's group never is the live one and no stale group's offsets
// pile up; a rebuild resets its group's offsets to zero first.
func (p *Projection) groupName(gen uint64) string { return groupName(p.name, gen) }

func groupName(name string, gen uint64) string {
	return "projection." + name + "." + strconv.FormatUint(gen%2, 10)
}

func encodeGen(gen uint64) []byte { return binary.BigEndian.AppendUint64(nil, gen) }

func decodeGen(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("projection: generation value has %d bytes, want 8: %w", len(v), eventstore.ErrCorrupt)
	}
	return binary.BigEndian.Uint64(v), nil
}

// loopOptions are the options of the consume loops of generation gen.
func (p *Projection) loopOptions(gen uint64) []consume.Option {
	o := p.opts
	return []consume.Option{
		consume.WithBatchSize(o.batch), consume.WithRetries(o.retries), consume.WithBackoff(o.backoff),
		consume.WithClock(o.clock), consume.WithLogger(o.logger), consume.WithErrorPolicy(o.policy),
		consume.WithTracerProvider(o.tracerProvider),
		// A generation's park marks are the generation's: a rebuild starts
		// without them, and the swap deletes them with the old generation.
		consume.WithStatePrefix(p.genPrefix(gen)),
		consume.WithMeterProvider(noMeters),
		consume.WithDeadLetterHeaders(map[string]string{
			HeaderProjection: p.name,
			HeaderGeneration: strconv.FormatUint(gen, 10),
		}),
	}
}

// newLoop returns the live loop of generation gen.
func (p *Projection) newLoop(gen uint64) (*consume.Loop, error) {
	return p.newLoopIn(p.groupName(gen), gen)
}

// newLoopIn returns the live loop of generation gen in group. Its member ID
// is "live-" and a random suffix: several replicas of a service on one
// shared store run the same projection as members of one group, each
// needing an ID of its own.
func (p *Projection) newLoopIn(group string, gen uint64) (*consume.Loop, error) {
	member := "live-" + uuid.NewString()[:8]
	return consume.New(p.s, group, p.topics, &genHandler{p: p, gen: gen, live: true},
		append(p.loopOptions(gen), consume.WithConsumerOptions(eventstore.WithMemberID(member)))...)
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
			return fmt.Errorf("projection %q: load generation: %w", p.name, err)
		}
	}
	base, err := p.committed(ctx, gen)
	if err != nil {
		return fmt.Errorf("projection %q: load checkpoint: %w", p.name, err)
	}
	l, err := p.newLoop(gen)
	if err != nil {
		return err
	}
	p.gen, p.loop, p.base, p.loaded = gen, l, base, true
	return nil
}

// committed returns the committed offsets of generation gen's group on the
// partitions of the topics that exist.
func (p *Projection) committed(ctx context.Context, gen uint64) (map[eventstore.TopicPartition]int64, error) {
	out := map[eventstore.TopicPartition]int64{}
	for _, t := range p.topics {
		n, err := p.s.Partitions(t)
		if errors.Is(err, eventstore.ErrTopicNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for part := range n {
			off, ok, err := p.s.CommittedOffset(ctx, p.groupName(gen), t, part)
			if err != nil {
				return nil, err
			}
			if ok {
				out[eventstore.TopicPartition{Topic: t, Partition: part}] = off
			}
		}
	}
	return out, nil
}

// hold returns the current generation and its live loop, holding the
// generation until unlock: a rebuild's swap, which deletes the old
// generation, waits for it.
func (p *Projection) hold(ctx context.Context) (gen uint64, l *consume.Loop, unlock func(), err error) {
	if err := p.load(ctx); err != nil {
		return 0, nil, nil, err
	}
	p.mu.RLock()
	return p.gen, p.loop, p.mu.RUnlock, nil
}

// current returns the current generation and its live loop.
func (p *Projection) current(ctx context.Context) (uint64, *consume.Loop, error) {
	gen, l, unlock, err := p.hold(ctx)
	if err != nil {
		return 0, nil, err
	}
	unlock()
	return gen, l, nil
}

// Generation returns the generation queries read.
func (p *Projection) Generation(ctx context.Context) (uint64, error) {
	gen, _, err := p.current(ctx)
	return gen, err
}

// signalLocked wakes WaitFor; p.st is held.
func (p *Projection) signalLocked() {
	close(p.st.changed)
	p.st.changed = make(chan struct{})
}

func (p *Projection) setRunState(err error, stopped bool) {
	p.st.Lock()
	defer p.st.Unlock()
	p.st.err, p.st.stopped = err, stopped
	p.signalLocked()
}

// Run consumes the projection's topics until ctx ends (then it returns
// nil) or a record fails under the Stop policy (then it returns the
// *consume.HandlerError). It resumes from the checkpoint of the current
// generation, applies records in batches of up to WithBatchSize, each
// batch with its checkpoint in one durable Update, and follows the log
// live once caught up. When a Rebuild swaps in a new generation, Run
// continues on it.
//
// Topics that do not exist yet are waited for: a projection may start
// before the aggregate or stream that owns its topic has created it
// (command.Register creates an aggregate's topics), and Run does not
// create them, since only their owner knows their partition count. The
// store has no notice of new topics, so Run looks for them again after a
// back-off on the projection's clock (10 ms, doubling, at most 1 s);
// Status lists them as MissingTopics meanwhile.
func (p *Projection) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return fmt.Errorf("projection %q: Run: %w", p.name, consume.ErrRunning)
	}
	defer p.running.Store(false)
	p.setRunState(nil, false)
	if err := p.prepare(ctx); err != nil {
		if ctx.Err() != nil {
			p.setRunState(nil, true)
			return nil
		}
		p.setRunState(err, false)
		return err
	}
	for {
		p.mu.Lock()
		gen, l := p.gen, p.loop
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		p.stopLive, p.liveDone = cancel, done
		p.mu.Unlock()
		err := l.Run(lctx)
		cancel()
		p.mu.Lock()
		p.stopLive, p.liveDone = nil, nil
		swapped := p.gen != gen
		p.mu.Unlock()
		close(done)
		switch {
		case ctx.Err() != nil:
			return nil
		case swapped:
			// A rebuild swapped the generation: the loop was stopped, or
			// its batch refused (errGenChanged). Go on with the new one.
			p.opts.logger.Info("projection: continuing on the rebuilt generation", "projection", p.name, "generation", gen+1)
			continue
		}
		return err
	}
}

// prepare readies a run: the current generation, the topics, and no
// abandoned rebuild.
func (p *Projection) prepare(ctx context.Context) error {
	if err := p.load(ctx); err != nil {
		return err
	}
	if err := p.awaitTopics(ctx); err != nil {
		return err
	}
	return p.dropAbandonedRebuild(ctx)
}

// topicWait is the back-off between looks for topics that do not exist.
var topicWait = clock.Backoff{Initial: 10 * time.Millisecond, Max: time.Second, Multiplier: 2}

// awaitTopics returns once every topic exists, or with ctx's error.
func (p *Projection) awaitTopics(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		missing, err := p.missingTopics()
		if err != nil || len(missing) == 0 {
			return err
		}
		if attempt == 1 {
			p.opts.logger.Info("projection: waiting for topics to be created", "projection", p.name, "topics", missing)
		}
		if err := clock.Sleep(ctx, p.opts.clock, topicWait.Delay(attempt)); err != nil {
			return err
		}
	}
}

// missingTopics returns the topics of the projection that do not exist.
func (p *Projection) missingTopics() ([]string, error) {
	var missing []string
	for _, t := range p.topics {
		_, err := p.s.Partitions(t)
		if errors.Is(err, eventstore.ErrTopicNotFound) {
			missing = append(missing, t)
		} else if err != nil {
			return nil, fmt.Errorf("projection %q: topic %q: %w", p.name, t, err)
		}
	}
	return missing, nil
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
			if err := txn.DeleteRange(p.genPrefix(b).Range()); err != nil {
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

// WaitFor returns once the projection has applied every position (the
// record at each Offset) in its current generation, or when ctx ends, with
// an error wrapping consume.ErrNotReached and ctx's error; give ctx a
// timeout. A position with Offset -1 (a command that appended nothing) is
// reached at once. It fails at once with consume.ErrFailed if Run has
// failed, and with ErrInvalidArgument for a position outside the
// projection's topics. It is woken by commits and swaps, not by polling.
func (p *Projection) WaitFor(ctx context.Context, positions ...Position) error {
	var want []Position
	for _, pos := range positions {
		if pos.Offset == -1 {
			continue // nothing was appended: reached
		}
		if !slices.Contains(p.topics, pos.Topic) {
			return invalid("position", "%s: topic %q is not consumed by projection %q", pos, pos.Topic, p.name)
		}
		if pos.Offset < 0 || pos.Partition < 0 {
			return invalid("position", "%s: no such partition or offset", pos)
		}
		n, err := p.s.Partitions(pos.Topic)
		if err != nil && !errors.Is(err, eventstore.ErrTopicNotFound) {
			return fmt.Errorf("projection %q: wait for %s: %w", p.name, pos, err)
		}
		if err == nil && pos.Partition >= n {
			return invalid("position", "%s: no such partition (topic %q has %d)", pos, pos.Topic, n)
		}
		want = append(want, pos)
	}
	if len(want) == 0 {
		return nil
	}
	if err := p.load(ctx); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			// The context ended while reading where the projection is: not
			// reached, as if it had ended in the wait below.
			return fmt.Errorf("projection %q: waiting for %s: %w: %w", p.name, &want[0], consume.ErrNotReached, cerr)
		}
		return err
	}
	for {
		p.mu.RLock()
		l, base := p.loop, p.base
		p.mu.RUnlock()
		p.st.Lock()
		ferr, ch := p.st.err, p.st.changed
		p.st.Unlock()
		lch := l.Changed()
		got := l.Positions()
		var missing *Position
		var reached int64
		for i, pos := range want {
			tp := pos.TopicPartition()
			if r := max(got[tp], base[tp]); r <= pos.Offset {
				missing, reached = &want[i], r
				break
			}
		}
		if missing == nil {
			return nil
		}
		if ferr != nil {
			return fmt.Errorf("projection %q: waiting for %s: %w: %v", p.name, missing, consume.ErrFailed, ferr)
		}
		if l.State() == consume.StateFailed {
			p.mu.RLock()
			same := p.loop == l
			p.mu.RUnlock()
			if same {
				st, _ := l.Status(ctx)
				return fmt.Errorf("projection %q: waiting for %s: %w: %s", p.name, missing, consume.ErrFailed, st.Error)
			}
			continue // a swap outran the old loop: wait on the new one
		}
		select {
		case <-lch:
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("projection %q: waiting for %s (applied up to offset %d): %w: %w",
				p.name, missing, reached-1, consume.ErrNotReached, ctx.Err())
		}
	}
}

// Status is a snapshot of a projection. It marshals to readable JSON: the
// consume.Status of the current generation's loop (named after the
// projection; its state and error as strings, position and lag per
// partition in records and lag_seconds, counters since the generation
// became current in this process), with the projection's own facts.
type Status struct {
	consume.Status
	// Generation is the generation queries read.
	Generation uint64 `json:"generation"`
	// Rebuild is the progress of a running rebuild, or nil.
	Rebuild *Progress `json:"rebuild,omitempty"`
	// MissingTopics are the projection's topics that do not exist (yet):
	// Run waits for them before it starts its loop.
	MissingTopics []string `json:"missing_topics,omitempty"`
}

// Status returns the projection's state, its position and lag per
// partition, its generation and the progress of a running rebuild. It is
// safe to call at any time, also while Run runs.
func (p *Projection) Status(ctx context.Context) (Status, error) {
	gen, l, err := p.current(ctx)
	if err != nil {
		return Status{}, err
	}
	missing, err := p.missingTopics()
	if err != nil {
		return Status{}, err
	}
	var cs consume.Status
	if len(missing) == 0 {
		if cs, err = l.Status(ctx); err != nil {
			return Status{}, fmt.Errorf("projection %q: %w", p.name, err)
		}
	} else {
		cs = consume.Status{Group: p.groupName(gen), State: l.State(), Policy: l.Policy().String()}
	}
	cs.Name = p.name
	st := Status{Status: cs, Generation: gen, MissingTopics: missing}
	p.st.Lock()
	ferr, stopped := p.st.err, p.st.stopped
	if p.st.rebuild != nil {
		pr := *p.st.rebuild
		st.Rebuild = &pr
	}
	p.st.Unlock()
	switch {
	case ferr != nil:
		st.State, st.Error = consume.StateFailed, ferr.Error()
	case st.State == consume.StateIdle && p.running.Load():
		// Run is waiting for topics, or moving to a new generation.
		st.State = consume.StateCatchingUp
	case st.State == consume.StateIdle && stopped:
		st.State = consume.StateStopped
	}
	return st, nil
}
