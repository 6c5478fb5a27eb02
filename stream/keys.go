package stream

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/muninn-es/muninn/keyspace"
)

// An App's state is keyed in the state space under (keyspace.Stream,
// appID); the package documentation lists the layout. appKeys and
// storeKeys hold the prefixes, built once per App.

// appKeys are the prefixes of an App's own keys.
type appKeys struct {
	// root is ("stream", appID).
	root keyspace.Key
	// dedup is (root, "dedup"): + topic, partition, upstream topic and
	// partition.
	dedup keyspace.Key
	// metric is (root, "metric"): + name.
	metric keyspace.Key
}

func newAppKeys(appID string) appKeys {
	root := keyspace.New(keyspace.Stream, appID)
	return appKeys{root: root, dedup: root.String("dedup"), metric: root.String("metric")}
}

// storeKeys are the prefixes of one state store's keys.
type storeKeys struct {
	// all is (root, "store", store): every entry, window and index key of
	// the store, which a restore clears.
	all keyspace.Key
	// kv is the raw-tail prefix of a key-value entry: + the encoded key.
	kv []byte
	// win is (all, "w"): + key, start.
	win keyspace.Key
	// idx is (all, "x"): + partition, start, key.
	idx keyspace.Key
	// time is (root, "time", store): + partition.
	time keyspace.Key
	// ends is (root, "changelog", store): + partition.
	ends keyspace.Key
	// init is (root, "init", store).
	init keyspace.Key
	// late is (root, "metric", "late", store).
	late keyspace.Key
}

func newStoreKeys(k appKeys, store string) *storeKeys {
	all := k.root.String("store").String(store)
	return &storeKeys{
		all:  all,
		kv:   all.String("k").RawPrefix(),
		win:  all.String("w"),
		idx:  all.String("x"),
		time: k.root.String("time").String(store),
		ends: k.root.String("changelog").String(store),
		init: k.root.String("init").String(store),
		late: k.metric.String("late").String(store),
	}
}

// appendKVKey appends the key of the key-value entry of the encoded key kb.
func (sk *storeKeys) appendKVKey(dst, kb []byte) []byte {
	return append(append(dst, sk.kv...), kb...)
}

// appendWindowKey appends the key of the window of kb starting at start
// (Unix nanoseconds).
func (sk *storeKeys) appendWindowKey(dst, kb []byte, start int64) []byte {
	dst = keyspace.AppendBytes(append(dst, sk.win...), kb)
	return keyspace.AppendTime(dst, timeOf(start))
}

// parseWindowKey splits a window key into the encoded key and the start.
func (sk *storeKeys) parseWindowKey(key []byte) (kb []byte, start int64, err error) {
	r, err := keyspace.Read(key, sk.win)
	if err != nil {
		return nil, 0, fmt.Errorf("stream: window key: %w", err)
	}
	if kb, err = r.Bytes(); err != nil {
		return nil, 0, fmt.Errorf("stream: window key: %w", err)
	}
	t, err := r.Time()
	if err != nil || !r.Done() {
		return nil, 0, fmt.Errorf("stream: window key %s is malformed", keyspace.Format(key))
	}
	return kb, t.UnixNano(), nil
}

// indexPartPrefix returns the prefix of the index keys of a partition.
func (sk *storeKeys) indexPartPrefix(partition int) keyspace.Key {
	return sk.idx.Uint(uint64(partition))
}

// indexKey returns the key of the index entry of the window of kb
// starting at start, in partition.
func (sk *storeKeys) indexKey(partition int, start int64, kb []byte) []byte {
	k := keyspace.AppendUint(append(make([]byte, 0, len(sk.idx)+9+9+len(kb)+2), sk.idx...), uint64(partition))
	k = keyspace.AppendTime(k, timeOf(start))
	return keyspace.AppendBytes(k, kb)
}

// parseIndexKey splits an index key, after its partition's prefix, into
// the window's start and encoded key.
func parseIndexKey(key []byte, partPrefix keyspace.Key) (start int64, kb []byte, err error) {
	r, err := keyspace.Read(key, partPrefix)
	if err != nil {
		return 0, nil, fmt.Errorf("stream: window index key: %w", err)
	}
	t, err := r.Time()
	if err != nil {
		return 0, nil, fmt.Errorf("stream: window index key: %w", err)
	}
	if kb, err = r.Bytes(); err != nil || !r.Done() {
		return 0, nil, fmt.Errorf("stream: window index key %s is malformed", keyspace.Format(key))
	}
	return t.UnixNano(), kb, nil
}

// The keys of changelog records: a key-value store's record has the entry's
// encoded key; a window store's record has the window's key as
// WindowedCodec writes it (the encoded key, then the window's start and end
// as 8 big-endian bytes of Unix nanoseconds each), so that a reader decodes
// it with WindowedCodec of the store's key codec.

// changelogWindowKey returns the changelog key of the window of kb
// starting at start, of the given size.
func changelogWindowKey(kb []byte, start int64, size time.Duration) string {
	return string(appendWindowBounds(append(make([]byte, 0, len(kb)+16), kb...), start, start+int64(size)))
}

// parseChangelogWindowKey splits a window store's changelog key into the
// encoded key and the window's start.
func parseChangelogWindowKey(key string, size time.Duration) (kb []byte, start int64, err error) {
	kb, start, end, ok := splitWindowBounds([]byte(key))
	if !ok {
		return nil, 0, fmt.Errorf("stream: window changelog key %q: want at least 16 bytes, got %d", key, len(key))
	}
	if end-start != int64(size) {
		return nil, 0, fmt.Errorf("stream: window changelog key %q: window [%d, %d) is not of the store's size %s", key, start, end, size)
	}
	return kb, start, nil
}

// windowValue is partition(4) + aggregate.
func windowValue(partition int, agg []byte) []byte {
	out := make([]byte, 4, 4+len(agg))
	binary.BigEndian.PutUint32(out, uint32(partition))
	return append(out, agg...)
}

func parseWindowValue(b []byte) (partition int, agg []byte, err error) {
	if len(b) < 4 {
		return 0, nil, fmt.Errorf("stream: window value has %d bytes, fewer than 4", len(b))
	}
	return int(binary.BigEndian.Uint32(b)), b[4:], nil
}

// readTime reads a value that is one keyspace time element (a stream
// time), in Unix nanoseconds.
func readTime(v []byte) (int64, error) {
	r := keyspace.NewReader(v)
	t, err := r.Time()
	if err != nil || !r.Done() {
		return 0, fmt.Errorf("stream: stream time value %x is malformed", v)
	}
	return t.UnixNano(), nil
}

// readCounter reads an 8-byte big-endian counter or offset value.
func readCounter(what string, v []byte) (int64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("stream: %s has %d bytes, want 8", what, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}
