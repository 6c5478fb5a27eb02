package stream

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
)

// WaitCaughtUp returns once a Run of the App has started (restored its
// stores and joined its group) and the group has committed every record of
// its source and repartition topics (lag 0); when ctx ends, with an error
// wrapping ctx's that says what the group's lag was; or at once with an
// error wrapping consume.ErrFailed and Run's error if the App's last Run
// failed.
//
// It is woken whenever an App of the same application ID on the same store
// in this process starts, stops, or has applied everything its member can
// read, so that with several members it returns whichever of them
// completes the work, even one idle all along: the work may end with a
// commit of another member, and one member's commits put records in the
// repartition partitions of another. Members of the group in other
// processes do not wake it.
func (a *App) WaitCaughtUp(ctx context.Context) error {
	w := a.joinWaiters()
	defer w.release()
	lag := int64(-1)
	for {
		// Take the channel before looking, so that a change after the look
		// closes it.
		next := w.changed()
		a.mu.Lock()
		ready, failed := a.mu.ready, a.mu.err
		a.mu.Unlock()
		if failed != nil {
			return fmt.Errorf("stream: app %q: waiting to catch up: %w: %w", a.id, consume.ErrFailed, failed)
		}
		if ready {
			n, done, err := a.groupLag(ctx)
			if err != nil {
				return fmt.Errorf("stream: app %q: waiting to catch up: %w", a.id, err)
			}
			if done {
				return nil
			}
			lag = n
		}
		if a.waitHook != nil {
			a.waitHook()
		}
		select {
		case <-ctx.Done():
			if lag < 0 {
				return fmt.Errorf("stream: app %q: waiting for Run to start: %w", a.id, ctx.Err())
			}
			return fmt.Errorf("stream: app %q: waiting to catch up (the group's lag was %d records): %w", a.id, lag, ctx.Err())
		case <-next:
		}
	}
}

// groupLag returns the group's lag on the App's topics, and whether it is
// caught up: lag 0 with every topic known to the group (it may not be,
// before the App's first start).
func (a *App) groupLag(ctx context.Context) (lag int64, done bool, err error) {
	info, err := a.store.DescribeGroup(ctx, a.id)
	if errors.Is(err, eventstore.ErrGroupNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	for _, p := range info.Partitions {
		lag += p.Lag
	}
	for _, t := range a.topics {
		if !slices.ContainsFunc(info.Partitions, func(p eventstore.GroupPartitionInfo) bool { return p.Topic == t }) {
			return lag, false, nil
		}
	}
	return lag, lag == 0 && len(info.Partitions) > 0, nil
}

// waiters wakes the WaitCaughtUp calls of one application ID on one store
// in the process. Every App of that ID shares it while it runs, and every
// WaitCaughtUp while it waits; it is dropped when none does.
type waiters struct {
	// key is the waiters' key in the registry; shared is false for an
	// App's own.
	key    waitKey
	shared bool
	refs   int // guarded by registry
	mu     sync.Mutex
	ch     chan struct{}
}

type waitKey struct {
	store any
	id    string
}

var registry struct {
	sync.Mutex
	m map[waitKey]*waiters
}

// joinWaiters returns the waiters of a's application ID on its store,
// counting a reference to them until release. A store that cannot be a map
// key (an uncomparable value) gets the App's own waiters, which only its
// own Run wakes.
func (a *App) joinWaiters() *waiters {
	if !reflect.ValueOf(a.store).Comparable() {
		return a.own
	}
	k := waitKey{store: a.store, id: a.id}
	registry.Lock()
	defer registry.Unlock()
	w := registry.m[k]
	if w == nil {
		if registry.m == nil {
			registry.m = map[waitKey]*waiters{}
		}
		w = &waiters{key: k, shared: true, ch: make(chan struct{})}
		registry.m[k] = w
	}
	w.refs++
	return w
}

func (w *waiters) release() {
	if !w.shared {
		return
	}
	registry.Lock()
	defer registry.Unlock()
	if w.refs--; w.refs == 0 {
		delete(registry.m, w.key)
	}
}

// changed returns a channel that the next broadcast closes.
func (w *waiters) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// broadcast wakes every waiter. A nil w does nothing.
func (w *waiters) broadcast() {
	if w == nil {
		return
	}
	w.mu.Lock()
	close(w.ch)
	w.ch = make(chan struct{})
	w.mu.Unlock()
}
