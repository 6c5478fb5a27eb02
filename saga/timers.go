package saga

import (
	"container/heap"
	"time"
)

// timer is a pending deadline as the run keeps it: due at at. A timer may
// be stale (its deadline cancelled or replaced); firing checks the
// instance's record.
type timer struct {
	at        time.Time
	key, name string
	id        string
}

// deadlineHeap orders timers by due time. live holds the ID of each
// instance's pending deadline by name, so that timers cancelled or replaced
// since they were pushed are skipped without a write.
type deadlineHeap struct {
	h    timerSlice
	live map[string]string
}

// timerOp is a change a batch made to the pending deadlines: set (t
// scheduled) or not (t.key's deadline t.name cancelled or fired).
type timerOp struct {
	t   timer
	set bool
}

func liveKey(key, name string) string { return key + "\x00" + name }

type timerSlice []timer

func (t timerSlice) Len() int           { return len(t) }
func (t timerSlice) Less(i, j int) bool { return t[i].at.Before(t[j].at) }
func (t timerSlice) Swap(i, j int)      { t[i], t[j] = t[j], t[i] }
func (t *timerSlice) Push(x any)        { *t = append(*t, x.(timer)) }
func (t *timerSlice) Pop() any {
	old := *t
	x := old[len(old)-1]
	*t = old[:len(old)-1]
	return x
}

func (d *deadlineHeap) push(t timer) {
	if d.live == nil {
		d.live = map[string]string{}
	}
	d.live[liveKey(t.key, t.name)] = t.id
	heap.Push(&d.h, t)
}

// unset forgets the pending deadline name of key.
func (d *deadlineHeap) unset(key, name string) { delete(d.live, liveKey(key, name)) }

func (d *deadlineHeap) apply(op timerOp) {
	if op.set {
		d.push(op.t)
	} else {
		d.unset(op.t.key, op.t.name)
	}
}

// peek returns the soonest timer that is still live.
func (d *deadlineHeap) peek() (timer, bool) {
	for len(d.h) > 0 {
		t := d.h[0]
		if d.live[liveKey(t.key, t.name)] == t.id {
			return t, true
		}
		heap.Pop(&d.h)
	}
	return timer{}, false
}

// pop removes the soonest live timer (after a peek that found one).
func (d *deadlineHeap) pop() timer {
	if _, ok := d.peek(); !ok {
		return timer{}
	}
	return heap.Pop(&d.h).(timer)
}

// len counts the live pending deadlines.
func (d *deadlineHeap) len() int { return len(d.live) }
