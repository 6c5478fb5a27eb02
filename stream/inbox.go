package stream

import (
	"container/heap"

	"github.com/muninn-es/muninn/eventstore"
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

// putBack returns the records of a batch that was not committed to the
// front of their queues, for the partitions in keep; the queues of the
// other partitions are dropped.
func (in *inbox) putBack(recs []eventstore.Record, keep map[eventstore.TopicPartition]bool) {
	back := map[eventstore.TopicPartition][]eventstore.Record{}
	for _, r := range recs {
		tp := eventstore.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		if keep[tp] {
			back[tp] = append(back[tp], r)
		}
	}
	for tp, q := range in.queues {
		if !keep[tp] {
			in.total -= len(q.recs)
			delete(in.queues, tp)
			continue
		}
		if b := back[tp]; len(b) > 0 {
			q.recs = append(b, q.recs...)
			in.total += len(b)
		}
	}
	for tp, b := range back {
		if in.queues[tp] == nil {
			in.queues[tp] = &queue{tp: tp, recs: b, next: b[len(b)-1].Offset + 1}
			in.total += len(b)
		}
	}
}

// take removes up to n records, oldest event time first. It stops when the
// queue of a partition in more runs empty: that partition holds records not
// polled yet, which may be older than the other queues' next ones.
func (in *inbox) take(n int, more map[eventstore.TopicPartition]bool) []eventstore.Record {
	h := make(queueHeap, 0, len(in.queues))
	for _, q := range in.queues {
		if len(q.recs) > 0 {
			h = append(h, q)
		}
	}
	heap.Init(&h)
	out := make([]eventstore.Record, 0, min(n, in.total))
	for len(out) < n && len(h) > 0 {
		q := h[0]
		out = append(out, q.recs[0])
		q.recs[0] = eventstore.Record{}
		q.recs = q.recs[1:]
		in.total--
		if len(q.recs) == 0 {
			q.recs = nil
			heap.Pop(&h)
			if more[q.tp] {
				break
			}
			continue
		}
		heap.Fix(&h, 0)
	}
	return out
}

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
