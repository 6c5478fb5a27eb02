package eventstore

// Kafka-compatible key partitioning.
//
// The hash below is a port of org.apache.kafka.common.utils.Utils.murmur2,
// the function behind the Java producer's default partitioner. Java does the
// arithmetic on signed 32-bit ints; the port does it on uint32, which wraps
// the same way, and converts at the end, so every result matches Java's int
// bit for bit. Java's unsigned shift (>>>) is Go's >> on a uint32.

const (
	// murmur2Seed is the seed Kafka passes to murmur2 (int seed = 0x9747b28c).
	murmur2Seed uint32 = 0x9747b28c

	// murmur2M is MurmurHash2's multiplicative mixing constant m.
	murmur2M uint32 = 0x5bd1e995

	// murmur2R is MurmurHash2's shift r used when mixing each 4-byte block.
	murmur2R = 24
)

// murmur2 returns the 32-bit MurmurHash2 of data exactly as Kafka's Java
// Utils.murmur2(byte[]) does: seed 0x9747b28c, little-endian 4-byte blocks,
// then the tail bytes (length%4, falling through from 3 to 1) and the final
// avalanche. The result is the same int Java returns, negative values
// included.
func murmur2(data []byte) int32 {
	return int32(murmur2Sum(data))
}

// murmur2Sum is the body of murmur2, generic over string and []byte so that a
// string key can be hashed in place, without converting it to a byte slice.
// It returns the hash as a uint32; callers convert it to Java's int.
func murmur2Sum[T string | []byte](data T) uint32 {
	length := len(data)
	h := murmur2Seed ^ uint32(length)

	// Body: one little-endian 4-byte block at a time.
	length4 := length &^ 3
	for i := 0; i < length4; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= murmur2M
		k ^= k >> murmur2R
		k *= murmur2M
		h *= murmur2M
		h ^= k
	}

	// Tail: the last length%4 bytes, with Java's switch fallthrough.
	switch length % 4 {
	case 3:
		h ^= uint32(data[length4+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[length4+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[length4])
		h *= murmur2M
	}

	// Final mixes.
	h ^= h >> 13
	h *= murmur2M
	h ^= h >> 15
	return h
}

// toPositive maps n to a non-negative int32 by clearing its sign bit, as
// Kafka's Utils.toPositive does. It is not an absolute value: toPositive(-1)
// is 0x7fffffff and toPositive(math.MinInt32) is 0.
func toPositive(n int32) int32 {
	return n & 0x7fffffff
}

// PartitionFor returns the partition that Kafka's default partitioner picks
// for key among n partitions: murmur2 of the key bytes, made positive, modulo
// n. A key therefore lands in the same partition number in Muninn and in a
// Kafka topic with the same partition count.
//
// The key's bytes are hashed as they are, which for valid UTF-8 is what
// Kafka's StringSerializer produces. If n <= 0 there is no partition to pick,
// and PartitionFor returns 0. PartitionFor does not allocate.
func PartitionFor(key string, n int) int {
	if n <= 0 {
		return 0
	}
	return int(toPositive(int32(murmur2Sum(key)))) % n
}
