package command

import (
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// idFilter is an in-memory Bloom filter of the command IDs that may have an
// idempotency record, so that the common case, a command ID never seen,
// costs no read of the store. A lookup in the store misses every level of
// the LSM tree when the ID is new, which made the idempotency check the
// largest cost of a dispatch (see BENCHMARKS.md).
//
// It never gives a false negative for an ID recorded within the window:
// IDs recorded before the bus started are added by a scan of the time
// index (until it finishes, mayContain answers true for everything), and
// every ID the bus records is added before its record is written. It
// gives false positives (about 1%), which fall back to the store.
//
// Memory is bounded by time: IDs go into the current generation, and the
// generations rotate every window, the oldest dropped, so an ID stays at
// least one window. Each generation grows as a scalable Bloom filter (each
// new slice twice the size of the last). Past maxIDs IDs in a generation
// the filter gives up (answers true for everything) rather than grow
// without bound.
type idFilter struct {
	mu      sync.Mutex
	seed    maphash.Seed
	ready   bool // the scan of the records that predate the bus is done
	broken  bool // too many IDs: every lookup goes to the store
	window  time.Duration
	maxIDs  int
	started time.Time // of the current generation
	cur     generation
	prev    generation
}

type generation struct {
	slices []*bloomSlice
	n      int
}

// bloomSlice is one fixed-size Bloom filter: k bit positions per ID, by
// double hashing of one 64-bit hash.
type bloomSlice struct {
	bits []uint64
	m    uint64 // bits
	k    uint32
	cap  int
	n    int
}

const (
	filterFirstCap = 1 << 16
	filterBitsPer  = 10 // ~1% false positives with k = 7
	filterK        = 7
	// DefaultFilterMaxIDs bounds the IDs one generation of the filter
	// holds (about 10 bits each: 64M IDs are 80 MB).
	defaultFilterMaxIDs = 64 << 20
)

func newBloomSlice(capacity int) *bloomSlice {
	m := uint64(capacity) * filterBitsPer
	return &bloomSlice{bits: make([]uint64, (m+63)/64), m: m, k: filterK, cap: capacity}
}

func (b *bloomSlice) add(h uint64) {
	h1, h2 := h, (h>>33)|(h<<31)|1
	for i := range uint64(b.k) {
		pos := (h1 + i*h2) % b.m
		b.bits[pos/64] |= 1 << (pos % 64)
	}
	b.n++
}

func (b *bloomSlice) has(h uint64) bool {
	h1, h2 := h, (h>>33)|(h<<31)|1
	for i := range uint64(b.k) {
		pos := (h1 + i*h2) % b.m
		if b.bits[pos/64]&(1<<(pos%64)) == 0 {
			return false
		}
	}
	return true
}

func (g *generation) add(h uint64) {
	if len(g.slices) == 0 || g.slices[len(g.slices)-1].n >= g.slices[len(g.slices)-1].cap {
		next := filterFirstCap
		if len(g.slices) > 0 {
			next = min(g.slices[len(g.slices)-1].cap*2, math.MaxInt32)
		}
		g.slices = append(g.slices, newBloomSlice(next))
	}
	g.slices[len(g.slices)-1].add(h)
	g.n++
}

func (g *generation) has(h uint64) bool {
	for _, s := range g.slices {
		if s.has(h) {
			return true
		}
	}
	return false
}

func newIDFilter(window time.Duration, maxIDs int, now time.Time) *idFilter {
	return &idFilter{seed: maphash.MakeSeed(), window: window, maxIDs: maxIDs, started: now}
}

func (f *idFilter) hash(id string) uint64 { return maphash.String(f.seed, id) }

// rotateLocked starts a new generation once the current one is a window
// old, dropping the one before it.
func (f *idFilter) rotateLocked(now time.Time) {
	if f.window <= 0 || now.Sub(f.started) < f.window {
		return
	}
	if now.Sub(f.started) >= 2*f.window {
		f.prev = generation{} // idle for two windows: nothing is left
	} else {
		f.prev = f.cur
	}
	f.cur, f.started = generation{}, now
}

// add records that id may have an idempotency record.
func (f *idFilter) add(id string, now time.Time) {
	h := f.hash(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.broken {
		return
	}
	f.rotateLocked(now)
	if f.cur.n >= f.maxIDs {
		f.broken, f.cur, f.prev = true, generation{}, generation{}
		return
	}
	f.cur.add(h)
}

// mayContain reports whether id may have a record; false means certainly
// not.
func (f *idFilter) mayContain(id string, now time.Time) bool {
	h := f.hash(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready || f.broken {
		return true
	}
	f.rotateLocked(now)
	return f.cur.has(h) || f.prev.has(h)
}

// markReady makes the filter authoritative for negatives: every record
// that predates the bus has been added.
func (f *idFilter) markReady() {
	f.mu.Lock()
	f.ready = true
	f.mu.Unlock()
}

// state reports whether the filter is authoritative (ready and not given
// up), and how many IDs its generations hold.
func (f *idFilter) state() (authoritative bool, ids int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready && !f.broken, f.cur.n + f.prev.n
}
