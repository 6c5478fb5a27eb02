package projection_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/backends"
	"github.com/muninn-es/muninn/projection"
)

type user struct {
	Name string   `json:"name"`
	Age  int64    `json:"age"`
	Tags []string `json:"tags"`
}

type userModel struct {
	p     *projection.Projection
	users *projection.Table[string, user]
	byTag *projection.Index[string, user, string]
	byAge *projection.Index[string, user, int64]
}

// newUserModel projects "put" events (payload: the user) and "del" events
// (no payload) of key = user ID into a users table with two indexes.
func newUserModel(t *testing.T, s eventstore.Store) *userModel {
	t.Helper()
	m := &userModel{}
	var err error
	if m.users, err = projection.NewTable("users", projection.StringKey(), codec.JSON[user]()); err != nil {
		t.Fatal(err)
	}
	if m.byTag, err = projection.NewIndex(m.users, "by-tag", projection.StringKey(), func(_ string, u user) []string { return u.Tags }); err != nil {
		t.Fatal(err)
	}
	if m.byAge, err = projection.NewIndex(m.users, "by-age", projection.Int64Key(), func(_ string, u user) []int64 { return []int64{u.Age} }); err != nil {
		t.Fatal(err)
	}
	r := projection.NewRouter()
	if err := projection.OnCodec(r, "put", codec.JSON[user](), func(tx *projection.Tx, rec eventstore.Record, u user) error { return m.users.Put(tx, rec.Key, u) }); err != nil {
		t.Fatal(err)
	}
	r.Otherwise(func(tx *projection.Tx, rec eventstore.Record) error { return m.users.Delete(tx, rec.Key) })
	if m.p, err = projection.New(s, "users", []string{"orders"}, r, projection.WithTables(m.users)); err != nil {
		t.Fatal(err)
	}
	return m
}

func put(t *testing.T, s eventstore.Store, id string, u user) eventstore.AppendResult {
	t.Helper()
	b, _ := json.Marshal(u)
	res, err := s.Append(context.Background(), "orders", id, eventstore.Any, []eventstore.Event{{Type: "put", Payload: b}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func keys[V any](p projection.Page[string, V]) []string {
	var out []string
	for _, e := range p.Entries {
		out = append(out, e.Key)
	}
	return out
}

func TestTableAndIndexes(t *testing.T) {
	backends.Run(t, testTableAndIndexes)
}

func testTableAndIndexes(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	s := openOrdersOn(t, backend.Open(t), 2)
	m := newUserModel(t, s)
	stop := startRun(t, m.p)
	defer stop()
	wait := func(res eventstore.AppendResult) []projection.QueryOption {
		return []projection.QueryOption{projection.AtLeast(projection.PositionOf(res))}
	}

	put(t, s, "u1", user{Name: "Ada", Age: 36, Tags: []string{"admin", "dev"}})
	put(t, s, "u2", user{Name: "Bob", Age: -3, Tags: []string{"dev"}})
	res := put(t, s, "u3", user{Name: "Cy", Age: 70})
	if got, err := m.byTag.Lookup(ctx, "dev", wait(res)...); err != nil || !slices.Equal(keys(got), []string{"u1", "u2"}) {
		t.Errorf("by-tag dev = %v, %v", keys(got), err)
	}
	if got, err := m.byAge.ScanRange(ctx, -10, 50); err != nil || !slices.Equal(keys(got), []string{"u2", "u1"}) {
		t.Errorf("by-age [-10, 50) = %v, %v; want u2 (-3) then u1 (36)", keys(got), err)
	}

	// An update moves the index entries: the old ones go.
	res = put(t, s, "u1", user{Name: "Ada", Age: 37, Tags: []string{"dev", "ops"}})
	if got, err := m.byTag.Lookup(ctx, "admin", wait(res)...); err != nil || len(got.Entries) != 0 {
		t.Errorf("by-tag admin after update = %v, %v; want none", keys(got), err)
	}
	if got, err := m.byTag.Lookup(ctx, "ops"); err != nil || !slices.Equal(keys(got), []string{"u1"}) || got.Entries[0].Value.Age != 37 {
		t.Errorf("by-tag ops = %+v, %v", got, err)
	}
	if got, err := m.byAge.Lookup(ctx, 36); err != nil || len(got.Entries) != 0 {
		t.Errorf("by-age 36 after update = %v, %v", keys(got), err)
	}

	// A delete removes the row and its entries.
	res, err := s.Append(ctx, "orders", "u1", eventstore.Any, []eventstore.Event{{Type: "del", Payload: []byte{}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := m.users.Get(ctx, "u1", wait(res)...); err != nil || ok {
		t.Errorf("u1 after delete: ok=%v, %v", ok, err)
	}
	if got, err := m.byTag.Lookup(ctx, "dev"); err != nil || !slices.Equal(keys(got), []string{"u2"}) {
		t.Errorf("by-tag dev after delete = %v, %v", keys(got), err)
	}
	if got, err := m.byTag.ScanRange(ctx, "a", "z"); err != nil || !slices.Equal(keys(got), []string{"u2"}) {
		t.Errorf("by-tag [a, z) after delete = %v, %v", keys(got), err)
	}
	u, ok, err := m.users.Get(ctx, "u2")
	if err != nil || !ok || u.Name != "Bob" || u.Age != -3 {
		t.Errorf("u2 = %+v, %v, %v", u, ok, err)
	}
}

func TestPagination(t *testing.T) {
	backends.Run(t, testPagination)
}

func testPagination(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	s := openOrdersOn(t, backend.Open(t), 3)
	m := newUserModel(t, s)
	var res eventstore.AppendResult
	var all []string
	for i := range 25 {
		id := fmt.Sprintf("u%02d", i)
		all = append(all, id)
		tags := []string{"all"}
		if i%2 == 0 {
			tags = append(tags, "even")
		}
		res = put(t, s, id, user{Name: id, Age: int64(i % 5), Tags: tags})
	}
	if _, err := s.Append(ctx, "orders", "x", eventstore.Any, []eventstore.Event{{Type: "put", Payload: []byte(`{"name":"x"}`)}}); err != nil {
		t.Fatal(err)
	}
	catchUp(t, s, m.p, "orders")
	_ = res

	collect := func(q func(...projection.QueryOption) (projection.Page[string, user], error), opts ...projection.QueryOption) ([]string, int) {
		t.Helper()
		var out []string
		pages, token := 0, ""
		for {
			page, err := q(append([]projection.QueryOption{projection.After(token)}, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			out = append(out, keys(page)...)
			if page.Next == "" {
				return out, pages
			}
			token = page.Next
		}
	}
	scan := func(o ...projection.QueryOption) (projection.Page[string, user], error) {
		return m.users.Scan(ctx, o...)
	}
	if got, pages := collect(scan, projection.Limit(10)); !slices.Equal(got, append(slices.Clone(all), "x")) || pages != 3 {
		t.Errorf("scan by 10: %v in %d pages", got, pages)
	}
	rev := slices.Clone(append(slices.Clone(all), "x"))
	slices.Reverse(rev)
	if got, _ := collect(scan, projection.Limit(4), projection.Reverse()); !slices.Equal(got, rev) {
		t.Errorf("reverse scan: %v", got)
	}
	prefix := func(o ...projection.QueryOption) (projection.Page[string, user], error) {
		return m.users.ScanPrefix(ctx, "u1", o...)
	}
	if got, pages := collect(prefix, projection.Limit(3)); !slices.Equal(got, all[10:20]) || pages != 4 {
		t.Errorf("prefix u1: %v in %d pages", got, pages)
	}
	rng := func(o ...projection.QueryOption) (projection.Page[string, user], error) {
		return m.users.ScanRange(ctx, "u05", "u12", o...)
	}
	if got, _ := collect(rng, projection.Limit(2)); !slices.Equal(got, all[5:12]) {
		t.Errorf("range [u05, u12): %v", got)
	}
	if got, _ := collect(rng, projection.Limit(2), projection.Reverse()); len(got) != 7 || got[0] != "u11" || got[6] != "u05" {
		t.Errorf("reverse range: %v", got)
	}
	even := func(o ...projection.QueryOption) (projection.Page[string, user], error) {
		return m.byTag.Lookup(ctx, "even", o...)
	}
	var wantEven []string
	for i := 0; i < 25; i += 2 {
		wantEven = append(wantEven, all[i])
	}
	if got, pages := collect(even, projection.Limit(5)); !slices.Equal(got, wantEven) || pages != 3 {
		t.Errorf("index lookup by 5: %v in %d pages", got, pages)
	}
	ages := func(o ...projection.QueryOption) (projection.Page[string, user], error) {
		return m.byAge.ScanRange(ctx, 1, 3, o...)
	}
	got, _ := collect(ages, projection.Limit(4))
	if len(got) != 10 || got[0] != "u01" || got[5] != "u02" {
		t.Errorf("index range by 4: %v; want the five of age 1, then the five of age 2", got)
	}

	// Bad tokens and limits are refused with a clear error.
	page, err := m.users.Scan(ctx, projection.Limit(2))
	if err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]func() error{
		"garbage":           func() error { _, err := m.users.Scan(ctx, projection.After("!!!")); return err },
		"token of a table":  func() error { _, err := m.byTag.Lookup(ctx, "all", projection.After(page.Next)); return err },
		"limit 0":           func() error { _, err := m.users.Scan(ctx, projection.Limit(0)); return err },
		"limit too large":   func() error { _, err := m.users.Scan(ctx, projection.Limit(projection.MaxLimit+1)); return err },
		"empty key":         func() error { _, _, err := m.users.Get(ctx, ""); return err },
		"range from > to":   func() error { _, err := m.users.ScanRange(ctx, "b", "a"); return err },
		"foreign topic pos": func() error { return m.p.WaitFor(ctx, projection.Position{Topic: "nope"}) },
	} {
		if err := q(); !errors.Is(err, projection.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
}

// TestWaitForEndedContext waits on a projection that has never read the
// store with a context that has already ended: the wait ends with the
// context whether the read of where the projection is, or the wait after
// it, sees that first.
func TestWaitForEndedContext(t *testing.T) {
	s := openOrders(t, 2)
	p, _ := newCounter(t, s, "ended")
	res := appendN(t, s, 4, 2, "x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := p.WaitFor(ctx, res...)
	if !errors.Is(err, consume.ErrNotReached) || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), res[0].String()) {
		t.Errorf("WaitFor with an ended context: %v, want consume.ErrNotReached and context.Canceled naming %s", err, res[0])
	}
}

// TestWaitForTimeoutAndStatus waits with a 20 ms timeout on a projection
// that is not running. The timeout may end during the projection's first
// read of the store or during the wait; either way the error is the same.
func TestWaitForTimeoutAndStatus(t *testing.T) {
	ctx := context.Background()
	s := openOrders(t, 2)
	p, tbl := newCounter(t, s, "waiting")
	res := appendN(t, s, 10, 3, "x")

	// Not running: the wait ends with the context, with a clear error.
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	err := p.WaitFor(wctx, res...)
	if !errors.Is(err, consume.ErrNotReached) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), res[0].String()) {
		t.Errorf("WaitFor timeout: %v", err)
	}
	if _, _, err := tbl.Get(wctx, "k00", projection.AtLeast(res...)); !errors.Is(err, consume.ErrNotReached) {
		t.Errorf("query with AtLeast on a stopped projection: %v", err)
	}
	st, err := p.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != consume.StateIdle || st.Lag != 10 || len(st.Partitions) != 2 {
		t.Errorf("status before Run: %+v", st)
	}
	stop := startRun(t, p)
	if err := p.WaitFor(ctx, res...); err != nil {
		t.Fatal(err)
	}
	st, err = p.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lag != 0 || st.State != consume.StateLive {
		t.Errorf("status when caught up: %+v", st)
	}
	for _, ps := range st.Partitions {
		if ps.Position != ps.End || ps.Lag != 0 {
			t.Errorf("partition %+v", ps)
		}
	}
	stop()
	if st, _ := p.Status(ctx); st.State != consume.StateStopped {
		t.Errorf("state after Run returned: %v", st.State)
	}
}

func TestNewValidation(t *testing.T) {
	s := openOrders(t, 1)
	h := projection.HandlerFunc(func(*projection.Tx, eventstore.Record) error { return nil })
	_, err := projection.New(s, "bad name!", []string{"orders", "orders", "bad topic!"}, nil,
		projection.WithBatchSize(0), projection.WithRetries(-1), projection.WithBackoff(clock.Backoff{Initial: -1}),
		projection.WithErrorPolicy(consume.HandOff()))
	if err == nil {
		t.Fatal("New accepted bad input")
	}
	if !errors.Is(err, projection.ErrInvalidArgument) {
		t.Errorf("bad input: %v, want ErrInvalidArgument", err)
	}
	for _, want := range []string{"bad name!", "given twice", "bad topic!", "handler", "WithBatchSize", "WithRetries", "WithBackoff", "WithErrorPolicy"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	if _, err := projection.New(s, "p", []string{"orders"}, h, projection.WithErrorPolicy(consume.Park("orders"))); err == nil {
		t.Error("dead-letter topic equal to a source topic accepted")
	}
	// The consumer groups derived from the name must fit too.
	long := strings.Repeat("n", eventstore.MaxNameLen-len("projection..0"))
	if _, err := projection.New(s, long, []string{"orders"}, h); err != nil {
		t.Errorf("a name whose groups fit exactly: %v", err)
	}
	if _, err := projection.New(s, long+"n", []string{"orders"}, h); !errors.Is(err, projection.ErrInvalidArgument) || !strings.Contains(err.Error(), "consumer groups") {
		t.Errorf("a name whose groups do not fit: %v", err)
	}
	// A topic that does not exist yet is no error: Run waits for it.
	if _, err := projection.New(s, "later", []string{"not-yet"}, h); err != nil {
		t.Errorf("New on a topic not created yet: %v", err)
	}
	tbl, err := projection.NewTable("t", projection.StringKey(), codec.JSON[int]())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := projection.New(s, "p1", []string{"orders"}, h, projection.WithTables(tbl)); err != nil {
		t.Fatal(err)
	}
	if _, err := projection.New(s, "p2", []string{"orders"}, h, projection.WithTables(tbl)); !errors.Is(err, projection.ErrInvalidArgument) {
		t.Errorf("table in two projections: %v", err)
	}
	if _, err := projection.NewIndex(tbl, "late", projection.StringKey(), func(string, int) []string { return nil }); err == nil {
		t.Error("index added after New accepted")
	}
	if _, err := projection.NewTable[string, int]("", nil, nil); err == nil || !strings.Contains(err.Error(), "key codec") {
		t.Errorf("NewTable of nothing: %v", err)
	}
	unbound, _ := projection.NewTable("u", projection.StringKey(), codec.JSON[int]())
	if _, _, err := unbound.Get(context.Background(), "k"); !errors.Is(err, projection.ErrInvalidArgument) {
		t.Errorf("query of a table outside any projection: %v", err)
	}
}

// Key codecs sort as their values do.
func TestKeyCodecOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	checkOrder(t, "Int64Key", projection.Int64Key(), func() int64 { return int64(rng.Uint64()) }, cmp.Compare[int64],
		math.MinInt64, math.MaxInt64, 0, -1, 1)
	checkOrder(t, "Uint64Key", projection.Uint64Key(), rng.Uint64, cmp.Compare[uint64], 0, math.MaxUint64)
	checkOrder(t, "Float64Key", projection.Float64Key(), func() float64 { return rng.NormFloat64() * 1e6 }, cmp.Compare[float64],
		math.Inf(-1), math.Inf(1), 0, -0.5, 0.5, math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64)
	str := func() string {
		b := make([]byte, rng.IntN(4))
		for i := range b {
			b[i] = byte(rng.IntN(3)) // lots of zero bytes and prefixes
		}
		return string(b)
	}
	pairs := projection.PairKey(projection.StringKey(), projection.Int64Key())
	checkOrder(t, "PairKey", pairs, func() projection.Pair[string, int64] {
		return projection.Pair[string, int64]{A: str(), B: int64(rng.IntN(5)) - 2}
	}, func(a, b projection.Pair[string, int64]) int {
		return cmp.Or(strings.Compare(a.A, b.A), cmp.Compare(a.B, b.B))
	})
	if _, err := projection.Float64Key().Append(nil, math.NaN()); err == nil {
		t.Error("NaN key accepted")
	}
}

func checkOrder[K any](t *testing.T, name string, c projection.KeyCodec[K], gen func() K, compare func(a, b K) int, fixed ...K) {
	t.Helper()
	vals := append([]K(nil), fixed...)
	for range 500 {
		vals = append(vals, gen())
	}
	for i := range vals {
		a := vals[i]
		b := vals[(i*7+3)%len(vals)]
		ea, err1 := c.Append(nil, a)
		eb, err2 := c.Append(nil, b)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, want := bytes.Compare(ea, eb), compare(a, b); got != want {
			t.Errorf("%s: %v vs %v: encodings compare %d, values %d", name, a, b, got, want)
		}
		back, err := c.Decode(ea)
		if err != nil || compare(back, a) != 0 {
			t.Errorf("%s: %v round-trips to %v, %v", name, a, back, err)
		}
	}
}

// A PairKey table lists the rows of one first part with PairPrefix.
func TestPairPrefix(t *testing.T) {
	s := openOrders(t, 1)
	tbl, err := projection.NewTable("pairs", projection.PairKey(projection.StringKey(), projection.Int64Key()), codec.Int64())
	if err != nil {
		t.Fatal(err)
	}
	h := projection.HandlerFunc(func(tx *projection.Tx, rec eventstore.Record) error {
		return tbl.Put(tx, projection.Pair[string, int64]{A: rec.Key, B: int64(rec.Version)}, rec.Offset)
	})
	p, err := projection.New(s, "pairs", []string{"orders"}, h, projection.WithTables(tbl))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "a\x00", "ab", "a", "b", "a"} {
		appendTyped(t, s, k, "x")
	}
	catchUp(t, s, p, "orders")
	prefix, err := projection.PairPrefix(projection.StringKey(), "a")
	if err != nil {
		t.Fatal(err)
	}
	page, err := tbl.ScanPrefixBytes(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Entries {
		got = append(got, fmt.Sprintf("%q/%d", e.Key.A, e.Key.B))
	}
	if want := []string{`"a"/1`, `"a"/2`, `"a"/3`}; !slices.Equal(got, want) {
		t.Errorf("prefix a: %v, want %v", got, want)
	}
}
