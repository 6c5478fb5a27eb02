// Package pgtest gives tests a PostgreSQL server for the PostgreSQL backend
// (package eventstore/postgres): its URL from the environment, and stores
// on schemas of their own that are dropped when the test ends.
//
// The server's URL is in MUNINN_PG_URL (.ci/postgres.sh starts a
// throw-away server and sets it). Without it a test is skipped, unless
// MUNINN_CI is set: in CI a missing server fails the test, so that the
// PostgreSQL tests never silently stop running.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/muninn-es/muninn/eventstore/postgres"
)

// URL returns the test server's URL from MUNINN_PG_URL. When it is unset it
// skips the test, or fails it if MUNINN_CI is set.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("MUNINN_PG_URL")
	if url == "" {
		if os.Getenv("MUNINN_CI") != "" {
			t.Fatal("pgtest: MUNINN_PG_URL is not set in CI (MUNINN_CI is set); .ci/postgres.sh starts a server and sets it")
		}
		t.Skip("pgtest: MUNINN_PG_URL is not set; source .ci/postgres.sh for a throw-away PostgreSQL server")
	}
	return url
}

// Schema returns the name of a new, unique schema for the test and drops it,
// with everything in it, when the test ends. It creates nothing: Open (or
// postgres.Open with postgres.WithSchema) does.
func Schema(t testing.TB) string {
	t.Helper()
	url := URL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + sanitize(t.Name()) + "_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
		}
	})
	return name
}

// sanitize keeps the schema name short and within [a-z0-9_].
func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if b.Len() >= 20 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Open opens a store on a new schema (Schema) of the test server, with
// opts after WithSchema, and closes it when the test ends (before the
// schema is dropped).
func Open(t testing.TB, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	url := URL(t)
	schema := Schema(t)
	s, err := postgres.Open(context.Background(), url, append([]postgres.Option{postgres.WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatalf("pgtest: open store on schema %s: %v", schema, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
