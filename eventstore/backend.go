package eventstore

import (
	"context"
	"iter"
)

// The seam between Muninn and its storage engines. Everything above the log
// (aggregate, command, projection, stream, saga, broker, consume) depends
// on these interfaces only, never on a concrete engine, so that the same
// service code runs on the embedded Pebble store (PebbleStore, the default)
// or on a backend shared by several processes. A backend is done when it
// passes the suite of package storetest unchanged.
//
// The interfaces use this package's types (Record, Event, TopicConfig, the
// option structs, the sentinel errors), which every backend shares: a
// backend returns errors that match the same sentinels (ErrTopicNotFound,
// ErrVersionConflict with a *VersionConflictError, ErrNotAssigned, ...).

// Store is a whole backend: the log, the state space and consumer groups.
// *PebbleStore is one. Every method that takes a context, here and on
// Consumer, returns ctx.Err() and has no effect when the context is already
// done (storetest checks it).
type Store interface {
	Log
	StateSpace
	Groups
	// Close releases the backend. Reads, subscriptions and consumers that
	// run end with ErrClosed; calls after Close return ErrClosed. Close is
	// idempotent.
	Close() error
}

// Log is the event log: topics of partitions, stream appends with an
// expected version, and reads. See PebbleStore for the behaviour each
// method promises; every backend promises the same.
type Log interface {
	// CreateTopic creates a topic (ErrTopicExists if the name is taken).
	CreateTopic(ctx context.Context, name string, cfg TopicConfig) error
	// UpdateTopic changes a topic's cleanup policy and retention.
	UpdateTopic(ctx context.Context, name string, cfg TopicConfig) error
	// DeleteTopic deletes a topic with its records and committed offsets.
	DeleteTopic(ctx context.Context, name string) error
	// DescribeTopic returns a topic's configuration and partitions.
	DescribeTopic(ctx context.Context, name string) (TopicInfo, error)
	// ListTopics returns the topic names, sorted.
	ListTopics(ctx context.Context) ([]string, error)
	// Partitions returns a topic's partition count. A topic's count never
	// changes, so a backend answers it from memory once it knows the topic.
	Partitions(topic string) (int, error)
	// PartitionFor returns the partition Append puts key in.
	PartitionFor(topic, key string) (int, error)
	// Append appends events to one stream atomically, checking expected.
	Append(ctx context.Context, topic, key string, expected ExpectedVersion, events []Event, opts ...AppendOption) (AppendResult, error)
	// ReadStream reads one stream in version order (or backward).
	ReadStream(ctx context.Context, topic, key string, from uint64, opts ...ReadOption) iter.Seq2[Record, error]
	// ReadPartition reads one partition from an offset to its current end.
	ReadPartition(ctx context.Context, topic string, partition int, from int64) iter.Seq2[Record, error]
	// HeadVersion returns a stream's newest acknowledged version.
	HeadVersion(ctx context.Context, topic, key string) (uint64, error)
	// Subscribe reads a partition from an offset and then follows it live.
	Subscribe(ctx context.Context, topic string, partition int, from int64) iter.Seq2[Record, error]
	// Cleanup runs one cleanup pass over every topic now.
	Cleanup(ctx context.Context) (CleanupStats, error)
	// Sync makes every append acknowledged so far durable, NoSync ones
	// included.
	Sync(ctx context.Context) error
}

// StateSpace is the key-value space next to the log: read models,
// checkpoints, idempotency records, saga state. Its writes commit together
// with consumer-group offsets (Update with Txn.CommitOffsets) or with an
// append (WithState).
type StateSpace interface {
	// Update runs fn in a transaction and commits its writes and offset
	// commits in one atomic, durable batch; nothing if fn fails.
	Update(ctx context.Context, fn func(tx Txn) error, opts ...UpdateOption) error
	// Get returns a copy of key's value, and false if it has none.
	Get(ctx context.Context, key []byte) ([]byte, bool, error)
	// Scan yields the entries in [lower, upper) in key order (or reverse).
	Scan(ctx context.Context, lower, upper []byte, reverse bool) iter.Seq2[KV, error]
}

// Groups are the consumer groups: members that share the partitions of
// their topics and commit their offsets in the store.
type Groups interface {
	// JoinGroup adds a member to a group and rebalances it.
	JoinGroup(ctx context.Context, group string, topics []string, opts ...ConsumerOption) (Consumer, error)
	// DescribeGroup returns a group's members, assignments and offsets.
	DescribeGroup(ctx context.Context, group string) (GroupInfo, error)
	// ListGroups returns the names of the groups known, sorted.
	ListGroups(ctx context.Context) ([]string, error)
	// CommittedOffset returns the offset a group resumes a partition from.
	CommittedOffset(ctx context.Context, group, topic string, partition int) (int64, bool, error)
}

// Txn is the transaction of one Update: its reads see the committed state
// plus its own writes, and its writes and offset commits are applied
// together when the Update's function returns nil. A Txn must not be used
// after that function returns.
type Txn interface {
	StateWriter
	// Get returns a copy of key's value as the Txn sees it, and false if
	// key has none.
	Get(key []byte) ([]byte, bool, error)
	// Scan yields the entries in [lower, upper) as the Txn sees them, in
	// key order (or reverse); a nil upper bound means to the end. The
	// yielded slices are valid until the next step; copy what you keep.
	Scan(lower, upper []byte, reverse bool) iter.Seq2[KV, error]
	// CommitOffsets stages a commit of c's group offsets (the next offset
	// to read, per partition) with the Txn's writes. At commit every
	// partition must still be c's since it read it, else the whole Update
	// fails with ErrNotAssigned and nothing is written (fencing).
	CommitOffsets(c Consumer, offsets map[TopicPartition]int64) error
}

// Consumer is one member of a consumer group. Poll (or Records) reads the
// member's assigned partitions; commits are fenced by the partition's owner
// epoch, so a member that lost a partition in a rebalance can never commit
// for it.
type Consumer interface {
	// ID returns the member's ID, unique in its group.
	ID() string
	// Group returns the group's name.
	Group() string
	// Assignment returns the partitions assigned to the member now.
	Assignment() []TopicPartition
	// Poll returns up to max records, waiting until one is available. A
	// batch shorter than max means the member had read all there was. A
	// rebalance that changes the member's assignment while it waits ends
	// the wait with an empty batch.
	Poll(ctx context.Context, max int) ([]Record, error)
	// TryPoll is Poll without the wait: it may return an empty batch.
	TryPoll(ctx context.Context, max int) ([]Record, error)
	// Records yields the member's records, then follows the log live.
	Records(ctx context.Context) iter.Seq2[Record, error]
	// Rewind moves the member's read position on every partition it holds
	// back to the group's committed offset: what it polled and did not
	// commit is read again. A consumer whose commit failed (a batch made
	// void by ErrNotAssigned) rewinds before it polls on.
	Rewind(ctx context.Context) error
	// Commit commits the offset after rec, durably.
	Commit(ctx context.Context, rec Record) error
	// CommitOffsets durably commits the next offset to read per partition.
	CommitOffsets(ctx context.Context, offsets map[TopicPartition]int64) error
	// Close leaves the group; its partitions go to the other members.
	Close() error
}

var (
	_ Store    = (*PebbleStore)(nil)
	_ Txn      = (*pebbleTxn)(nil)
	_ Consumer = (*pebbleConsumer)(nil)
)
