package consume

import (
	"context"
	"errors"

	"github.com/muninn-es/muninn/eventstore"
)

// Source is where a Loop's records come from, and how the loop commits its
// progress through them. The default source is a consumer group of the
// store (GroupSource); the broker's inbound consumer reads a watermill
// subscription, and a saga adds its due deadlines to its group's records.
//
// A record a source makes itself, not read from a topic, has an empty
// Topic: it carries no offset, and the loop stages nothing for it beyond
// what its handler writes.
type Source interface {
	// Poll returns up to max records, waiting until at least one is
	// available or ctx ends (then it returns ctx's error). A batch shorter
	// than max means the source had no more for now: the loop is caught up.
	Poll(ctx context.Context, max int) ([]eventstore.Record, error)
	// Stage adds the commit of the loop's progress past recs (a group's
	// offsets) to tx, inside the Update that applies them.
	Stage(tx eventstore.Txn, recs []eventstore.Record) error
	// Committed is called once an Update that staged recs is durable.
	Committed(recs []eventstore.Record)
	// Rewind is called when an Update failed with eventstore.ErrNotAssigned
	// (a rebalance took a partition away): nothing of the batch was
	// written, and the source must deliver again what it has not
	// committed.
	Rewind(ctx context.Context) error
	// Close releases the source (leaves the group). It is called once, when
	// Run returns.
	Close() error
}

// TryPoller is the optional ability of a Source to poll without waiting:
// TryPoll returns what is available, up to max, and an empty batch at once
// if nothing is. With it the loop reports itself live as soon as it has
// applied everything, before it blocks in Poll.
type TryPoller interface {
	TryPoll(ctx context.Context, max int) ([]eventstore.Record, error)
}

// Partitioned is the optional ability of a Source to name the topics whose
// partitions it reads, the consumer group that commits them and the
// partitions the member holds now, so that Status and WaitFor know the
// group's positions, also on partitions gained in a rebalance.
type Partitioned interface {
	Topics() []string
	Group() string
	Assignment() []eventstore.TopicPartition
}

// GroupSource is a Source on a consumer group of the store: Poll reads the
// member's partitions, Stage commits the group's offsets in the Update
// (fenced: eventstore.ErrNotAssigned if a rebalance moved a partition), and
// Rewind moves the member back to the committed offsets.
type GroupSource struct {
	c       eventstore.Consumer
	topics  []string
	offsets map[eventstore.TopicPartition]int64
}

// JoinGroup joins group on store as a member subscribed to topics and
// returns it as a Source.
func JoinGroup(ctx context.Context, store eventstore.Store, group string, topics []string, opts ...eventstore.ConsumerOption) (*GroupSource, error) {
	c, err := store.JoinGroup(ctx, group, topics, opts...)
	if err != nil {
		return nil, err
	}
	return &GroupSource{c: c, topics: append([]string(nil), topics...), offsets: map[eventstore.TopicPartition]int64{}}, nil
}

// Consumer returns the group member.
func (g *GroupSource) Consumer() eventstore.Consumer { return g.c }

// Topics returns the topics the member subscribes to.
func (g *GroupSource) Topics() []string { return append([]string(nil), g.topics...) }

// Group returns the group's name.
func (g *GroupSource) Group() string { return g.c.Group() }

// Assignment returns the partitions the member holds now.
func (g *GroupSource) Assignment() []eventstore.TopicPartition { return g.c.Assignment() }

// Poll polls the member.
func (g *GroupSource) Poll(ctx context.Context, max int) ([]eventstore.Record, error) {
	return g.c.Poll(ctx, max)
}

// TryPoll polls the member without waiting.
func (g *GroupSource) TryPoll(ctx context.Context, max int) ([]eventstore.Record, error) {
	return g.c.TryPoll(ctx, max)
}

// Stage commits, in tx, the offset after the last of recs on each of their
// partitions. Records without a topic are skipped.
func (g *GroupSource) Stage(tx eventstore.Txn, recs []eventstore.Record) error {
	offsets := map[eventstore.TopicPartition]int64{}
	for i := range recs {
		if recs[i].Topic == "" {
			continue
		}
		tp := eventstore.TopicPartition{Topic: recs[i].Topic, Partition: recs[i].Partition}
		if next := recs[i].Offset + 1; next > offsets[tp] {
			offsets[tp] = next
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	return tx.CommitOffsets(g.c, offsets)
}

// Committed does nothing: the offsets are in the store.
func (g *GroupSource) Committed([]eventstore.Record) {}

// Rewind moves the member back to the group's committed offsets.
func (g *GroupSource) Rewind(ctx context.Context) error { return g.c.Rewind(ctx) }

// Close leaves the group.
func (g *GroupSource) Close() error {
	err := g.c.Close()
	if errors.Is(err, eventstore.ErrClosed) {
		return nil
	}
	return err
}
