package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
)

// Option configures Open.
type Option func(*options)

type options struct {
	schema          string
	leaseTimeout    time.Duration
	clock           clock.Clock
	logger          *slog.Logger
	pool            *pgxpool.Pool
	cleanupInterval time.Duration
	limits          eventstore.AppendLimits
	tracer          telemetry.Tracer // WithTracerProvider's (trace.go)
	// notifyApart makes every append notify the other Stores from the
	// notifier goroutine (the path an append takes when its own
	// notification fails); only tests set it.
	notifyApart bool
}

func defaultOptions() options {
	return options{
		schema:          "muninn",
		leaseTimeout:    10 * time.Second,
		clock:           clock.System(),
		logger:          slog.New(slog.DiscardHandler),
		cleanupInterval: time.Minute,
		limits:          eventstore.DefaultAppendLimits,
		tracer:          telemetry.NewTracer(nil),
	}
}

// WithSchema sets the PostgreSQL schema that holds the store's tables
// (default "muninn"). Open creates it if it does not exist. Two stores on
// different schemas of one database are independent. The name must be 1 to
// 48 characters of [a-z0-9_], starting with a letter or '_'.
func WithSchema(name string) Option { return func(o *options) { o.schema = name } }

// WithLeaseTimeout sets how long a consumer group member stays in its group
// without renewing its lease (default 10s). Each Store renews the leases of
// its members three times per timeout; when a member's lease has run out,
// the other members' Stores rebalance the group without it, and it can
// commit nothing for the partitions it lost.
func WithLeaseTimeout(d time.Duration) Option { return func(o *options) { o.leaseTimeout = d } }

// WithClock sets the clock of record timestamps, of "now" for retention and
// tombstone grace, of leases and of the background cleanup's interval
// (default clock.System()). Tests use a clock.Manual to age records and to
// let leases run out without sleeping. Stores sharing a schema compare
// leases by their own clocks, so their clocks should agree to well within
// the lease timeout.
func WithClock(c clock.Clock) Option {
	return func(o *options) {
		if c != nil {
			o.clock = c
		}
	}
}

// WithLogger sends the store's log messages to l. The default discards
// them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithPool makes the store use p instead of a pool of its own made from
// Open's URL (which is then ignored and may be empty). Close leaves p
// open. The store also opens one dedicated connection of p's configuration
// for LISTEN.
func WithPool(p *pgxpool.Pool) Option { return func(o *options) { o.pool = p } }

// WithCleanupInterval sets how often cleanup runs in the background (default
// one minute). Zero or a negative value turns background cleanup off;
// Store.Cleanup still runs it on demand. Several Stores on one schema may
// all run it: each partition is cleaned under its row lock.
func WithCleanupInterval(d time.Duration) Option {
	return func(o *options) { o.cleanupInterval = d }
}

// WithMaxEventBytes sets the largest encoded event an append accepts
// (default 1 MiB).
func WithMaxEventBytes(n int) Option { return func(o *options) { o.limits.MaxEventBytes = n } }

// WithMaxAppendBytes sets the largest total size of one append's events
// (default 16 MiB).
func WithMaxAppendBytes(n int) Option { return func(o *options) { o.limits.MaxAppendBytes = n } }

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)

// ValidateSchema checks a schema name as WithSchema requires it.
func ValidateSchema(name string) error {
	if !schemaName.MatchString(name) {
		return eventstore.InvalidArgument("WithSchema", "%q is not 1 to 48 characters of [a-z0-9_] starting with a letter or '_'", name)
	}
	return nil
}

func (o *options) validate() error {
	var errs []error
	errs = append(errs, ValidateSchema(o.schema))
	if o.leaseTimeout <= 0 {
		errs = append(errs, eventstore.InvalidArgument("WithLeaseTimeout", "must be positive, got %s", o.leaseTimeout))
	}
	if o.limits.MaxEventBytes < 64 {
		errs = append(errs, eventstore.InvalidArgument("WithMaxEventBytes", "must be at least 64, got %d", o.limits.MaxEventBytes))
	}
	if o.limits.MaxAppendBytes < o.limits.MaxEventBytes {
		errs = append(errs, eventstore.InvalidArgument("WithMaxAppendBytes", "must be at least WithMaxEventBytes (%d), got %d", o.limits.MaxEventBytes, o.limits.MaxAppendBytes))
	}
	return errors.Join(errs...)
}

// defaultMaxConns is the size of the pool Open makes when the URL does not
// say (pool_max_conns): pgxpool's default, four on a small machine, is too
// few for a store whose Scans, Updates and consumers run at once.
const defaultMaxConns = 32

// Store is the PostgreSQL backend, an eventstore.Store. It is safe for
// concurrent use, and any number of Stores, in any number of processes, may
// share one schema.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	opts    options
	log     *slog.Logger
	clk     clock.Clock
	// id names this Store in the group_members table.
	id uuid.UUID
	// schema is the quoted schema name, channel the LISTEN channel.
	schema, channel string
	stateLock       int64

	life struct {
		sync.Mutex
		n      int
		closed bool
		idle   *sync.Cond
	}
	closedFlag atomic.Bool
	closing    chan struct{}
	closeOnce  sync.Once
	closeErr   error
	bg         sync.WaitGroup

	topicsMu struct {
		sync.RWMutex
		byName map[string]*topicMeta
	}

	wakeMu struct {
		sync.Mutex
		byTopic map[int64]chan struct{}
	}

	notifyMu struct {
		sync.Mutex
		pending map[string]struct{}
	}
	notifySignal chan struct{}

	groupsMu struct {
		sync.Mutex
		byName    map[string]*groupCache
		consumers map[*consumer]struct{}
	}
	// writer gathers the Store's appends into shared transactions.
	writer storeWriter
	// membersChanged wakes the lease loop when members join or leave.
	membersChanged chan struct{}
}

// topicMeta is what a Store knows of a topic. A topic's ID and partition
// count never change; a topic of the same name made after a delete has a
// new ID.
type topicMeta struct {
	id         int64
	name       string
	partitions int
	deleted    atomic.Bool
}

// Open connects to the PostgreSQL server at url (a pgx connection string,
// such as "postgres://user@host/db" or "postgres:///db?host=/run/sock"),
// creates or migrates the store's schema and returns the store. ctx bounds
// the connection and the migration only.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &Store{
		opts: o, log: o.logger, clk: o.clock, id: uuid.New(),
		schema:         pgx.Identifier{o.schema}.Sanitize(),
		channel:        "muninn." + o.schema,
		closing:        make(chan struct{}),
		notifySignal:   make(chan struct{}, 1),
		membersChanged: make(chan struct{}, 1),
	}
	h := fnv.New64a()
	h.Write([]byte("muninn/state/" + o.schema))
	s.stateLock = int64(h.Sum64())
	s.life.idle = sync.NewCond(&s.life.Mutex)
	s.topicsMu.byName = map[string]*topicMeta{}
	s.wakeMu.byTopic = map[int64]chan struct{}{}
	s.notifyMu.pending = map[string]struct{}{}
	s.groupsMu.byName = map[string]*groupCache{}
	s.groupsMu.consumers = map[*consumer]struct{}{}

	if o.pool != nil {
		s.pool = o.pool
	} else {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			return nil, fmt.Errorf("postgres: open: %w: url: %v", eventstore.ErrInvalidArgument, err)
		}
		if !strings.Contains(url, "pool_max_conns") {
			cfg.MaxConns = defaultMaxConns
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("postgres: open: %w", err)
		}
		s.pool, s.ownPool = pool, true
	}
	fail := func(err error) (*Store, error) {
		if s.ownPool {
			s.pool.Close()
		}
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		return fail(fmt.Errorf("postgres: open: %w", err))
	}
	l, err := s.connectListener(ctx)
	if err != nil {
		return fail(fmt.Errorf("postgres: open: listen: %w", err))
	}
	s.bg.Add(3)
	go s.listen(l)
	go s.runNotifier()
	go s.runLeases()
	if o.cleanupInterval > 0 {
		s.bg.Add(1)
		go s.runCleanup()
	}
	// A restart after a crash may follow appends whose notifications never
	// went out: wake every waiter on the schema, once.
	s.queueNotify("*")
	return s, nil
}

// q puts the store's schema into a query: "{s}.records" becomes
// "myschema".records.
func (s *Store) q(query string) string { return strings.ReplaceAll(query, "{s}", s.schema) }

// acquire registers a call in flight; Close waits for them. It fails with
// ErrClosed once Close has begun.
func (s *Store) acquire() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.life.closed {
		return eventstore.ErrClosed
	}
	s.life.n++
	return nil
}

func (s *Store) release() {
	s.life.Lock()
	s.life.n--
	if s.life.n == 0 {
		s.life.idle.Broadcast()
	}
	s.life.Unlock()
}

func (s *Store) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// Close leaves every consumer group this Store's members are in (the other
// members take over their partitions), ends running reads, subscriptions and
// consumers with ErrClosed, waits for the calls in flight, stops the
// background work and closes the pool (unless it came from WithPool). Close
// is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closedFlag.Store(true)
		s.life.Lock()
		s.life.closed = true
		s.life.Unlock()
		close(s.closing)
		// Members leave their groups, so that the others need not wait for
		// their leases to run out.
		s.groupsMu.Lock()
		var cs []*consumer
		for c := range s.groupsMu.consumers {
			cs = append(cs, c)
		}
		s.groupsMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for _, c := range cs {
			if err := c.leave(ctx); err != nil {
				s.log.Warn("postgres: close: leaving group", "group", c.g.name, "member", c.id, telemetry.AttrError, err)
			}
		}
		cancel()
		s.life.Lock()
		for s.life.n > 0 {
			s.life.idle.Wait()
		}
		s.life.Unlock()
		s.bg.Wait()
		if s.ownPool {
			s.pool.Close()
		}
	})
	return s.closeErr
}

// topic returns what the store knows of a topic, asking the database the
// first time.
func (s *Store) topic(ctx context.Context, name string) (*topicMeta, error) {
	s.topicsMu.RLock()
	t := s.topicsMu.byName[name]
	s.topicsMu.RUnlock()
	if t != nil {
		return t, nil
	}
	if err := eventstore.ValidateTopicName(name); err != nil {
		return nil, fmt.Errorf("%w: %q", eventstore.ErrTopicNotFound, name)
	}
	var id int64
	var parts int
	err := s.pool.QueryRow(ctx, s.q(`SELECT id, partitions FROM {s}.topics WHERE name = $1`), name).Scan(&id, &parts)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", eventstore.ErrTopicNotFound, name)
	}
	if err != nil {
		return nil, s.dbErr(ctx, fmt.Sprintf("look up topic %q", name), err)
	}
	return s.cacheTopic(id, name, parts), nil
}

func (s *Store) cacheTopic(id int64, name string, parts int) *topicMeta {
	s.topicsMu.Lock()
	defer s.topicsMu.Unlock()
	if t := s.topicsMu.byName[name]; t != nil && t.id == id {
		return t
	}
	t := &topicMeta{id: id, name: name, partitions: parts}
	s.topicsMu.byName[name] = t
	return t
}

// forgetTopic drops a topic from the cache (deleted here or elsewhere) and
// wakes its subscribers, which then find it gone.
func (s *Store) forgetTopic(id int64) {
	s.topicsMu.Lock()
	for name, t := range s.topicsMu.byName {
		if t.id == id {
			t.deleted.Store(true)
			delete(s.topicsMu.byName, name)
		}
	}
	s.topicsMu.Unlock()
	s.wake(id)
}

// dbErr wraps an error of the database. A call whose context ended returns
// the context's error; one cut off by Close returns ErrClosed.
func (s *Store) dbErr(ctx context.Context, what string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if s.isClosing() && (errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "closed pool")) {
		return eventstore.ErrClosed
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// wakeChan returns the channel that the next commit to topic id closes.
// Callers take it before they read, so that no commit after the read is
// missed.
func (s *Store) wakeChan(id int64) chan struct{} {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	ch := s.wakeMu.byTopic[id]
	if ch == nil {
		ch = make(chan struct{})
		s.wakeMu.byTopic[id] = ch
	}
	return ch
}

// wake wakes every waiter on topic id.
func (s *Store) wake(id int64) {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	if ch := s.wakeMu.byTopic[id]; ch != nil {
		close(ch)
		delete(s.wakeMu.byTopic, id)
	}
}

// wakeAll wakes every waiter on every topic and group.
func (s *Store) wakeAll() {
	s.wakeMu.Lock()
	for id, ch := range s.wakeMu.byTopic {
		close(ch)
		delete(s.wakeMu.byTopic, id)
	}
	s.wakeMu.Unlock()
	s.groupsMu.Lock()
	gs := make([]*groupCache, 0, len(s.groupsMu.byName))
	for _, g := range s.groupsMu.byName {
		gs = append(gs, g)
	}
	s.groupsMu.Unlock()
	for _, g := range gs {
		g.invalidate()
	}
}
