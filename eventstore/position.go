package eventstore

import (
	"fmt"
	"strconv"
	"strings"
)

// Position is a place in the log: the record at Offset of a topic's
// partition. A consumer has reached it once it has applied that record.
// Its text form, "topic/partition@offset" (String, ParsePosition,
// MarshalText), is what APIs exchange, such as a query's min_position.
type Position struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// String returns "topic/partition@offset".
func (p Position) String() string {
	return p.Topic + "/" + strconv.Itoa(p.Partition) + "@" + strconv.FormatInt(p.Offset, 10)
}

// MarshalText returns String's form.
func (p Position) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses String's form (see ParsePosition).
func (p *Position) UnmarshalText(b []byte) error {
	q, err := ParsePosition(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// TopicPartition returns the position's partition.
func (p Position) TopicPartition() TopicPartition {
	return TopicPartition{Topic: p.Topic, Partition: p.Partition}
}

// ParsePosition parses "topic/partition@offset", as String prints it. The
// error wraps ErrInvalidArgument and says what is wrong.
func ParsePosition(s string) (Position, error) {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return Position{}, invalid("position", "%q lacks the '@' before its offset (want topic/partition@offset)", s)
	}
	slash := strings.LastIndexByte(s[:at], '/')
	if slash < 0 {
		return Position{}, invalid("position", "%q lacks the '/' before its partition (want topic/partition@offset)", s)
	}
	topic, ps, os := s[:slash], s[slash+1:at], s[at+1:]
	if err := ValidateTopicName(topic); err != nil {
		return Position{}, fmt.Errorf("position %q: %w", s, err)
	}
	part, err := strconv.Atoi(ps)
	if err != nil || part < 0 || part >= MaxPartitions {
		return Position{}, invalid("position", "%q: partition %q is not a number in [0, %d)", s, ps, MaxPartitions)
	}
	off, err := strconv.ParseInt(os, 10, 64)
	if err != nil || off < 0 {
		return Position{}, invalid("position", "%q: offset %q is not a non-negative number", s, os)
	}
	return Position{Topic: topic, Partition: part, Offset: off}, nil
}

// Position returns the position of the append's last event: a consumer
// that has reached it has applied every event of the append.
func (r AppendResult) Position() Position {
	return Position{Topic: r.Topic, Partition: r.Partition, Offset: r.LastOffset}
}

// Position returns the position of rec.
func (r *Record) Position() Position {
	return Position{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
}
