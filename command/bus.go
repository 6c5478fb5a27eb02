package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of a Bus.
const (
	// DefaultName is the bus name when WithName is not given; it divides
	// the idempotency records of buses that share a store.
	DefaultName = "default"
	// DefaultIdempotencyWindow is how long a command ID is remembered.
	DefaultIdempotencyWindow = 24 * time.Hour
	// DefaultPurgeInterval is how often Run purges expired idempotency
	// records.
	DefaultPurgeInterval = time.Minute
)

// Command is one command on its way through the bus, as middleware sees it.
type Command struct {
	// ID is the command's ID: the caller's (WithCommandID), which makes the
	// dispatch idempotent, or a new UUIDv7. It is the causation ID of the
	// events the command produces.
	ID string
	// AggregateType is the name of the aggregate the command goes to, and
	// AggregateID the instance.
	AggregateType string
	AggregateID   string
	// Type is the command's type name: its CommandType() if it has that
	// method, else its Go type (for logs and metrics only).
	Type string
	// Payload is the command value.
	Payload any
	// CorrelationID is the correlation ID of the request: from the context
	// (WithCorrelationID), else the command ID.
	CorrelationID string
	// CausationID is the ID of what caused the command (WithCausationID):
	// for a command a saga or policy issues, the ID of the event it reacts
	// to. When set, every event the command produces carries it in the
	// header CausationHeader (the events' own CausationID is the command
	// ID), so a trace can walk from an event to the command it caused and
	// on to that command's events.
	CausationID string
	// Headers go onto every event the command produces.
	Headers map[string]string
	// ExpectedVersion, if set, is the version the caller saw: the command
	// fails with KindAborted, without retries, if the aggregate has moved on.
	ExpectedVersion *uint64

	idempotent bool
}

func (c *Command) describe() string {
	if c.Type == "" {
		return c.ID
	}
	return c.Type + " " + c.ID
}

func (c *Command) describeAggregate() string {
	return c.AggregateType + "/" + c.AggregateID
}

// Result says what a dispatched command did.
type Result struct {
	// CommandID is the command's ID (given or generated).
	CommandID string
	// AggregateType and AggregateID name the aggregate the command went to.
	AggregateType string
	AggregateID   string
	// Topic and Partition are where the aggregate's events are.
	Topic     string
	Partition int
	// FirstOffset and LastOffset are the log positions of the events the
	// command appended; both -1 if it appended none.
	FirstOffset, LastOffset int64
	// FirstVersion is the stream version of the first event appended (0 if
	// none); Version is the aggregate's version after the command.
	FirstVersion, Version uint64
	// EventIDs are the IDs of the appended events, in order.
	EventIDs []uuid.UUID
	// At is when the command was applied.
	At time.Time
	// Duplicate is true when the command ID had been seen: the result is
	// the first dispatch's, and nothing was appended this time.
	Duplicate bool
	// Attempts counts the decide-and-append attempts (more than one after
	// version conflicts); 0 for a duplicate.
	Attempts int
}

// Position returns the position of the last event the command appended: a
// read model that has reached it reflects the command (read-your-writes). A
// command that appended nothing has a position with Offset -1 (on the
// aggregate's partition, if known), which every reader has reached. A
// duplicate's result carries the first dispatch's position.
func (r Result) Position() eventstore.Position {
	return eventstore.Position{Topic: r.Topic, Partition: r.Partition, Offset: r.LastOffset}
}

// HandlerFunc handles a command; middleware wraps one.
type HandlerFunc func(ctx context.Context, cmd *Command) (Result, error)

// Middleware wraps the bus's handling of every command: it may look at the
// command, refuse it, and observe the result. The first middleware given to
// WithMiddleware is the outermost.
type Middleware func(next HandlerFunc) HandlerFunc

// RetryPolicy bounds the retries after version conflicts: each retry
// reloads the aggregate, decides again and appends with the new version,
// after a Backoff wait on the bus's clock. DefaultRetryPolicy's back-off
// has Jitter 1, full jitter: a wait is random between zero and
// min(Max, Initial·2^(retry-1)), which spreads writers that conflicted
// with each other.
type RetryPolicy struct {
	// Retries is how many times a conflicting command is tried again after
	// its first attempt (default 9, so 10 attempts in all); zero means
	// none. (It replaces MaxAttempts, which counted the first attempt:
	// MaxAttempts n is Retries n-1.)
	Retries int
	// Backoff paces the retries (default 1 ms doubling up to 100 ms, full
	// jitter). A zero Backoff is clock.DefaultBackoff.
	Backoff clock.Backoff
}

// Validate reports every problem with p at once.
func (p RetryPolicy) Validate() error {
	var errs []error
	if p.Retries < 0 {
		errs = append(errs, invalid("RetryPolicy.Retries must not be negative, got %d", p.Retries))
	}
	if err := p.Backoff.Validate(); err != nil {
		errs = append(errs, invalid("RetryPolicy: %v", err))
	}
	return errors.Join(errs...)
}

// DefaultRetryPolicy is the retry policy of a bus that names none.
var DefaultRetryPolicy = RetryPolicy{Retries: 9,
	Backoff: clock.Backoff{Initial: time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2, Jitter: 1}}

func invalid(format string, args ...any) error {
	return fmt.Errorf("command: %w: %s", eventstore.ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// Option configures a Bus.
type Option func(*config)

type config struct {
	name          string
	window        time.Duration
	purgeInterval time.Duration
	retry         RetryPolicy
	clock         clock.Clock
	logger        *slog.Logger
	middleware    []Middleware
	serialize     bool
	meters        metric.MeterProvider
	tracer        telemetry.Tracer
	errs          []error
}

// WithName names the bus (default DefaultName), checked with
// eventstore.ValidateName: its idempotency records are kept under
// (keyspace.Command, name) in the state space. Two buses on one store need
// two names, or they must not be open at the same time.
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithIdempotencyWindow sets how long a command ID is remembered (default
// DefaultIdempotencyWindow). A command ID seen within the window returns the
// first result; after it, the command runs again.
func WithIdempotencyWindow(d time.Duration) Option { return func(c *config) { c.window = d } }

// WithPurgeInterval sets how often Run deletes expired idempotency records,
// on the bus's clock (default DefaultPurgeInterval).
func WithPurgeInterval(d time.Duration) Option { return func(c *config) { c.purgeInterval = d } }

// WithRetry sets the retry policy for version conflicts (default
// DefaultRetryPolicy).
func WithRetry(p RetryPolicy) Option { return func(c *config) { c.retry = p } }

// WithClock sets the clock of result times, of the idempotency window, of
// the waits of Run between purges and of the back-off between retries
// (default clock.System()). Tests pass a *clock.Manual and move it.
func WithClock(c clock.Clock) Option { return func(cfg *config) { cfg.clock = c } }

// WithLogger sets where the bus reports background problems (failed purges,
// snapshots not written). Default: discarded. Logging of every command is
// the Logging middleware's job.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithSerializedAggregates sets whether the bus runs the commands of one
// aggregate in this process one at a time (default true). Serialized,
// concurrent commands to a hot aggregate queue instead of conflicting and
// retrying; version conflicts then come only from writers outside the bus.
// Off, every command runs optimistically and conflicts are retried per the
// RetryPolicy.
func WithSerializedAggregates(on bool) Option { return func(c *config) { c.serialize = on } }

// WithMiddleware adds middleware around every dispatch, outermost first.
func WithMiddleware(m ...Middleware) Option {
	return func(c *config) { c.middleware = append(c.middleware, m...) }
}

// validate reports every problem with the configuration at once.
func (c *config) validate() error {
	errs := c.errs
	if err := eventstore.ValidateName("command bus", c.name); err != nil {
		errs = append(errs, fmt.Errorf("command: WithName: %w", err))
	}
	if c.window <= 0 {
		errs = append(errs, invalid("WithIdempotencyWindow must be positive, got %s", c.window))
	}
	if c.purgeInterval <= 0 {
		errs = append(errs, invalid("WithPurgeInterval must be positive, got %s", c.purgeInterval))
	}
	if err := c.retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.clock == nil {
		errs = append(errs, invalid("WithClock: nil clock"))
	}
	if c.logger == nil {
		errs = append(errs, invalid("WithLogger: nil logger"))
	}
	for i, m := range c.middleware {
		if m == nil {
			errs = append(errs, invalid("WithMiddleware: middleware %d is nil", i))
		}
	}
	return errors.Join(errs...)
}

// route is one registered aggregate, as the bus dispatches to it.
type route interface {
	name() string
	topic() string
	accepts(cmd any) bool
	cmdType() reflect.Type
	handle(ctx context.Context, b *Bus, cmd *Command) (Result, error)
}

// Bus dispatches commands to their aggregates: it loads the aggregate,
// decides, appends the events with the expected version, retries on version
// conflicts, and remembers each command ID's result so that a command sent
// twice is applied once. It is safe for concurrent use.
type Bus struct {
	store eventstore.Store
	cfg   config
	idem  *idempotency
	chain HandlerFunc
	// cmdLocks serialize the dispatches of one command ID, so that
	// concurrent duplicates see each other's record; aggLocks those of
	// one aggregate (WithSerializedAggregates). A dispatch takes its
	// command lock before its aggregate lock, never the reverse.
	cmdLocks, aggLocks *keyLocks

	routesMu sync.RWMutex
	routes   []route
	byType   map[reflect.Type]route

	mu struct {
		sync.Mutex
		closed bool
		// The purges, for Status.
		purges, purged int64
		lastPurgeAt    time.Time
		lastPurgeErr   error
	}
	// spanNames caches the dispatch span's name of each (aggregate,
	// command type) (trace.go).
	spanNames sync.Map
	running   atomic.Int32 // Runs under way
	inflight  sync.WaitGroup
	done      chan struct{}
	// stopFilter ends the load of the idempotency filter; filterLoaded is
	// closed when it has ended.
	stopFilter   context.CancelFunc
	filterLoaded chan struct{}
}

// New returns a bus on store. It reports every problem with the options at
// once.
func New(store eventstore.Store, opts ...Option) (*Bus, error) {
	cfg := config{
		name:          DefaultName,
		window:        DefaultIdempotencyWindow,
		purgeInterval: DefaultPurgeInterval,
		retry:         DefaultRetryPolicy,
		clock:         clock.System(),
		logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		serialize:     true,
		tracer:        telemetry.NewTracer(nil),
	}
	if store == nil {
		cfg.errs = append(cfg.errs, invalid("New: nil store"))
	}
	for _, o := range opts {
		if o == nil {
			cfg.errs = append(cfg.errs, invalid("New: nil option"))
			continue
		}
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	bm, err := newBusMetrics(cfg.meters)
	if err != nil {
		return nil, fmt.Errorf("command: metrics: %w", err)
	}
	b := &Bus{store: store, cfg: cfg, byType: make(map[reflect.Type]route), done: make(chan struct{}),
		cmdLocks: newKeyLocks(), aggLocks: newKeyLocks()}
	b.idem = newIdempotency(store, cfg.name, cfg.window, cfg.clock)
	// Load the idempotency filter in the background: dispatches read the
	// store for every command ID until it is loaded.
	var loadCtx context.Context
	loadCtx, b.stopFilter = context.WithCancel(context.Background())
	b.filterLoaded = make(chan struct{})
	go func() {
		defer close(b.filterLoaded)
		if err := b.idem.loadFilter(loadCtx); err != nil && loadCtx.Err() == nil {
			cfg.logger.LogAttrs(loadCtx, slog.LevelWarn, "idempotency filter not loaded; every command ID is looked up in the store",
				slog.String("bus", cfg.name), slog.Any(telemetry.AttrError, err))
		}
	}()
	h := HandlerFunc(b.core)
	for i := len(cfg.middleware) - 1; i >= 0; i-- {
		h = cfg.middleware[i](h)
	}
	// The bus's own metrics, outside every middleware.
	b.chain = Metrics(bm)(h)
	return b, nil
}

// Name returns the bus's name.
func (b *Bus) Name() string { return b.cfg.name }

// Handler is the typed entry of one aggregate type on a bus: Dispatch
// takes the aggregate's own command type, checked by the compiler.
type Handler[S, C, E any] struct {
	bus  *Bus
	repo *aggregate.Repository[S, C, E]
}

// Register adds agg to the bus and returns its typed handler. It creates
// the aggregate's topics if they are missing. Commands are routed by their
// Go type: a command is agg's if it is a C, so two aggregates may not share
// a command type, nor an aggregate name.
func Register[S, C, E any](ctx context.Context, b *Bus, agg *aggregate.Aggregate[S, C, E]) (*Handler[S, C, E], error) {
	if b == nil || agg == nil {
		return nil, errors.New("command: Register needs a bus and an aggregate")
	}
	repo, err := aggregate.NewRepository(ctx, b.store, agg, aggregate.WithLogger(b.cfg.logger))
	if err != nil {
		return nil, err
	}
	h := &Handler[S, C, E]{bus: b, repo: repo}
	b.routesMu.Lock()
	defer b.routesMu.Unlock()
	for _, r := range b.routes {
		if r.name() == agg.Name() {
			return nil, fmt.Errorf("command: aggregate %q is already registered", agg.Name())
		}
		if r.topic() == agg.Topic() {
			return nil, fmt.Errorf("command: topic %q is already the topic of aggregate %q", agg.Topic(), r.name())
		}
		if r.cmdType() == h.cmdType() {
			return nil, fmt.Errorf("command: command type %s is already the command type of aggregate %q", h.cmdType(), r.name())
		}
	}
	b.routes = append(b.routes, h)
	clear(b.byType)
	return h, nil
}

// Repository returns the repository the handler loads and saves with.
func (h *Handler[S, C, E]) Repository() *aggregate.Repository[S, C, E] { return h.repo }

// Load returns the current state of aggregate id, as the bus sees it.
func (h *Handler[S, C, E]) Load(ctx context.Context, id string) (*aggregate.State[S], error) {
	return h.repo.Load(ctx, id)
}

// Dispatch sends cmd to aggregate id. See Bus.Dispatch.
func (h *Handler[S, C, E]) Dispatch(ctx context.Context, id string, cmd C, opts ...DispatchOption) (Result, error) {
	return h.bus.dispatch(ctx, h, id, cmd, opts)
}

func (h *Handler[S, C, E]) name() string  { return h.repo.Aggregate().Name() }
func (h *Handler[S, C, E]) topic() string { return h.repo.Aggregate().Topic() }
func (h *Handler[S, C, E]) accepts(cmd any) bool {
	_, ok := cmd.(C)
	return ok
}
func (h *Handler[S, C, E]) cmdType() reflect.Type { return reflect.TypeFor[C]() }

// DispatchOption configures one dispatch.
type DispatchOption func(*Command)

// WithCommandID sets the command's ID, which makes the dispatch idempotent:
// within the bus's idempotency window, a command with an ID already applied
// returns the first result, and nothing is appended again. It is the
// causation ID of the command's events. At most eventstore.MaxIDBytes.
func WithCommandID(id string) DispatchOption {
	return func(c *Command) { c.ID, c.idempotent = id, true }
}

// CausationHeader is the event header that carries the causation ID of the
// command that produced the event (Command.CausationID), when it has one.
const CausationHeader = "muninn-command-causation-id"

// CommandTypeHeader is the event header that carries the type of the
// command that produced the event (Command.Type), so that whoever reads the
// event (the lineage graph of service/admin) can name the command.
const CommandTypeHeader = "muninn-command-type"

// WithCausationID sets the ID of what caused the command, such as the event
// a saga reacts to. At most eventstore.MaxIDBytes. See Command.CausationID.
func WithCausationID(id string) DispatchOption { return func(c *Command) { c.CausationID = id } }

// WithHeaders sets free metadata on every event the command produces.
func WithHeaders(h map[string]string) DispatchOption { return func(c *Command) { c.Headers = h } }

// WithExpectedVersion makes the command conditional on the aggregate's
// version being v (what the caller saw): otherwise it fails with
// KindAborted at once, without the usual retries.
func WithExpectedVersion(v uint64) DispatchOption {
	return func(c *Command) { c.ExpectedVersion = &v }
}

// Dispatch sends cmd to aggregate id of the aggregate type whose command
// type cmd is, through the middleware: the bus loads the aggregate, lets it
// decide, and appends the events with the expected version, retrying on a
// version conflict per the RetryPolicy. Every error is an *Error; KindOf
// classifies it. A command nobody registered is KindInvalidArgument.
func (b *Bus) Dispatch(ctx context.Context, id string, cmd any, opts ...DispatchOption) (Result, error) {
	r, err := b.route(cmd)
	if err != nil {
		return Result{}, err
	}
	return b.dispatch(ctx, r, id, cmd, opts)
}

func (b *Bus) route(cmd any) (route, error) {
	if cmd == nil {
		return nil, &Error{Kind: KindInvalidArgument, Msg: "nil command"}
	}
	t := reflect.TypeOf(cmd)
	b.routesMu.RLock()
	r, ok := b.byType[t]
	b.routesMu.RUnlock()
	if ok {
		return r, nil
	}
	b.routesMu.Lock()
	defer b.routesMu.Unlock()
	var found []route
	for _, r := range b.routes {
		if r.accepts(cmd) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return nil, &Error{Kind: KindInvalidArgument, Msg: fmt.Sprintf("no aggregate handles commands of type %T", cmd)}
	case 1:
		b.byType[t] = found[0]
		return found[0], nil
	default:
		return nil, &Error{Kind: KindInvalidArgument, Msg: fmt.Sprintf("commands of type %T match aggregates %q and %q", cmd, found[0].name(), found[1].name())}
	}
}

// commandTyper lets a command name its type for logs and metrics.
type commandTyper interface{ CommandType() string }

// validator is a command that checks itself before it is dispatched.
type validator interface{ Validate() error }

func (b *Bus) dispatch(ctx context.Context, r route, id string, payload any, opts []DispatchOption) (Result, error) {
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		return Result{}, &Error{Kind: KindUnavailable, Err: ErrClosed}
	}
	b.inflight.Add(1)
	b.mu.Unlock()
	defer b.inflight.Done()

	cmd := &Command{AggregateType: r.name(), AggregateID: id, Payload: payload}
	if payload == nil {
		return Result{}, &Error{Kind: KindInvalidArgument, Aggregate: cmd.describeAggregate(), Msg: "nil command"}
	}
	if t, ok := payload.(commandTyper); ok {
		cmd.Type = t.CommandType()
	} else {
		cmd.Type = reflect.TypeOf(payload).String()
	}
	for _, o := range opts {
		if o != nil {
			o(cmd)
		}
	}
	if !cmd.idempotent {
		cmd.ID = uuid.Must(uuid.NewV7()).String()
	}
	cmd.CorrelationID = CorrelationID(ctx)
	if cmd.CorrelationID == "" {
		cmd.CorrelationID = cmd.ID
	}
	if err := b.check(cmd); err != nil {
		return Result{}, err
	}
	ctx = WithCorrelationID(ctx, cmd.CorrelationID)
	var span trace.Span
	if b.cfg.tracer.Enabled(ctx) {
		ctx, span = b.startDispatch(ctx, cmd)
	}
	res, err := b.chain(ctx, cmd)
	if err != nil {
		err = classify(err, KindInternal, cmd)
	}
	if span != nil {
		endDispatch(span, cmd, res, err)
	}
	return res, err
}

// eventHeaders are the headers of the command's events: its Headers, plus
// CommandTypeHeader, and CausationHeader when it has a causation ID.
func (cmd *Command) eventHeaders() map[string]string {
	h := make(map[string]string, len(cmd.Headers)+2)
	maps.Copy(h, cmd.Headers)
	h[CommandTypeHeader] = cmd.Type
	if cmd.CausationID != "" {
		h[CausationHeader] = cmd.CausationID
	}
	return h
}

// check refuses malformed envelopes before any middleware runs.
func (b *Bus) check(cmd *Command) error {
	var errs []error
	if cmd.AggregateID == "" {
		errs = append(errs, errors.New("empty aggregate ID"))
	} else if len(cmd.AggregateID) > eventstore.MaxKeyBytes {
		errs = append(errs, fmt.Errorf("aggregate ID of %d bytes is longer than %d", len(cmd.AggregateID), eventstore.MaxKeyBytes))
	}
	if cmd.ID == "" {
		errs = append(errs, errors.New("empty command ID"))
	} else if len(cmd.ID) > eventstore.MaxIDBytes {
		errs = append(errs, fmt.Errorf("command ID of %d bytes is longer than %d", len(cmd.ID), eventstore.MaxIDBytes))
	}
	if len(cmd.CorrelationID) > eventstore.MaxIDBytes {
		errs = append(errs, fmt.Errorf("correlation ID of %d bytes is longer than %d", len(cmd.CorrelationID), eventstore.MaxIDBytes))
	}
	if len(cmd.CausationID) > eventstore.MaxIDBytes {
		errs = append(errs, fmt.Errorf("causation ID of %d bytes is longer than %d", len(cmd.CausationID), eventstore.MaxIDBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return &Error{Kind: KindInvalidArgument, Command: cmd.describe(), Aggregate: cmd.describeAggregate(), Err: err}
	}
	return nil
}

// core is the innermost handler: validation, idempotency, then the
// aggregate's route.
func (b *Bus) core(ctx context.Context, cmd *Command) (Result, error) {
	if v, ok := cmd.Payload.(validator); ok {
		if err := v.Validate(); err != nil {
			return Result{}, classify(err, KindInvalidArgument, cmd)
		}
	}
	b.routesMu.RLock()
	var r route
	for _, rr := range b.routes {
		if rr.name() == cmd.AggregateType {
			r = rr
		}
	}
	b.routesMu.RUnlock()
	if r == nil || !r.accepts(cmd.Payload) {
		return Result{}, &Error{Kind: KindInvalidArgument, Msg: fmt.Sprintf("aggregate %q does not handle %T", cmd.AggregateType, cmd.Payload)}
	}
	if !cmd.idempotent {
		return b.handleSerialized(ctx, r, cmd)
	}
	unlock, err := b.cmdLocks.lock(ctx, cmd.ID)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	if prev, ok, err := b.previous(ctx, cmd); ok || err != nil {
		return prev, err
	}
	return b.handleSerialized(ctx, r, cmd)
}

// previous returns the first result of an idempotent command whose ID is
// recorded, marked Duplicate, and true; or an error if the ID was recorded
// for another aggregate.
func (b *Bus) previous(ctx context.Context, cmd *Command) (Result, bool, error) {
	prev, ok, err := b.idem.lookup(ctx, cmd.ID)
	if err != nil || !ok {
		return Result{}, false, err
	}
	if prev.AggregateType != cmd.AggregateType || prev.AggregateID != cmd.AggregateID {
		return Result{}, false, &Error{Kind: KindInvalidArgument,
			Msg: fmt.Sprintf("command ID was already used for %s/%s", prev.AggregateType, prev.AggregateID)}
	}
	prev.Duplicate = true
	return prev, true, nil
}

// sharedDuplicate is previous for a command the bus is handling, on a
// store that other processes write too: a replica may have applied the
// same command ID since this bus looked (its append made this one's
// conflict, or its events made the aggregate refuse the command). The lock
// on the command ID serializes duplicates in this process only. On an
// exclusive store it finds nothing new and does not look.
func (b *Bus) sharedDuplicate(ctx context.Context, cmd *Command) (Result, bool, error) {
	if !cmd.idempotent || b.idem.exclusive {
		return Result{}, false, nil
	}
	res, ok, err := b.previous(ctx, cmd)
	if err != nil {
		return Result{}, false, classify(err, KindInternal, cmd)
	}
	return res, ok, nil
}

// handleSerialized runs the route's handler, under the aggregate's lock if
// the bus serializes aggregates.
func (b *Bus) handleSerialized(ctx context.Context, r route, cmd *Command) (Result, error) {
	if b.cfg.serialize {
		unlock, err := b.aggLocks.lock(ctx, cmd.AggregateType+"\x00"+cmd.AggregateID)
		if err != nil {
			return Result{}, err
		}
		defer unlock()
	}
	return r.handle(ctx, b, cmd)
}

// handle runs the load-decide-append loop for one command.
func (h *Handler[S, C, E]) handle(ctx context.Context, b *Bus, cmd *Command) (Result, error) {
	c, _ := cmd.Payload.(C)
	agg := h.repo.Aggregate()
	policy := b.cfg.retry
	for attempt := 1; ; attempt++ {
		// A cached state is trusted without reading the stream: an append
		// on a stale one conflicts. Outcomes that append nothing are
		// confirmed against the stream first.
		st, err := h.repo.Load(ctx, cmd.AggregateID, aggregate.TrustCache())
		if err != nil {
			return Result{}, classify(err, KindInternal, cmd)
		}
		// After the load, not before it: a replica's record of this
		// command ID commits with its events, so either the load saw those
		// events and the record is there now, or this attempt's append
		// conflicts with them and the next attempt finds it.
		if prev, ok, err := b.sharedDuplicate(ctx, cmd); ok || err != nil {
			return prev, err
		}
		if cmd.ExpectedVersion != nil && st.Version != *cmd.ExpectedVersion && st.Unverified {
			if _, err := h.repo.CatchUp(ctx, st); err != nil {
				return Result{}, classify(err, KindInternal, cmd)
			}
		}
		if cmd.ExpectedVersion != nil && st.Version != *cmd.ExpectedVersion {
			if prev, ok, err := b.sharedDuplicate(ctx, cmd); ok || err != nil {
				return prev, err
			}
			return Result{}, &Error{Kind: KindAborted, Err: &eventstore.VersionConflictError{
				Topic: agg.Topic(), Key: cmd.AggregateID, Expected: eventstore.Exact(*cmd.ExpectedVersion), Actual: st.Version}}
		}
		events, err := agg.Decide(st.State, c)
		if (err != nil || len(events) == 0) && st.Unverified {
			moved, cerr := h.repo.CatchUp(ctx, st)
			if cerr != nil {
				return Result{}, classify(cerr, KindInternal, cmd)
			}
			if moved {
				events, err = agg.Decide(st.State, c)
			}
		}
		if err != nil || len(events) == 0 {
			// The state was read after the stream's newest events (or
			// confirmed against it): a replica's record of this command
			// ID, committed with those events, is visible now.
			if prev, ok, derr := b.sharedDuplicate(ctx, cmd); ok || derr != nil {
				return prev, derr
			}
		}
		if err != nil {
			if errors.Is(err, aggregate.ErrPanic) {
				return Result{}, classify(err, KindInternal, cmd)
			}
			return Result{}, classify(err, KindFailedPrecondition, cmd)
		}
		now := b.cfg.clock.Now()
		res := Result{
			CommandID: cmd.ID, AggregateType: cmd.AggregateType, AggregateID: cmd.AggregateID,
			Topic: agg.Topic(), FirstOffset: -1, LastOffset: -1, Version: st.Version, At: now, Attempts: attempt,
		}
		if len(events) == 0 {
			p, err := b.store.PartitionFor(agg.Topic(), cmd.AggregateID)
			if err != nil {
				return Result{}, classify(err, KindInternal, cmd)
			}
			res.Partition = p
			if cmd.idempotent {
				if err := b.idem.record(ctx, res); err != nil {
					return Result{}, classify(err, KindInternal, cmd)
				}
			}
			return res, nil
		}
		saveOpts := []aggregate.SaveOption{aggregate.WithLineage(cmd.CorrelationID, cmd.ID), aggregate.WithHeaders(cmd.eventHeaders())}
		if cmd.idempotent {
			saveOpts = append(saveOpts, aggregate.WithAppendOptions(eventstore.WithState(
				func(ar eventstore.AppendResult, w eventstore.StateWriter) error {
					return b.idem.stage(w, fill(res, ar))
				})))
		}
		ar, err := h.repo.Save(ctx, st, events, saveOpts...)
		if err == nil {
			return fill(res, ar), nil
		}
		if errors.Is(err, eventstore.ErrVersionConflict) && cmd.ExpectedVersion != nil {
			if prev, ok, derr := b.sharedDuplicate(ctx, cmd); ok || derr != nil {
				return prev, derr
			}
		}
		if !errors.Is(err, eventstore.ErrVersionConflict) || cmd.ExpectedVersion != nil {
			return Result{}, classify(err, KindInternal, cmd)
		}
		if attempt > policy.Retries {
			return Result{}, &Error{Kind: KindAborted, Command: cmd.describe(), Aggregate: cmd.describeAggregate(),
				Msg: fmt.Sprintf("still conflicting after %d attempts", attempt), Err: err}
		}
		noteConflict(ctx, attempt, err)
		if err := clock.Sleep(ctx, b.cfg.clock, policy.Backoff.Delay(attempt)); err != nil {
			return Result{}, classify(err, KindInternal, cmd)
		}
	}
}

// fill completes res with where an append put the events.
func fill(res Result, ar eventstore.AppendResult) Result {
	res.Partition = ar.Partition
	res.FirstOffset, res.LastOffset = ar.FirstOffset, ar.LastOffset
	res.FirstVersion, res.Version = ar.FirstVersion, ar.LastVersion
	res.EventIDs = ar.EventIDs
	return res
}

// Close stops the bus: later dispatches fail with ErrClosed (KindUnavailable)
// and Run returns. It waits for dispatches in flight. It does not close the
// store. Close is idempotent.
func (b *Bus) Close() error {
	b.mu.Lock()
	if !b.mu.closed {
		b.mu.closed = true
		close(b.done)
	}
	b.mu.Unlock()
	b.stopFilter()
	<-b.filterLoaded
	b.inflight.Wait()
	return nil
}

// Run purges expired idempotency records every purge interval, waiting on
// the bus's clock, until ctx ends (it returns nil) or the bus closes (nil).
// A failed purge is logged and retried at the next interval. Expired
// records are never returned even without Run; Run only reclaims their
// space.
func (b *Bus) Run(ctx context.Context) error {
	b.running.Add(1)
	defer b.running.Add(-1)
	for {
		due, stop := clock.After(b.cfg.clock, b.cfg.purgeInterval)
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-b.done:
			stop()
			return nil
		case <-due:
		}
		if n, err := b.Purge(ctx); err != nil && ctx.Err() == nil {
			b.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "idempotency purge failed", slog.String("bus", b.cfg.name), slog.Any(telemetry.AttrError, err))
		} else if n > 0 {
			b.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "idempotency records purged", slog.String("bus", b.cfg.name), slog.Int("records", n))
		}
	}
}

// Purge deletes the idempotency records that have left the window and
// returns how many it deleted.
func (b *Bus) Purge(ctx context.Context) (int, error) {
	n, err := b.idem.purge(ctx)
	b.mu.Lock()
	b.mu.purges++
	b.mu.purged += int64(n)
	b.mu.lastPurgeAt, b.mu.lastPurgeErr = b.cfg.clock.Now(), err
	b.mu.Unlock()
	return n, err
}
