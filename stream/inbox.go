package stream

import (
	"container/heap"
	"context"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
)

// inbox holds the records an App has polled but not processed, per
// partition, and hands them out in event-time order across partitions (as
// Kafka Streams picks the partition whose next record is oldest), keeping
// each partition's offset order.
type inbox struct {
	queues map[eventstore.TopicPartition]*queue
	total  int
}

type queue struct {
	tp   eventstore.TopicPartition
	recs []eventstore.Record
	// next is the offset after the last record added: a record below it
	// means the consumer went back (the partition was revoked and assigned
	// again, and resumes from the committed offset).
	next int64
}

func newInbox() *inbox { return &inbox{queues: map[eventstore.TopicPartition]*queue{}} }

// add appends polled records to their partitions' queues.
func (in *inbox) add(recs []eventstore.Record) {
	for _, r := range recs {
		tp := eventstore.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		q := in.queues[tp]
		if q == nil {
			q = &queue{tp: tp}
			in.queues[tp] = q
		}
		if r.Offset < q.next {
			// The consumer rewound: what the queue holds will be read again.
			in.total -= len(q.recs)
			q.recs = nil
		}
		q.recs = append(q.recs, r)
		q.next = r.Offset + 1
		in.total++
	}
}

// position returns the offset after the last record polled from tp, and
// false if none was.
func (in *inbox) position(tp eventstore.TopicPartition) (int64, bool) {
	if q := in.queues[tp]; q != nil {
		return q.next, true
	}
	return 0, false
}

// empty reports whether tp's queue holds no record.
func (in *inbox) empty(tp eventstore.TopicPartition) bool {
	q := in.queues[tp]
	return q == nil || len(q.recs) == 0
}

// take appends up to n records to dst, oldest event time first. It stops
// early (and says so) when the queue of a partition in more runs empty:
// that partition holds records not polled yet, which may be older than the
// other queues' next ones.
func (in *inbox) take(dst []eventstore.Record, n int, more map[eventstore.TopicPartition]bool) (_ []eventstore.Record, early bool) {
	h := make(queueHeap, 0, len(in.queues))
	for _, q := range in.queues {
		if len(q.recs) > 0 {
			h = append(h, q)
		}
	}
	heap.Init(&h)
	if dst == nil {
		dst = make([]eventstore.Record, 0, min(n, in.total))
	}
	for len(dst) < n && len(h) > 0 {
		q := h[0]
		dst = append(dst, q.recs[0])
		q.recs[0] = eventstore.Record{}
		q.recs = q.recs[1:]
		in.total--
		if len(q.recs) == 0 {
			q.recs = nil
			heap.Pop(&h)
			if more[q.tp] {
				return dst, true
			}
			continue
		}
		heap.Fix(&h, 0)
	}
	return dst, false
}

// drop forgets tp's queue.
func (in *inbox) drop(tp eventstore.TopicPartition) {
	if q := in.queues[tp]; q != nil {
		in.total -= len(q.recs)
		delete(in.queues, tp)
	}
}

// inboxSource is an App's consume.Source: its consumer group, read through
// the inbox. Each poll tops the inbox up without waiting, so that every
// partition with records to read has some in it (within a bound on
// memory), and returns a batch in event-time order across partitions; a
// batch shorter than asked for means the member has read everything.
type inboxSource struct {
	a  *App
	g  *consume.GroupSource
	in *inbox
}

func newInboxSource(a *App, g *consume.GroupSource) *inboxSource {
	return &inboxSource{a: a, g: g, in: newInbox()}
}

// Poll waits for records if the inbox is empty, then returns a batch. An
// empty batch means the member's assignment changed.
func (s *inboxSource) Poll(ctx context.Context, max int) ([]eventstore.Record, error) {
	return s.poll(ctx, max, true)
}

// TryPoll returns a batch, empty at once if the member has nothing to
// read; it then tells the App's waiters (WaitCaughtUp) that this member has
// applied everything it can read.
func (s *inboxSource) TryPoll(ctx context.Context, max int) ([]eventstore.Record, error) {
	return s.poll(ctx, max, false)
}

func (s *inboxSource) poll(ctx context.Context, max int, wait bool) ([]eventstore.Record, error) {
	for {
		if s.in.total == 0 {
			var recs []eventstore.Record
			var err error
			if wait {
				recs, err = s.g.Poll(ctx, max)
			} else {
				recs, err = s.g.TryPoll(ctx, max)
			}
			if err != nil {
				return nil, err
			}
			if len(recs) == 0 {
				if !wait {
					s.a.idle()
				}
				return nil, nil
			}
			s.in.add(recs)
		}
		recs, err := s.batch(ctx, max)
		if err != nil {
			return nil, err
		}
		tp, stale, err := s.stale(ctx, recs)
		if err != nil {
			return nil, err
		}
		if !stale {
			return recs, nil
		}
		s.a.cfg.logger.Info("stream: records read before their partition went to another member and came back; reading again from the committed offsets",
			"app", s.a.id, telemetry.AttrTopic, tp.Topic, telemetry.AttrPartition, tp.Partition)
		if err := s.Rewind(ctx); err != nil {
			return nil, err
		}
	}
}

// batch takes up to max records from the inbox, topping it up whenever a
// partition that has more to read runs empty.
func (s *inboxSource) batch(ctx context.Context, max int) ([]eventstore.Record, error) {
	var out []eventstore.Record
	for {
		more, err := s.fill(ctx, max)
		if err != nil {
			return nil, err
		}
		var early bool
		out, early = s.in.take(out, max, more)
		if !early || len(out) >= max {
			return out, nil
		}
	}
}

// stale reports whether the group's committed offset of a partition has
// passed the first of recs on it: they were read before the partition went
// to another member, which applied them, and came back. The consumer then
// reads the partition again from the committed offset, and the fence of
// CommitOffsets no longer sees the old read, so the batch must not commit.
func (s *inboxSource) stale(ctx context.Context, recs []eventstore.Record) (eventstore.TopicPartition, bool, error) {
	first := map[eventstore.TopicPartition]int64{}
	for i := range recs {
		tp := eventstore.TopicPartition{Topic: recs[i].Topic, Partition: recs[i].Partition}
		if _, ok := first[tp]; !ok {
			first[tp] = recs[i].Offset
		}
	}
	for tp, off := range first {
		committed, ok, err := s.a.store.CommittedOffset(ctx, s.a.id, tp.Topic, tp.Partition)
		if err != nil {
			return tp, false, err
		}
		if ok && committed > off {
			return tp, true, nil
		}
	}
	return eventstore.TopicPartition{}, false, nil
}

// fill tops the inbox up without waiting until every assigned partition
// that has records to read has some in the inbox, or the inbox holds
// inboxBatches batches. It returns the partitions that have records not
// yet polled, and drops the queues of partitions no longer assigned.
func (s *inboxSource) fill(ctx context.Context, batchSize int) (map[eventstore.TopicPartition]bool, error) {
	a, in := s.a, s.in
	assigned := s.g.Consumer().Assignment()
	if len(in.queues) > 0 {
		keep := make(map[eventstore.TopicPartition]bool, len(assigned))
		for _, tp := range assigned {
			keep[tp] = true
		}
		for tp := range in.queues {
			if !keep[tp] {
				in.drop(tp)
			}
		}
	}
	chunk := max(batchSize/max(len(assigned), 1), 1)
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
		if !starved || in.total >= inboxBatches*batchSize {
			return more, nil
		}
		recs, err := s.g.TryPoll(ctx, chunk)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return more, nil
		}
		in.add(recs)
		// Read every topic's ends again on the next pass: the poll moved
		// positions, and records may have been appended since.
		clear(ends)
	}
}

// Stage commits the group's offsets past recs.
func (s *inboxSource) Stage(tx eventstore.Txn, recs []eventstore.Record) error {
	return s.g.Stage(tx, recs)
}

// Committed does nothing: the offsets are in the store.
func (s *inboxSource) Committed([]eventstore.Record) {}

// Rewind empties the inbox and moves the member back to the group's
// committed offsets: a batch was void (a rebalance took a partition away).
func (s *inboxSource) Rewind(ctx context.Context) error {
	s.in = newInbox()
	return s.g.Rewind(ctx)
}

// Close leaves the group.
func (s *inboxSource) Close() error { return s.g.Close() }

// Topics returns the source and repartition topics.
func (s *inboxSource) Topics() []string { return s.g.Topics() }

// Group returns the group's name, the application ID.
func (s *inboxSource) Group() string { return s.g.Group() }

// Assignment returns the partitions the group member holds now.
func (s *inboxSource) Assignment() []eventstore.TopicPartition { return s.g.Assignment() }

// queueHeap orders queues by the event time of their first record, then by
// partition for a stable order.
type queueHeap []*queue

func (h queueHeap) Len() int { return len(h) }
func (h queueHeap) Less(i, j int) bool {
	a, b := h[i].recs[0].Timestamp, h[j].recs[0].Timestamp
	if !a.Equal(b) {
		return a.Before(b)
	}
	if h[i].tp.Topic != h[j].tp.Topic {
		return h[i].tp.Topic < h[j].tp.Topic
	}
	return h[i].tp.Partition < h[j].tp.Partition
}
func (h queueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *queueHeap) Push(x any)   { *h = append(*h, x.(*queue)) }
func (h *queueHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	*h = old[:len(old)-1]
	return q
}
