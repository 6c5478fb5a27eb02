package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/muninn-es/muninn/eventstore"
)

// CreateTopic creates a topic. It fails with ErrTopicExists if the name is
// taken and with an error wrapping ErrInvalidArgument, naming each bad
// field, if the name or config is invalid.
func (s *Store) CreateTopic(ctx context.Context, name string, cfg eventstore.TopicConfig) error {
	if s.closedFlag.Load() {
		return eventstore.ErrClosed
	}
	if err := errors.Join(eventstore.ValidateTopicName(name), cfg.Validate()); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	norm := cfg.Normalized()
	js, err := json.Marshal(norm)
	if err != nil {
		return fmt.Errorf("postgres: create topic %q: %w", name, err)
	}
	var id int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, s.q(`INSERT INTO {s}.topics (name, partitions, config, created) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO NOTHING RETURNING id`), name, cfg.Partitions, js, s.clk.Now().UnixNano()).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %q", eventstore.ErrTopicExists, name)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, s.q(`INSERT INTO {s}.partitions (topic_id, part) SELECT $1, generate_series(0, $2 - 1)`), id, cfg.Partitions)
		return err
	})
	if errors.Is(err, eventstore.ErrTopicExists) {
		return err
	}
	if err != nil {
		return s.dbErr(ctx, fmt.Sprintf("create topic %q", name), err)
	}
	s.cacheTopic(id, name, cfg.Partitions)
	return nil
}

// UpdateTopic changes a topic's cleanup policy and retention settings. The
// partition count cannot change: a different count is refused with an error
// naming Partitions.
func (s *Store) UpdateTopic(ctx context.Context, name string, cfg eventstore.TopicConfig) error {
	if s.closedFlag.Load() {
		return eventstore.ErrClosed
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	js, err := json.Marshal(cfg.Normalized())
	if err != nil {
		return fmt.Errorf("postgres: update topic %q: %w", name, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var parts int
		err := tx.QueryRow(ctx, s.q(`SELECT partitions FROM {s}.topics WHERE name = $1 FOR UPDATE`), name).Scan(&parts)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %q", eventstore.ErrTopicNotFound, name)
		}
		if err != nil {
			return err
		}
		if parts != cfg.Partitions {
			return eventstore.InvalidArgument("Partitions", "topic %q has %d partitions; the count of an existing topic cannot change (got %d)",
				name, parts, cfg.Partitions)
		}
		_, err = tx.Exec(ctx, s.q(`UPDATE {s}.topics SET config = $2 WHERE name = $1`), name, js)
		return err
	})
	if errors.Is(err, eventstore.ErrTopicNotFound) || errors.Is(err, eventstore.ErrInvalidArgument) {
		return err
	}
	if err != nil {
		return s.dbErr(ctx, fmt.Sprintf("update topic %q", name), err)
	}
	return nil
}

// DeleteTopic deletes a topic with all its records, stream heads and the
// consumer groups' committed offsets on it. Appends to it then fail with
// ErrTopicNotFound, and its subscriptions, in every Store, end with that
// error. A topic that a live consumer group member (of any Store on the
// schema) subscribes to is not deleted: the error wraps ErrTopicInUse. A
// new topic of the same name starts empty.
func (s *Store) DeleteTopic(ctx context.Context, name string) error {
	if s.closedFlag.Load() {
		return eventstore.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	var id int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, s.q(`SELECT id FROM {s}.topics WHERE name = $1 FOR UPDATE`), name).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			if err := eventstore.ValidateTopicName(name); err != nil {
				return err
			}
			return fmt.Errorf("%w: %q", eventstore.ErrTopicNotFound, name)
		}
		if err != nil {
			return err
		}
		var group string
		err = tx.QueryRow(ctx, s.q(`SELECT group_name FROM {s}.group_members
			WHERE $1 = ANY (topic_ids) AND (lease_until >= $2 OR store_id = $3) LIMIT 1`), id, s.clk.Now().UnixNano(), s.id).Scan(&group)
		if err == nil {
			return fmt.Errorf("%w: %q is read by consumer group %q", eventstore.ErrTopicInUse, name, group)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// Lock the partitions first, in the order appends lock them (so
		// that a Store's append locking several cannot deadlock with
		// this): appends in flight finish, later ones find the topic gone.
		for _, q := range []string{
			`SELECT 1 FROM {s}.partitions WHERE topic_id = $1 ORDER BY part FOR UPDATE`,
			`DELETE FROM {s}.partitions WHERE topic_id = $1`,
			`DELETE FROM {s}.records WHERE topic_id = $1`,
			`DELETE FROM {s}.heads WHERE topic_id = $1`,
			`DELETE FROM {s}.topics WHERE id = $1`,
		} {
			if _, err := tx.Exec(ctx, s.q(q), id); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, eventstore.ErrTopicNotFound) || errors.Is(err, eventstore.ErrTopicInUse) || errors.Is(err, eventstore.ErrInvalidArgument) {
		return err
	}
	if err != nil {
		return s.dbErr(ctx, fmt.Sprintf("delete topic %q", name), err)
	}
	s.forgetTopic(id)
	s.queueNotify("t " + strconv.FormatInt(id, 10))
	return nil
}

// DescribeTopic returns a topic's configuration and partitions.
func (s *Store) DescribeTopic(ctx context.Context, name string) (eventstore.TopicInfo, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.TopicInfo{}, err
	}
	if err := s.acquire(); err != nil {
		return eventstore.TopicInfo{}, err
	}
	defer s.release()
	var info eventstore.TopicInfo
	var id, created int64
	var js []byte
	err := s.pool.QueryRow(ctx, s.q(`SELECT id, config, created FROM {s}.topics WHERE name = $1`), name).Scan(&id, &js, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, fmt.Errorf("%w: %q", eventstore.ErrTopicNotFound, name)
	}
	if err != nil {
		return info, s.dbErr(ctx, fmt.Sprintf("describe topic %q", name), err)
	}
	if err := json.Unmarshal(js, &info.Config); err != nil {
		return info, fmt.Errorf("%w: postgres: config of topic %q: %v", eventstore.ErrCorrupt, name, err)
	}
	info.Name, info.Created = name, time.Unix(0, created).UTC()
	rows, err := s.pool.Query(ctx, s.q(`SELECT part, start_offset, next_offset, records, bytes FROM {s}.partitions WHERE topic_id = $1 ORDER BY part`), id)
	if err != nil {
		return info, s.dbErr(ctx, fmt.Sprintf("describe topic %q", name), err)
	}
	info.Partitions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventstore.PartitionInfo, error) {
		var p eventstore.PartitionInfo
		err := r.Scan(&p.Partition, &p.StartOffset, &p.EndOffset, &p.Records, &p.Bytes)
		return p, err
	})
	if err != nil {
		return info, s.dbErr(ctx, fmt.Sprintf("describe topic %q", name), err)
	}
	return info, nil
}

// ListTopics returns the topic names, sorted.
func (s *Store) ListTopics(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.release()
	rows, err := s.pool.Query(ctx, s.q(`SELECT name FROM {s}.topics`))
	if err != nil {
		return nil, s.dbErr(ctx, "list topics", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.dbErr(ctx, "list topics", err)
	}
	slices.Sort(names)
	return names, nil
}

// Partitions returns a topic's partition count; the store keeps it in
// memory once it knows the topic.
func (s *Store) Partitions(topic string) (int, error) {
	if s.closedFlag.Load() {
		return 0, eventstore.ErrClosed
	}
	// A topic not yet known is looked up once; the bound keeps a call
	// without a context from hanging on an unreachable server.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t, err := s.topic(ctx, topic)
	if err != nil {
		return 0, err
	}
	return t.partitions, nil
}

// PartitionFor returns the partition Append puts key in: Kafka's default
// partitioner (eventstore.PartitionFor).
func (s *Store) PartitionFor(topic, key string) (int, error) {
	n, err := s.Partitions(topic)
	if err != nil {
		return 0, err
	}
	return eventstore.PartitionFor(key, n), nil
}

func checkPartition(t *topicMeta, p int) error {
	if p < 0 || p >= t.partitions {
		return eventstore.InvalidArgument("partition", "%d is out of range for topic %q with %d partitions", p, t.name, t.partitions)
	}
	return nil
}
