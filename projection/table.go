package projection

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
)

// Query limits.
const (
	// DefaultLimit is a page's size when a query sets no Limit.
	DefaultLimit = 100
	// MaxLimit is the largest Limit a query may set.
	MaxLimit = 10_000
)

// QueryOption configures a query.
type QueryOption func(*queryOpts)

type queryOpts struct {
	limit   int
	after   string
	reverse bool
	atLeast []Position
	errs    []error
}

// Limit sets a page's size, 1 to MaxLimit (default DefaultLimit).
func Limit(n int) QueryOption {
	return func(q *queryOpts) {
		if n < 1 || n > MaxLimit {
			q.errs = append(q.errs, invalid("Limit", "must be between 1 and %d, got %d", MaxLimit, n))
		}
		q.limit = n
	}
}

// After resumes a scan after the last entry of the page whose Next token
// is token. An empty token starts at the beginning.
func After(token string) QueryOption { return func(q *queryOpts) { q.after = token } }

// Reverse scans in descending key order.
func Reverse() QueryOption { return func(q *queryOpts) { q.reverse = true } }

// AtLeast makes the query wait, before it reads, until the projection has
// applied every position (read your writes): pass the Position of what a
// command returned (command.Result.Position, eventstore.AppendResult.Position,
// see PositionOf), or one parsed from a client's request with
// eventstore.ParsePosition. It waits as WaitFor does: give the query's ctx
// a timeout.
func AtLeast(positions ...Position) QueryOption {
	return func(q *queryOpts) { q.atLeast = append(q.atLeast, positions...) }
}

func queryOptions(opts []QueryOption) (queryOpts, error) {
	q := queryOpts{limit: DefaultLimit}
	for _, o := range opts {
		o(&q)
	}
	return q, errors.Join(q.errs...)
}

func (p *Projection) waitQuery(ctx context.Context, q queryOpts) error {
	if len(q.atLeast) == 0 {
		return nil
	}
	return p.WaitFor(ctx, q.atLeast...)
}

// beginQuery starts a query on t: it checks that t is attached, reads the
// options, waits for their positions, and holds the current generation
// until the returned unlock.
func (t *Table[K, V]) beginQuery(ctx context.Context, opts []QueryOption) (q queryOpts, gen uint64, unlock func(), err error) {
	if err := t.bound(); err != nil {
		return q, 0, nil, err
	}
	if q, err = queryOptions(opts); err != nil {
		return q, 0, nil, err
	}
	if err := t.p.waitQuery(ctx, q); err != nil {
		return q, 0, nil, err
	}
	gen, _, unlock, err = t.p.hold(ctx)
	return q, gen, unlock, err
}

// Tokens: base64url of a version byte, a hash of the scan's scope (table
// or index) and the last key returned, relative to the scope's prefix.
// Version 2 is that of the keyspace layout; a token of version 1 (the
// layout before it) is refused as malformed.
const tokenVersion = 2

func scopeHash(scope string) []byte {
	h := fnv.New32a()
	h.Write([]byte(scope))
	return h.Sum(nil)
}

func makeToken(scope string, rel []byte) string {
	b := append([]byte{tokenVersion}, scopeHash(scope)...)
	return base64.RawURLEncoding.EncodeToString(append(b, rel...))
}

func parseToken(scope, token string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 6 || b[0] != tokenVersion {
		return nil, invalid("After", "malformed pagination token %q", token)
	}
	if !bytes.Equal(b[1:5], scopeHash(scope)) {
		return nil, invalid("After", "pagination token %q belongs to another table, index or list than %q", token, scope)
	}
	return b[5:], nil
}

// scanPage reads one page of [lower, upper) (full state keys), resuming
// after q.after, whose keys are relative to scopePrefix. It returns copies.
func (p *Projection) scanPage(ctx context.Context, scopePrefix, lower, upper []byte, scope string, q queryOpts) ([]eventstore.KV, string, error) {
	if q.after != "" {
		rel, err := parseToken(scope, q.after)
		if err != nil {
			return nil, "", err
		}
		resume := append(slices.Clip(scopePrefix), rel...)
		if q.reverse {
			if upper == nil || bytes.Compare(resume, upper) < 0 {
				upper = resume
			}
		} else if r := append(resume, 0); bytes.Compare(r, lower) > 0 {
			lower = r
		}
	}
	if upper != nil && bytes.Compare(lower, upper) >= 0 {
		return nil, "", nil
	}
	var out []eventstore.KV
	next := ""
	for kv, err := range p.s.Scan(ctx, lower, upper, q.reverse) {
		if err != nil {
			return nil, "", fmt.Errorf("projection %q: scan: %w", p.name, err)
		}
		if len(out) == q.limit {
			last := out[len(out)-1].Key
			next = makeToken(scope, last[len(scopePrefix):])
			break
		}
		out = append(out, eventstore.KV{Key: slices.Clone(kv.Key), Value: slices.Clone(kv.Value)})
	}
	return out, next, nil
}

// Entry is one row of a table.
type Entry[K, V any] struct {
	Key   K
	Value V
}

// Page is one page of a query's results. Next is the token that continues
// after it (pass it to After), empty when there is nothing more.
type Page[K, V any] struct {
	Entries []Entry[K, V]
	Next    string
}

// Table is a typed table of a projection's read model: rows of key K and
// value V, encoded by codecs, kept in key order (the key codec's order).
// Handlers write it through their Tx; queries read the projection's
// current generation. Secondary indexes (NewIndex) are maintained in the
// same batch as the rows.
type Table[K, V any] struct {
	name string
	kc   KeyCodec[K]
	vc   codec.Codec[V]
	// rel is the key of the table's rows relative to a generation's
	// prefix: ("t", name) and the raw tag; a row's key codec encoding
	// follows it.
	rel     []byte
	p       *Projection
	indexes []tableIndex[K, V]
}

// tableIndex is an index, seen from its table.
type tableIndex[K, V any] interface {
	indexName() string
	// relPrefix is the key of the index's entries relative to a
	// generation's prefix.
	relPrefix() []byte
	// entries appends the index entries of row (k, v) (their keys
	// relative to the index prefix) to dst.
	entries(dst [][]byte, pk []byte, k K, v V) ([][]byte, error)
}

// NewTable returns a table called name (letters, digits, '.', '_', '-')
// with the given key and value codecs (codec.JSON[V]() is the usual value
// codec, codec.Int64() a compact one for counters). Pass it to New with
// WithTables.
func NewTable[K, V any](name string, keys KeyCodec[K], values codec.Codec[V]) (*Table[K, V], error) {
	var errs []error
	errs = append(errs, eventstore.ValidateName("table", name))
	if keys == nil {
		errs = append(errs, invalid("table key codec", "is nil"))
	}
	if err := codec.Check(values); err != nil {
		errs = append(errs, invalid("table value codec", "%v", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("projection: new table %q: %w", name, err)
	}
	rel := keyspace.AppendString(keyspace.AppendString(nil, "t"), name)
	return &Table[K, V]{name: name, kc: keys, vc: values, rel: append(rel, rawTag)}, nil
}

// Name returns the table's name.
func (t *Table[K, V]) Name() string { return t.name }

func (t *Table[K, V]) tableName() string { return t.name }

func (t *Table[K, V]) bind(p *Projection) error {
	if t == nil {
		return invalid("WithTables", "nil table")
	}
	if t.p != nil && t.p != p {
		return invalid("WithTables", "table %q already belongs to projection %q", t.name, t.p.name)
	}
	t.p = p
	return nil
}

func (t *Table[K, V]) rowPrefix(genPrefix []byte) []byte {
	return append(slices.Clip(genPrefix), t.rel...)
}

// txKey builds the row key of k in the Tx's scratch buffer, valid until
// the next txKey; n is the length of its row prefix.
func (t *Table[K, V]) txKey(tx *Tx, k K) (key []byte, n int, err error) {
	b := append(append(tx.scratch[:0], tx.prefix...), t.rel...)
	n = len(b)
	b, err = t.encodeKey(b, k)
	if err != nil {
		return nil, 0, err
	}
	tx.scratch = b
	return b, n, nil
}

func (t *Table[K, V]) encodeKey(dst []byte, k K) ([]byte, error) {
	n := len(dst)
	dst, err := t.kc.Append(dst, k)
	if err != nil {
		return nil, fmt.Errorf("projection: table %q: encode key: %w: %w", t.name, ErrInvalidArgument, err)
	}
	if len(dst) == n {
		return nil, invalid("key", "of table %q encodes to nothing (an empty key)", t.name)
	}
	return dst, nil
}

func (t *Table[K, V]) checkTx(tx *Tx) error {
	if tx == nil {
		return invalid("tx", "is nil")
	}
	if t.p != tx.p {
		return invalid("table", "%q is not part of projection %q (see WithTables)", t.name, tx.p.name)
	}
	return nil
}

// Load returns the value of k as the handler's transaction sees it (its
// own writes included), and false if k has no row.
func (t *Table[K, V]) Load(tx *Tx, k K) (V, bool, error) {
	var zero V
	if err := t.checkTx(tx); err != nil {
		return zero, false, err
	}
	key, _, err := t.txKey(tx, k)
	if err != nil {
		return zero, false, err
	}
	b, ok, err := tx.get(key)
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := t.vc.Decode(b)
	if err != nil {
		return zero, false, fmt.Errorf("projection: table %q: decode value: %w", t.name, err)
	}
	return v, true, nil
}

// Put sets the row of k to v in the handler's transaction, and updates the
// table's indexes: entries of the old value that v no longer has are
// removed, new ones added.
func (t *Table[K, V]) Put(tx *Tx, k K, v V) error {
	if err := t.checkTx(tx); err != nil {
		return err
	}
	key, n, err := t.txKey(tx, k)
	if err != nil {
		return err
	}
	val, err := t.vc.Encode(v)
	if err != nil {
		return fmt.Errorf("projection: table %q: encode value: %w", t.name, err)
	}
	if len(t.indexes) > 0 {
		key = slices.Clone(key)
		pk := key[n:]
		old, err := t.oldEntries(tx, key, pk)
		if err != nil {
			return err
		}
		if err := t.reindex(tx, pk, old, &k, &v); err != nil {
			return err
		}
	}
	return tx.set(key, val)
}

// Delete removes the row of k, and its index entries, in the handler's
// transaction. Deleting a missing row does nothing.
func (t *Table[K, V]) Delete(tx *Tx, k K) error {
	if err := t.checkTx(tx); err != nil {
		return err
	}
	key, n, err := t.txKey(tx, k)
	if err != nil {
		return err
	}
	if len(t.indexes) > 0 {
		key = slices.Clone(key)
		pk := key[n:]
		old, err := t.oldEntries(tx, key, pk)
		if err != nil {
			return err
		}
		if err := t.reindex(tx, pk, old, nil, nil); err != nil {
			return err
		}
	}
	return tx.del(key)
}

// oldEntries returns the full keys of the index entries of the row at key.
func (t *Table[K, V]) oldEntries(tx *Tx, key, pk []byte) (map[string]bool, error) {
	b, ok, err := tx.get(key)
	if err != nil || !ok {
		return nil, err
	}
	oldV, err := t.vc.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("projection: table %q: decode old value: %w", t.name, err)
	}
	oldK, err := t.kc.Decode(pk)
	if err != nil {
		return nil, fmt.Errorf("projection: table %q: decode key: %w", t.name, err)
	}
	return t.indexKeys(tx, pk, oldK, oldV)
}

func (t *Table[K, V]) indexKeys(tx *Tx, pk []byte, k K, v V) (map[string]bool, error) {
	out := map[string]bool{}
	var rel [][]byte
	for _, idx := range t.indexes {
		var err error
		rel, err = idx.entries(rel[:0], pk, k, v)
		if err != nil {
			return nil, err
		}
		prefix := append(slices.Clip(tx.prefix), idx.relPrefix()...)
		for _, r := range rel {
			out[string(append(slices.Clip(prefix), r...))] = true
		}
	}
	return out, nil
}

// reindex removes the old entries the new row (nil for a delete) does not
// have and adds the new ones.
func (t *Table[K, V]) reindex(tx *Tx, pk []byte, old map[string]bool, k *K, v *V) error {
	var cur map[string]bool
	if k != nil {
		var err error
		if cur, err = t.indexKeys(tx, pk, *k, *v); err != nil {
			return err
		}
	}
	for e := range old {
		if !cur[e] {
			if err := tx.del([]byte(e)); err != nil {
				return err
			}
		}
	}
	for e := range cur {
		if !old[e] {
			if err := tx.set([]byte(e), nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *Table[K, V]) bound() error {
	if t.p == nil {
		return invalid("table", "%q is not part of a projection (see WithTables)", t.name)
	}
	return nil
}

// Get returns the value of k in the projection's current generation, and
// false if k has no row. With AtLeast it first waits for the positions.
func (t *Table[K, V]) Get(ctx context.Context, k K, opts ...QueryOption) (V, bool, error) {
	var zero V
	_, gen, unlock, err := t.beginQuery(ctx, opts)
	if err != nil {
		return zero, false, err
	}
	defer unlock()
	key, err := t.encodeKey(t.rowPrefix(t.p.genPrefix(gen)), k)
	if err != nil {
		return zero, false, err
	}
	b, ok, err := t.p.s.Get(ctx, key)
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := t.vc.Decode(b)
	if err != nil {
		return zero, false, fmt.Errorf("projection: table %q: decode value: %w", t.name, err)
	}
	return v, true, nil
}

// Scan returns a page of every row, in key order (see Reverse, Limit,
// After).
func (t *Table[K, V]) Scan(ctx context.Context, opts ...QueryOption) (Page[K, V], error) {
	return t.scan(ctx, nil, nil, false, opts)
}

// ScanPrefix returns a page of the rows whose encoded key starts with the
// encoding of prefix: with StringKey, every key that starts with prefix.
func (t *Table[K, V]) ScanPrefix(ctx context.Context, prefix K, opts ...QueryOption) (Page[K, V], error) {
	b, err := t.encodeKey(nil, prefix)
	if err != nil {
		return Page[K, V]{}, err
	}
	return t.scan(ctx, b, eventstore.PrefixEnd(b), true, opts)
}

// ScanPrefixBytes returns a page of the rows whose encoded key starts with
// prefix (see PairPrefix).
func (t *Table[K, V]) ScanPrefixBytes(ctx context.Context, prefix []byte, opts ...QueryOption) (Page[K, V], error) {
	return t.scan(ctx, prefix, eventstore.PrefixEnd(prefix), true, opts)
}

// ScanRange returns a page of the rows with from <= key < to.
func (t *Table[K, V]) ScanRange(ctx context.Context, from, to K, opts ...QueryOption) (Page[K, V], error) {
	lo, err := t.encodeKey(nil, from)
	if err != nil {
		return Page[K, V]{}, err
	}
	hi, err := t.encodeKey(nil, to)
	if err != nil {
		return Page[K, V]{}, err
	}
	if bytes.Compare(lo, hi) > 0 {
		return Page[K, V]{}, invalid("ScanRange", "from is after to in table %q", t.name)
	}
	return t.scan(ctx, lo, hi, true, opts)
}

// scan reads rows with encoded keys in [lo, hi) (hi nil with bounded false
// means to the table's end).
func (t *Table[K, V]) scan(ctx context.Context, lo, hi []byte, bounded bool, opts []QueryOption) (Page[K, V], error) {
	q, gen, unlock, err := t.beginQuery(ctx, opts)
	if err != nil {
		return Page[K, V]{}, err
	}
	defer unlock()
	prefix := t.rowPrefix(t.p.genPrefix(gen))
	lower := append(slices.Clip(prefix), lo...)
	upper := eventstore.PrefixEnd(prefix)
	if bounded && hi != nil {
		upper = append(slices.Clip(prefix), hi...)
	}
	kvs, next, err := t.p.scanPage(ctx, prefix, lower, upper, "table/"+t.name, q)
	if err != nil {
		return Page[K, V]{}, err
	}
	page := Page[K, V]{Next: next, Entries: make([]Entry[K, V], 0, len(kvs))}
	for _, kv := range kvs {
		k, err := t.kc.Decode(kv.Key[len(prefix):])
		if err != nil {
			return Page[K, V]{}, fmt.Errorf("projection: table %q: decode key: %w", t.name, err)
		}
		v, err := t.vc.Decode(kv.Value)
		if err != nil {
			return Page[K, V]{}, fmt.Errorf("projection: table %q: decode value: %w", t.name, err)
		}
		page.Entries = append(page.Entries, Entry[K, V]{Key: k, Value: v})
	}
	return page, nil
}

// Index is a secondary index of a table: it maps index keys IK, derived
// from each row, to the rows' keys, and is maintained in the same batch as
// the table. A row may have any number of index keys (none, one, several).
type Index[K, V, IK any] struct {
	t    *Table[K, V]
	name string
	kc   KeyCodec[IK]
	// rel is the key of the index's entries relative to a generation's
	// prefix: ("i", table, index); an entry's index key (AppendOrdered)
	// and its row's key codec encoding follow it.
	rel     []byte
	extract func(K, V) []IK
}

// NewIndex adds an index called name to t: extract returns the index keys
// of a row. Add indexes before passing t to New; rows written before an
// index existed are indexed by a Rebuild.
func NewIndex[K, V, IK any](t *Table[K, V], name string, keys KeyCodec[IK], extract func(K, V) []IK) (*Index[K, V, IK], error) {
	var errs []error
	if t == nil {
		return nil, invalid("index", "table is nil")
	}
	errs = append(errs, eventstore.ValidateName("index", name))
	if keys == nil {
		errs = append(errs, invalid("index key codec", "is nil"))
	}
	if extract == nil {
		errs = append(errs, invalid("index extract function", "is nil"))
	}
	if t.p != nil {
		errs = append(errs, invalid("index", "table %q already belongs to projection %q; add indexes before New", t.name, t.p.name))
	}
	for _, idx := range t.indexes {
		if idx.indexName() == name {
			errs = append(errs, invalid("index", "table %q already has an index %q", t.name, name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("projection: new index %q: %w", name, err)
	}
	rel := keyspace.AppendString(keyspace.AppendString(keyspace.AppendString(nil, "i"), t.name), name)
	idx := &Index[K, V, IK]{t: t, name: name, kc: keys, rel: rel, extract: extract}
	t.indexes = append(t.indexes, idx)
	return idx, nil
}

// Name returns the index's name.
func (x *Index[K, V, IK]) Name() string { return x.name }

func (x *Index[K, V, IK]) indexName() string { return x.name }

func (x *Index[K, V, IK]) relPrefix() []byte { return x.rel }

func (x *Index[K, V, IK]) entries(dst [][]byte, pk []byte, k K, v V) ([][]byte, error) {
	for _, ik := range x.extract(k, v) {
		b, err := x.kc.Append(nil, ik)
		if err != nil {
			return nil, fmt.Errorf("projection: index %q: encode key: %w", x.name, err)
		}
		e := AppendOrdered(nil, b)
		dst = append(dst, append(e, pk...))
	}
	return dst, nil
}

// Lookup returns a page of the rows whose index keys include ik, in order
// of their table keys.
func (x *Index[K, V, IK]) Lookup(ctx context.Context, ik IK, opts ...QueryOption) (Page[K, V], error) {
	b, err := x.kc.Append(nil, ik)
	if err != nil {
		return Page[K, V]{}, fmt.Errorf("projection: index %q: encode key: %w: %w", x.name, ErrInvalidArgument, err)
	}
	lo := AppendOrdered(nil, b)
	return x.scan(ctx, lo, eventstore.PrefixEnd(lo), opts)
}

// ScanRange returns a page of the rows with an index key in [from, to), in
// order of index key, then table key. A row with several index keys in the
// range appears once per key.
func (x *Index[K, V, IK]) ScanRange(ctx context.Context, from, to IK, opts ...QueryOption) (Page[K, V], error) {
	lo, err := x.kc.Append(nil, from)
	if err != nil {
		return Page[K, V]{}, fmt.Errorf("projection: index %q: encode key: %w: %w", x.name, ErrInvalidArgument, err)
	}
	hi, err := x.kc.Append(nil, to)
	if err != nil {
		return Page[K, V]{}, fmt.Errorf("projection: index %q: encode key: %w: %w", x.name, ErrInvalidArgument, err)
	}
	if bytes.Compare(lo, hi) > 0 {
		return Page[K, V]{}, invalid("ScanRange", "from is after to in index %q", x.name)
	}
	return x.scan(ctx, AppendOrdered(nil, lo), AppendOrdered(nil, hi), opts)
}

// scan reads index entries in [lo, hi) (relative to the index prefix) and
// the rows they point to. The rows are read after the entries, each
// atomically: a row changed in between shows its newer value, and a row
// deleted in between is left out.
func (x *Index[K, V, IK]) scan(ctx context.Context, lo, hi []byte, opts []QueryOption) (Page[K, V], error) {
	t := x.t
	q, gen, unlock, err := t.beginQuery(ctx, opts)
	if err != nil {
		return Page[K, V]{}, err
	}
	defer unlock()
	gp := t.p.genPrefix(gen)
	prefix := append(slices.Clip(gp), x.rel...)
	_, upper := keyspace.Key(prefix).Range()
	if hi != nil {
		upper = append(slices.Clip(prefix), hi...)
	}
	kvs, next, err := t.p.scanPage(ctx, prefix, append(slices.Clip(prefix), lo...), upper, "index/"+t.name+"/"+x.name, q)
	if err != nil {
		return Page[K, V]{}, err
	}
	rows := t.rowPrefix(gp)
	page := Page[K, V]{Next: next, Entries: make([]Entry[K, V], 0, len(kvs))}
	for _, kv := range kvs {
		_, pk, err := DecodeOrdered(kv.Key[len(prefix):])
		if err != nil {
			return Page[K, V]{}, fmt.Errorf("projection: index %q: %w", x.name, err)
		}
		k, err := t.kc.Decode(pk)
		if err != nil {
			return Page[K, V]{}, fmt.Errorf("projection: table %q: decode key: %w", t.name, err)
		}
		b, ok, err := t.p.s.Get(ctx, append(slices.Clip(rows), pk...))
		if err != nil {
			return Page[K, V]{}, err
		}
		if !ok {
			continue
		}
		v, err := t.vc.Decode(b)
		if err != nil {
			return Page[K, V]{}, fmt.Errorf("projection: table %q: decode value: %w", t.name, err)
		}
		page.Entries = append(page.Entries, Entry[K, V]{Key: k, Value: v})
	}
	return page, nil
}
