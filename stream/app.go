package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of an App.
const (
	// DefaultBatchSize is how many records an App polls and commits at most
	// at a time.
	DefaultBatchSize = 10000
	// appendWorkers bounds the goroutines that write a batch's output.
	appendWorkers = 8
	// inboxBatches bounds the records an App holds polled but unprocessed,
	// in batches.
	inboxBatches = 2
)

// Headers of the records sinks write.
const (
	// HeaderSource is "topic/partition/offset" of the input record that
	// produced a sink's record.
	HeaderSource = "stream-source"
	// HeaderIndex is the output's index among the records the same input
	// record produced for the same sink.
	HeaderIndex = "stream-index"
)

// ErrBadRecord is wrapped by the error that stops an App on a record it
// cannot decode (see SkipBadRecords).
var ErrBadRecord = errors.New("stream: bad record")

// idNamespace is the UUIDv5 namespace of the event IDs sinks derive.
var idNamespace = uuid.MustParse("6f1d5c1e-8d8a-4a57-9a43-3c2b0a5f7e10")

// Option configures NewApp.
type Option func(*config)

type config struct {
	batchSize int
	memberID  string
	skipBad   bool
	onLate    func(LateRecord)
	clock     clock.Clock
	logger    *slog.Logger
	// tracerProvider is WithTracerProvider's (trace.go); nil for the
	// default.
	tracerProvider trace.TracerProvider
}

// WithBatchSize sets how many records the App polls, processes and commits
// at most at a time (default DefaultBatchSize). Larger batches write state
// less often; a crash reprocesses at most one batch.
func WithBatchSize(n int) Option { return func(c *config) { c.batchSize = n } }

// WithMemberID sets the App's member ID in its consumer group (default: the
// application ID and a random suffix). Several Apps of one topology and
// application ID in a process share the partitions.
func WithMemberID(id string) Option { return func(c *config) { c.memberID = id } }

// SkipBadRecords makes the App skip, and count in Metrics.SkippedRecords,
// records whose key or value its codecs cannot decode. By default such a
// record stops Run with a *consume.HandlerError naming its position and
// wrapping ErrBadRecord, after the records before it commit, and the App
// resumes at it after a restart.
func SkipBadRecords() Option { return func(c *config) { c.skipBad = true } }

// WithLateRecordHandler calls fn for each record a windowed step drops as
// late, after the batch that dropped it commits (so a crash may report a
// record again). fn runs on the App's goroutine: keep it quick.
func WithLateRecordHandler(fn func(LateRecord)) Option { return func(c *config) { c.onLate = fn } }

// WithClock sets the clock Status measures the age of unprocessed records
// by (default clock.System()).
func WithClock(c clock.Clock) Option { return func(cfg *config) { cfg.clock = c } }

// WithLogger sets where the App logs its starts, stops and failures
// (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// LateRecord describes a record dropped by a windowed step because it arrived
// after the grace period of one or more of its windows.
type LateRecord struct {
	// Store is the window store of the windowed step.
	Store string
	// Topic, Partition and Offset are the input record's position.
	Topic     string
	Partition int
	Offset    int64
	// Timestamp is the record's event time, StreamTime the partition's
	// stream time when it arrived.
	Timestamp  time.Time
	StreamTime time.Time
	// Windows is how many of its windows it was too late for.
	Windows int
}

// Metrics are an App's counters, kept in the state space and committed
// with the state, so they count each input record once across restarts
// and whichever member of the group processed it.
type Metrics struct {
	// ProcessedRecords counts input records processed and committed, from
	// source and repartition topics.
	ProcessedRecords int64 `json:"processed_records"`
	// SkippedRecords counts tombstones on stream sources and, with
	// SkipBadRecords, records that did not decode.
	SkippedRecords int64 `json:"skipped_records"`
	// DuplicateRecords counts repartition records dropped because they were
	// already processed (rewritten after a crash).
	DuplicateRecords int64 `json:"duplicate_records"`
	// LateRecords counts, per window store, records dropped as late: too
	// late for at least one of their windows (a record of hopping windows
	// may still count in the others).
	LateRecords map[string]int64 `json:"late_records"`
}

// Status is a snapshot of an App, ready to marshal to JSON: the status of
// its consume loop (state, position and lag on every partition of its
// source and repartition topics, in records and seconds, counters of this
// process, the last error) and the App's committed Metrics. Partitions are
// known once a Run of the App in this process has joined its group.
type Status struct {
	consume.Status
	Metrics Metrics `json:"metrics"`
}

// App runs a Topology on a store: it consumes the source topics (and its
// repartition topics) as the consumer group named by its application ID,
// pushes each polled batch of records through the processors, and commits
// the batch's state store changes, counters and the group's offsets in one
// Store.Update, on a consume.Loop. State is therefore exactly once with
// respect to the input: after a crash the batch is processed again from
// the committed state.
//
// Internal topics are named after the application ID: repartition topics
// "<appID>-<name>-repartition" (created, cleanup Retain) and one compacted
// changelog per store, "<appID>-<store>-changelog" (created), to which each
// batch appends the final value of every key it changed (a nil payload when
// it removed one) before it commits. The state space is authoritative; the
// changelog is for inspection and restoring. When an App starts and finds a
// store's state missing (for example, its keys were deleted to rebuild it) it
// restores the store from the changelog up to the offsets recorded with the
// last commit.
type App struct {
	store eventstore.Store
	topo  *Topology
	id    string
	cfg   config
	loop  *consume.Loop

	keys   appKeys
	stores map[*storeDef]*storeKeys
	// sources are the topology's sources by the name of the topic they
	// read; topics are those names, in the topology's order.
	sources map[string]*source
	topics  []string
	// scratch has buffers per topology node, used by the Run goroutine only.
	scratch []scratch

	running atomic.Bool
	mu      struct {
		sync.Mutex
		// ready is set while a Run has restored its stores and joined its
		// group; err is why the last Run failed.
		ready bool
		err   error
		// waiters is what WaitCaughtUp waits on, while a Run runs.
		waiters *waiters
	}
	// own are the waiters of an App whose store cannot key the registry.
	own *waiters
	// beforeUpdate, if set (by tests), runs between a batch's writes and its
	// Update; an error stops Run as a crash there would.
	beforeUpdate func() error
	// waitHook, if set (by tests), runs each time WaitCaughtUp is about to
	// wait.
	waitHook func()
}

// NewApp returns an App that runs topo on store as application appID, the
// name of its consumer group and the prefix of its internal topics, and its
// name in the state space (see the package documentation). It reports
// every problem with the topology, the names and the options at once, in an
// error wrapping eventstore.ErrInvalidArgument; it does no I/O.
func NewApp(store eventstore.Store, topo *Topology, appID string, opts ...Option) (*App, error) {
	cfg := config{batchSize: DefaultBatchSize}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	var errs []error
	if store == nil {
		errs = append(errs, invalid("store is nil"))
	}
	if topo == nil {
		errs = append(errs, invalid("topology is nil"))
	} else if err := topo.Err(); err != nil {
		errs = append(errs, err)
	}
	idErr := eventstore.ValidateName("stream application ID", appID)
	errs = append(errs, idErr)
	if topo != nil && idErr == nil {
		derived := func(what, name string) {
			if err := eventstore.ValidateName(what, name); err != nil {
				errs = append(errs, fmt.Errorf("stream: app %q: %s %q must fit eventstore.MaxNameLen (%d bytes): %w",
					appID, what, name, eventstore.MaxNameLen, err))
			}
		}
		for _, s := range topo.stores {
			derived(fmt.Sprintf("the changelog topic of store %q", s.name), changelogTopic(appID, s))
		}
		for _, s := range topo.sources {
			if s.internal {
				derived("the repartition topic", topicName(appID, s.topic, true))
			}
		}
	}
	if cfg.batchSize < 1 || cfg.batchSize > consume.MaxBatchSize {
		errs = append(errs, invalid("WithBatchSize must be in [1, %d], got %d", consume.MaxBatchSize, cfg.batchSize))
	}
	if cfg.memberID == "" {
		cfg.memberID = appID + "-" + uuid.NewString()[:8]
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	a := &App{store: store, topo: topo, id: appID, cfg: cfg, keys: newAppKeys(appID),
		stores: map[*storeDef]*storeKeys{}, sources: map[string]*source{}, own: &waiters{ch: make(chan struct{})}}
	for _, s := range topo.stores {
		a.stores[s] = newStoreKeys(a.keys, s.name)
	}
	for _, s := range topo.sources {
		name := topicName(appID, s.topic, s.internal)
		a.sources[name] = s
		a.topics = append(a.topics, name)
	}
	a.scratch = make([]scratch, len(topo.nodes))
	loop, err := consume.NewFrom(store, appID, a.open, &handler{a: a},
		consume.WithBatchSize(cfg.batchSize), consume.WithRetries(0), consume.WithClock(cfg.clock),
		consume.WithLogger(cfg.logger), consume.WithTracerProvider(cfg.tracerProvider))
	if err != nil {
		return nil, err
	}
	a.loop = loop
	return a, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: stream: %s", eventstore.ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// scratch holds a processor's buffers for encoded keys and state keys. Each
// processor has its own: a processor downstream of another runs while the
// upstream one still holds its buffers.
type scratch struct {
	key, state []byte
}

// ID returns the application ID.
func (a *App) ID() string { return a.id }

func changelogTopic(appID string, st *storeDef) string { return appID + "-" + st.name + "-changelog" }

func (a *App) changelogTopic(st *storeDef) string { return changelogTopic(a.id, st) }

// prepare checks the source topics and creates the internal and sink topics
// that are missing, with as many partitions as the largest source topic.
func (a *App) prepare(ctx context.Context) error {
	var errs []error
	partitions := 1
	for _, s := range a.topo.sources {
		if s.internal {
			continue
		}
		n, err := a.store.Partitions(s.topic)
		if err != nil {
			errs = append(errs, fmt.Errorf("stream: source topic %q: %w", s.topic, err))
			continue
		}
		partitions = max(partitions, n)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	create := func(name string, cfg eventstore.TopicConfig) error {
		if _, err := a.store.Partitions(name); err == nil {
			return nil
		}
		err := a.store.CreateTopic(ctx, name, cfg)
		if err != nil && !errors.Is(err, eventstore.ErrTopicExists) {
			return fmt.Errorf("stream: create topic %q: %w", name, err)
		}
		return nil
	}
	for _, s := range a.topo.sources {
		if s.internal {
			if err := create(topicName(a.id, s.topic, true), eventstore.TopicConfig{Partitions: partitions, Cleanup: eventstore.Retain}); err != nil {
				return err
			}
		}
	}
	for _, sk := range a.topo.sinks {
		if err := create(topicName(a.id, sk.topic, sk.internal), eventstore.TopicConfig{Partitions: partitions}); err != nil {
			return err
		}
	}
	for _, st := range a.topo.stores {
		if err := create(a.changelogTopic(st), eventstore.TopicConfig{Partitions: partitions, Cleanup: eventstore.Compact}); err != nil {
			return err
		}
	}
	return nil
}

// Run runs the App until ctx ends (then it returns nil) or an error stops
// it: a record that fails (see SkipBadRecords) stops it with a
// *consume.HandlerError. It may be called again after it returned; the App
// then resumes from its committed offsets and state. Only one Run of an App
// may run at a time: another returns an error wrapping consume.ErrRunning.
func (a *App) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return fmt.Errorf("stream: app %q: %w", a.id, consume.ErrRunning)
	}
	defer a.running.Store(false)
	w := a.joinWaiters()
	defer w.release()
	a.mu.Lock()
	a.mu.err, a.mu.waiters = nil, w
	a.mu.Unlock()
	err := a.run(ctx)
	if ctx.Err() != nil {
		err = nil
	}
	a.mu.Lock()
	a.mu.ready, a.mu.err, a.mu.waiters = false, err, nil
	a.mu.Unlock()
	w.broadcast()
	return err
}

func (a *App) run(ctx context.Context) error {
	if err := a.prepare(ctx); err != nil {
		return err
	}
	for _, st := range a.topo.stores {
		if err := a.restore(ctx, st); err != nil {
			return err
		}
	}
	return a.loop.Run(ctx)
}

// open joins the App's group at the start of the loop's Run and reads it
// through an inbox.
func (a *App) open(ctx context.Context) (consume.Source, error) {
	g, err := consume.JoinGroup(ctx, a.store, a.id, a.topics, eventstore.WithMemberID(a.cfg.memberID))
	if err != nil {
		return nil, fmt.Errorf("stream: app %q: join group: %w", a.id, err)
	}
	a.mu.Lock()
	a.mu.ready = true
	w := a.mu.waiters
	a.mu.Unlock()
	w.broadcast()
	return newInboxSource(a, g), nil
}

// idle tells WaitCaughtUp that this member has applied everything it can
// read.
func (a *App) idle() {
	a.mu.Lock()
	w := a.mu.waiters
	a.mu.Unlock()
	w.broadcast()
}

// Status returns the App's status. It is safe to call at any time.
func (a *App) Status(ctx context.Context) (Status, error) {
	ls, err := a.loop.Status(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("stream: app %q: status: %w", a.id, err)
	}
	if ls.Group == "" {
		ls.Group = a.id
	}
	m, err := a.Metrics(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("stream: app %q: status: %w", a.id, err)
	}
	return Status{Status: ls, Metrics: m}, nil
}

// WaitFor returns once this App has applied and committed the records at
// positions (of its source or repartition topics), or when ctx ends (an
// error wrapping consume.ErrNotReached), or at once with an error wrapping
// consume.ErrFailed if its Run has failed; see consume.Loop.WaitFor. It
// knows only the progress of this member of the group, and of what the
// group had committed when this member's Run started.
func (a *App) WaitFor(ctx context.Context, positions ...eventstore.Position) error {
	return a.loop.WaitFor(ctx, positions...)
}

// Metrics returns the App's committed counters.
func (a *App) Metrics(ctx context.Context) (Metrics, error) {
	m := Metrics{LateRecords: map[string]int64{}}
	get := func(what string, key []byte) (int64, error) {
		v, ok, err := a.store.Get(ctx, key)
		if err != nil || !ok {
			return 0, err
		}
		return readCounter(what, v)
	}
	var errs []error
	var err error
	m.ProcessedRecords, err = get("metric processed", a.keys.metric.String("processed"))
	errs = append(errs, err)
	m.SkippedRecords, err = get("metric skipped", a.keys.metric.String("skipped"))
	errs = append(errs, err)
	m.DuplicateRecords, err = get("metric duplicates", a.keys.metric.String("duplicates"))
	errs = append(errs, err)
	for _, st := range a.topo.stores {
		if st.kind == windowStore {
			m.LateRecords[st.name], err = get("late records of "+st.name, a.stores[st].late)
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}
