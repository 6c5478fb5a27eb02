package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/muninn-es/muninn/telemetry"
)

// migrations are the schema's versions, in order; migration i+1 takes the
// schema from version i to i+1. Never edit one that has shipped: add the
// next.
var migrations = []string{
	// 1: the log, stream heads, the state space and consumer groups.
	`
CREATE TABLE {s}.topics (
	id         bigserial PRIMARY KEY,
	name       text NOT NULL UNIQUE,
	partitions int NOT NULL,
	config     jsonb NOT NULL,
	created    bigint NOT NULL
);
-- One row per partition: the next offset to assign and the counters that
-- DescribeTopic reports. An append locks its partition's row, so appends
-- to one partition commit in offset order.
CREATE TABLE {s}.partitions (
	topic_id     bigint NOT NULL REFERENCES {s}.topics (id) ON DELETE CASCADE,
	part         int NOT NULL,
	next_offset  bigint NOT NULL DEFAULT 0,
	start_offset bigint NOT NULL DEFAULT 0,
	records      bigint NOT NULL DEFAULT 0,
	bytes        bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (topic_id, part)
);
-- Records: data is the encoded record (eventstore.EncodeRecord, with its
-- CRC-32C); kh is the SHA-256 of the key, so that keys of any length fit
-- in the stream index.
CREATE TABLE {s}.records (
	topic_id  bigint NOT NULL,
	part      int NOT NULL,
	off       bigint NOT NULL,
	kh        bytea NOT NULL,
	version   bigint NOT NULL,
	ts        bigint NOT NULL,
	size      int NOT NULL,
	tombstone boolean NOT NULL,
	data      bytea NOT NULL,
	PRIMARY KEY (topic_id, part, off)
);
CREATE UNIQUE INDEX records_stream ON {s}.records (topic_id, kh, version);
-- A stream's head version; it outlives records that retention removes, so
-- that versions never go back, and goes with a tombstone past its grace.
CREATE TABLE {s}.heads (
	topic_id bigint NOT NULL,
	kh       bytea NOT NULL,
	version  bigint NOT NULL,
	PRIMARY KEY (topic_id, kh)
);
-- The state space: kh is the SHA-256 of the key (keys may be longer than
-- an index entry), pfx its first 1024 bytes, which orders like the key.
CREATE TABLE {s}.state (
	kh  bytea PRIMARY KEY,
	k   bytea NOT NULL,
	pfx bytea GENERATED ALWAYS AS (substring(k FROM 1 FOR 1024)) STORED,
	v   bytea NOT NULL
);
CREATE INDEX state_order ON {s}.state (pfx);
CREATE TABLE {s}.groups (
	name       text PRIMARY KEY,
	generation bigint NOT NULL DEFAULT 0
);
-- A member is named by member_key, "<store id>/<member id>": member IDs
-- need be unique only within a Store, so that every replica of a service
-- can run a consumer whose member ID is fixed (a projection's "live").
CREATE TABLE {s}.group_members (
	group_name  text NOT NULL REFERENCES {s}.groups (name) ON DELETE CASCADE,
	member_key  text NOT NULL,
	member_id   text NOT NULL,
	topic_ids   bigint[] NOT NULL,
	store_id    uuid NOT NULL,
	lease_until bigint NOT NULL,
	PRIMARY KEY (group_name, member_key)
);
-- Each partition's owner (a member_key; NULL: none) in a group and owner
-- epoch, which grows with every change of owner and is never reset.
CREATE TABLE {s}.group_partitions (
	group_name text NOT NULL REFERENCES {s}.groups (name) ON DELETE CASCADE,
	topic_id   bigint NOT NULL REFERENCES {s}.topics (id) ON DELETE CASCADE,
	part       int NOT NULL,
	owner      text,
	epoch      bigint NOT NULL,
	end_at     bigint NOT NULL,
	PRIMARY KEY (group_name, topic_id, part)
);
CREATE TABLE {s}.group_offsets (
	group_name text NOT NULL,
	topic_id   bigint NOT NULL REFERENCES {s}.topics (id) ON DELETE CASCADE,
	part       int NOT NULL,
	committed  bigint NOT NULL,
	PRIMARY KEY (group_name, topic_id, part)
);
`,
	// 2: expect, which lets one round trip both check what a Store's writer
	// expects the partitions and heads to hold and write on that basis: it
	// fails the transaction (SQLSTATE MU001) when they hold something else.
	`
CREATE FUNCTION {s}.expect(ok boolean, what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	IF ok IS NOT TRUE THEN
		RAISE EXCEPTION 'muninn: % changed since this Store last wrote', what USING ERRCODE = 'MU001';
	END IF;
	RETURN true;
END
$$;
`,
}

// SchemaVersion is the version of the schema this package creates and
// works with.
var SchemaVersion = len(migrations)

// migrate creates the schema and brings it to SchemaVersion, in one
// transaction under an advisory lock of the schema's own, so that Opens by
// several processes at once migrate once. A schema newer than this
// package knows is refused.
func (s *Store) migrate(ctx context.Context) error {
	h := fnv.New64a()
	h.Write([]byte("muninn/migrate/" + s.opts.schema))
	lock := int64(h.Sum64())
	// The common case, a schema already at this version, takes no lock.
	var have int
	err := s.pool.QueryRow(ctx, `SELECT CASE WHEN to_regclass($1) IS NULL THEN -1 ELSE 0 END`, s.schema+".schema_migrations").Scan(&have)
	if err != nil {
		return fmt.Errorf("look for schema %s: %w", s.schema, err)
	}
	if have == 0 {
		if err := s.pool.QueryRow(ctx, s.q(`SELECT coalesce(max(version), 0) FROM {s}.schema_migrations`)).Scan(&have); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if have == len(migrations) {
			return nil
		}
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lock); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, s.q(`CREATE SCHEMA IF NOT EXISTS {s}`)); err != nil {
			return fmt.Errorf("create schema %s: %w", s.schema, err)
		}
		if _, err := tx.Exec(ctx, s.q(`CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
			version int PRIMARY KEY, applied bigint NOT NULL)`)); err != nil {
			return fmt.Errorf("create migrations table: %w", err)
		}
		var have int
		if err := tx.QueryRow(ctx, s.q(`SELECT coalesce(max(version), 0) FROM {s}.schema_migrations`)).Scan(&have); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if have > len(migrations) {
			return fmt.Errorf("schema %s is at version %d, newer than this program knows (%d)", s.schema, have, len(migrations))
		}
		for v := have + 1; v <= len(migrations); v++ {
			if _, err := tx.Exec(ctx, s.q(migrations[v-1]), pgx.QueryExecModeSimpleProtocol); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, s.q(`INSERT INTO {s}.schema_migrations (version, applied) VALUES ($1, $2)`), v, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("record migration %d: %w", v, err)
			}
			s.log.Info("postgres: migrated", "schema", s.opts.schema, "version", v)
		}
		return nil
	})
}

// Notifications on the store's channel (payloads):
//
//	p <topic id>   records were appended to the topic
//	t <topic id>   the topic was deleted
//	g <gen> <group> the group rebalanced to generation gen
//	*              wake everything (a Store opened; it may follow a crash)

// connectListener opens the dedicated LISTEN connection.
func (s *Store) connectListener(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		_ = conn.Close(ctx)
		return nil, err
	}
	return conn, nil
}

// listen delivers notifications until the store closes. When the
// connection breaks it connects again, and then wakes everything, since
// notifications may have been missed meanwhile.
func (s *Store) listen(conn *pgx.Conn) {
	defer s.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	retry := 0
	for {
		if conn == nil {
			c, err := s.connectListener(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				retry++
				s.log.Warn("postgres: listener reconnect failed", telemetry.AttrError, err)
				// Waiting to reconnect to the server, not for data.
				select {
				case <-time.After(min(time.Duration(retry)*100*time.Millisecond, 5*time.Second)):
				case <-ctx.Done():
					return
				}
				continue
			}
			conn, retry = c, 0
			s.wakeAll()
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			_ = conn.Close(context.Background())
			conn = nil
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("postgres: listener connection lost", telemetry.AttrError, err)
			continue
		}
		s.deliver(n.Payload)
	}
}

func (s *Store) deliver(payload string) {
	switch {
	case payload == "*":
		s.wakeAll()
	case strings.HasPrefix(payload, "p "):
		if id, err := strconv.ParseInt(payload[2:], 10, 64); err == nil {
			s.wake(id)
		}
	case strings.HasPrefix(payload, "t "):
		if id, err := strconv.ParseInt(payload[2:], 10, 64); err == nil {
			s.forgetTopic(id)
		}
	case strings.HasPrefix(payload, "g "):
		genText, name, ok := strings.Cut(payload[2:], " ")
		gen, err := strconv.ParseInt(genText, 10, 64)
		if !ok || err != nil {
			return
		}
		s.groupsMu.Lock()
		g := s.groupsMu.byName[name]
		s.groupsMu.Unlock()
		if g != nil {
			g.heard(gen)
		}
		s.signalMembers()
	}
}

// queueNotify sends payload to every Store on the schema soon, from the
// notifier goroutine, which puts the payloads that gather meanwhile into one
// statement. An append group notifies in its own round trip instead (after
// its COMMIT, see writeGroup) and comes here only if that failed. The
// notification is never part of the append's transaction: a NOTIFY in a
// transaction takes a database-wide lock until the commit is flushed, which
// would serialize every append's fsync.
func (s *Store) queueNotify(payload string) {
	s.notifyMu.Lock()
	s.notifyMu.pending[payload] = struct{}{}
	s.notifyMu.Unlock()
	select {
	case s.notifySignal <- struct{}{}:
	default:
	}
}

func (s *Store) runNotifier() {
	defer s.bg.Done()
	for {
		stop := false
		select {
		case <-s.notifySignal:
		case <-s.closing:
			stop = true
		}
		s.notifyMu.Lock()
		pending := s.notifyMu.pending
		s.notifyMu.pending = map[string]struct{}{}
		s.notifyMu.Unlock()
		if len(pending) > 0 {
			// One prepared statement in its own transaction, one round trip.
			// The transaction writes no WAL (the notification queue is not
			// logged), so its commit waits for no flush.
			payloads := make([]string, 0, len(pending))
			for p := range pending {
				payloads = append(payloads, p)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, s.channel, payloads); err != nil {
				s.log.Warn("postgres: notify failed", telemetry.AttrError, err)
			}
			cancel()
		}
		if stop {
			return
		}
	}
}
