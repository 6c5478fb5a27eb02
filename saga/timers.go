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

// deadlineHeap orders timers by due time.
type deadlineHeap struct{ h timerSlice }

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

func (d *deadlineHeap) push(t timer) { heap.Push(&d.h, t) }

func (d *deadlineHeap) peek() (timer, bool) {
	if len(d.h) == 0 {
		return timer{}, false
	}
	return d.h[0], true
}

func (d *deadlineHeap) pop() timer { return heap.Pop(&d.h).(timer) }
