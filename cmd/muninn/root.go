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

  muninn demo    show the log at work, in memory, in a few seconds
  muninn bench   measure durable appends and reads on this machine's disk
  muninn repair  check a store's files, recover a damaged write-ahead log`,
	}
	root.AddCommand(newDemoCmd(), newBenchCmd(), newRepairCmd(), newVersionCmd(), newServeCmd())
	return root
}
