package stream

// SetBeforeUpdate makes a's batches call fn between writing their output
// and committing: an error stops Run there, as a crash would.
func SetBeforeUpdate(a *App, fn func() error) { a.beforeUpdate = fn }

// SetWaitHook makes a's WaitCaughtUp call fn each time it is about to wait.
func SetWaitHook(a *App, fn func()) { a.waitHook = fn }
