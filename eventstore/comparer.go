package eventstore

import (
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
)

// comparer orders keys bytewise, as Pebble's default does, and tells Pebble
// that a stream key (kind, topic, key, version) is a prefix, the stream,
// plus a suffix, the version. Pebble then builds its bloom filters over
// streams, so that reading one stream (SeekPrefixGE) skips every table that
// does not hold it. All other keys are their own prefix.
var comparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Split = splitKey
	c.Name = "muninn.stream.v1"
	return &c
}()

// splitKey returns the length of a key's prefix: a stream key without its
// 8-byte version, or the whole key for every other key (including keys that
// only resemble a stream key, such as iterator bounds).
func splitKey(k []byte) int {
	if len(k) < 15 || k[0] != kindStream {
		return len(k)
	}
	n, w := binary.Uvarint(k[5:])
	if w <= 0 || uint64(len(k)) != 5+uint64(w)+n+8 {
		return len(k)
	}
	return len(k) - 8
}
