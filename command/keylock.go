package command

import (
	"context"
	"sync"
)

// keyLocks is a set of mutexes by key, created on demand and dropped when
// nobody holds or waits for them. Waiting honours a context.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while locked
	refs int
}

func newKeyLocks() *keyLocks { return &keyLocks{locks: make(map[string]*keyLock)} }

// lock locks key, waiting until it is free or ctx ends (then it returns
// ctx's error), and returns the unlock.
func (k *keyLocks) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	l := k.locks[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
