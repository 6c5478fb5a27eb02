package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
)

// Cleanup runs one cleanup pass over every topic now: Delete topics drop
// their oldest records past the retention age or size, Compact topics drop
// every record that a newer one of the same key supersedes, and tombstones
// past their grace period (the key's head goes with its tombstone, so a
// later append starts the key again at version 1). Each partition is
// cleaned in a transaction of its own, holding the partition's row lock,
// so appends to it wait meanwhile. Offsets never change; readers running
// meanwhile skip the gaps.
func (s *Store) Cleanup(ctx context.Context) (eventstore.CleanupStats, error) {
	var st eventstore.CleanupStats
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if err := s.acquire(); err != nil {
		return st, err
	}
	defer s.release()
	type topicRow struct {
		id    int64
		name  string
		parts int
		cfg   eventstore.TopicConfig
	}
	rows, err := s.pool.Query(ctx, s.q(`SELECT id, name, partitions, config FROM {s}.topics WHERE config->>'cleanup' IN ('delete', 'compact') ORDER BY id`))
	if err != nil {
		return st, s.dbErr(ctx, "cleanup", err)
	}
	topics, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (topicRow, error) {
		var t topicRow
		var js []byte
		if err := r.Scan(&t.id, &t.name, &t.parts, &js); err != nil {
			return t, err
		}
		return t, json.Unmarshal(js, &t.cfg)
	})
	if err != nil {
		return st, s.dbErr(ctx, "cleanup", err)
	}
	for _, t := range topics {
		for p := range t.parts {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			st.Partitions++
			err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				if t.cfg.Cleanup == eventstore.Delete {
					return s.cleanDelete(ctx, tx, t.id, p, t.cfg, &st)
				}
				return s.cleanCompact(ctx, tx, t.id, p, t.cfg, &st)
			})
			if err != nil {
				return st, s.dbErr(ctx, fmt.Sprintf("cleanup of %s/%d", t.name, p), err)
			}
		}
	}
	return st, nil
}

// cleanDelete removes the oldest records of a partition while they are past
// the retention age or the partition holds more than its byte limit. Like
// Kafka, it removes a prefix of the log: it stops at the first record it
// keeps. Stream heads stay, so streams continue from their versions.
func (s *Store) cleanDelete(ctx context.Context, tx pgx.Tx, topicID int64, part int, cfg eventstore.TopicConfig, st *eventstore.CleanupStats) error {
	var next int64
	err := tx.QueryRow(ctx, s.q(`SELECT next_offset FROM {s}.partitions WHERE topic_id = $1 AND part = $2 FOR UPDATE`), topicID, part).Scan(&next)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	cutoff := int64(-1 << 63)
	if cfg.RetentionAge > 0 {
		cutoff = s.clk.Now().Add(-cfg.RetentionAge).UnixNano()
	}
	// The first record kept: neither older than the cutoff nor in the part
	// of the partition beyond the byte limit (counted from the newest).
	var cut int64
	err = tx.QueryRow(ctx, s.q(`SELECT off FROM (
			SELECT off, ts, sum(size) OVER (ORDER BY off DESC) AS suffix FROM {s}.records WHERE topic_id = $1 AND part = $2
		) x WHERE NOT (ts < $3 OR ($4 > 0 AND suffix > $4)) ORDER BY off LIMIT 1`),
		topicID, part, cutoff, cfg.RetentionBytes).Scan(&cut)
	if errors.Is(err, pgx.ErrNoRows) {
		cut = next
	} else if err != nil {
		return err
	}
	var n, bytes int64
	if err := tx.QueryRow(ctx, s.q(`WITH d AS (DELETE FROM {s}.records WHERE topic_id = $1 AND part = $2 AND off < $3 RETURNING size)
		SELECT count(*), coalesce(sum(size), 0) FROM d`), topicID, part, cut).Scan(&n, &bytes); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, s.q(`UPDATE {s}.partitions SET start_offset = greatest(start_offset, $3), records = records - $4, bytes = bytes - $5
		WHERE topic_id = $1 AND part = $2`), topicID, part, cut, n, bytes); err != nil {
		return err
	}
	st.Records += n
	st.Bytes += bytes
	return nil
}

// cleanCompact removes every record of a partition that a newer record of
// its key supersedes, and tombstones older than the grace period together
// with their key's head.
func (s *Store) cleanCompact(ctx context.Context, tx pgx.Tx, topicID int64, part int, cfg eventstore.TopicConfig, st *eventstore.CleanupStats) error {
	var next int64
	err := tx.QueryRow(ctx, s.q(`SELECT next_offset FROM {s}.partitions WHERE topic_id = $1 AND part = $2 FOR UPDATE`), topicID, part).Scan(&next)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	grace := cfg.TombstoneGrace
	if grace == 0 {
		grace = eventstore.DefaultTombstoneGrace
	}
	cutoff := s.clk.Now().Add(-grace).UnixNano()
	var n, bytes, tombstones int64
	err = tx.QueryRow(ctx, s.q(`WITH d AS (
			DELETE FROM {s}.records r WHERE r.topic_id = $1 AND r.part = $2 AND r.off < $3 AND (
				EXISTS (SELECT 1 FROM {s}.records n WHERE n.topic_id = r.topic_id AND n.kh = r.kh AND n.version > r.version)
				OR (r.tombstone AND r.ts < $4))
			RETURNING kh, version, tombstone, size),
		h AS (DELETE FROM {s}.heads USING d WHERE heads.topic_id = $1 AND heads.kh = d.kh AND heads.version = d.version AND d.tombstone RETURNING 1)
		SELECT (SELECT count(*) FROM d), (SELECT coalesce(sum(size), 0) FROM d), (SELECT count(*) FROM h)`),
		topicID, part, next, cutoff).Scan(&n, &bytes, &tombstones)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, s.q(`UPDATE {s}.partitions SET records = records - $3, bytes = bytes - $4 WHERE topic_id = $1 AND part = $2`),
		topicID, part, n, bytes); err != nil {
		return err
	}
	st.Records += n
	st.Bytes += bytes
	st.Tombstones += tombstones
	return nil
}

// runCleanup runs Cleanup every WithCleanupInterval on the store's clock.
func (s *Store) runCleanup() {
	defer s.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.closing
		cancel()
	}()
	next := s.clk.Now().Add(s.opts.cleanupInterval)
	for {
		due, stop := s.clk.At(next)
		select {
		case <-s.closing:
			stop()
			return
		case <-due:
		}
		next = s.clk.Now().Add(s.opts.cleanupInterval)
		st, err := s.Cleanup(ctx)
		switch {
		case err != nil && !errors.Is(err, eventstore.ErrClosed) && ctx.Err() == nil:
			s.log.Error("postgres: background cleanup failed", telemetry.AttrError, err)
		case st.Records > 0:
			s.log.Debug("postgres: cleanup", "records", st.Records, "bytes", st.Bytes, "tombstones", st.Tombstones)
		}
	}
}
