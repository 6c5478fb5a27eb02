package eventstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// sampleRecords are records of every shape the codec must carry: full
// metadata, tombstones, empty payloads, headers, unicode, large payloads and
// extreme numbers. Their timestamps are all representable in Unix
// nanoseconds (years 1678 to 2262).
func sampleRecords() map[string]*Record {
	large := make([]byte, 1<<20)
	for i := range large {
		large[i] = byte(i*7 + i>>8)
	}
	records := map[string]*Record{
		"full": {
			ID:            uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8057"),
			Partition:     3,
			Offset:        42,
			Key:           "order-17",
			Version:       7,
			Type:          "order.placed",
			SchemaVersion: 2,
			Payload:       []byte(`{"total":1299}`),
			Timestamp:     time.Date(2024, 5, 17, 12, 30, 45, 123456789, time.UTC),
			CorrelationID: "req-1",
			CausationID:   "cmd-9",
			Headers:       map[string]string{"trace": "abc", "user": "ana"},
		},
		"tombstone": {
			ID: uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8058"), Partition: 0, Offset: 0,
			Key: "k", Version: 1, SchemaVersion: 1, Payload: nil,
			Timestamp: time.Unix(1, 0),
		},
		"empty payload": {
			ID: uuid.New(), Key: "k", Version: 2, Type: "t", SchemaVersion: 1, Payload: []byte{},
			Timestamp: time.Unix(0, 1),
		},
		"zero ID and empty strings": {
			Key: "", Type: "", Payload: []byte("x"), Timestamp: time.Unix(0, 0),
		},
		"many headers": {
			ID: uuid.New(), Key: "k", Version: 1, Type: "t", SchemaVersion: 1, Payload: []byte("p"),
			Timestamp: time.Date(2262, 4, 11, 23, 47, 16, 0, time.UTC),
			Headers: map[string]string{
				"z": "last", "a": "first", "m": "", "": "empty name", "a\x00b": "nul",
				"émoji 🦅": "вороны", strings.Repeat("h", 300): strings.Repeat("v", 1000),
			},
		},
		"unicode": {
			ID: uuid.New(), Partition: 9999, Offset: 1 << 40, Key: "Ворон/Muninn/ムニン/🐦‍⬛",
			Version: 1 << 50, Type: "событие.создано", SchemaVersion: 1 << 30,
			Payload: []byte("\x00\xff\xfe invalid utf-8 \xc3\x28"), Timestamp: time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC),
			CorrelationID: "相关", CausationID: "\u0000\uffff",
		},
		"large payload": {
			ID: uuid.New(), Key: strings.Repeat("k", MaxKeyBytes), Version: 1, Type: strings.Repeat("t", MaxTypeBytes),
			SchemaVersion: 1, Payload: large, Timestamp: time.Now(),
			CorrelationID: strings.Repeat("c", MaxIDBytes), CausationID: strings.Repeat("d", MaxIDBytes),
		},
		"extremes": {
			ID: uuid.Max, Partition: 1 << 31, Offset: math.MaxInt64, Key: "k", Version: math.MaxUint64,
			Type: "t", SchemaVersion: 1 << 31, Payload: []byte{0}, Timestamp: time.Unix(0, math.MaxInt64),
			Headers: map[string]string{"k": "v"},
		},
		"negative time": {
			ID: uuid.New(), Key: "k", Version: 1, Type: "t", SchemaVersion: 1, Payload: []byte("p"),
			Timestamp: time.Unix(0, math.MinInt64),
		},
		// Format 2: the traceparent in binary, beside other headers.
		"traced": {
			ID: uuid.New(), Key: "k", Version: 3, Type: "t", SchemaVersion: 1, Payload: []byte("p"),
			Timestamp: time.Unix(1700000000, 5), CorrelationID: uuid.NewString(),
			Headers: map[string]string{HeaderTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
				HeaderTracestate: "k=v", "tenant": "t1", "a": "1"},
		},
	}
	// One traceparent alone: canonical (format 2), and ones that are not
	// version 00 in canonical text, which stay headers (format 1).
	for name, tp := range map[string]string{
		"traced, nothing else":           "00-ffffffffffffffffffffffffffffffff-0000000000000000-00",
		"traceparent upper-case":         "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
		"traceparent of another version": "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"traceparent garbage":            "00-0af7651916cd43dd8448eb211c80319c+b7ad6b7169203331-01",
	} {
		records[name] = &Record{ID: uuid.New(), Key: "k", Version: 1, Type: "t", SchemaVersion: 1, Payload: []byte("p"),
			Timestamp: time.Unix(1, 0), Headers: map[string]string{HeaderTraceparent: tp}}
	}
	return records
}

// equalRecords reports how got differs from want, or "" if it does not. A
// nil and an empty header map are the same (both encode as no headers); a
// nil and an empty payload are not (a nil payload is a tombstone).
func equalRecords(got, want *Record) string {
	var diffs []string
	check := func(field string, ok bool, g, w any) {
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want %q", field, g, w))
		}
	}
	check("ID", got.ID == want.ID, got.ID, want.ID)
	check("Partition", got.Partition == want.Partition, fmt.Sprint(got.Partition), fmt.Sprint(want.Partition))
	check("Offset", got.Offset == want.Offset, fmt.Sprint(got.Offset), fmt.Sprint(want.Offset))
	check("Key", got.Key == want.Key, got.Key, want.Key)
	check("Version", got.Version == want.Version, fmt.Sprint(got.Version), fmt.Sprint(want.Version))
	check("Type", got.Type == want.Type, got.Type, want.Type)
	check("SchemaVersion", got.SchemaVersion == want.SchemaVersion, fmt.Sprint(got.SchemaVersion), fmt.Sprint(want.SchemaVersion))
	check("Payload", bytes.Equal(got.Payload, want.Payload), got.Payload, want.Payload)
	check("Payload nil-ness (tombstone)", (got.Payload == nil) == (want.Payload == nil),
		fmt.Sprint(got.Payload == nil), fmt.Sprint(want.Payload == nil))
	check("Timestamp", got.Timestamp.UnixNano() == want.Timestamp.UnixNano() && got.Timestamp.Equal(want.Timestamp),
		got.Timestamp.String(), want.Timestamp.String())
	check("CorrelationID", got.CorrelationID == want.CorrelationID, got.CorrelationID, want.CorrelationID)
	check("CausationID", got.CausationID == want.CausationID, got.CausationID, want.CausationID)
	check("Headers", maps.Equal(got.Headers, want.Headers), fmt.Sprint(got.Headers), fmt.Sprint(want.Headers))
	return strings.Join(diffs, "; ")
}

func TestRecordRoundTrip(t *testing.T) {
	for name, want := range sampleRecords() {
		t.Run(name, func(t *testing.T) {
			buf := appendRecord(nil, want)
			var got Record
			if reason := decodeRecord(buf, &got); reason != "" {
				t.Fatalf("decodeRecord: %s", reason)
			}
			if diff := equalRecords(&got, want); diff != "" {
				t.Fatal(diff)
			}
			if got.IsTombstone() != want.IsTombstone() {
				t.Fatalf("IsTombstone = %v, want %v", got.IsTombstone(), want.IsTombstone())
			}
			if again := appendRecord(nil, &got); !bytes.Equal(again, buf) {
				t.Fatal("re-encoding the decoded record gives different bytes")
			}
			if n := encodedLen(want); n != len(buf) {
				t.Fatalf("encodedLen = %d, want %d", n, len(buf))
			}
		})
	}
}

// TestRecordEncodingIsDeterministic checks that header order (Go map
// iteration is random) never changes the bytes: headers are sorted.
func TestRecordEncodingIsDeterministic(t *testing.T) {
	r := sampleRecords()["many headers"]
	first := appendRecord(nil, r)
	for range 50 {
		clone := *r
		clone.Headers = maps.Clone(r.Headers)
		if got := appendRecord(nil, &clone); !bytes.Equal(got, first) {
			t.Fatal("two encodings of the same record differ")
		}
	}
	// The names are on the wire in sorted order.
	var names []string
	for name := range r.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	last := -1
	for _, name := range names {
		i := bytes.Index(first, append(appendString(nil, name), appendString(nil, r.Headers[name])...))
		if i <= last {
			t.Fatalf("header %q at %d, not after the previous one at %d", name, i, last)
		}
		last = i
	}
}

func TestRecordAppendsToDst(t *testing.T) {
	r := sampleRecords()["full"]
	alone := appendRecord(nil, r)
	prefix := []byte("some earlier bytes")
	buf := appendRecord(slices.Clone(prefix), r)
	if !bytes.HasPrefix(buf, prefix) {
		t.Fatal("appendRecord changed the bytes before it")
	}
	if !bytes.Equal(buf[len(prefix):], alone) {
		t.Fatal("appendRecord onto a non-empty dst encodes differently (checksum over the wrong range?)")
	}
}

func TestRecordNilAndEmptyPayload(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
	}{{"nil", nil}, {"empty", []byte{}}, {"empty with capacity", make([]byte, 0, 8)}, {"one byte", []byte{0}}} {
		t.Run(tc.name, func(t *testing.T) {
			buf := appendRecord(nil, &Record{Key: "k", Type: "t", Payload: tc.payload, Timestamp: time.Unix(5, 0)})
			got := Record{Payload: []byte("stale")}
			if reason := decodeRecord(buf, &got); reason != "" {
				t.Fatal(reason)
			}
			if (got.Payload == nil) != (tc.payload == nil) {
				t.Fatalf("payload nil = %v, want %v", got.Payload == nil, tc.payload == nil)
			}
			if !bytes.Equal(got.Payload, tc.payload) {
				t.Fatalf("payload = %q, want %q", got.Payload, tc.payload)
			}
		})
	}
}

// TestRecordDecodeIntoUsedRecord checks that decoding into a Record that
// held another one leaves nothing of the old one behind.
func TestRecordDecodeIntoUsedRecord(t *testing.T) {
	samples := sampleRecords()
	var r Record
	if reason := decodeRecord(appendRecord(nil, samples["many headers"]), &r); reason != "" {
		t.Fatal(reason)
	}
	want := samples["tombstone"]
	if reason := decodeRecord(appendRecord(nil, want), &r); reason != "" {
		t.Fatal(reason)
	}
	if diff := equalRecords(&r, want); diff != "" {
		t.Fatal(diff)
	}
	if r.Headers != nil {
		t.Fatalf("headers of the previous record survived: %v", r.Headers)
	}
}

// TestRecordTimestamp checks that timestamps keep their instant to the
// nanosecond, whatever their location or monotonic reading.
func TestRecordTimestamp(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*60*60)
	for _, ts := range []time.Time{
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Unix(0, -1),
		time.Unix(1715949045, 999999999),
		time.Date(2024, 2, 29, 23, 59, 59, 1, tokyo),
		time.Now(), // has a monotonic reading
		time.Unix(0, math.MaxInt64),
		time.Unix(0, math.MinInt64),
	} {
		buf := appendRecord(nil, &Record{Key: "k", Timestamp: ts, Payload: []byte{}})
		var got Record
		if reason := decodeRecord(buf, &got); reason != "" {
			t.Fatal(reason)
		}
		if !got.Timestamp.Equal(ts) || got.Timestamp.UnixNano() != ts.UnixNano() {
			t.Errorf("timestamp %v came back as %v", ts, got.Timestamp)
		}
	}
}

// TestRecordZeroTimestamp documents what the codec does with the zero
// time.Time: it has no Unix-nanosecond form, so it is stored as whatever
// UnixNano returns for it and comes back as a time in 1754, not as the zero
// value. The store never writes one (Append replaces a zero Event.Timestamp
// with its clock), but anything else that builds Records must not rely on
// IsZero surviving.
func TestRecordZeroTimestamp(t *testing.T) {
	var zero time.Time
	buf := appendRecord(nil, &Record{Key: "k", Timestamp: zero, Payload: []byte{}})
	var got Record
	if reason := decodeRecord(buf, &got); reason != "" {
		t.Fatal(reason)
	}
	if got.Timestamp.UnixNano() != zero.UnixNano() {
		t.Fatalf("stored Unix nanoseconds changed: %d, want %d", got.Timestamp.UnixNano(), zero.UnixNano())
	}
	if got.Timestamp.IsZero() {
		t.Log("the zero timestamp now survives the round trip; update this test")
	}
}

// encodedSamples returns the encodings of a few small records, for the
// corruption tests (which try every byte, so the 1 MiB sample is left out).
func encodedSamples() map[string][]byte {
	out := map[string][]byte{}
	for name, r := range sampleRecords() {
		if name != "large payload" {
			out[name] = appendRecord(nil, r)
		}
	}
	return out
}

// decodeCorrupt decodes buf, which must not decode, and fails the test if it
// panics or succeeds.
func decodeCorrupt(t *testing.T, what string, buf []byte) {
	t.Helper()
	var r Record
	reason := func() (reason string) {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("%s: decodeRecord panicked: %v", what, p)
			}
		}()
		return decodeRecord(buf, &r)
	}()
	if reason == "" {
		t.Fatalf("%s: decodeRecord accepted corrupt bytes, giving %+v", what, r)
	}
}

func TestRecordCorruptByteFlips(t *testing.T) {
	for name, good := range encodedSamples() {
		t.Run(name, func(t *testing.T) {
			for i := range good {
				for x := 1; x < 256; x++ {
					bad := slices.Clone(good)
					bad[i] ^= byte(x)
					decodeCorrupt(t, fmt.Sprintf("byte %d xor %#02x", i, x), bad)
				}
			}
		})
	}
}

// TestRecordCorruptFlipsAreCaughtByChecksum checks that it is the CRC that
// catches a changed byte anywhere after the format byte, not a later framing
// check that a luckier change could pass.
func TestRecordCorruptFlipsAreCaughtByChecksum(t *testing.T) {
	good := encodedSamples()["full"]
	for i := 1; i < len(good); i++ {
		bad := slices.Clone(good)
		bad[i] ^= 0x10
		var r Record
		if reason := decodeRecord(bad, &r); !strings.Contains(reason, "checksum") {
			t.Fatalf("byte %d flipped: reason %q, want a checksum mismatch", i, reason)
		}
	}
	bad := slices.Clone(good)
	bad[0] = 3
	var r Record
	if reason := decodeRecord(bad, &r); !strings.Contains(reason, "format") {
		t.Fatalf("format byte changed: reason %q, want an unknown format", reason)
	}
	// Format 2's checksum covers the format byte: 1 and 2 swapped fail it.
	bad[0] = recordFormatTraced
	if reason := decodeRecord(bad, &r); !strings.Contains(reason, "checksum") {
		t.Fatalf("format byte 1 changed to 2: reason %q, want a checksum mismatch", reason)
	}
	traced := encodedSamples()["traced"]
	if traced[0] != recordFormatTraced {
		t.Fatalf("the traced sample is of format %d, want %d", traced[0], recordFormatTraced)
	}
	bad = slices.Clone(traced)
	bad[0] = recordFormat
	if reason := decodeRecord(bad, &r); !strings.Contains(reason, "checksum") {
		t.Fatalf("format byte 2 changed to 1: reason %q, want a checksum mismatch", reason)
	}
}

func TestRecordCorruptTruncated(t *testing.T) {
	for name, good := range encodedSamples() {
		t.Run(name, func(t *testing.T) {
			for n := range len(good) {
				decodeCorrupt(t, fmt.Sprintf("truncated to %d of %d bytes", n, len(good)), slices.Clone(good[:n]))
			}
		})
	}
}

func TestRecordCorruptExtended(t *testing.T) {
	for name, good := range encodedSamples() {
		t.Run(name, func(t *testing.T) {
			for n := 1; n <= 64; n++ {
				decodeCorrupt(t, fmt.Sprintf("%d zero bytes appended", n), append(slices.Clone(good), make([]byte, n)...))
				decodeCorrupt(t, fmt.Sprintf("%d 0xff bytes appended", n), append(slices.Clone(good), bytes.Repeat([]byte{0xff}, n)...))
			}
			decodeCorrupt(t, "record appended to itself", append(slices.Clone(good), good...))
		})
	}
}

// withChecksum returns body framed as a record value: format byte, then the
// CRC-32C of body, then body. It lets tests and fuzzers reach the decoder's
// parsing past the checksum.
func withChecksum(body []byte) []byte {
	buf := make([]byte, 5, 5+len(body))
	buf[0] = recordFormat
	binary.BigEndian.PutUint32(buf[1:], crc32.Checksum(body, castagnoli))
	return append(buf, body...)
}

// TestRecordCorruptFramingBehindValidChecksum feeds the decoder bodies that
// a buggy writer could produce with a correct checksum: the framing checks
// behind the CRC must still refuse them.
func TestRecordCorruptFramingBehindValidChecksum(t *testing.T) {
	good := appendRecord(nil, sampleRecords()["full"])
	body := good[5:]
	fixed := body[:recordFixedLen-5]
	tail := body[recordFixedLen-5:]
	varint := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"payload flag 2", cat(body[:len(body)-len(`{"total":1299}`)-2], []byte{2, 14}, []byte(`{"total":1299}`))},
		{"trailing byte", cat(body, []byte{0})},
		{"string length past the end", cat(fixed, varint(3), varint(2), varint(1000), []byte("k"))},
		{"header count larger than the value", cat(fixed, varint(0), varint(1), []byte{0, 0, 0, 0}, varint(1000), []byte{0})},
		{"varint overflow", cat(fixed, bytes.Repeat([]byte{0xff}, 10), []byte{1})},
		{"partition out of range", cat(fixed, varint(1<<31+1), tail[len(varint(3)):])},
		{"schema version out of range", cat(fixed, varint(3), varint(1<<31+1), tail[len(varint(3))+len(varint(2)):])},
		{"no payload flag", cat(fixed, varint(0), varint(0), []byte{0, 0, 0, 0}, varint(0))},
		{"only the fixed part", fixed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			decodeCorrupt(t, tc.name, withChecksum(tc.body))
		})
	}
}

// TestRecordDecodeRejectsNonCanonical checks that every record has exactly
// one encoding: a checksummed value that appendRecord would never produce is
// refused, not silently decoded to a record that re-encodes differently.
// (Cleanup subtracts the re-encoded size of a removed record from the
// partition's byte count, so the two must agree.)
func TestRecordDecodeRejectsNonCanonical(t *testing.T) {
	good := appendRecord(nil, &Record{Key: "k", Type: "t", Payload: []byte("p"), Timestamp: time.Unix(1, 0),
		Partition: 1, SchemaVersion: 1, Headers: map[string]string{"a": "1", "b": "2"}})
	fixed := good[5:recordFixedLen]
	str := func(s string) []byte { return appendString(nil, s) }
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	// Key and type, then the IDs: an empty correlation ID (tag 0, a string)
	// and a causation ID equal to it (tag 2).
	strs := cat(str("k"), str("t"), []byte{idString}, str(""), []byte{idCorrelation})
	payload := cat([]byte{1}, str("p"))
	// The canonical body, to check that the cases below differ only where
	// they say.
	canonical := cat(fixed, []byte{1, 1}, strs, []byte{2}, str("a"), str("1"), str("b"), str("2"), payload)
	if !bytes.Equal(withChecksum(canonical), good) {
		t.Fatalf("test is out of date with the record format:\n got %x\nwant %x", withChecksum(canonical), good)
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"overlong partition varint", cat(fixed, []byte{0x81, 0x00, 1}, strs, []byte{2}, str("a"), str("1"), str("b"), str("2"), payload)},
		{"overlong zero varint (correlation ID length)", cat(fixed, []byte{1, 1}, str("k"), str("t"), []byte{idString, 0x80, 0x00}, []byte{idCorrelation}, []byte{2}, str("a"), str("1"), str("b"), str("2"), payload)},
		{"causation stored as a string equal to the correlation", cat(fixed, []byte{1, 1}, str("k"), str("t"), []byte{idString}, str(""), []byte{idString}, str(""), []byte{2}, str("a"), str("1"), str("b"), str("2"), payload)},
		{"UUID text stored as a string", cat(fixed, []byte{1, 1}, str("k"), str("t"), []byte{idString}, str("0190a3c4-0000-7000-8000-000000000001"), []byte{idCorrelation}, []byte{2}, str("a"), str("1"), str("b"), str("2"), payload)},
		{"event ID stored as a UUID", cat(fixed, []byte{1, 1}, str("k"), str("t"), []byte{idUUID}, make([]byte, 16), []byte{idCorrelation}, []byte{2}, str("a"), str("1"), str("b"), str("2"), payload)},
		{"correlation tag on the correlation ID", cat(fixed, []byte{1, 1}, str("k"), str("t"), []byte{idCorrelation}, []byte{idCorrelation}, []byte{2}, str("a"), str("1"), str("b"), str("2"), payload)},
		{"unknown ID tag", cat(fixed, []byte{1, 1}, str("k"), str("t"), []byte{9}, []byte{idCorrelation}, []byte{2}, str("a"), str("1"), str("b"), str("2"), payload)},
		{"overlong payload length", cat(fixed, []byte{1, 1}, strs, []byte{2}, str("a"), str("1"), str("b"), str("2"), []byte{1, 0x81, 0x80, 0x00}, []byte("p"))},
		{"headers not sorted", cat(fixed, []byte{1, 1}, strs, []byte{2}, str("b"), str("2"), str("a"), str("1"), payload)},
		{"duplicate header name", cat(fixed, []byte{1, 1}, strs, []byte{3}, str("a"), str("1"), str("a"), str("9"), str("b"), str("2"), payload)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := withChecksum(tc.body)
			var r Record
			if reason := decodeRecord(buf, &r); reason == "" {
				t.Errorf("decodeRecord accepted a non-canonical encoding (re-encodes to %d bytes instead of %d): %+v",
					len(appendRecord(nil, &r)), len(buf), r)
			}
		})
	}
}

// FuzzDecodeRecord feeds arbitrary bytes to decodeRecord, both as they are
// (which nearly always fails the checksum) and with a correct checksum put
// in front of bytes [5:], so that the fuzzer reaches the parser behind the
// CRC. decodeRecord must never panic, and whatever it accepts must be the
// one canonical encoding of the record it returns.
func FuzzDecodeRecord(f *testing.F) {
	samples := encodedSamples()
	for _, name := range slices.Sorted(maps.Keys(samples)) {
		f.Add(samples[name])
	}
	f.Add([]byte{})
	f.Add([]byte{recordFormat})
	f.Add(make([]byte, recordFixedLen))
	f.Add(mustHex(legacyTracedHex))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode := func(what string, buf []byte) {
			orig := slices.Clone(buf)
			var r Record
			reason := decodeRecord(buf, &r)
			if !bytes.Equal(buf, orig) {
				t.Fatalf("%s: decodeRecord modified its input", what)
			}
			if reason != "" {
				return
			}
			if again := appendRecord(nil, &r); !bytes.Equal(again, buf) && !legacyTraced(buf, &r) {
				t.Fatalf("%s: decoded record re-encodes differently:\n in  %x\n out %x\nrecord %+v", what, buf, again, r)
			}
			var r2 Record
			if reason := decodeRecord(appendRecord(nil, &r), &r2); reason != "" {
				t.Fatalf("%s: re-encoded record does not decode: %s", what, reason)
			}
			if diff := equalRecords(&r2, &r); diff != "" {
				t.Fatalf("%s: record changed through re-encoding: %s", what, diff)
			}
		}
		checkDecode("as given", slices.Clone(data))
		if len(data) >= 5 {
			checkDecode("with checksum", withChecksum(data[5:]))
		}
	})
}

// legacyTraced reports whether buf, which decoded to r, is a format 1
// value with a canonical traceparent header: what stores written before
// format 2 hold, the one case of a value the encoder no longer writes that
// the decoder accepts (r re-encodes as format 2).
func legacyTraced(buf []byte, r *Record) bool {
	_, ok := traceparentBinary(r.Headers[HeaderTraceparent])
	return buf[0] == recordFormat && ok
}

// FuzzRecordRoundTrip encodes records built from fuzzed fields and checks
// that they decode to the same record. Headers come as one string of
// name/value lines: "name=value\nname=value".
func FuzzRecordRoundTrip(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), uint32(3), int64(42), uint64(7), int64(1715949045123456789), uint32(2),
		"order-17", "order.placed", "req-1", "cmd-9", []byte(`{"total":1299}`), false, "trace=abc\nuser=ana")
	f.Add([]byte{}, uint32(0), int64(0), uint64(1), int64(0), uint32(1), "k", "", "", "", []byte(nil), true, "")
	f.Add([]byte{}, uint32(0), int64(0), uint64(1), int64(-1), uint32(1), "k", "t", "", "", []byte{}, false, "=\n=")
	f.Add([]byte{0xff}, uint32(1<<31), int64(math.MaxInt64), uint64(math.MaxUint64), int64(math.MinInt64), uint32(1<<31),
		"Ворон🐦", "событие", "\x00", "\xff", []byte{0, 0xff}, false, "a=1\na=2\nb")
	f.Add([]byte{}, uint32(1<<31+1), int64(0), uint64(0), int64(0), uint32(0), "k", "t", "", "", []byte("p"), false, "")
	f.Fuzz(func(t *testing.T, id []byte, partition uint32, offset int64, version uint64, nanos int64, schema uint32,
		key, typ, corr, caus string, payload []byte, tombstone bool, headers string) {
		want := Record{
			Partition: int(partition), Offset: offset, Key: key, Version: version, Type: typ,
			SchemaVersion: int(schema), Timestamp: time.Unix(0, nanos), CorrelationID: corr, CausationID: caus,
		}
		copy(want.ID[:], id)
		switch {
		case tombstone:
			want.Payload = nil
		case payload == nil:
			want.Payload = []byte{}
		default:
			want.Payload = payload
		}
		if headers != "" {
			want.Headers = map[string]string{}
			for line := range strings.SplitSeq(headers, "\n") {
				name, value, _ := strings.Cut(line, "=")
				want.Headers[name] = value
			}
		}
		buf := appendRecord(nil, &want)
		var got Record
		reason := decodeRecord(buf, &got)
		if partition > 1<<31 || schema > 1<<31 {
			if reason == "" {
				t.Fatalf("partition %d / schema version %d out of range, but decoded", partition, schema)
			}
			return
		}
		if reason != "" {
			t.Fatalf("decodeRecord: %s", reason)
		}
		if diff := equalRecords(&got, &want); diff != "" {
			t.Fatal(diff)
		}
		if again := appendRecord(nil, &got); !bytes.Equal(again, buf) {
			t.Fatal("re-encoding the decoded record gives different bytes")
		}
	})
}

func TestKeyPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte{}, nil},
		{[]byte{0x00}, []byte{0x01}},
		{[]byte{0x01}, []byte{0x02}},
		{[]byte{0x01, 0xff}, []byte{0x02}},
		{[]byte{0x01, 0xff, 0xff}, []byte{0x02}},
		{[]byte{0x01, 0xfe, 0xff}, []byte{0x01, 0xff}},
		{[]byte{0x03, 0x00, 0x00}, []byte{0x03, 0x00, 0x01}},
		{[]byte{0xff}, nil},
		{[]byte{0xff, 0xff, 0xff}, nil},
		{[]byte{0xfe, 0xff}, []byte{0xff}},
	} {
		in := slices.Clone(tc.in)
		got := PrefixEnd(in)
		if !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("PrefixEnd(%x) = %x, want %x", tc.in, got, tc.want)
		}
		if !bytes.Equal(in, tc.in) {
			t.Errorf("PrefixEnd(%x) modified its argument to %x", tc.in, in)
		}
	}
}

// TestKeyPrefixEndBounds checks prefixEnd's contract on many prefixes: every
// key with the prefix sorts below the bound, and the bound itself and
// everything above it do not have the prefix.
func TestKeyPrefixEndBounds(t *testing.T) {
	suffixes := [][]byte{{}, {0x00}, {0xff}, {0xff, 0xff, 0xff}, bytes.Repeat([]byte{0xff}, 40), {0x80}}
	prefixes := [][]byte{{0x00}, {0x04, 0, 0, 0, 1, 1, 'a'}, {0x04, 0xff}, {0x7f, 0xff, 0xff}, {0x06, 0x00, 0xff, 0x00}}
	for _, p := range prefixes {
		end := PrefixEnd(p)
		if end == nil {
			t.Fatalf("PrefixEnd(%x) = nil", p)
		}
		if bytes.Compare(end, p) <= 0 {
			t.Errorf("PrefixEnd(%x) = %x, not above the prefix", p, end)
		}
		if bytes.HasPrefix(end, p) {
			t.Errorf("PrefixEnd(%x) = %x has the prefix itself", p, end)
		}
		for _, s := range suffixes {
			k := slices.Concat(p, s)
			if bytes.Compare(k, end) >= 0 {
				t.Errorf("key %x with prefix %x is not below prefixEnd %x", k, p, end)
			}
		}
	}
}

// keyTestKeys are stream keys that a careless encoding would confuse: keys
// that are prefixes of each other, keys with 0x00 and 0xff bytes, and keys
// around the one- to two-byte boundary of the uvarint length (127/128).
var keyTestKeys = []string{
	"a", "ab", "abc", "b", "a\x00", "a\x00b", "a\xff", "a\xff\xff", "\x00", "\x00\x00", "\xff", "\xff\xff",
	"\x01a", "\x02ab", // a key that starts with what looks like a length byte
	strings.Repeat("x", 127), strings.Repeat("x", 128), strings.Repeat("x", 129),
	strings.Repeat("\xff", 128), strings.Repeat("x", MaxKeyBytes),
}

func TestKeyStreamPrefixesDoNotOverlap(t *testing.T) {
	for _, topic := range []uint32{0, 1, 0xff, 0x100, math.MaxUint32} {
		for i, a := range keyTestKeys {
			pa := appendStreamPrefix(nil, topic, a)
			end := PrefixEnd(pa)
			for _, other := range []uint32{topic, topic + 1, topic - 1} {
				for j, b := range keyTestKeys {
					same := i == j && other == topic
					pb := appendStreamPrefix(nil, other, b)
					if !same && (bytes.HasPrefix(pa, pb) || bytes.HasPrefix(pb, pa)) {
						t.Fatalf("stream prefixes of (%d,%q) and (%d,%q) overlap", topic, a, other, b)
					}
					for _, v := range []uint64{0, 1, 255, 256, math.MaxUint64} {
						k := appendStreamKey(nil, other, b, v)
						in := bytes.Compare(k, pa) >= 0 && bytes.Compare(k, end) < 0
						if in != same {
							t.Fatalf("stream key (%d,%q,v%d) in range of stream (%d,%q) = %v, want %v",
								other, b, v, topic, a, in, same)
						}
					}
					ha, hb := appendHeadKey(nil, topic, a), appendHeadKey(nil, other, b)
					if !same && (bytes.HasPrefix(ha, hb) || bytes.HasPrefix(hb, ha)) {
						t.Fatalf("head keys of (%d,%q) and (%d,%q) overlap", topic, a, other, b)
					}
				}
			}
		}
	}
}

func TestKeyGroupPrefixesDoNotOverlap(t *testing.T) {
	for i, a := range keyTestKeys {
		pa := appendGroupPrefix(nil, a)
		end := PrefixEnd(pa)
		for j, b := range keyTestKeys {
			if i != j {
				pb := appendGroupPrefix(nil, b)
				if bytes.HasPrefix(pa, pb) || bytes.HasPrefix(pb, pa) {
					t.Fatalf("group prefixes of %q and %q overlap", a, b)
				}
			}
			for _, tp := range []struct {
				topic uint32
				part  int
			}{{0, 0}, {1, 2}, {math.MaxUint32, MaxPartitions - 1}} {
				k := appendGroupKey(nil, b, tp.topic, tp.part)
				in := bytes.Compare(k, pa) >= 0 && bytes.Compare(k, end) < 0
				if in != (i == j) {
					t.Fatalf("group key (%q,%v) in range of group %q = %v", b, tp, a, in)
				}
				// DescribeGroup reads the topic and partition from the 8
				// bytes after the prefix.
				if rest := k[len(appendGroupPrefix(nil, b)):]; len(rest) != 8 ||
					binary.BigEndian.Uint32(rest) != tp.topic || int(binary.BigEndian.Uint32(rest[4:])) != tp.part {
					t.Fatalf("group key %x does not end in topic %d partition %d", k, tp.topic, tp.part)
				}
			}
		}
	}
}

func TestKeyLogOrderedByOffset(t *testing.T) {
	offsets := []int64{0, 1, 2, 127, 128, 255, 256, 65535, 65536, 1 << 32, 1<<32 + 1, 1 << 56, math.MaxInt64}
	for _, topic := range []uint32{0, 7} {
		for _, part := range []int{0, 1, MaxPartitions - 1} {
			var prev []byte
			prefix := appendLogPrefix(nil, topic, part)
			for _, off := range offsets {
				k := appendLogKey(nil, topic, part, off)
				if !bytes.HasPrefix(k, prefix) {
					t.Fatalf("log key %x lacks its partition prefix %x", k, prefix)
				}
				// scanPartition reads the offset from key[9:].
				if len(k) != 17 || int64(binary.BigEndian.Uint64(k[9:])) != off {
					t.Fatalf("log key %x does not hold offset %d at [9:]", k, off)
				}
				if prev != nil && bytes.Compare(prev, k) >= 0 {
					t.Fatalf("log key of offset %d does not sort after the previous one", off)
				}
				prev = k
			}
			// Every log key of the partition sorts below the next
			// partition's first key.
			next := appendLogKey(nil, topic, part+1, 0)
			if bytes.Compare(prev, next) >= 0 {
				t.Fatalf("last log key of %d/%d sorts after partition %d's first", topic, part, part+1)
			}
		}
	}
}

func TestKeyStreamOrderedByVersion(t *testing.T) {
	versions := []uint64{0, 1, 2, 255, 256, 1 << 32, math.MaxUint64}
	for _, key := range keyTestKeys {
		var prev []byte
		for _, v := range versions {
			k := appendStreamKey(nil, 1, key, v)
			// ReadStream reads the version from the last 8 bytes.
			if binary.BigEndian.Uint64(k[len(k)-8:]) != v {
				t.Fatalf("stream key %x does not end in version %d", k, v)
			}
			if prev != nil && bytes.Compare(prev, k) >= 0 {
				t.Fatalf("stream key of %q version %d does not sort after the previous one", key, v)
			}
			prev = k
		}
	}
}

// TestKeyKindsDoNotOverlap checks that each kind of key lives in its own
// range, so that a scan of one kind never meets another.
func TestKeyKindsDoNotOverlap(t *testing.T) {
	keys := map[byte][][]byte{
		kindFormat:    {formatKey},
		kindTopic:     {topicKey("orders"), topicKey("a")},
		kindPartition: {appendPartitionKey(nil, 1, 2)},
		kindLog:       {appendLogKey(nil, 1, 2, 3)},
		kindStream:    {appendStreamKey(nil, 1, "k", 1)},
		kindHead:      {appendHeadKey(nil, 1, "k")},
		kindGroup:     {appendGroupKey(nil, "g", 1, 2)},
	}
	if len(keys) != 7 {
		t.Fatal("two key kinds share a byte")
	}
	for kind, ks := range keys {
		for _, k := range ks {
			if k[0] != kind {
				t.Errorf("key %x has kind %#02x, want %#02x", k, k[0], kind)
			}
		}
	}
}

// TestRecordTracedHeaders: a traced append's records carry the event's
// headers with the append's trace headers added, encoded exactly as the
// merged map would be: the trace headers replace the event's traceparent,
// and its tracestate goes whether or not the append has one.
func TestRecordTracedHeaders(t *testing.T) {
	th := map[string]string{HeaderTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	thState := map[string]string{HeaderTraceparent: th[HeaderTraceparent], HeaderTracestate: "k=v"}
	many := map[string]string{}
	for i := range 20 {
		many[fmt.Sprintf("h%02d", i)] = strings.Repeat("x", i)
	}
	for _, c := range []struct {
		name  string
		h, th map[string]string
		want  map[string]string
	}{
		{"no headers", nil, th, th},
		{"own headers", map[string]string{"tenant": "t1", "muninn-command-type": "order.Place"}, th,
			map[string]string{"tenant": "t1", "muninn-command-type": "order.Place", HeaderTraceparent: th[HeaderTraceparent]}},
		{"own trace context replaced", map[string]string{"tenant": "t1", HeaderTraceparent: "00-bogus", HeaderTracestate: "old=1"}, th,
			map[string]string{"tenant": "t1", HeaderTraceparent: th[HeaderTraceparent]}},
		{"with tracestate", map[string]string{HeaderTraceparent: "00-bogus", HeaderTracestate: "old=1"}, thState, thState},
		{"more than 16 names", many, th, func() map[string]string {
			m := maps.Clone(many)
			m[HeaderTraceparent] = th[HeaderTraceparent]
			return m
		}()},
		{"untraced", map[string]string{"a": "1", "b": "2"}, nil, map[string]string{"a": "1", "b": "2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &Record{ID: uuid.New(), Key: "k", Type: "t", Offset: 3, Version: 4, Timestamp: time.Unix(1, 0), Headers: c.h}
			buf := appendRecordTraced(nil, r, c.th)
			var got Record
			if reason := decodeRecord(buf, &got); reason != "" {
				t.Fatalf("decodeRecord: %s", reason)
			}
			if !maps.Equal(got.Headers, c.want) {
				t.Fatalf("headers %v, want %v", got.Headers, c.want)
			}
			merged := *r
			merged.Headers = c.want
			if want := appendRecord(nil, &merged); !bytes.Equal(buf, want) {
				t.Fatal("the traced encoding differs from the merged record's")
			}
		})
	}
}
