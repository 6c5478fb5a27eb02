package aggregate

import (
	"container/list"
	"sync"
)

// stateCache keeps the encoded state of recently used aggregates, least
// recently used out first. Entries hold bytes, never live states: every
// Load decodes its own copy, so an Evolve that modifies state in place
// cannot reach the cache.
type stateCache struct {
	mu    sync.Mutex
	size  int
	ll    *list.List
	items map[string]*list.Element
}

type cacheEntry struct {
	id      string
	version uint64
	state   []byte
}

func newStateCache(size int) *stateCache {
	if size <= 0 {
		return nil
	}
	return &stateCache{size: size, ll: list.New(), items: make(map[string]*list.Element, size)}
}

func (c *stateCache) get(id string) (cacheEntry, bool) {
	if c == nil {
		return cacheEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[id]
	if !ok {
		return cacheEntry{}, false
	}
	c.ll.MoveToFront(el)
	return *el.Value.(*cacheEntry), true
}

// put stores id's state at version, unless the cache already holds a newer
// one.
func (c *stateCache) put(id string, version uint64, state []byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		e := el.Value.(*cacheEntry)
		if e.version <= version {
			e.version, e.state = version, state
		}
		c.ll.MoveToFront(el)
		return
	}
	c.items[id] = c.ll.PushFront(&cacheEntry{id: id, version: version, state: state})
	for c.ll.Len() > c.size {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).id)
	}
}

func (c *stateCache) drop(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		c.ll.Remove(el)
		delete(c.items, id)
	}
}
