package postgres

// WithNotifyApart makes every append of the Store notify the other Stores
// from its notifier goroutine, the path an append takes when the
// notification in its own round trip fails.
func WithNotifyApart() Option { return func(o *options) { o.notifyApart = true } }
