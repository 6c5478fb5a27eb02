package command

// WaitFilterLoaded waits until b's idempotency filter has loaded the
// records that predate b (or given up), so that a test exercises the
// filter rather than the store lookup used until then.
func WaitFilterLoaded(b *Bus) { <-b.filterLoaded }
