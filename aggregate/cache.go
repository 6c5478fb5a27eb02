package aggregate

import (
	"container/list"
	"reflect"
	"sync"
)

// stateCache keeps the state of recently used aggregates, least recently
// used out first. An entry holds either the state encoded (bytes) or, for a
// state type without references (valueOnly), the value itself: either way
// every Load gets its own copy, so an Evolve that modifies state in place
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
	state   any // []byte, or the state value itself
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
func (c *stateCache) put(id string, version uint64, state any) {
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

// dropUpTo drops id's entry if its version is at most version.
func (c *stateCache) dropUpTo(id string, version uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok && el.Value.(*cacheEntry).version <= version {
		c.ll.Remove(el)
		delete(c.items, id)
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

// valueOnly reports whether values of t hold no references (pointers, maps,
// slices, interfaces, channels, functions), so that assigning one copies
// all of it. Strings count as values: they are immutable.
func valueOnly(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		return true
	case reflect.Array:
		return valueOnly(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !valueOnly(t.Field(i).Type) {
				return false
			}
		}
		return true
	default:
		return false
	}
}
