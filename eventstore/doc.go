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
// from many goroutines share fsyncs (group commit): one writer goroutine
// gathers every waiting append into one Pebble batch, applies it, and lets
// the next batch form while the last one syncs. Readers see a record only
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
// OpenMem gives the same store in memory, on Pebble's vfs.NewMem(): tests use
// the real engine, never a fake. Package storetest holds the contract every
// store must meet, as tests.
package eventstore
