// Package bench measures Muninn's event store on the machine it runs on, and
// sets the numbers beside the physical limit measured in the same run.
//
// Run opens a fresh store in a temporary directory on disk, next to a plain
// Pebble database, and measures:
//
//   - durable appends per second with 1, 16 and 64 concurrent writers (each
//     append one event to the writer's own stream, with an exact expected
//     version), interleaved with raw Pebble Commit(Sync) at the same
//     concurrency, and the ratio store / raw;
//   - reading every stream of a loaded topic with ReadStream, and scanning
//     every partition with ReadPartition, in events per second;
//   - the service surface: the example shop's PlaceOrder end to end over
//     loopback gRPC and over the REST gateway, 16 clients each, in slices
//     alternating with the same handler called in process, and the latency
//     of a GetOrder that waits for the min_position of an order just placed;
//   - the peak of the Go heap during the run.
//
// The Result's JSON keys are an interface that scripts and CI compare across
// runs: keys are added, never renamed. Adding a measurement takes a method
// that returns one number, a Result field whose json tag is the new key (and
// whose label tag describes it in the table), and one line in env.plan.
package bench
