package aggregate

import (
	"errors"
	"fmt"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
)

// Decider is the behaviour of an aggregate, written as three plain
// functions over the aggregate's state S, its commands C and its events E.
// They are pure: Decide and Evolve do no I/O, and the framework calls them
// to rebuild state (from a snapshot and the events after it) and to handle
// each command.
type Decider[S, C, E any] struct {
	// Initial returns the state of an aggregate that has no events. Nil
	// means the zero S.
	Initial func() S
	// Decide returns the events that cmd causes in state, or an error that
	// rejects it (nothing is appended). Returning no events and no error
	// accepts the command without a change.
	Decide func(state S, cmd C) ([]E, error)
	// Evolve returns the state after event. It must accept every event
	// Decide ever returned (old events are replayed forever) and should not
	// fail: it records facts that happened. It may modify state in place
	// and return it.
	Evolve func(state S, event E) S
}

// Defaults of an aggregate definition.
const (
	// DefaultPartitions is the partition count of an aggregate's topics
	// when they are created by the repository.
	DefaultPartitions = 8
	// DefaultSnapshotSchema is the snapshot schema version when none is set.
	DefaultSnapshotSchema = 1
)

// SnapshotTopicSuffix is appended to the events topic's name to name the
// compacted topic that holds the aggregate's snapshots.
const SnapshotTopicSuffix = ".snapshots"

// Aggregate is the definition of one aggregate type: its name, Decider,
// event registry, topic and snapshot policy. It holds no state of its own
// and is safe for concurrent use.
type Aggregate[S, C, E any] struct {
	name    string
	decider Decider[S, C, E]
	events  *Events[E]
	cfg     config
}

type config struct {
	topic          string
	partitions     int
	snapshotEvery  int
	snapshotSchema int
	snapshotCodec  codec.Format
	cacheSize      int
	errs           []error
}

// Option configures an aggregate definition.
type Option func(*config)

// WithTopic sets the topic of the aggregate's events (default: the
// aggregate's name). Its snapshots go to the topic's name plus
// SnapshotTopicSuffix.
func WithTopic(name string) Option { return func(c *config) { c.topic = name } }

// WithPartitions sets the partition count used when the repository creates
// the aggregate's topics (default DefaultPartitions). Topics that exist keep
// their count.
func WithPartitions(n int) Option { return func(c *config) { c.partitions = n } }

// WithSnapshots makes the repository take a snapshot of the state every n
// events (when a save crosses a multiple of n). Zero, the default, takes
// none; Load still uses a snapshot it finds.
func WithSnapshots(every int) Option { return func(c *config) { c.snapshotEvery = every } }

// WithSnapshotSchema sets the schema version of the snapshot state (default
// DefaultSnapshotSchema). Raise it whenever S changes shape: snapshots of
// another version are ignored and the stream is replayed.
func WithSnapshotSchema(version int) Option { return func(c *config) { c.snapshotSchema = version } }

// WithSnapshotCodec sets the format of snapshot states (default
// codec.DefaultFormat: Protobuf if S is a proto message, JSON otherwise).
// With JSON, only S's exported fields survive a snapshot; aggregatetest
// checks that they do.
func WithSnapshotCodec(f codec.Format) Option { return func(c *config) { c.snapshotCodec = f } }

// WithCache keeps the state of the n most recently used aggregates in
// memory (default 0: none): as a plain copy if S holds no references
// (pointers, maps, slices, interfaces), else encoded with the snapshot
// codec. Load then
// decodes the cached state and reads only the events appended after it, so
// a busy aggregate costs no replay; the store stays the truth, so appends
// from elsewhere are picked up and conflicts still detected. With JSON,
// only S's exported fields survive the cache; aggregatetest checks that
// they do.
func WithCache(n int) Option { return func(c *config) { c.cacheSize = n } }

// New defines an aggregate type. name is a stable identifier, such as
// "order"; it is also the default topic, so it must be a valid topic name.
// New reports every problem at once.
func New[S, C, E any](name string, d Decider[S, C, E], events *Events[E], opts ...Option) (*Aggregate[S, C, E], error) {
	cfg := config{partitions: DefaultPartitions, snapshotSchema: DefaultSnapshotSchema, snapshotCodec: codec.DefaultFormat, topic: name}
	for _, o := range opts {
		if o == nil {
			cfg.errs = append(cfg.errs, errors.New("aggregate: nil option"))
			continue
		}
		o(&cfg)
	}
	errs := cfg.errs
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("aggregate %q: %s", name, fmt.Sprintf(format, args...)))
	}
	if name == "" {
		bad("the name is empty")
	}
	if d.Decide == nil {
		bad("Decider.Decide is nil")
	}
	if d.Evolve == nil {
		bad("Decider.Evolve is nil")
	}
	if events == nil {
		bad("the event registry is nil")
	}
	if err := eventstore.ValidateTopicName(cfg.topic); err != nil {
		bad("topic: %v", err)
	} else if err := eventstore.ValidateTopicName(cfg.topic + SnapshotTopicSuffix); err != nil {
		bad("snapshot topic: %v", err)
	}
	if cfg.partitions < 1 || cfg.partitions > eventstore.MaxPartitions {
		bad("WithPartitions: must be between 1 and %d, got %d", eventstore.MaxPartitions, cfg.partitions)
	}
	if cfg.snapshotEvery < 0 {
		bad("WithSnapshots: must not be negative, got %d", cfg.snapshotEvery)
	}
	if cfg.cacheSize < 0 {
		bad("WithCache: must not be negative, got %d", cfg.cacheSize)
	}
	if cfg.snapshotSchema < 1 {
		bad("WithSnapshotSchema: must be at least 1, got %d", cfg.snapshotSchema)
	}
	if cfg.snapshotCodec == nil {
		bad("WithSnapshotCodec: nil codec")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Aggregate[S, C, E]{name: name, decider: d, events: events, cfg: cfg}, nil
}

// Name returns the aggregate type's name.
func (a *Aggregate[S, C, E]) Name() string { return a.name }

// Topic returns the topic of the aggregate's events.
func (a *Aggregate[S, C, E]) Topic() string { return a.cfg.topic }

// SnapshotTopic returns the compacted topic of the aggregate's snapshots.
func (a *Aggregate[S, C, E]) SnapshotTopic() string { return a.cfg.topic + SnapshotTopicSuffix }

// Partitions returns the partition count the repository creates topics with.
func (a *Aggregate[S, C, E]) Partitions() int { return a.cfg.partitions }

// SnapshotEvery returns the snapshot interval in events (0: none).
func (a *Aggregate[S, C, E]) SnapshotEvery() int { return a.cfg.snapshotEvery }

// CacheSize returns how many aggregate states a repository caches (0:
// none).
func (a *Aggregate[S, C, E]) CacheSize() int { return a.cfg.cacheSize }

// SnapshotSchema returns the snapshot schema version.
func (a *Aggregate[S, C, E]) SnapshotSchema() int { return a.cfg.snapshotSchema }

// SnapshotCodec returns the format of snapshot states.
func (a *Aggregate[S, C, E]) SnapshotCodec() codec.Format { return a.cfg.snapshotCodec }

// Events returns the aggregate's event registry.
func (a *Aggregate[S, C, E]) Events() *Events[E] { return a.events }

// Initial returns the state of an aggregate without events.
func (a *Aggregate[S, C, E]) Initial() S {
	if a.decider.Initial == nil {
		var zero S
		return zero
	}
	return a.decider.Initial()
}

// Decide runs the Decider's Decide. A panic in it is returned as an error
// wrapping ErrPanic rather than taking the process down.
func (a *Aggregate[S, C, E]) Decide(state S, cmd C) (events []E, err error) {
	defer func() {
		if p := recover(); p != nil {
			events, err = nil, fmt.Errorf("%w: aggregate %q Decide: %v", ErrPanic, a.name, p)
		}
	}()
	return a.decider.Decide(state, cmd)
}

// Evolve applies events to state in order with the Decider's Evolve and
// returns the result. A panic in Evolve is returned as an error wrapping
// ErrPanic.
func (a *Aggregate[S, C, E]) Evolve(state S, events ...E) (out S, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: aggregate %q Evolve: %v", ErrPanic, a.name, p)
		}
	}()
	for _, e := range events {
		state = a.decider.Evolve(state, e)
	}
	return state, nil
}
