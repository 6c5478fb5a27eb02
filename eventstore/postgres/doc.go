// Package postgres is Muninn's PostgreSQL backend: an eventstore.Store that
// several processes share, so that many replicas of one service run on the
// same log, state space and consumer groups with every guarantee of the
// embedded Pebble store kept. It is the only package of Muninn that imports
// the driver (github.com/jackc/pgx/v5 with its pool).
//
// Open connects, creates the store's tables in a schema of the caller's
// choosing (WithSchema, default "muninn", so that two services can share a
// database) and migrates them; concurrent Opens by several processes
// migrate once, under an advisory lock. The store passes the contract of
// package eventstore/storetest unchanged.
//
// What the backend promises, beyond the contract:
//
//   - Offsets are gapless per partition, and a reader never sees offset
//     n+1 before n. An append locks its partition's row, takes the next
//     offsets from it and updates it in the same transaction, so appends to
//     one partition commit in offset order, and a snapshot that shows an
//     offset shows every offset before it. Appends to different partitions
//     run in parallel and share PostgreSQL's group commit.
//   - The state space (Update, Txn.CommitOffsets, WithState) is one
//     PostgreSQL transaction: state writes, offset commits and appends
//     become visible and durable together. Updates are serialized across
//     every process on the schema (an advisory lock), so that a
//     read-modify-write never interleaves with another.
//   - Consumer groups span processes: members in different Stores share
//     the partitions of their topics, and the group rebalances when one
//     joins, leaves or stops renewing its lease (WithLeaseTimeout). Every
//     commit is fenced by the partition's owner epoch, checked in the
//     committing transaction, so a member that lost a partition, say while
//     paused past its lease, can never commit for it (ErrNotAssigned).
//   - Subscriptions and Consumer.Poll are woken by LISTEN/NOTIFY on one
//     dedicated connection per Store, never by polling the database. An
//     append notifies just after its commit; if its process dies in
//     between, other Stores see the records at the next notification on
//     the topic, at a rebalance of the group, or when any Store opens
//     (Open wakes every waiter on the schema).
//   - Member IDs need be unique only within a Store, so every replica may
//     join a group with the same fixed ID.
//
// The cost of the guarantees: appends to one partition from different
// Stores take turns on the partition's row lock, one commit each (those of
// one Store share a commit); and all Updates on a schema take turns on one
// lock, held until their commit is flushed.
//
// Tests of packages that run on PostgreSQL get a server from
// internal/pgtest (the URL in MUNINN_PG_URL; .ci/postgres.sh starts one).
package postgres
