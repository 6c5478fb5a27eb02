package aggregate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
)

// snapshotEventType is the event type of every snapshot record.
const snapshotEventType = "muninn.snapshot"

// State is an aggregate instance as loaded: its state and the stream version
// the state reflects. Save advances it.
type State[S any] struct {
	// ID is the aggregate ID, the key of its stream.
	ID string
	// Version is the version of the last event applied; 0 for an aggregate
	// without events. It is the expected version of the next save.
	Version uint64
	// State is the aggregate's state as of Version.
	State S
	// SnapshotVersion is the stream version of the snapshot Load started
	// from, 0 if it started from the initial state.
	SnapshotVersion uint64
	// Replayed counts the events Load applied after the snapshot.
	Replayed int
	// SnapshotSkipped says why Load ignored a snapshot it found (schema
	// changed, newer than the stream, undecodable); empty if it did not.
	SnapshotSkipped string
	// Cached is true when Load started from the repository's cache
	// (WithCache) instead of a snapshot or the initial state.
	Cached bool
	// Unverified is true when the state came from the cache with
	// TrustCache and events appended since may be missing; CatchUp
	// verifies it.
	Unverified bool
}

// Repository loads aggregates of one type from the store and saves their new
// events. It is safe for concurrent use.
type Repository[S, C, E any] struct {
	store  eventstore.Store
	agg    *Aggregate[S, C, E]
	logger *slog.Logger
	cache  *stateCache
	// valueState is true when S holds no references, so that the cache
	// can keep states as values instead of encoding them.
	valueState bool
}

// RepositoryOption configures a Repository.
type RepositoryOption func(*repoConfig)

type repoConfig struct {
	logger *slog.Logger
}

// WithLogger sets where the repository reports snapshots it ignored or
// failed to write (default: discarded).
func WithLogger(l *slog.Logger) RepositoryOption {
	return func(c *repoConfig) {
		if l != nil {
			c.logger = l
		}
	}
}

// NewRepository returns the repository of agg's aggregates in store. It
// creates the aggregate's topics if they are missing: the events topic
// (Retain) and the snapshot topic (Compact, keyed by aggregate ID). An
// existing snapshot topic must be compacted.
func NewRepository[S, C, E any](ctx context.Context, store eventstore.Store, agg *Aggregate[S, C, E], opts ...RepositoryOption) (*Repository[S, C, E], error) {
	if store == nil || agg == nil {
		return nil, fmt.Errorf("%w: NewRepository needs a store and an aggregate", ErrInvalidArgument)
	}
	cfg := repoConfig{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	r := &Repository[S, C, E]{store: store, agg: agg, logger: cfg.logger, cache: newStateCache(agg.CacheSize()),
		valueState: valueOnly(reflect.TypeFor[S]())}
	if err := r.ensureTopic(ctx, agg.Topic(), eventstore.Retain); err != nil {
		return nil, err
	}
	if err := r.ensureTopic(ctx, agg.SnapshotTopic(), eventstore.Compact); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Repository[S, C, E]) ensureTopic(ctx context.Context, name string, policy eventstore.CleanupPolicy) error {
	err := r.store.CreateTopic(ctx, name, eventstore.TopicConfig{Partitions: r.agg.Partitions(), Cleanup: policy})
	if err == nil {
		return nil
	}
	if !errors.Is(err, eventstore.ErrTopicExists) {
		return fmt.Errorf("aggregate %q: create topic %q: %w", r.agg.Name(), name, err)
	}
	info, err := r.store.DescribeTopic(ctx, name)
	if err != nil {
		return fmt.Errorf("aggregate %q: %w", r.agg.Name(), err)
	}
	got := info.Config.Cleanup
	if got == "" {
		got = eventstore.Retain
	}
	if policy == eventstore.Compact && got != eventstore.Compact {
		return fmt.Errorf("%w: aggregate %q: snapshot topic %q exists with cleanup policy %q, want %q",
			ErrInvalidArgument, r.agg.Name(), name, got, eventstore.Compact)
	}
	return nil
}

// Aggregate returns the repository's aggregate definition.
func (r *Repository[S, C, E]) Aggregate() *Aggregate[S, C, E] { return r.agg }

// Store returns the repository's store.
func (r *Repository[S, C, E]) Store() eventstore.Store { return r.store }

func (r *Repository[S, C, E]) checkID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: aggregate %q: empty aggregate ID", ErrInvalidArgument, r.agg.Name())
	}
	if len(id) > eventstore.MaxKeyBytes {
		return fmt.Errorf("%w: aggregate %q: aggregate ID of %d bytes is longer than %d", ErrInvalidArgument, r.agg.Name(), len(id), eventstore.MaxKeyBytes)
	}
	return nil
}

// Load rebuilds the aggregate id: from its cached state (WithCache), else
// from its newest snapshot, if there is one whose schema version matches and
// that is not newer than the stream, then from the events after it (see
// TrustCache for skipping those after a cached state). An aggregate without
// events loads as the
// initial state at version 0 (it is not an error: Decide says whether a
// command needs an existing aggregate). A stored event that cannot be
// decoded is a *DecodeError.
func (r *Repository[S, C, E]) Load(ctx context.Context, id string, opts ...LoadOption) (*State[S], error) {
	if err := r.checkID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var cfg loadConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	st := &State[S]{ID: id}
	if ok, err := r.fromCache(ctx, st); err != nil {
		return nil, err
	} else if ok && cfg.trustCache {
		st.Unverified = true
		return st, nil
	} else if !ok {
		snap, skipped, err := r.loadSnapshot(ctx, id)
		if err != nil {
			return nil, err
		}
		st.SnapshotSkipped = skipped
		if snap != nil {
			st.State, st.Version, st.SnapshotVersion = snap.state, snap.version, snap.version
		} else {
			st.State = r.agg.Initial()
		}
	}
	if _, err := r.catchUp(ctx, st); err != nil {
		return nil, err
	}
	return st, nil
}

// LoadOption configures one Load.
type LoadOption func(*loadConfig)

type loadConfig struct{ trustCache bool }

// TrustCache makes Load return a cached state (WithCache) as it is, without
// reading the events appended after it, and mark it Unverified. It is for
// writers, whose appends check the version anyway: a stale state makes the
// append conflict (which also drops the cache entry). An outcome that
// appends nothing (a rejection, no change) must be confirmed with CatchUp
// before it is trusted. The command bus loads this way.
func TrustCache() LoadOption { return func(c *loadConfig) { c.trustCache = true } }

// CatchUp applies to st the events appended to its stream after st.Version
// and reports whether there were any. Afterwards st is verified: it was the
// stream's current state when CatchUp read it.
func (r *Repository[S, C, E]) CatchUp(ctx context.Context, st *State[S]) (bool, error) {
	if st == nil {
		return false, fmt.Errorf("%w: aggregate %q: CatchUp of a nil state", ErrInvalidArgument, r.agg.Name())
	}
	if err := r.checkID(st.ID); err != nil {
		return false, err
	}
	before := st.Replayed
	if _, err := r.catchUp(ctx, st); err != nil {
		return false, err
	}
	return st.Replayed > before, nil
}

// catchUp reads and applies the events after st.Version, caches the result
// and marks st verified.
func (r *Repository[S, C, E]) catchUp(ctx context.Context, st *State[S]) (bool, error) {
	id := st.ID
	n := 0
	for rec, err := range r.store.ReadStream(ctx, r.agg.Topic(), id, st.Version+1) {
		if err != nil {
			return false, fmt.Errorf("aggregate %q: load %q: %w", r.agg.Name(), id, err)
		}
		if rec.Version != st.Version+1 {
			return false, fmt.Errorf("aggregate %q: load %q: stream has a gap: version %d follows %d", r.agg.Name(), id, rec.Version, st.Version)
		}
		e, err := r.agg.events.Decode(rec)
		if err != nil {
			return false, err
		}
		if st.State, err = r.agg.Evolve(st.State, e); err != nil {
			return false, fmt.Errorf("%w (stream %q version %d type %q)", err, id, rec.Version, rec.Type)
		}
		st.Version = rec.Version
		st.Replayed++
		n++
	}
	st.Unverified = false
	if r.cache != nil && (!st.Cached || n > 0) && st.Version > 0 {
		r.cachePut(st)
	}
	return n > 0, nil
}

// fromCache starts st from the cached state of st.ID, if there is one. A
// stream rewound below the cached version (a restored store) is not checked
// for here, to spare every load a head lookup: the save that follows
// conflicts, which drops the entry, and the retry loads from the store.
func (r *Repository[S, C, E]) fromCache(ctx context.Context, st *State[S]) (bool, error) {
	e, ok := r.cache.get(st.ID)
	if !ok {
		return false, nil
	}
	switch cached := e.state.(type) {
	case S:
		st.State = cached // a value without references: a full copy
	case []byte:
		v, err := codec.Unmarshal[S](r.agg.SnapshotCodec(), cached)
		if err != nil {
			r.cache.drop(st.ID)
			return false, nil
		}
		st.State = v
	default:
		r.cache.drop(st.ID)
		return false, nil
	}
	st.Version, st.Cached = e.version, true
	return true, nil
}

// cachePut caches st's state: the value itself if its type holds no
// references, else encoded with the snapshot codec (and then it returns
// the encoding, for a snapshot to reuse).
func (r *Repository[S, C, E]) cachePut(st *State[S]) []byte {
	if r.valueState {
		r.cache.put(st.ID, st.Version, st.State)
		return nil
	}
	b, err := r.agg.SnapshotCodec().Marshal(any(st.State))
	if err != nil {
		return nil
	}
	r.cache.put(st.ID, st.Version, b)
	return b
}

type loadedSnapshot[S any] struct {
	state   S
	version uint64
}

// loadSnapshot returns the newest usable snapshot of id, or nil and why the
// one found was skipped. Only a failure to read the store is an error: a
// bad snapshot costs a replay, nothing more.
func (r *Repository[S, C, E]) loadSnapshot(ctx context.Context, id string) (*loadedSnapshot[S], string, error) {
	var (
		rec   eventstore.Record
		found bool
	)
	for rr, err := range r.store.ReadStream(ctx, r.agg.SnapshotTopic(), id, 0, eventstore.Backward()) {
		if err != nil {
			return nil, "", fmt.Errorf("aggregate %q: read snapshot of %q: %w", r.agg.Name(), id, err)
		}
		rec, found = rr, true
		break
	}
	if !found || rec.IsTombstone() {
		return nil, "", nil
	}
	skip := func(format string, args ...any) (*loadedSnapshot[S], string, error) {
		why := fmt.Sprintf(format, args...)
		r.logger.LogAttrs(ctx, slog.LevelInfo, "snapshot ignored, replaying the stream",
			append([]slog.Attr{slog.String(telemetry.AttrAggregate, r.agg.Name()), slog.String(telemetry.AttrAggregateID, id),
				slog.String("reason", why)}, telemetry.TraceAttrs(ctx)...)...)
		return nil, why, nil
	}
	snap, err := DecodeSnapshot(rec.Payload)
	if err != nil {
		return skip("%v", err)
	}
	if snap.Schema != r.agg.SnapshotSchema() {
		return skip("snapshot schema v%d, want v%d", snap.Schema, r.agg.SnapshotSchema())
	}
	head, err := r.store.HeadVersion(ctx, r.agg.Topic(), id)
	if err != nil {
		return nil, "", fmt.Errorf("aggregate %q: load %q: %w", r.agg.Name(), id, err)
	}
	if snap.StreamVersion > head {
		return skip("snapshot at version %d is newer than the stream (version %d)", snap.StreamVersion, head)
	}
	if snap.StreamVersion == 0 {
		return skip("snapshot at version 0")
	}
	v, err := codec.Unmarshal[S](r.agg.SnapshotCodec(), snap.State)
	if err != nil {
		return skip("undecodable state (%s codec): %v", r.agg.SnapshotCodec().Name(), err)
	}
	return &loadedSnapshot[S]{state: v, version: snap.StreamVersion}, "", nil
}

// SaveOption configures one Save.
type SaveOption func(*saveConfig)

type saveConfig struct {
	correlation, causation string
	headers                map[string]string
	timestamp              time.Time
	appendOpts             []eventstore.AppendOption
}

// WithLineage sets the correlation and causation IDs of every event saved.
func WithLineage(correlationID, causationID string) SaveOption {
	return func(c *saveConfig) { c.correlation, c.causation = correlationID, causationID }
}

// WithHeaders sets free metadata on every event saved.
func WithHeaders(h map[string]string) SaveOption { return func(c *saveConfig) { c.headers = h } }

// WithTimestamp sets the event time of every event saved (default: the
// store's clock).
func WithTimestamp(t time.Time) SaveOption { return func(c *saveConfig) { c.timestamp = t } }

// WithAppendOptions passes options to the store's Append, such as
// eventstore.WithState to write state atomically with the events.
func WithAppendOptions(opts ...eventstore.AppendOption) SaveOption {
	return func(c *saveConfig) { c.appendOpts = append(c.appendOpts, opts...) }
}

// Save appends events to st's stream with st.Version as the expected
// version, and on success advances st (state and version) past them. A
// concurrent save that got there first makes it fail with an error
// matching eventstore.ErrVersionConflict; st is then stale and must be
// loaded again. With no events Save does nothing.
//
// If the aggregate takes snapshots and the save crosses a multiple of the
// interval, Save writes a snapshot of the new state after the append, as a
// non-durable append to the snapshot topic: it costs the command no fsync,
// and a snapshot lost in a crash only costs a longer replay. A snapshot
// that fails to be written is logged, not returned: the events are saved.
func (r *Repository[S, C, E]) Save(ctx context.Context, st *State[S], events []E, opts ...SaveOption) (eventstore.AppendResult, error) {
	if st == nil {
		return eventstore.AppendResult{}, fmt.Errorf("%w: aggregate %q: Save of a nil state", ErrInvalidArgument, r.agg.Name())
	}
	if err := r.checkID(st.ID); err != nil {
		return eventstore.AppendResult{}, err
	}
	if len(events) == 0 {
		return eventstore.AppendResult{}, nil
	}
	var cfg saveConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	recs := make([]eventstore.Event, len(events))
	for i, e := range events {
		ev, err := r.agg.events.Encode(e)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("aggregate %q: save %q: event %d: %w", r.agg.Name(), st.ID, i, err)
		}
		ev.CorrelationID, ev.CausationID, ev.Headers, ev.Timestamp = cfg.correlation, cfg.causation, cfg.headers, cfg.timestamp
		recs[i] = ev
	}
	// Evolve before appending: an Evolve that fails on these events would
	// make the stream unloadable once they are stored.
	next, err := r.agg.Evolve(st.State, events...)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	res, err := r.store.Append(ctx, r.agg.Topic(), st.ID, eventstore.Exact(st.Version), recs, cfg.appendOpts...)
	if err != nil {
		if errors.Is(err, eventstore.ErrVersionConflict) {
			// st was stale: another writer got there first, or the stream
			// was rewound (a restore). A cached entry no newer than st is
			// stale too.
			r.cache.dropUpTo(st.ID, st.Version)
		}
		return eventstore.AppendResult{}, err
	}
	prev := st.Version
	st.State, st.Version = next, res.LastVersion
	var encoded []byte
	if r.cache != nil {
		encoded = r.cachePut(st)
	}
	if every := uint64(r.agg.SnapshotEvery()); every > 0 && res.LastVersion/every > prev/every {
		if err := r.snapshot(ctx, st, encoded); err != nil {
			r.logger.LogAttrs(ctx, slog.LevelWarn, "snapshot not written",
				append([]slog.Attr{slog.String(telemetry.AttrAggregate, r.agg.Name()), slog.String(telemetry.AttrAggregateID, st.ID),
					slog.Any(telemetry.AttrError, err)}, telemetry.TraceAttrs(ctx)...)...)
		}
	}
	return res, nil
}

// Snapshot writes a snapshot of st (its state as of st.Version) to the
// snapshot topic now, non-durably (see Save). Store.Sync makes it durable.
func (r *Repository[S, C, E]) Snapshot(ctx context.Context, st *State[S]) error {
	if st == nil || st.Version == 0 {
		return fmt.Errorf("%w: aggregate %q: nothing to snapshot", ErrInvalidArgument, r.agg.Name())
	}
	return r.snapshot(ctx, st, nil)
}

// snapshot writes st's snapshot, with its state already encoded as b if b
// is not nil.
func (r *Repository[S, C, E]) snapshot(ctx context.Context, st *State[S], b []byte) error {
	if b == nil {
		var err error
		if b, err = r.agg.SnapshotCodec().Marshal(any(st.State)); err != nil {
			return fmt.Errorf("aggregate %q: encode snapshot of %q: %w", r.agg.Name(), st.ID, err)
		}
	}
	payload := EncodeSnapshot(Snapshot{StreamVersion: st.Version, Schema: r.agg.SnapshotSchema(), State: b})
	_, err := r.store.Append(ctx, r.agg.SnapshotTopic(), st.ID, eventstore.Any,
		[]eventstore.Event{{Type: snapshotEventType, SchemaVersion: r.agg.SnapshotSchema(), Payload: payload}},
		eventstore.NoSync())
	if err != nil {
		return fmt.Errorf("aggregate %q: write snapshot of %q: %w", r.agg.Name(), st.ID, err)
	}
	return nil
}
