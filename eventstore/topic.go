package eventstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CleanupPolicy says what the store removes from a topic over time, as
// Kafka's cleanup.policy does.
type CleanupPolicy string

const (
	// Retain keeps every record forever. The default, and the right policy
	// for aggregate events.
	Retain CleanupPolicy = "retain"
	// Delete removes the oldest records once they are older than
	// TopicConfig.RetentionAge or once a partition holds more than
	// TopicConfig.RetentionBytes.
	Delete CleanupPolicy = "delete"
	// Compact keeps only the newest record of each key. A tombstone (nil
	// payload) is itself removed TopicConfig.TombstoneGrace after it was
	// written; the key is then gone, and a later append to it starts a new
	// stream at version 1 (within the grace period it continues the old
	// one). Snapshots and changelogs live in compacted topics.
	Compact CleanupPolicy = "compact"
)

// DefaultTombstoneGrace is how long a compacted topic keeps a tombstone when
// TopicConfig.TombstoneGrace is zero (Kafka's delete.retention.ms default).
const DefaultTombstoneGrace = 24 * time.Hour

// MaxPartitions is the largest partition count a topic may have.
const MaxPartitions = 10000

// TopicConfig is a topic's configuration. It is persisted with the topic.
type TopicConfig struct {
	// Partitions is the number of partitions, 1 to MaxPartitions. It cannot
	// change after creation: that would move keys between partitions.
	Partitions int `json:"partitions"`
	// Cleanup is the cleanup policy; empty means Retain.
	Cleanup CleanupPolicy `json:"cleanup"`
	// RetentionAge, with Delete, removes records older than this. Zero means
	// no age limit.
	RetentionAge time.Duration `json:"retention_age,omitempty"`
	// RetentionBytes, with Delete, removes the oldest records of a partition
	// while it holds more than this many bytes. Zero means no size limit.
	RetentionBytes int64 `json:"retention_bytes,omitempty"`
	// TombstoneGrace, with Compact, is how long a tombstone is kept so that
	// consumers see the deletion. Zero means DefaultTombstoneGrace.
	TombstoneGrace time.Duration `json:"tombstone_grace,omitempty"`
}

// Validate reports every problem with c at once, each naming its field.
func (c TopicConfig) Validate() error {
	var errs []error
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		errs = append(errs, invalid("Partitions", "must be between 1 and %d, got %d", MaxPartitions, c.Partitions))
	}
	switch c.Cleanup {
	case "", Retain, Delete, Compact:
	default:
		errs = append(errs, invalid("Cleanup", "unknown policy %q (want retain, delete or compact)", c.Cleanup))
	}
	if c.RetentionAge < 0 {
		errs = append(errs, invalid("RetentionAge", "must not be negative, got %s", c.RetentionAge))
	}
	if c.RetentionBytes < 0 {
		errs = append(errs, invalid("RetentionBytes", "must not be negative, got %d", c.RetentionBytes))
	}
	if c.TombstoneGrace < 0 {
		errs = append(errs, invalid("TombstoneGrace", "must not be negative, got %s", c.TombstoneGrace))
	}
	if c.Cleanup != Delete && (c.RetentionAge != 0 || c.RetentionBytes != 0) {
		errs = append(errs, invalid("RetentionAge/RetentionBytes", "apply only to the delete policy, not %q", c.policy()))
	}
	if c.Cleanup != Compact && c.TombstoneGrace != 0 {
		errs = append(errs, invalid("TombstoneGrace", "applies only to the compact policy, not %q", c.policy()))
	}
	return errors.Join(errs...)
}

func (c TopicConfig) policy() CleanupPolicy {
	if c.Cleanup == "" {
		return Retain
	}
	return c.Cleanup
}

func (c TopicConfig) normalized() TopicConfig {
	c.Cleanup = c.policy()
	if c.Cleanup == Compact && c.TombstoneGrace == 0 {
		c.TombstoneGrace = DefaultTombstoneGrace
	}
	return c
}

// MaxNameLen is the longest name Muninn accepts for anything it names:
// topics, consumer groups, projections and their tables, sagas, command
// buses, stream applications and inbound consumers (Kafka's limit for topic
// names). A name derived from another, such as a projection's consumer group
// "projection.<name>.0", must fit too; the constructor that derives it says
// so when it does not.
const MaxNameLen = 249

// MaxTopicNameLen is the longest topic name: MaxNameLen.
const MaxTopicNameLen = MaxNameLen

// ValidateName checks a name by the one rule of the whole framework, that of
// Kafka's topic names: 1 to MaxNameLen bytes from [a-zA-Z0-9._-], and not
// "." or "..". what says what is named ("projection", "saga", ...) and
// begins the error, which wraps ErrInvalidArgument.
func ValidateName(what, name string) error {
	if name == "" {
		return invalid(what, "name is empty")
	}
	if len(name) > MaxNameLen {
		return invalid(what, "name is %d bytes, longer than %d", len(name), MaxNameLen)
	}
	if name == "." || name == ".." {
		return invalid(what, "name %q is not allowed", name)
	}
	if i := strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}); i >= 0 {
		return invalid(what, "name %q has character %q at %d; use only letters, digits, '.', '_' and '-'", name, name[i], i)
	}
	return nil
}

// ValidateTopicName checks a topic name: ValidateName("topic", name).
func ValidateTopicName(name string) error { return ValidateName("topic", name) }

// topicMeta is the persisted form of a topic.
type topicMeta struct {
	ID      uint32      `json:"id"`
	Name    string      `json:"name"`
	Config  TopicConfig `json:"config"`
	Created time.Time   `json:"created"`
}

func (m topicMeta) marshal() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("eventstore: marshal topic meta: %v", err)) // cannot happen: plain fields
	}
	return b
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Name       string
	Config     TopicConfig
	Created    time.Time
	Partitions []PartitionInfo
}

// PartitionInfo describes one partition of a topic.
type PartitionInfo struct {
	Partition int
	// StartOffset is the lowest offset that may still hold a record; records
	// below it were removed by cleanup.
	StartOffset int64
	// EndOffset is the offset the next record will get (Kafka's log end
	// offset, the high watermark of acknowledged records).
	EndOffset int64
	// Records and Bytes count the records present and their encoded size.
	Records int64
	Bytes   int64
}

// topicState is the in-memory state of a topic.
type topicState struct {
	meta   topicMeta
	config atomic.Pointer[TopicConfig]
	parts  []partState
	// notify is closed (and replaced) whenever new records become visible,
	// and when the topic is deleted.
	notify atomic.Pointer[chan struct{}]
	// deleted is set, with every partition lock held, when the topic is
	// deleted.
	deleted atomic.Bool
	// deleting is set while DeleteTopic runs: a JoinGroup that sees it
	// withdraws, and a DeleteTopic that sees a member gives up, so that no
	// member is left subscribed to a deleted topic.
	deleting atomic.Bool
}

func newTopicState(m topicMeta) *topicState {
	t := &topicState{meta: m, parts: make([]partState, m.Config.Partitions)}
	for i := range t.parts {
		t.parts[i].headCap = max(minCachedHeads, cachedHeadsPerTopic/len(t.parts))
	}
	cfg := m.Config
	t.config.Store(&cfg)
	ch := make(chan struct{})
	t.notify.Store(&ch)
	return t
}

// wake wakes every subscriber waiting on the topic.
func (t *topicState) wake() {
	ch := make(chan struct{})
	close(*t.notify.Swap(&ch))
}

// partState holds a partition's counters. mu serializes the writes to the
// partition: the version check, the offsets, and the order in which batches
// enter Pebble's write-ahead log. The atomics are what readers see.
type partState struct {
	mu struct {
		sync.Mutex
		next, start, records, bytes int64
		// heads caches stream head versions (including appends applied but
		// not yet synced), so that the version check rarely reads Pebble.
		heads map[string]uint64
	}
	// headCap bounds len(mu.heads).
	headCap int

	// end is the offset after the last acknowledged record: it moves forward
	// once the records below it are durable. Readers never read past it.
	end                   atomic.Int64
	start, records, bytes atomic.Int64
	// durableInFlight counts durable appends applied but not yet published.
	// A NoSync append made meanwhile waits for the fsync too: publishing its
	// end would expose the earlier durable records before they are durable.
	durableInFlight atomic.Int64
}

// cachedHeadsPerTopic bounds the head caches of a topic's partitions
// together (about 15 MiB at most); each partition keeps at least
// minCachedHeads. A full cache is cleared and refilled from Pebble.
const (
	cachedHeadsPerTopic = 1 << 18
	minCachedHeads      = 1 << 10
)

// publishEnd raises the acknowledged end offset to end (never lowers it).
// Appends to a partition enter the write-ahead log in offset order, so once
// the batch ending at end is durable, every earlier one is too.
func (p *partState) publishEnd(end int64) bool {
	for {
		cur := p.end.Load()
		if end <= cur {
			return false
		}
		if p.end.CompareAndSwap(cur, end) {
			return true
		}
	}
}

// publishCountersLocked makes the counters visible to DescribeTopic.
func (p *partState) publishCountersLocked() {
	p.start.Store(p.mu.start)
	p.records.Store(p.mu.records)
	p.bytes.Store(p.mu.bytes)
}

// partition metadata value: next offset, start offset, records, bytes.
const partMetaLen = 32
