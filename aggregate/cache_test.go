package aggregate

import (
	"reflect"
	"testing"
)

func TestValueOnly(t *testing.T) {
	type inner struct {
		A [3]int
		S string
	}
	type withMap struct{ M map[string]int }
	type deep struct{ I [2]struct{ P *int } }
	for typ, want := range map[reflect.Type]bool{
		reflect.TypeFor[int]():                    true,
		reflect.TypeFor[inner]():                  true,
		reflect.TypeFor[struct{ x, y float64 }](): true,
		reflect.TypeFor[withMap]():                false,
		reflect.TypeFor[deep]():                   false,
		reflect.TypeFor[[]int]():                  false,
		reflect.TypeFor[*inner]():                 false,
		reflect.TypeFor[any]():                    false,
	} {
		if got := valueOnly(typ); got != want {
			t.Errorf("valueOnly(%s) = %v, want %v", typ, got, want)
		}
	}
}

func TestStateCacheLRU(t *testing.T) {
	c := newStateCache(2)
	c.put("a", 1, 10)
	c.put("b", 1, 20)
	c.get("a") // a is now the most recent
	c.put("c", 1, 30)
	if _, ok := c.get("b"); ok {
		t.Error("b survived as least recently used")
	}
	c.put("a", 5, 50)
	c.put("a", 3, 30) // older: ignored
	if e, ok := c.get("a"); !ok || e.version != 5 || e.state != 50 {
		t.Errorf("a = %+v, %v; want version 5", e, ok)
	}
	c.drop("a")
	if _, ok := c.get("a"); ok {
		t.Error("dropped entry still cached")
	}
	var off *stateCache // WithCache(0)
	off.put("a", 1, 1)
	if _, ok := off.get("a"); ok || newStateCache(0) != nil {
		t.Error("a disabled cache holds entries")
	}
}
