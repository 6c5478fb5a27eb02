package eventstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int
}

// String returns "topic/partition".
func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// StartPosition is where a consumer group starts reading a partition for
// which it has no committed offset.
type StartPosition int

const (
	// Earliest starts at the oldest record still present (the default).
	Earliest StartPosition = iota
	// Latest starts at the partition's end at the time it was assigned to
	// the member: only records appended from then on.
	Latest
)

// ConsumerOptions is what the ConsumerOptions of one JoinGroup ask for. A
// backend reads them with NewConsumerOptions.
type ConsumerOptions struct {
	// MemberID is the member's ID; empty means the group name and a random
	// suffix (see WithMemberID).
	MemberID string
	// Start is where to start on partitions the group never committed.
	Start StartPosition
}

// ConsumerOption configures JoinGroup.
type ConsumerOption func(*ConsumerOptions)

// NewConsumerOptions applies opts to a zero ConsumerOptions.
func NewConsumerOptions(opts ...ConsumerOption) ConsumerOptions { return applyOptions(opts) }

type consumerOptions struct {
	ConsumerOptions
	chunk int
}

// WithMemberID sets the member's ID (default: the group name and a random
// suffix). IDs must be unique within the group.
func WithMemberID(id string) ConsumerOption { return func(o *ConsumerOptions) { o.MemberID = id } }

// WithStartPosition sets where to start on partitions the group has never
// committed (default Earliest).
func WithStartPosition(p StartPosition) ConsumerOption {
	return func(o *ConsumerOptions) { o.Start = p }
}

// coordinator keeps the in-process consumer groups: their members and the
// assignment of partitions to members.
type coordinator struct {
	mu     sync.Mutex
	groups map[string]*groupState
}

func (c *coordinator) init() { c.groups = map[string]*groupState{} }

// subscriber returns the name of a group with a member subscribed to t, or
// "" if there is none.
func (c *coordinator) subscriber(t *topicState) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, g := range c.groups {
		g.mu.Lock()
		for _, m := range g.members {
			if slices.Contains(m.topics, t) {
				g.mu.Unlock()
				return name
			}
		}
		g.mu.Unlock()
	}
	return ""
}

type groupState struct {
	name string
	// mu guards the fields below and serializes offset commits with
	// rebalances, so that a member that lost a partition can never commit it.
	mu         sync.Mutex
	generation atomic.Int64
	members    map[string]*pebbleConsumer
	assignment map[string][]TopicPartition
	owner      map[TopicPartition]string
	// epoch counts the changes of each partition's owner, so that a member
	// that lost a partition and got it back cannot commit offsets, or keep
	// reading from a position, of the time before.
	epoch map[TopicPartition]int64
	// endAt is each partition's end offset when it was last assigned: where
	// a Latest member without a committed offset starts.
	endAt   map[TopicPartition]int64
	changed chan struct{}
}

// pebbleConsumer is PebbleStore's Consumer, a member of a consumer group.
// The partitions of the topics it subscribes to are spread over the group's
// members in this process and rebalanced when a member joins or leaves.
// Read with Records; commit with Commit or CommitOffsets.
type pebbleConsumer struct {
	s      *PebbleStore
	g      *groupState
	id     string
	topics []*topicState
	opts   consumerOptions
	closed chan struct{}
	once   sync.Once

	// positions is owned by the goroutine running Records.
	positions map[TopicPartition]int64
	gen       int64
	assigned  []TopicPartition
	// epochs are the partitions' owner epochs as of the member's last
	// refresh; guarded by g.mu.
	epochs map[TopicPartition]int64
	// next is the assigned partition Poll serves first, so that none starves.
	next int
}

// ValidateGroupName checks a consumer group name: ValidateName("group",
// name).
func ValidateGroupName(name string) error { return ValidateName("group", name) }

// JoinGroup adds a member to consumer group group, subscribed to topics, and
// rebalances the group. The member resumes every partition it is assigned
// from the group's committed offset.
func (s *PebbleStore) JoinGroup(ctx context.Context, group string, topics []string, opts ...ConsumerOption) (Consumer, error) {
	if s.closedFlag.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := consumerOptions{ConsumerOptions: NewConsumerOptions(opts...), chunk: 512}
	var errs []error
	errs = append(errs, ValidateGroupName(group))
	if len(topics) == 0 {
		errs = append(errs, invalid("topics", "none given"))
	}
	if o.Start != Earliest && o.Start != Latest {
		errs = append(errs, invalid("WithStartPosition", "unknown position %d", o.Start))
	}
	var ts []*topicState
	for _, name := range topics {
		t, err := s.topic(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("eventstore: join group %q: %w", group, err)
	}
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.release()
	if o.MemberID == "" {
		o.MemberID = group + "-" + uuid.NewString()[:8]
	}
	c := &pebbleConsumer{s: s, id: o.MemberID, topics: ts, opts: o, closed: make(chan struct{}), positions: map[TopicPartition]int64{}}

	s.groups.mu.Lock()
	g, ok := s.groups.groups[group]
	if !ok {
		g = &groupState{name: group, members: map[string]*pebbleConsumer{}, changed: make(chan struct{})}
		s.groups.groups[group] = g
	}
	s.groups.mu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.members[c.id]; dup {
		return nil, invalid("WithMemberID", "member %q is already in group %q", c.id, group)
	}
	for _, t := range ts {
		if t.deleting.Load() || t.deleted.Load() {
			return nil, fmt.Errorf("eventstore: join group %q: %w: %q is being deleted", group, ErrTopicNotFound, t.meta.Name)
		}
	}
	c.g = g
	g.members[c.id] = c
	for _, t := range ts {
		// Checked again after joining: see topicState.deleting.
		if t.deleting.Load() || t.deleted.Load() {
			delete(g.members, c.id)
			return nil, fmt.Errorf("eventstore: join group %q: %w: %q is being deleted", group, ErrTopicNotFound, t.meta.Name)
		}
	}
	g.rebalanceLocked()
	return c, nil
}

// rebalanceLocked spreads every subscribed partition round-robin over the
// members subscribed to its topic, in member ID order.
func (g *groupState) rebalanceLocked() {
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	g.assignment = map[string][]TopicPartition{}
	prevOwner := g.owner
	g.owner = map[TopicPartition]string{}
	if g.endAt == nil {
		g.endAt = map[TopicPartition]int64{}
	}
	var topics []*topicState
	for _, id := range ids {
		for _, t := range g.members[id].topics {
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
	}
	slices.SortFunc(topics, func(a, b *topicState) int { return cmp.Compare(a.meta.Name, b.meta.Name) })
	for _, t := range topics {
		var subs []string
		for _, id := range ids {
			if slices.Contains(g.members[id].topics, t) {
				subs = append(subs, id)
			}
		}
		for p := range t.parts {
			id := subs[p%len(subs)]
			tp := TopicPartition{t.meta.Name, p}
			g.assignment[id] = append(g.assignment[id], tp)
			g.owner[tp] = id
			if prevOwner[tp] != id {
				g.endAt[tp] = t.parts[p].end.Load()
				if g.epoch == nil {
					g.epoch = map[TopicPartition]int64{}
				}
				g.epoch[tp]++
			}
		}
	}
	g.generation.Add(1)
	close(g.changed)
	g.changed = make(chan struct{})
}

// topicState returns one of the member's topics. Assignments only ever
// name topics the member subscribes to.
func (c *pebbleConsumer) topicState(name string) *topicState {
	for _, t := range c.topics {
		if t.meta.Name == name {
			return t
		}
	}
	panic("eventstore: consumer assigned a topic it does not subscribe to: " + name)
}

// ID returns the member's ID.
func (c *pebbleConsumer) ID() string { return c.id }

// Group returns the name of the member's group.
func (c *pebbleConsumer) Group() string { return c.g.name }

// Rewind moves the member's read position on every partition it holds back
// to the group's committed offset (or where an uncommitted partition
// starts), so that what it polled and did not commit is read again. Poll and
// Rewind share the member's position: call it from the polling goroutine.
func (c *pebbleConsumer) Rewind(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.s.acquire(); err != nil {
		return err
	}
	defer c.s.release()
	// Forgetting the generation makes the next refresh load every
	// partition's position from the committed offsets.
	c.gen = -1
	clear(c.positions)
	if r := c.refresh(ctx); r.err != nil {
		return r.err
	}
	return nil
}

// Assignment returns the partitions currently assigned to the member.
func (c *pebbleConsumer) Assignment() []TopicPartition {
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	return slices.Clone(c.g.assignment[c.id])
}

// Close leaves the group, which rebalances its partitions over the members
// that remain. A running Records loop ends. Close is idempotent.
func (c *pebbleConsumer) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.g.mu.Lock()
		defer c.g.mu.Unlock()
		delete(c.g.members, c.id)
		c.g.rebalanceLocked()
	})
	return nil
}

// Records yields the records of the member's assigned partitions: first what
// is in the log from the committed offsets, then new records as they are
// acknowledged. Partitions are served in turn, in chunks, so that none
// starves. After a rebalance it stops delivering revoked partitions and
// starts the new ones from their committed offsets. It runs until ctx ends
// (no error; a ctx already done when it starts yields ctx.Err()), the loop
// breaks, the consumer closes (no error), or the store closes (ErrClosed).
// Only one Records loop may run per Consumer at a time.
func (c *pebbleConsumer) Records(ctx context.Context) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(Record{}, err)
			return
		}
		if err := c.s.acquire(); err != nil {
			yield(Record{}, err)
			return
		}
		defer c.s.release()
		next := 0
		for {
			select {
			case <-c.closed:
				return
			default:
			}
			changed := c.refresh(ctx)
			if err := changed.err; err != nil {
				if ctx.Err() == nil {
					yield(Record{}, err)
				}
				return
			}
			// Collect the wake-up channels before looking at the ends, so
			// that no commit between the two is missed.
			cases := c.waitCases(ctx, changed.ch)
			progressed := false
			for i := range c.assigned {
				tp := c.assigned[(next+i)%len(c.assigned)]
				t := c.topicState(tp.Topic)
				pos, end := c.positions[tp], t.parts[tp.Partition].end.Load()
				if pos >= end {
					continue
				}
				progressed = true
				stopped := false
				newPos, ok := c.s.scanPartition(ctx, t, tp.Partition, pos, min(end, pos+int64(c.opts.chunk)), func(rec Record, err error) bool {
					if err != nil {
						if ctx.Err() == nil {
							yield(rec, err)
						}
						stopped = true
						return false
					}
					if c.g.generation.Load() != c.gen {
						return false // rebalanced: re-check the assignment first
					}
					c.positions[tp] = rec.Offset + 1
					if !yield(rec, nil) {
						stopped = true
						return false
					}
					return true
				})
				if stopped {
					return
				}
				if ok {
					c.positions[tp] = newPos
				}
				if c.g.generation.Load() != c.gen {
					break
				}
			}
			if len(c.assigned) > 0 {
				next = (next + 1) % len(c.assigned)
			}
			if progressed {
				continue
			}
			chosen, _, _ := reflect.Select(cases)
			switch chosen {
			case 0, 1:
				return
			case 2:
				yield(Record{}, ErrClosed)
				return
			}
		}
	}
}

// waitCases returns what a consumer with nothing to read waits for: ctx,
// the consumer's and the store's closing, a rebalance (changed), and a
// commit to any of its topics, in that order.
func (c *pebbleConsumer) waitCases(ctx context.Context, changed chan struct{}) []reflect.SelectCase {
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c.closed)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c.s.closing)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(changed)},
	}
	for _, t := range c.topics {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(*t.notify.Load())})
	}
	return cases
}

// Poll returns up to max records of the member's assigned partitions, in
// offset order per partition, waiting until at least one is available. A
// batch shorter than max means the member had read everything acknowledged
// when Poll returned, which is the moment a batching consumer (a projection)
// commits. Poll advances the member's read position past what it returns;
// what was not committed is read again only after a restart or rebalance.
//
// It returns ctx's error when ctx ends first, ErrConsumerClosed after
// Close, and ErrClosed when the store closes. A rebalance that changes the
// member's assignment while it waits ends the wait with an empty batch, so
// that the caller can see its new partitions. Records and Poll share the
// member's position: use one of them at a time.
func (c *pebbleConsumer) Poll(ctx context.Context, max int) ([]Record, error) {
	return c.poll(ctx, max, true)
}

// TryPoll is Poll without the wait: it returns what is available, up to
// max, and an empty batch at once if nothing is. A batching consumer that
// holds records already uses it to top them up without blocking.
func (c *pebbleConsumer) TryPoll(ctx context.Context, max int) ([]Record, error) {
	return c.poll(ctx, max, false)
}

func (c *pebbleConsumer) poll(ctx context.Context, max int, wait bool) ([]Record, error) {
	if max <= 0 {
		return nil, invalid("max", "must be positive, got %d", max)
	}
	if err := c.s.acquire(); err != nil {
		return nil, err
	}
	defer c.s.release()
	var out []Record
	startGen := int64(-2)
	for {
		select {
		case <-c.closed:
			return nil, fmt.Errorf("eventstore: poll by member %q of group %q: %w", c.id, c.g.name, ErrConsumerClosed)
		default:
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		changed := c.refresh(ctx)
		if changed.err != nil {
			return nil, changed.err
		}
		if startGen == -2 {
			startGen = c.gen
		}
		cases := c.waitCases(ctx, changed.ch)
		if out == nil {
			// Size the batch once: records are large, and growing the
			// slice record by record copies them over and over.
			var avail int64
			for _, tp := range c.assigned {
				if n := c.topicState(tp.Topic).parts[tp.Partition].end.Load() - c.positions[tp]; n > 0 {
					avail += n
				}
			}
			if avail > 0 {
				out = make([]Record, 0, min(int64(max), avail))
			}
		}
		// served is the first partition that yields records: the next Poll
		// starts after it, so that partitions with records take turns even
		// when the ones before them in the assignment are empty.
		served := -1
		for i := 0; i < len(c.assigned) && len(out) < max; i++ {
			tp := c.assigned[(c.next+i)%len(c.assigned)]
			t := c.topicState(tp.Topic)
			pos, end := c.positions[tp], t.parts[tp.Partition].end.Load()
			if pos >= end {
				continue
			}
			var scanErr error
			newPos, ok := c.s.scanPartition(ctx, t, tp.Partition, pos, min(end, pos+int64(max-len(out))), func(rec Record, err error) bool {
				if err != nil {
					scanErr = err
					return false
				}
				out = append(out, rec)
				c.positions[tp] = rec.Offset + 1
				return len(out) < max
			})
			if scanErr != nil {
				return nil, scanErr
			}
			if ok {
				c.positions[tp] = newPos
			}
			if served < 0 && len(out) > 0 {
				served = (c.next + i) % len(c.assigned)
			}
		}
		if served >= 0 {
			c.next = (served + 1) % len(c.assigned)
		} else if len(c.assigned) > 0 {
			c.next = (c.next + 1) % len(c.assigned)
		}
		if len(out) > 0 || !wait || c.gen != startGen {
			// A rebalance while waiting returns an empty batch, so that the
			// caller sees its new assignment (and what the group committed on
			// the partitions it gained) without waiting for a record.
			return out, nil
		}
		chosen, _, _ := reflect.Select(cases)
		switch chosen {
		case 0:
			return nil, ctx.Err()
		case 1:
			return nil, fmt.Errorf("eventstore: poll by member %q of group %q: %w", c.id, c.g.name, ErrConsumerClosed)
		case 2:
			return nil, ErrClosed
		}
	}
}

type refreshResult struct {
	ch  chan struct{}
	err error
}

// refresh brings the member's view of its assignment up to date, loading
// the committed offsets of newly assigned partitions.
func (c *pebbleConsumer) refresh(ctx context.Context) refreshResult {
	c.g.mu.Lock()
	gen := c.g.generation.Load()
	ch := c.g.changed
	if gen == c.gen {
		c.g.mu.Unlock()
		return refreshResult{ch: ch}
	}
	assigned := slices.Clone(c.g.assignment[c.id])
	endAt := make(map[TopicPartition]int64, len(assigned))
	epochs := make(map[TopicPartition]int64, len(assigned))
	kept := make(map[TopicPartition]bool, len(assigned))
	for _, tp := range assigned {
		endAt[tp] = c.g.endAt[tp]
		epochs[tp] = c.g.epoch[tp]
		// A partition held without a break keeps its read position; one
		// that went to another member and came back resumes from the
		// group's committed offset, which that member may have moved.
		old, had := c.epochs[tp]
		kept[tp] = had && old == epochs[tp]
	}
	c.g.mu.Unlock()

	positions := make(map[TopicPartition]int64, len(assigned))
	for _, tp := range assigned {
		if pos, ok := c.positions[tp]; ok && kept[tp] {
			positions[tp] = pos
			continue
		}
		t := c.topicState(tp.Topic)
		off, ok, err := c.s.committed(c.g.name, t, tp.Partition)
		if err != nil {
			return refreshResult{err: err}
		}
		p := &t.parts[tp.Partition]
		switch {
		case ok:
			positions[tp] = max(off, p.start.Load())
		case c.opts.Start == Latest:
			positions[tp] = max(endAt[tp], p.start.Load())
		default:
			positions[tp] = p.start.Load()
		}
	}
	c.g.mu.Lock()
	c.epochs = epochs
	c.g.mu.Unlock()
	c.positions, c.assigned, c.gen = positions, assigned, gen
	return refreshResult{ch: ch}
}

// Commit commits the offset after rec for rec's partition: the group resumes
// there after a restart or rebalance. It fails with ErrNotAssigned if the
// partition is no longer assigned to this member.
func (c *pebbleConsumer) Commit(ctx context.Context, rec Record) error {
	return c.CommitOffsets(ctx, map[TopicPartition]int64{{rec.Topic, rec.Partition}: rec.Offset + 1})
}

// CommitOffsets durably commits, in one batch, the next offset to read for
// each partition. Each call costs an fsync: commit every so many records
// rather than after each one. Every partition must be assigned to this member,
// and must not have been with another member since this one last read it
// (else ErrNotAssigned and nothing is committed): after a partition comes
// back, the member reads it again from the group's committed offset.
func (c *pebbleConsumer) CommitOffsets(ctx context.Context, offsets map[TopicPartition]int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.s.acquire(); err != nil {
		return err
	}
	defer c.s.release()
	if err := c.s.failure(); err != nil {
		return err
	}
	b := c.s.db.NewBatch()
	defer b.Close()
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	if err := c.stageOffsetsLocked(b, offsets); err != nil {
		return err
	}
	if err := pebbleCall(func() error { return b.Commit(pebble.Sync) }); err != nil {
		return fmt.Errorf("eventstore: commit offsets of group %q: %w", c.g.name, err)
	}
	return nil
}

// stageOffsetsLocked checks that every partition is assigned to c and its
// offset within the log, and stages the commits into b. c.g.mu is held.
func (c *pebbleConsumer) stageOffsetsLocked(b *pebble.Batch, offsets map[TopicPartition]int64) error {
	select {
	case <-c.closed:
		return fmt.Errorf("eventstore: commit by member %q that left group %q: %w", c.id, c.g.name, ErrNotAssigned)
	default:
	}
	for tp, off := range offsets {
		if c.g.owner[tp] != c.id {
			return fmt.Errorf("eventstore: commit %s for group %q: %w", tp, c.g.name, ErrNotAssigned)
		}
		if e, read := c.epochs[tp]; read && e != c.g.epoch[tp] {
			// Read before the partition went to another member and came
			// back: what was read may since have been handled and committed.
			return fmt.Errorf("eventstore: commit %s for group %q: reassigned since it was read: %w", tp, c.g.name, ErrNotAssigned)
		}
		t, err := c.s.topic(tp.Topic)
		if err != nil {
			return err
		}
		if off < 0 || off > t.parts[tp.Partition].end.Load() {
			return invalid("offset", "%d for %s is outside [0, %d]", off, tp, t.parts[tp.Partition].end.Load())
		}
		_ = b.Set(appendGroupKey(nil, c.g.name, t.meta.ID, tp.Partition), binary.BigEndian.AppendUint64(nil, uint64(off)), nil)
	}
	return nil
}

// committed returns a group's committed offset for a partition.
func (s *PebbleStore) committed(group string, t *topicState, partition int) (int64, bool, error) {
	v, closer, err := s.db.Get(appendGroupKey(nil, group, t.meta.ID, partition))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("eventstore: committed offset of group %q on %s/%d: %w", group, t.meta.Name, partition, s.engineErr(err))
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("%w: committed offset of group %q on %s/%d has %d bytes", ErrCorrupt, group, t.meta.Name, partition, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// CommittedOffset returns the offset group will resume topic's partition
// from, and false if it has never committed one.
func (s *PebbleStore) CommittedOffset(ctx context.Context, group, topic string, partition int) (int64, bool, error) {
	if err := ValidateGroupName(group); err != nil {
		return 0, false, err
	}
	t, err := s.topic(topic)
	if err != nil {
		return 0, false, err
	}
	if err := checkPartition(t, partition); err != nil {
		return 0, false, err
	}
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	if err := s.acquire(); err != nil {
		return 0, false, err
	}
	defer s.release()
	return s.committed(group, t, partition)
}

// GroupInfo describes a consumer group.
type GroupInfo struct {
	Name string
	// Generation counts the group's rebalances in this process.
	Generation int64
	Members    []MemberInfo
	// Partitions lists every partition the group consumes or has committed,
	// sorted by topic and partition.
	Partitions []GroupPartitionInfo
}

// MemberInfo describes a member of a consumer group.
type MemberInfo struct {
	ID         string
	Topics     []string
	Assignment []TopicPartition
}

// GroupPartitionInfo is a group's position on one partition.
type GroupPartitionInfo struct {
	TopicPartition
	// Member is the member assigned the partition, or "" if none is.
	Member string
	// Committed is the committed offset, or -1 if none was committed.
	Committed int64
	// End is the partition's end offset.
	End int64
	// Lag is how many offsets lie between the group's position and the end.
	Lag int64
}

// DescribeGroup returns a group's members, assignments and, per partition,
// committed offset and lag. A group without members but with committed
// offsets (say, after a restart) is described from its offsets.
func (s *PebbleStore) DescribeGroup(ctx context.Context, group string) (GroupInfo, error) {
	if err := ValidateGroupName(group); err != nil {
		return GroupInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return GroupInfo{}, err
	}
	if err := s.acquire(); err != nil {
		return GroupInfo{}, err
	}
	defer s.release()
	info := GroupInfo{Name: group}
	owners := map[TopicPartition]string{}
	s.groups.mu.Lock()
	g := s.groups.groups[group]
	s.groups.mu.Unlock()
	if g != nil {
		g.mu.Lock()
		info.Generation = g.generation.Load()
		for id, m := range g.members {
			mi := MemberInfo{ID: id, Assignment: slices.Clone(g.assignment[id])}
			for _, t := range m.topics {
				mi.Topics = append(mi.Topics, t.meta.Name)
			}
			info.Members = append(info.Members, mi)
		}
		for tp, id := range g.owner {
			owners[tp] = id
		}
		g.mu.Unlock()
		slices.SortFunc(info.Members, func(a, b MemberInfo) int { return cmp.Compare(a.ID, b.ID) })
	}
	committed := map[TopicPartition]int64{}
	prefix := appendGroupPrefix(nil, group)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: PrefixEnd(prefix)})
	if err != nil {
		return GroupInfo{}, s.engineErr(err)
	}
	byID := s.topicsByID()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(prefix):]
		if len(k) != 8 || len(it.Value()) != 8 {
			continue
		}
		t := byID[binary.BigEndian.Uint32(k)]
		if t == nil {
			continue
		}
		committed[TopicPartition{t.meta.Name, int(binary.BigEndian.Uint32(k[4:]))}] = int64(binary.BigEndian.Uint64(it.Value()))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return GroupInfo{}, fmt.Errorf("eventstore: describe group %q: %w", group, s.engineErr(err))
	}
	if len(info.Members) == 0 && len(committed) == 0 {
		// No members now (the group may have had some) and no offsets.
		return GroupInfo{}, fmt.Errorf("%w: %q", ErrGroupNotFound, group)
	}
	seen := map[TopicPartition]bool{}
	add := func(tp TopicPartition) {
		if seen[tp] {
			return
		}
		seen[tp] = true
		t, err := s.topic(tp.Topic)
		if err != nil || tp.Partition >= len(t.parts) {
			return
		}
		p := &t.parts[tp.Partition]
		gp := GroupPartitionInfo{TopicPartition: tp, Member: owners[tp], Committed: -1, End: p.end.Load()}
		pos := p.start.Load()
		if off, ok := committed[tp]; ok {
			gp.Committed = off
			pos = max(off, pos)
		}
		gp.Lag = max(gp.End-pos, 0)
		info.Partitions = append(info.Partitions, gp)
	}
	for tp := range owners {
		add(tp)
	}
	for tp := range committed {
		add(tp)
	}
	slices.SortFunc(info.Partitions, func(a, b GroupPartitionInfo) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return info, nil
}

// ListGroups returns the names of the groups that have members in this
// process or committed offsets in the store, sorted.
func (s *PebbleStore) ListGroups(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.release()
	names := map[string]bool{}
	s.groups.mu.Lock()
	for n, g := range s.groups.groups {
		g.mu.Lock()
		if len(g.members) > 0 {
			names[n] = true
		}
		g.mu.Unlock()
	}
	s.groups.mu.Unlock()
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{kindGroup}, UpperBound: []byte{kindGroup + 1}})
	if err != nil {
		return nil, s.engineErr(err)
	}
	for ok := it.First(); ok; {
		k := it.Key()[1:]
		n, w := binary.Uvarint(k)
		if w <= 0 || uint64(len(k)-w) < n {
			ok = it.Next()
			continue
		}
		name := string(k[w : w+int(n)])
		names[name] = true
		ok = it.SeekGE(PrefixEnd(appendGroupPrefix(nil, name)))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("eventstore: list groups: %w", s.engineErr(err))
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}
