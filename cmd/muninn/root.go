package main

import "github.com/spf13/cobra"

// newRootCmd returns the muninn command with all its subcommands. Tests
// execute it with their own arguments and output buffers.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "muninn",
		Short: "Muninn: event sourcing and CQRS for Go on a partitioned, compacting log",
		Long: `Muninn is an event-sourcing and CQRS framework for Go. Its event store is a
durable, partitioned, compacting log on Pebble, shaped like Apache Kafka.

  muninn demo         serve the example shop and drive it over HTTP, in seconds
  muninn serve        serve the example shop over gRPC and REST on a data directory
  muninn gen          from an event-storming model (or a Miro board) to code and pictures

Operators, against a running server (--server ADDR) or a data directory
(--data DIR), as a table or --json:

  muninn topics       the topics, partitions and records
  muninn tail TOPIC   a topic's newest records (--follow for the ones to come)
  muninn groups       the consumer groups and their lag
  muninn trace ID     everything a correlation ID caused, as a tree
  muninn projections  the projections, their state and lag
  muninn rebuild P    rebuild a projection, with a progress bar
  muninn dlq          list, replay or discard a projection's parked records
  muninn sagas        the sagas and their instances

  muninn repair       check a store's files, recover a damaged write-ahead log
  muninn bench        measure the store, the layers above it and the API
  muninn version      this binary's version`,
	}
	root.AddCommand(newDemoCmd(), newBenchCmd(), newRepairCmd(), newVersionCmd(), newServeCmd(),
		newTopicsCmd(), newTailCmd(), newGroupsCmd(), newTraceCmd(), newProjectionsCmd(), newRebuildCmd(), newDLQCmd(), newSagasCmd())
	root.AddCommand(newGenCmd())
	return root
}
