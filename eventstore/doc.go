// Package eventstore is Muninn's log: a durable, partitioned, compacting
// event log on Pebble, with the shape of Apache Kafka's.
//
// A Store holds topics. A topic has a fixed number of partitions and a
// cleanup policy (Retain, Delete or Compact). Every record has a key (the
// aggregate ID); Kafka's default partitioner (murmur2, see PartitionFor)
// sends all records of a key to one partition, where they are totally
// ordered by offset. Within its key a record also has a stream version, so a
// key is an event stream: Append checks an ExpectedVersion (optimistic
// concurrency) and writes a batch of events atomically.
//
// Durability: an Append returns only after its events are fsynced. Appends
// from many goroutines share fsyncs (group commit): each append takes its
// partition's lock only to check its expected version, assign offsets and
// hand its batch to Pebble's commit pipeline, then waits for the fsync
// without the lock, so every batch that arrives while one fsync runs goes
// behind the next one. Readers see a record only
// once it is acknowledged, so no reader sees what a crash could take back.
//
// Reads are iterators (iter.Seq2): ReadStream reads one key's events forward
// or backward, ReadPartition reads a partition by offset, Subscribe catches
// up and then follows the partition live, woken by commits. Consumer groups
// (JoinGroup) spread partitions over members, commit offsets in the store
// and resume from them after a restart.
//
// Next to the log is a key-value state space for the layers above it (read
// models, checkpoints, idempotency records, saga state). Store.Update writes it
// in one atomic batch together with consumer-group offsets (Txn.CommitOffsets),
// so a consumer's effects and its position move together; WithState writes it
// together with an append. Consumer.Poll hands a batching consumer what is
// available, up to a limit, and a short batch means it has caught up.
//
// Cleanup runs in the background and on demand (Store.Cleanup). It removes
// whole records only: offsets never change, and gaps are normal, as in Kafka.
//
// # Damaged data
//
// Damage is an error matching ErrCorrupt, never an exit of the process and
// never acknowledged data silently missing.
//
//   - Reads verify every table block's checksum (Pebble) and every record's
//     CRC-32C (the store). A read of damaged data fails with an error
//     matching ErrCorrupt that names what it can: a *CorruptFileError with
//     the table's path, wrapped with the partition and offset or the stream
//     being read, or a *CorruptRecordError with topic, partition and offset.
//     It never returns damaged bytes as data.
//   - Open checks the write-ahead logs (WALs) Pebble is about to replay, and
//     its MANIFEST. A log that stops verifying before its end while
//     something after the damage still verifies (a later record, or the
//     trailer Pebble writes when it closes a log) is damaged, not torn: Open
//     fails with a *CorruptFileError naming the file and the byte, rather
//     than drop, as Pebble would, every acknowledged write logged after it.
//     A torn tail (the unsynced end of the newest log after a crash:
//     nothing verifies after it) is normal and replayed up to the tear.
//     Damage in the last record of a log that was not closed cleanly cannot
//     be told from a torn tail, nor can damage to the manifest's last
//     record.
//   - Damage found by background work (Pebble's compactions, the store's
//     cleanup) or by any read is recorded: it is logged once at error level,
//     Health and Close report it, automatic compactions stop (they would fail
//     on the damaged file again and again), and the store refuses writes
//     (they fail with an error matching ErrCorrupt) while reads of intact data
//     go on.
//   - An error Pebble cannot continue from (its logger's Fatalf: a failed
//     manifest write, a broken commit pipeline) fails the store: every call
//     returns an error wrapping ErrStoreFailed, and Health and Close report
//     it. The process must restart to open the store again.
//
// To open a store whose WAL is damaged, drop what was logged from the
// damaged record on: run `muninn repair DIR` (or call Repair), which also
// verifies every table, or open with WithRecoverCorruptWAL. Both copy the
// logs first and report exactly what was dropped: partitions and offsets,
// streams and versions, topics and group commits. Damage in a table or the
// manifest cannot be dropped that way: restore the directory from a backup.
//
// # Contexts
//
// Every call that takes a context checks it first: a call made with a done
// context returns ctx.Err() and has no effect.
//
// OpenMem gives the same store in memory, on Pebble's vfs.NewMem(): tests use
// the real engine, never a fake. Package storetest holds the contract every
// store must meet, as tests.
package eventstore
