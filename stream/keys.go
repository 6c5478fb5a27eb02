package stream

import (
	"encoding/binary"
	"fmt"
)

// Layout of an App's state, under "stream/<appID>/":
//
//	<store>/k<key>                         key-value store entry
//	<store>/w<len><key><start>             window: value = partition(4) + aggregate
//	<store>/x<partition><start><len><key>  index of windows by partition and start, for expiry
//	~time/<store>/<partition>              stream time of a window store's partition
//	~dedup/<topic>/<partition>/<src>/<p>   last input position seen in a repartition partition
//	~changelog/<store>/<partition>         changelog end offset matching the state
//	~init/<store>                          the store exists (else restore from its changelog)
//	~metric/<name>                         counters
//
// <len> is a uvarint, <start> a big-endian uint64 of the window start in
// nanoseconds with the sign bit flipped (so that keys sort by time), and
// <partition> a big-endian uint32. Store keys after "<store>/" are also the
// keys of the store's changelog records.

const (
	tagKV     = 'k'
	tagWindow = 'w'
	tagIndex  = 'x'
)

func appPrefix(appID string) []byte { return []byte("stream/" + appID + "/") }

func storePrefix(appID, store string) []byte { return []byte("stream/" + appID + "/" + store + "/") }

func metaKey(appID, kind, name string) []byte {
	return []byte("stream/" + appID + "/~" + kind + "/" + name)
}

func appendStart(dst []byte, start int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(start)^(1<<63))
}

func readStart(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// kvKey returns prefix + "k" + key.
func kvKey(prefix, key []byte) []byte {
	out := make([]byte, 0, len(prefix)+1+len(key))
	out = append(out, prefix...)
	out = append(out, tagKV)
	return append(out, key...)
}

// windowKeyPrefix returns prefix + "w" + len + key: all windows of key.
func windowKeyPrefix(prefix, key []byte) []byte {
	return appendWindowKeyPrefix(make([]byte, 0, len(prefix)+1+binary.MaxVarintLen64+len(key)+8), prefix, key)
}

func appendWindowKeyPrefix(dst, prefix, key []byte) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, tagWindow)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	return append(dst, key...)
}

func windowKey(prefix, key []byte, start int64) []byte {
	return appendStart(windowKeyPrefix(prefix, key), start)
}

// parseWindowKey splits the part of a window key after the store prefix.
func parseWindowKey(b []byte) (key []byte, start int64, err error) {
	if len(b) < 1 || b[0] != tagWindow {
		return nil, 0, fmt.Errorf("stream: window key %q lacks its tag", b)
	}
	n, w := binary.Uvarint(b[1:])
	if w <= 0 || w != uvarintLen(n) || n > uint64(len(b)) || uint64(len(b)-1-w) != n+8 {
		return nil, 0, fmt.Errorf("stream: window key %q is malformed", b)
	}
	key = b[1+w : 1+w+int(n)]
	return key, readStart(b[1+w+int(n):]), nil
}

func indexPartPrefix(prefix []byte, partition int) []byte {
	out := make([]byte, 0, len(prefix)+5+8)
	out = append(out, prefix...)
	out = append(out, tagIndex)
	return binary.BigEndian.AppendUint32(out, uint32(partition))
}

func indexKey(prefix []byte, partition int, start int64, key []byte) []byte {
	out := appendStart(indexPartPrefix(prefix, partition), start)
	out = binary.AppendUvarint(out, uint64(len(key)))
	return append(out, key...)
}

// parseIndexKey splits the part of an index key after the partition
// prefix.
func parseIndexKey(b []byte) (start int64, key []byte, err error) {
	if len(b) < 9 {
		return 0, nil, fmt.Errorf("stream: window index key %q is too short", b)
	}
	start = readStart(b)
	n, w := binary.Uvarint(b[8:])
	if w <= 0 || w != uvarintLen(n) || n > uint64(len(b)) || uint64(len(b)-8-w) != n {
		return 0, nil, fmt.Errorf("stream: window index key %q is malformed", b)
	}
	return start, b[8+w:], nil
}

func partitionKey(appID, kind, store string, partition int) []byte {
	return binary.BigEndian.AppendUint32(metaKey(appID, kind, store+"/"), uint32(partition))
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

// uvarintLen is the length of n's canonical uvarint encoding: keys with a
// longer (padded) encoding are refused, so that each key has one form.
func uvarintLen(n uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], n)
}
