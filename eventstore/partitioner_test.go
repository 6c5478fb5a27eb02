package eventstore

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// murmur2Vector is a key and the int Java's Utils.murmur2 returns for its
// bytes.
type murmur2Vector struct {
	key  string
	want int32
}

// murmur2Vectors are published murmur2 results of the Java implementation.
// None of them were produced by the code under test.
var murmur2Vectors = []murmur2Vector{
	// Apache Kafka, UtilsTest.testMurmur2,
	// clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java
	// (the same table is in franz-go's pkg/kgo/partitioner_test.go,
	// TestMurmur2KafkaVectors).
	{"21", -973932308},
	{"foobar", -790332482},
	{"a-little-bit-long-string", -985981536},
	{"a-little-bit-longer-string", -1486304829},
	{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
	{"abc", 479470107},

	// librdkafka, src/rdmurmur2.c, unittest_murmur2: java_murmur2_results,
	// written there as hex int32 (the int32 conversions below are the same
	// bits). "1234" and its suffixes, and the PreAmble string and its
	// suffixes, were chosen there to cover every length mod 4.
	{"kafka", int32FromBits(0xd067cf64)},
	{"giberish123456789", int32FromBits(0x8f552b0c)},
	{"1234", int32FromBits(0x9fc97b14)},
	{"234", int32FromBits(0xe7c009ca)},
	{"34", int32FromBits(0x873930da)},
	{"4", int32FromBits(0x5a4b5ca1)},
	{"PreAmbleWillBeRemoved,ThePrePartThatIs", int32FromBits(0x78424f1c)},
	{"reAmbleWillBeRemoved,ThePrePartThatIs", int32FromBits(0x4a62b377)},
	{"eAmbleWillBeRemoved,ThePrePartThatIs", int32FromBits(0xe0e4e09e)},
	{"AmbleWillBeRemoved,ThePrePartThatIs", int32FromBits(0x62b8b43f)},
	{"", int32FromBits(0x106e08d9)},

	// Akka, akka-cluster-sharding-typed/src/test/scala/akka/cluster/sharding/
	// typed/internal/Murmur2Spec.scala ("expected correct hash values from the
	// kafka murmur2 impl"). "1234" is there too, with the value above.
	{"1", -1993445489},
	{"12", 126087238},
	{"123", -267702483},
	{"12345", -1188365604},
}

// int32FromBits reinterprets the bits of u as an int32, the way C's
// (int32_t) cast of librdkafka's hex constants does.
func int32FromBits(u uint32) int32 { return int32(u) }

// TestMurmur2JavaVectors checks murmur2, and the string path PartitionFor
// uses, against the published Java results.
func TestMurmur2JavaVectors(t *testing.T) {
	t.Parallel()
	for _, v := range murmur2Vectors {
		if got := murmur2([]byte(v.key)); got != v.want {
			t.Errorf("murmur2(%q) = %d, want %d (Java)", v.key, got, v.want)
		}
		// The string path used by PartitionFor must hash the same bytes.
		if got := int32(murmur2Sum(v.key)); got != v.want {
			t.Errorf("murmur2Sum(string %q) = %d, want %d (Java)", v.key, got, v.want)
		}
	}
}

// TestMurmur2VectorsCoverTails guards the vector table itself: it must keep
// the empty key and a key of every length mod 4, so that each case of the
// tail switch and the fallthroughs stay checked against Java.
func TestMurmur2VectorsCoverTails(t *testing.T) {
	t.Parallel()
	var empty bool
	var mods [4]int
	for _, v := range murmur2Vectors {
		if v.key == "" {
			empty = true
			continue
		}
		mods[len(v.key)%4]++
	}
	if !empty {
		t.Error("no vector for the empty key")
	}
	for m, c := range mods {
		if c == 0 {
			t.Errorf("no non-empty vector with length %% 4 == %d", m)
		}
	}
}

// TestMurmur2NilEqualsEmpty checks that a nil key hashes like an empty one.
func TestMurmur2NilEqualsEmpty(t *testing.T) {
	t.Parallel()
	if got, want := murmur2(nil), murmur2([]byte{}); got != want {
		t.Errorf("murmur2(nil) = %d, murmur2([]byte{}) = %d", got, want)
	}
}

// TestToPositive checks the sign-bit masking of Kafka's Utils.toPositive,
// which differs from an absolute value.
func TestToPositive(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want int32 }{
		{0, 0},
		{10, 10},
		{math.MaxInt32, math.MaxInt32},
		{-1, math.MaxInt32},
		{-10, 0x7ffffff6},
		{math.MinInt32, 0},
		{-973932308, 1173551340},
	} {
		if got := toPositive(c.in); got != c.want {
			t.Errorf("toPositive(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestPartitionForPublishedPositiveHashes checks toPositive(murmur2(key)),
// the value Kafka takes modulo the partition count, against values librdkafka
// publishes in that form.
func TestPartitionForPublishedPositiveHashes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		key  string
		want int32 // toPositive(murmur2(key)) per the source
	}{
		// librdkafka, tests/0048-partitioner.c, do_test_partitioners, the
		// "murmur2" expectations ("using tests/java/Murmur2Cli"), which the
		// test takes modulo 7 or 17 partitions.
		{"", 0x106e08d9},
		{"23456", 0x058d780f},
		{"this is another string with more length to it perhaps", 0x4f7703da},
		{"hejsan", 0x5ec19395},
		// librdkafka, older src/rdmurmur2.c, unittest_murmurhashneutral2:
		// java_murmur2_results, already made positive.
		{"kafka", 1348980580},
		{"amqp", 767747138},
		{"giberish123456789", 257239820},
	} {
		if got := toPositive(murmur2([]byte(c.key))); got != c.want {
			t.Errorf("toPositive(murmur2(%q)) = %d, want %d", c.key, got, c.want)
		}
		// librdkafka's 0048 runs with 7 partitions (quick) or 17.
		for _, n := range []int{7, 17} {
			if got, want := PartitionFor(c.key, n), int(c.want)%n; got != want {
				t.Errorf("PartitionFor(%q, %d) = %d, want %d", c.key, n, got, want)
			}
		}
	}
}

// TestPartitionForVectors pins concrete partition numbers. Each want was
// computed by hand from a published Java murmur2 value in murmur2Vectors as
// (want & 0x7fffffff) % n, the formula of Kafka's default partitioner
// (BuiltInPartitioner.partitionForKey), not by running PartitionFor.
func TestPartitionForVectors(t *testing.T) {
	t.Parallel()
	counts := []int{1, 2, 3, 7, 10, 12, 17, 64, 100, 1000}
	for _, c := range []struct {
		key  string
		want []int // one per entry of counts
	}{
		{"21", []int{0, 0, 0, 3, 0, 0, 13, 44, 40, 340}},
		{"foobar", []int{0, 0, 0, 0, 6, 6, 9, 62, 66, 166}},
		{"a-little-bit-long-string", []int{0, 0, 2, 1, 2, 8, 11, 32, 12, 112}},
		{"a-little-bit-longer-string", []int{0, 1, 2, 0, 9, 11, 12, 3, 19, 819}},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", []int{0, 1, 2, 3, 7, 5, 0, 13, 77, 677}},
		{"abc", []int{0, 1, 0, 4, 7, 3, 16, 27, 7, 107}},
		{"kafka", []int{0, 0, 1, 3, 0, 4, 14, 36, 80, 580}},
		{"", []int{0, 1, 0, 2, 1, 9, 11, 25, 81, 681}},
		{"1234", []int{0, 0, 0, 0, 0, 0, 1, 20, 40, 940}},
		{"234", []int{0, 0, 2, 4, 6, 2, 13, 10, 66, 666}},
		{"34", []int{0, 0, 0, 6, 0, 6, 7, 26, 70, 570}},
		{"4", []int{0, 1, 1, 6, 3, 1, 10, 33, 53, 353}},
		{"giberish123456789", []int{0, 0, 2, 5, 0, 8, 2, 12, 20, 820}},
	} {
		for i, n := range counts {
			if got := PartitionFor(c.key, n); got != c.want[i] {
				t.Errorf("PartitionFor(%q, %d) = %d, want %d", c.key, n, got, c.want[i])
			}
		}
	}
}

// TestPartitionForMatchesFormula checks every murmur2 vector against the
// partitioner formula for a range of partition counts.
func TestPartitionForMatchesFormula(t *testing.T) {
	t.Parallel()
	for _, v := range murmur2Vectors {
		for n := 1; n <= 257; n++ {
			if got, want := PartitionFor(v.key, n), int(toPositive(v.want))%n; got != want {
				t.Errorf("PartitionFor(%q, %d) = %d, want %d", v.key, n, got, want)
			}
		}
	}
}

// TestPartitionForNonPositiveCount checks the documented n <= 0 result.
func TestPartitionForNonPositiveCount(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1, -17, math.MinInt} {
		for _, key := range []string{"", "21", "kafka"} {
			if got := PartitionFor(key, n); got != 0 {
				t.Errorf("PartitionFor(%q, %d) = %d, want 0", key, n, got)
			}
		}
	}
}

// TestPartitionForRandomKeysInRange checks that random keys land in [0, n)
// and that the string path agrees with murmur2 over the same bytes.
func TestPartitionForRandomKeysInRange(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 0, 128)
	counts := []int{1, 2, 3, 16, 17, 100, 1 << 20, math.MaxInt32, math.MaxInt}
	for range 20000 {
		buf = buf[:rng.IntN(cap(buf)+1)]
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		key := string(buf)
		n := counts[rng.IntN(len(counts))]
		if rng.IntN(4) == 0 {
			n = 1 + rng.IntN(1000)
		}
		got := PartitionFor(key, n)
		if got < 0 || got >= n {
			t.Fatalf("PartitionFor(%q, %d) = %d, out of range", key, n, got)
		}
		if want := int(toPositive(murmur2(buf))) % n; got != want {
			t.Fatalf("PartitionFor(%q, %d) = %d, murmur2 over the bytes gives %d", key, n, got, want)
		}
	}
}

// TestPartitionForZeroAllocs checks that PartitionFor does not allocate.
func TestPartitionForZeroAllocs(t *testing.T) {
	// Build the keys at run time so they are not constants the compiler
	// could fold.
	keys := []string{"", "4", "kafka", strings.Repeat("order-42/", 20)}
	for _, key := range keys {
		var sink int
		allocs := testing.AllocsPerRun(1000, func() {
			sink += PartitionFor(key, 12)
		})
		if allocs != 0 {
			t.Errorf("PartitionFor(len %d key) allocates %.1f times per call, want 0", len(key), allocs)
		}
		_ = sink
	}
}

// BenchmarkPartitionFor measures PartitionFor for a few key lengths.
func BenchmarkPartitionFor(b *testing.B) {
	for _, size := range []int{8, 36, 256} {
		key := strings.Repeat("k", size)
		b.Run("len="+strconv.Itoa(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			var sink int
			for b.Loop() {
				sink += PartitionFor(key, 64)
			}
			_ = sink
		})
	}
}

// FuzzPartitionFor checks that any key and count give a result in [0, n), or
// 0 when n <= 0, matching murmur2 over the key bytes.
func FuzzPartitionFor(f *testing.F) {
	for _, v := range murmur2Vectors {
		f.Add(v.key, 12)
	}
	f.Add("kafka", 1)
	f.Add("kafka", 0)
	f.Add("kafka", -5)
	f.Add("\xff\x00\x80", math.MaxInt)
	f.Fuzz(func(t *testing.T, key string, n int) {
		got := PartitionFor(key, n)
		if n <= 0 {
			if got != 0 {
				t.Fatalf("PartitionFor(%q, %d) = %d, want 0 for n <= 0", key, n, got)
			}
			return
		}
		if got < 0 || got >= n {
			t.Fatalf("PartitionFor(%q, %d) = %d, want in [0, %d)", key, n, got, n)
		}
		if want := int(toPositive(murmur2([]byte(key)))) % n; got != want {
			t.Fatalf("PartitionFor(%q, %d) = %d, murmur2 over the bytes gives %d", key, n, got, want)
		}
	})
}
