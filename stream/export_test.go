package stream

// SetBeforeUpdate makes a's batches call fn between writing their output
// and committing: an error stops Run there, as a crash would.
func SetBeforeUpdate(a *App, fn func() error) { a.beforeUpdate = fn }
