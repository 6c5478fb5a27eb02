package keyspace_test

import (
	"bytes"
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/muninn-es/muninn/keyspace"
)

// elem is one element of a random tuple.
type elem struct {
	kind int // 0 string, 1 uint, 2 int, 3 time
	s    string
	u    uint64
	i    int64
	t    time.Time
}

func (e elem) append(k keyspace.Key) keyspace.Key {
	switch e.kind {
	case 0:
		return k.String(e.s)
	case 1:
		return k.Uint(e.u)
	case 2:
		return k.Int(e.i)
	}
	return k.Time(e.t)
}

func compareElem(a, b elem) int {
	if a.kind != b.kind {
		return 0 // not compared: tuples of different shapes
	}
	switch a.kind {
	case 0:
		return cmp.Compare(a.s, b.s)
	case 1:
		return cmp.Compare(a.u, b.u)
	case 2:
		return cmp.Compare(a.i, b.i)
	}
	return a.t.Compare(b.t)
}

func randString(r *rand.Rand) string {
	alphabet := []byte{0, 1, 'a', 'b', 0xfe, 0xff, '/'}
	n := r.IntN(5)
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func randElem(r *rand.Rand, kind int) elem {
	e := elem{kind: kind}
	switch kind {
	case 0:
		e.s = randString(r)
	case 1:
		e.u = []uint64{0, 1, 255, 256, math.MaxUint64, r.Uint64()}[r.IntN(6)]
	case 2:
		e.i = []int64{math.MinInt64, -1, 0, 1, math.MaxInt64, r.Int64() - math.MaxInt64/2}[r.IntN(6)]
	case 3:
		e.t = time.Unix(0, r.Int64()-math.MaxInt64/2).UTC()
	}
	return e
}

// TestOrderIsTupleOrder checks that encoded keys of tuples of one shape
// sort as the tuples do, element by element.
func TestOrderIsTupleOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := [][]int{{0}, {0, 0}, {1, 0}, {2, 3}, {0, 2, 0}, {3, 1}}
	for _, shape := range shapes {
		type tuple struct {
			elems []elem
			key   []byte
		}
		var ts []tuple
		for range 300 {
			var es []elem
			k := keyspace.New(keyspace.App, "t")
			for _, kind := range shape {
				e := randElem(r, kind)
				es = append(es, e)
				k = e.append(k)
			}
			ts = append(ts, tuple{es, k})
		}
		for _, a := range ts {
			for _, b := range ts {
				want := 0
				for i := range a.elems {
					if c := compareElem(a.elems[i], b.elems[i]); c != 0 {
						want = c
						break
					}
				}
				if got := bytes.Compare(a.key, b.key); got != want {
					t.Fatalf("shape %v: %v vs %v: keys compare %d, tuples %d", shape, a.elems, b.elems, got, want)
				}
			}
		}
	}
}

// TestRoundTrip reads back what was written.
func TestRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 3, 1, 2, 3, 4, time.UTC)
	base := keyspace.New(keyspace.Saga, "check\x00out")
	k := base.String("i").Bytes([]byte{0, 0xff, 0}).Uint(7).Int(-9).Time(at)
	full := k.Raw([]byte{0, 1, 2})
	r, err := keyspace.Read(full, base)
	if err != nil {
		t.Fatal(err)
	}
	s, err1 := r.String()
	b, err2 := r.Bytes()
	u, err3 := r.Uint()
	i, err4 := r.Int()
	tm, err5 := r.Time()
	raw, err6 := r.Raw()
	for _, err := range []error{err1, err2, err3, err4, err5, err6} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s != "i" || !bytes.Equal(b, []byte{0, 0xff, 0}) || u != 7 || i != -9 || !tm.Equal(at) || !bytes.Equal(raw, []byte{0, 1, 2}) || !r.Done() {
		t.Fatalf("read back %q %x %d %d %v %x", s, b, u, i, tm, raw)
	}
	if got := keyspace.Format(k); got != `("saga", "check\x00out", "i", "\x00\xff\x00", 7, -9, 2026-12-03T01:02:03.000000004Z)` {
		t.Fatalf("Format = %s", got)
	}
	if _, err := keyspace.NewReader(k).Uint(); err == nil {
		t.Fatal("Uint read a string element")
	}
	if _, err := keyspace.Read(k, keyspace.New(keyspace.Stream, "x")); err == nil {
		t.Fatal("Read accepted a key under another prefix")
	}
}

// TestTimesClamp keeps far times at the ends of the range instead of
// wrapping around.
func TestTimesClamp(t *testing.T) {
	k := keyspace.New(keyspace.App, "t")
	early := k.Time(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))
	late := k.Time(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	now := k.Time(time.Now())
	if !(bytes.Compare(early, now) < 0 && bytes.Compare(now, late) < 0) {
		t.Fatal("far times do not sort at the ends")
	}
}

// TestOwnersCannotCollide checks that the key ranges of different owners,
// and of different names of one owner, are disjoint whatever their further
// elements: no key of one lies in another's range.
func TestOwnersCannotCollide(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	names := []string{"", "a", "a.b", "a\x00", "a\x00\xff", "ab", "b"}
	type prefix struct {
		owner keyspace.Owner
		name  string
		key   keyspace.Key
	}
	var ps []prefix
	for _, o := range keyspace.Owners {
		for _, n := range names {
			ps = append(ps, prefix{o, n, keyspace.New(o, n)})
		}
	}
	for _, a := range ps {
		lo, hi := a.key.Range()
		for _, b := range ps {
			if a.owner == b.owner && a.name == b.name {
				continue
			}
			for range 50 {
				k := b.key
				for range r.IntN(3) {
					k = randElem(r, r.IntN(4)).append(k)
				}
				var full []byte = k
				if r.IntN(2) == 0 {
					full = k.Raw([]byte(randString(r)))
				}
				if bytes.Compare(full, lo) >= 0 && bytes.Compare(full, hi) < 0 {
					t.Fatalf("key %s of (%s, %q) lies in the range of (%s, %q)", keyspace.Format(full), b.owner, b.name, a.owner, a.name)
				}
			}
		}
	}
	// And a key does lie in the range of each of its own prefixes.
	for _, a := range ps {
		lo, hi := a.key.Range()
		for _, full := range [][]byte{a.key.String(""), a.key.Uint(0), a.key.Raw(nil), a.key.Raw([]byte{0xff, 0xff})} {
			if bytes.Compare(full, lo) < 0 || bytes.Compare(full, hi) >= 0 {
				t.Fatalf("key %s is outside the range of its prefix (%s, %q)", keyspace.Format(full), a.owner, a.name)
			}
		}
	}
	if len(slices.Compact(slices.Clone(keyspace.Owners))) != len(keyspace.Owners) {
		t.Fatal("an owner is listed twice")
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte(keyspace.New(keyspace.App, "x").Uint(1)))
	f.Add([]byte{0x02, 0x00, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = keyspace.Format(b)
		r := keyspace.NewReader(b)
		for !r.Done() {
			if _, err := r.String(); err != nil {
				return
			}
		}
	})
}
