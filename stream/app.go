package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/muninn-es/muninn/eventstore"
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

// Errors of an App.
var (
	// ErrRunning is returned by Run while another Run of the same App is
	// running.
	ErrRunning = errors.New("stream: app is already running")
	// ErrBadRecord is wrapped by the error that stops an App on a record it
	// cannot decode (see SkipBadRecords).
	ErrBadRecord = errors.New("stream: bad record")
)

// idNamespace is the UUIDv5 namespace of the event IDs sinks derive.
var idNamespace = uuid.MustParse("6f1d5c1e-8d8a-4a57-9a43-3c2b0a5f7e10")

// Option configures NewApp.
type Option func(*config)

type config struct {
	batchSize int
	memberID  string
	skipBad   bool
	onLate    func(LateRecord)
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
// record stops Run with an error wrapping ErrBadRecord that names its
// position, and the App resumes at it after a restart.
func SkipBadRecords() Option { return func(c *config) { c.skipBad = true } }

// WithLateRecordHandler calls fn for each record a windowed step drops as
// late, after the batch that dropped it commits (so a crash may report a
// record again). fn runs on the App's goroutine: keep it quick.
func WithLateRecordHandler(fn func(LateRecord)) Option { return func(c *config) { c.onLate = fn } }

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
// with the state, so they count each input record once across restarts.
type Metrics struct {
	// ProcessedRecords counts input records processed and committed, from
	// source and repartition topics.
	ProcessedRecords int64
	// SkippedRecords counts tombstones on stream sources and, with
	// SkipBadRecords, records that did not decode.
	SkippedRecords int64
	// DuplicateRecords counts repartition records dropped because they were
	// already processed (rewritten after a crash).
	DuplicateRecords int64
	// LateRecords counts, per window store, records dropped as late: too
	// late for at least one of their windows (a record of hopping windows
	// may still count in the others).
	LateRecords map[string]int64
}

// App runs a Topology on a store: it consumes the source topics (and its
// repartition topics) as the consumer group named by its application ID,
// pushes each polled batch of records through the processors, and commits
// the batch's state store changes, counters and the group's offsets in one
// Store.Update. State is therefore exactly once with respect to the input:
// after a crash the batch is processed again from the committed state.
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

	prefixes map[*storeDef][]byte
	// scratch has buffers per topology node, used by the Run goroutine only.
	scratch []scratch
	// partitions is the partition count of internal topics: the largest
	// source topic's.
	partitions int

	running atomic.Bool
	mu      sync.Mutex
	// ready is set while a Run has restored its stores and joined its group.
	ready bool
	// changed is closed and replaced when ready changes and after every
	// commit.
	changed chan struct{}
	// beforeUpdate, if set (by tests), runs between a batch's writes and its
	// Update; an error stops Run as a crash there would.
	beforeUpdate func() error
}

// NewApp returns an App that runs topo on store as application appID, the
// name of its consumer group and the prefix of its internal topics and of its
// state ("stream/<appID>/"). It reports every problem with the topology and
// the options at once.
func NewApp(store eventstore.Store, topo *Topology, appID string, opts ...Option) (*App, error) {
	cfg := config{batchSize: DefaultBatchSize}
	for _, o := range opts {
		o(&cfg)
	}
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("stream: store is nil"))
	}
	if topo == nil {
		errs = append(errs, errors.New("stream: topology is nil"))
	} else if err := topo.Err(); err != nil {
		errs = append(errs, err)
	}
	if err := validName("application ID", appID); err != nil {
		errs = append(errs, err)
	}
	if topo != nil {
		for _, s := range topo.stores {
			if n := len(appID) + len(s.name) + len("--changelog"); n > eventstore.MaxTopicNameLen {
				errs = append(errs, fmt.Errorf("stream: changelog topic of store %q in app %q would be %d bytes, longer than %d", s.name, appID, n, eventstore.MaxTopicNameLen))
			}
		}
	}
	if cfg.batchSize < 1 || cfg.batchSize > 1_000_000 {
		errs = append(errs, fmt.Errorf("stream: WithBatchSize must be in [1, 1000000], got %d", cfg.batchSize))
	}
	if cfg.memberID == "" {
		cfg.memberID = appID + "-" + uuid.NewString()[:8]
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a := &App{store: store, topo: topo, id: appID, cfg: cfg, prefixes: map[*storeDef][]byte{}, changed: make(chan struct{})}
	for _, s := range topo.stores {
		a.prefixes[s] = storePrefix(appID, s.name)
	}
	a.scratch = make([]scratch, len(topo.nodes))
	return a, nil
}

// scratch holds a processor's buffers for encoded keys and state keys. Each
// processor has its own: a processor downstream of another runs while the
// upstream one still holds its buffers.
type scratch struct {
	key, state []byte
}

// ID returns the application ID.
func (a *App) ID() string { return a.id }

func (a *App) changelogTopic(st *storeDef) string { return a.id + "-" + st.name + "-changelog" }

// prepare checks the source topics and creates the internal and sink topics
// that are missing. It returns the topics the App consumes.
func (a *App) prepare(ctx context.Context) ([]string, error) {
	var errs []error
	var topics []string
	a.partitions = 1
	for _, s := range a.topo.sources {
		if s.internal {
			continue
		}
		n, err := a.store.Partitions(s.topic)
		if err != nil {
			errs = append(errs, fmt.Errorf("stream: source topic %q: %w", s.topic, err))
			continue
		}
		a.partitions = max(a.partitions, n)
		topics = append(topics, s.topic)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
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
			name := topicName(a.id, s.topic, true)
			if err := create(name, eventstore.TopicConfig{Partitions: a.partitions, Cleanup: eventstore.Retain}); err != nil {
				return nil, err
			}
			topics = append(topics, name)
		}
	}
	for _, sk := range a.topo.sinks {
		if err := create(topicName(a.id, sk.topic, sk.internal), eventstore.TopicConfig{Partitions: a.partitions}); err != nil {
			return nil, err
		}
	}
	for _, st := range a.topo.stores {
		if err := create(a.changelogTopic(st), eventstore.TopicConfig{Partitions: a.partitions, Cleanup: eventstore.Compact}); err != nil {
			return nil, err
		}
	}
	return topics, nil
}

// Run runs the App until ctx ends (then it returns nil) or an error stops
// it. It may be called again after it returned; the App then resumes from
// its committed offsets and state. Only one Run of an App may run at a time.
func (a *App) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer a.running.Store(false)
	err := a.run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (a *App) run(ctx context.Context) error {
	topics, err := a.prepare(ctx)
	if err != nil {
		return err
	}
	for _, st := range a.topo.stores {
		if err := a.restore(ctx, st); err != nil {
			return err
		}
	}
	sources := map[string]*source{}
	for _, s := range a.topo.sources {
		sources[topicName(a.id, s.topic, s.internal)] = s
	}
	c, err := a.store.JoinGroup(ctx, a.id, topics, eventstore.WithMemberID(a.cfg.memberID))
	if err != nil {
		return err
	}
	defer c.Close()
	a.setReady(true)
	defer a.setReady(false)
	// The inbox holds what was polled and not yet processed. Each round
	// tops it up without waiting, so that every partition with records to
	// read has some in the inbox (within a bound on memory), and then
	// processes one batch in event-time order across partitions.
	in := newInbox()
	for {
		if in.total == 0 {
			recs, err := c.Poll(ctx, a.cfg.batchSize)
			if err != nil {
				return err
			}
			in.add(recs)
		}
		more, err := a.fill(ctx, c, in)
		if err != nil {
			return err
		}
		recs := in.take(a.cfg.batchSize, more)
		b := newBatch(a, ctx)
		if err := b.process(recs, sources); err != nil {
			return err
		}
		err = b.commit(c)
		if errors.Is(err, eventstore.ErrNotAssigned) {
			// The batch is void. The member reads the partitions it keeps
			// on from its records, and the new owners of the others read
			// them from the committed offsets.
			kept := map[eventstore.TopicPartition]bool{}
			for _, tp := range c.Assignment() {
				kept[tp] = true
			}
			in.putBack(recs, kept)
			continue
		}
		if err != nil {
			return err
		}
		if a.cfg.onLate != nil {
			for _, l := range b.lateRecs {
				a.cfg.onLate(l)
			}
		}
		a.signal()
	}
}

// fill tops the inbox up without waiting until every assigned partition
// that has records to read has some in the inbox, or the inbox holds
// inboxBatches batches. It returns the partitions that have records not
// yet polled.
func (a *App) fill(ctx context.Context, c eventstore.Consumer, in *inbox) (map[eventstore.TopicPartition]bool, error) {
	assigned := c.Assignment()
	chunk := max(a.cfg.batchSize/max(len(assigned), 1), 1)
	ends := map[string][]eventstore.PartitionInfo{}
	for {
		more := map[eventstore.TopicPartition]bool{}
		starved := false
		for _, tp := range assigned {
			parts, ok := ends[tp.Topic]
			if !ok {
				info, err := a.store.DescribeTopic(ctx, tp.Topic)
				if err != nil {
					return nil, err
				}
				parts = info.Partitions
				ends[tp.Topic] = parts
			}
			if tp.Partition >= len(parts) {
				continue
			}
			pos, ok := in.position(tp)
			if !ok {
				off, found, err := a.store.CommittedOffset(ctx, a.id, tp.Topic, tp.Partition)
				if err != nil {
					return nil, err
				}
				pos = max(off, parts[tp.Partition].StartOffset)
				if !found {
					pos = parts[tp.Partition].StartOffset
				}
			}
			if parts[tp.Partition].EndOffset > pos {
				more[tp] = true
				starved = starved || in.empty(tp)
			}
		}
		if !starved || in.total >= inboxBatches*a.cfg.batchSize {
			return more, nil
		}
		recs, err := c.TryPoll(ctx, chunk)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return more, nil
		}
		in.add(recs)
		// The ends are read again on the next pass only for what moved.
		clear(ends)
	}
}

func (a *App) setReady(ready bool) {
	a.mu.Lock()
	a.ready = ready
	a.mu.Unlock()
	a.signal()
}

func (a *App) signal() {
	a.mu.Lock()
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
}

// WaitCaughtUp returns once a Run of the App has started (restored its
// stores and joined its group) and the group has committed every record of
// its source and repartition topics (lag 0); or when ctx ends, with its
// error. It checks again after each commit of this App: with several members
// in the group, the one whose commit completes the work returns, so wait on
// all of them and take the first.
func (a *App) WaitCaughtUp(ctx context.Context) error {
	for {
		a.mu.Lock()
		next, ready := a.changed, a.ready
		a.mu.Unlock()
		var info eventstore.GroupInfo
		var err error
		if ready {
			info, err = a.store.DescribeGroup(ctx, a.id)
		}
		if err != nil && !errors.Is(err, eventstore.ErrGroupNotFound) {
			return err
		}
		if ready && err == nil && len(info.Partitions) > 0 {
			var lag int64
			for _, p := range info.Partitions {
				lag += p.Lag
			}
			if lag == 0 && a.sourcesCommitted(info) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-next:
		}
	}
}

// sourcesCommitted reports whether the group knows every source topic (it
// may not, before the App's first start).
func (a *App) sourcesCommitted(info eventstore.GroupInfo) bool {
	for _, s := range a.topo.sources {
		name := topicName(a.id, s.topic, s.internal)
		if !slices.ContainsFunc(info.Partitions, func(p eventstore.GroupPartitionInfo) bool { return p.Topic == name }) {
			return false
		}
	}
	return true
}

// Metrics returns the App's committed counters.
func (a *App) Metrics(ctx context.Context) (Metrics, error) {
	m := Metrics{LateRecords: map[string]int64{}}
	get := func(name string) (int64, error) {
		v, ok, err := a.store.Get(ctx, metaKey(a.id, "metric", name))
		if err != nil || !ok {
			return 0, err
		}
		if len(v) != 8 {
			return 0, fmt.Errorf("stream: metric %q has %d bytes, want 8", name, len(v))
		}
		return int64(binary.BigEndian.Uint64(v)), nil
	}
	var errs []error
	var err error
	m.ProcessedRecords, err = get("processed")
	errs = append(errs, err)
	m.SkippedRecords, err = get("skipped")
	errs = append(errs, err)
	m.DuplicateRecords, err = get("duplicates")
	errs = append(errs, err)
	for _, st := range a.topo.stores {
		if st.kind == windowStore {
			m.LateRecords[st.name], err = get("late/" + st.name)
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}

// procCtx is the context of one input record on its way through the
// processors.
type procCtx struct {
	b   *batch
	rec *eventstore.Record
	// outs counts the records written per sink for this input record.
	outs map[*sinkDef]int
}

var errSkip = errors.New("stream: record skipped")

// bad handles a record that does not decode: skip it or stop.
func (pc *procCtx) bad(err error) error {
	if pc.b.a.cfg.skipBad {
		pc.b.skipped++
		return errSkip
	}
	return fmt.Errorf("%w at %s/%d offset %d: %v", ErrBadRecord, pc.rec.Topic, pc.rec.Partition, pc.rec.Offset, err)
}

// entry is a state key as the batch sees it.
type entry struct {
	val     []byte
	present bool
	dirty   bool
	// st is the store whose changelog records the key, nil for keys that
	// are not logged; the changelog key is the key after prefixLen bytes.
	st        *storeDef
	prefixLen int
}

type output struct {
	topic string
	key   string
	event eventstore.Event
	// st is set for changelog records.
	st *storeDef
}

type partKey struct {
	st   *storeDef
	part int
}

// batch is the work of one poll: a write-back cache of the state it touches
// and the records it writes, committed together.
type batch struct {
	a       *App
	ctx     context.Context
	entries map[string]*entry
	dirty   []string

	outs    []output
	offsets map[eventstore.TopicPartition]int64

	processed, skipped, duplicates int64
	late                           map[*storeDef]int64
	lateRecs                       []LateRecord
	// advanced holds the window store partitions whose stream time moved.
	advanced map[partKey]int64
	// newIndex lists window index keys created in this batch.
	newIndex map[partKey][][]byte
}

func newBatch(a *App, ctx context.Context) *batch {
	return &batch{a: a, ctx: ctx, entries: map[string]*entry{}, offsets: map[eventstore.TopicPartition]int64{},
		late: map[*storeDef]int64{}, advanced: map[partKey]int64{}, newIndex: map[partKey][][]byte{}}
}

// get returns a state value as the batch sees it. The slice must not be
// modified.
func (b *batch) get(key []byte) ([]byte, bool, error) {
	if e, ok := b.entries[string(key)]; ok {
		return e.val, e.present, nil
	}
	v, ok, err := b.a.store.Get(b.ctx, key)
	if err != nil {
		return nil, false, err
	}
	b.entries[string(key)] = &entry{val: v, present: ok}
	return v, ok, nil
}

// put sets key to val; st (if not nil) logs it to its changelog under the
// key's part after prefixLen bytes.
func (b *batch) put(key, val []byte, st *storeDef, prefixLen int) {
	b.write(key, val, true, st, prefixLen)
}

func (b *batch) del(key []byte, st *storeDef, prefixLen int) { b.write(key, nil, false, st, prefixLen) }

func (b *batch) write(key, val []byte, present bool, st *storeDef, prefixLen int) {
	e, ok := b.entries[string(key)]
	if !ok {
		e = &entry{}
		b.entries[string(key)] = e
	}
	if !e.dirty {
		e.dirty = true
		b.dirty = append(b.dirty, string(key))
	}
	e.val, e.present, e.st, e.prefixLen = val, present, st, prefixLen
}

// send queues a record for a sink.
func (b *batch) send(pc *procCtx, sk *sinkDef, key, value []byte, ts time.Time) error {
	if len(key) == 0 {
		return fmt.Errorf("stream: sink %s: the record's key encodes to no bytes; a record in the log needs a key", sk.topic)
	}
	if pc.outs == nil {
		pc.outs = map[*sinkDef]int{}
	}
	idx := pc.outs[sk]
	pc.outs[sk] = idx + 1
	topic := topicName(b.a.id, sk.topic, sk.internal)
	src := pc.rec.Topic + "/" + strconv.Itoa(pc.rec.Partition) + "/" + strconv.FormatInt(pc.rec.Offset, 10)
	ev := eventstore.Event{
		ID:            uuid.NewSHA1(idNamespace, []byte(b.a.id+"\x00"+topic+"\x00"+src+"\x00"+strconv.Itoa(idx))),
		Type:          sk.eventType,
		SchemaVersion: 1,
		Payload:       value,
		Timestamp:     ts,
		CorrelationID: pc.rec.CorrelationID,
		CausationID:   pc.rec.ID.String(),
		Headers:       map[string]string{HeaderSource: src, HeaderIndex: strconv.Itoa(idx)},
	}
	b.outs = append(b.outs, output{topic: topic, key: string(key), event: ev})
	return nil
}

// seen reports whether a repartition record was processed before: its
// input position is not after the last one seen in its partition from the
// same upstream partition. Otherwise it records the position.
func (b *batch) seen(rec *eventstore.Record) (bool, error) {
	src, idxS := rec.Headers[HeaderSource], rec.Headers[HeaderIndex]
	i := strings.LastIndexByte(src, '/')
	if i < 0 {
		return false, nil
	}
	off, err1 := strconv.ParseInt(src[i+1:], 10, 64)
	idx, err2 := strconv.ParseUint(idxS, 10, 32)
	if err1 != nil || err2 != nil {
		return false, nil
	}
	key := metaKey(b.a.id, "dedup", rec.Topic+"/"+strconv.Itoa(rec.Partition)+"/"+src[:i])
	v, ok, err := b.get(key)
	if err != nil {
		return false, err
	}
	if ok && len(v) == 12 {
		lastOff, lastIdx := int64(binary.BigEndian.Uint64(v)), binary.BigEndian.Uint32(v[8:])
		if off < lastOff || off == lastOff && uint32(idx) <= lastIdx {
			b.duplicates++
			return true, nil
		}
	}
	nv := binary.BigEndian.AppendUint64(make([]byte, 0, 12), uint64(off))
	b.put(key, binary.BigEndian.AppendUint32(nv, uint32(idx)), nil, 0)
	return false, nil
}

// process pushes the polled records through the topology.
func (b *batch) process(recs []eventstore.Record, sources map[string]*source) error {
	for i := range recs {
		rec := &recs[i]
		s := sources[rec.Topic]
		if s == nil {
			return fmt.Errorf("stream: polled a record of topic %q, which no source reads", rec.Topic)
		}
		pc := &procCtx{b: b, rec: rec}
		if err := s.process(pc, rec); err != nil && !errors.Is(err, errSkip) {
			return err
		}
		b.processed++
		b.offsets[eventstore.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}] = rec.Offset + 1
	}
	return b.expire()
}

// expire removes the windows that stream time has moved past their
// retention, in the window store partitions whose stream time advanced.
func (b *batch) expire() error {
	keys := make([]partKey, 0, len(b.advanced))
	for k := range b.advanced {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].st.name != keys[j].st.name {
			return keys[i].st.name < keys[j].st.name
		}
		return keys[i].part < keys[j].part
	})
	for _, pk := range keys {
		streamTime := b.advanced[pk]
		cutoff := streamTime - int64(pk.st.windows.retention())
		prefix := b.a.prefixes[pk.st]
		lo := indexPartPrefix(prefix, pk.part)
		hi := appendStart(slices.Clone(lo), cutoff+1)
		var expired [][]byte
		for kv, err := range b.a.store.Scan(b.ctx, lo, hi, false) {
			if err != nil {
				return err
			}
			expired = append(expired, slices.Clone(kv.Key))
		}
		for _, k := range b.newIndex[pk] {
			if string(k) < string(hi) {
				expired = append(expired, k)
			}
		}
		for _, ik := range expired {
			if e, ok := b.entries[string(ik)]; ok && !e.present {
				continue // already removed
			}
			start, key, err := parseIndexKey(ik[len(lo):])
			if err != nil {
				return err
			}
			b.del(ik, nil, 0)
			b.del(windowKey(prefix, key, start), pk.st, len(prefix))
		}
	}
	return nil
}

// commit writes the batch's output and changelog records, then commits its
// state, counters, changelog positions and offsets in one Update.
func (b *batch) commit(c eventstore.Consumer) error {
	a := b.a
	for _, k := range b.dirty {
		e := b.entries[k]
		if e.st == nil {
			continue
		}
		ev := eventstore.Event{Type: "stream.changelog", SchemaVersion: 1, Payload: e.val}
		if !e.present {
			ev.Payload = nil
		} else if ev.Payload == nil {
			ev.Payload = []byte{}
		}
		b.outs = append(b.outs, output{topic: a.changelogTopic(e.st), key: k[e.prefixLen:], event: ev, st: e.st})
	}
	ends, err := b.writeOutputs()
	if err != nil {
		return err
	}
	if a.beforeUpdate != nil {
		if err := a.beforeUpdate(); err != nil {
			return err
		}
	}
	return a.store.Update(b.ctx, func(tx eventstore.Txn) error {
		for _, k := range b.dirty {
			e := b.entries[k]
			var err error
			if e.present {
				err = tx.Set([]byte(k), e.val)
			} else {
				err = tx.Delete([]byte(k))
			}
			if err != nil {
				return err
			}
		}
		for pk, end := range ends {
			// Several members may write to one changelog partition: keep
			// the highest end.
			key := partKey2(a.id, pk)
			if v, ok, err := tx.Get(key); err != nil {
				return err
			} else if ok && len(v) == 8 && int64(binary.BigEndian.Uint64(v)) > end {
				continue
			}
			if err := tx.Set(key, binary.BigEndian.AppendUint64(nil, uint64(end))); err != nil {
				return err
			}
		}
		add := func(name string, n int64) error {
			if n == 0 {
				return nil
			}
			key := metaKey(a.id, "metric", name)
			v, _, err := tx.Get(key)
			if err != nil {
				return err
			}
			var cur int64
			if len(v) == 8 {
				cur = int64(binary.BigEndian.Uint64(v))
			}
			return tx.Set(key, binary.BigEndian.AppendUint64(nil, uint64(cur+n)))
		}
		errs := []error{add("processed", b.processed), add("skipped", b.skipped), add("duplicates", b.duplicates)}
		for st, n := range b.late {
			errs = append(errs, add("late/"+st.name, n))
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		return tx.CommitOffsets(c, b.offsets)
	})
}

func partKey2(appID string, pk partKey) []byte {
	return partitionKey(appID, "changelog", pk.st.name, pk.part)
}

// writeOutputs appends the batch's records, in order within each partition and in
// parallel across partitions, without waiting for fsync: the Update that
// follows is durable, and a durable write makes every write before it in the
// log durable too. It returns, per changelog partition, the offset after the
// last record written.
func (b *batch) writeOutputs() (map[partKey]int64, error) {
	type group struct {
		topic string
		part  int
		outs  []*output
		end   int64
	}
	var groups []*group
	index := map[eventstore.TopicPartition]*group{}
	for i := range b.outs {
		o := &b.outs[i]
		p, err := b.a.store.PartitionFor(o.topic, o.key)
		if err != nil {
			return nil, err
		}
		tp := eventstore.TopicPartition{Topic: o.topic, Partition: p}
		g := index[tp]
		if g == nil {
			g = &group{topic: o.topic, part: p}
			index[tp] = g
			groups = append(groups, g)
		}
		g.outs = append(g.outs, o)
	}
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
		next  atomic.Int64
	)
	for range min(appendWorkers, len(groups)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(groups) {
					return
				}
				g := groups[i]
				for _, o := range g.outs {
					res, err := b.a.store.Append(b.ctx, o.topic, o.key, eventstore.Any, []eventstore.Event{o.event}, eventstore.NoSync())
					if err != nil {
						errMu.Lock()
						if first == nil {
							first = fmt.Errorf("stream: write to %s: %w", o.topic, err)
						}
						errMu.Unlock()
						return
					}
					g.end = res.LastOffset + 1
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	ends := map[partKey]int64{}
	for _, g := range groups {
		if st := g.outs[0].st; st != nil {
			ends[partKey{st, g.part}] = g.end
		}
	}
	return ends, nil
}
