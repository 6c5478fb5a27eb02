package eventstore

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// legacyTracedHex is a record with a traceparent, tracestate and tenant
// header as the encoder wrote it before format 2 (format 1, the
// traceparent a 68-byte header); stores written then hold such values.
const legacyTracedHex = "010252a5720190a5c87b2e7c3d9e4fa1b2c3d4e5f60000000000000029000000000000000717979cfe3d85cd150302086f726465722d31370c6f726465722e506c61636564030190a5c87b2e7c3d9e4fa1b2c3d4e5f70005636d642d39030674656e616e740274310b7472616365706172656e743730302d30616637363531393136636434336464383434386562323131633830333139632d623761643662373136393230333333312d30310a74726163657374617465036b3d76010c7b22746f74616c223a31327d"

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// legacyTracedRecord is the record legacyTracedHex holds.
func legacyTracedRecord() *Record {
	return &Record{ID: uuid.MustParse("0190a5c8-7b2e-7c3d-9e4f-a1b2c3d4e5f6"), Offset: 41, Version: 7, Timestamp: time.Unix(1700000000, 123456789),
		Partition: 3, SchemaVersion: 2, Key: "order-17", Type: "order.Placed", CorrelationID: "0190a5c8-7b2e-7c3d-9e4f-a1b2c3d4e5f7", CausationID: "cmd-9",
		Headers: map[string]string{"tenant": "t1", HeaderTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", HeaderTracestate: "k=v"},
		Payload: []byte(`{"total":12}`)}
}

// TestRecordTraceparentInBinary checks which records are written in format
// 2 and what that saves: a canonical traceparent takes 25 bytes instead of
// its 68-byte header.
func TestRecordTraceparentInBinary(t *testing.T) {
	for name, r := range sampleRecords() {
		_, canonical := traceparentBinary(r.Headers[HeaderTraceparent])
		enc := appendRecord(nil, r)
		want := byte(recordFormat)
		if canonical {
			want = recordFormatTraced
		}
		if enc[0] != want {
			t.Errorf("%s: format %d, want %d", name, enc[0], want)
		}
		if !canonical {
			continue
		}
		plain := *r
		plain.Headers = maps.Clone(r.Headers)
		delete(plain.Headers, HeaderTraceparent)
		if got, want := len(enc), len(appendRecord(nil, &plain))+25; got != want {
			t.Errorf("%s: %d bytes, want %d (the record without its traceparent, plus 25)", name, got, want)
		}
	}
	for _, tc := range []struct {
		tp        string
		canonical bool
	}{
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", true},
		{"00-00000000000000000000000000000000-0000000000000000-00", true},
		{"00-0af7651916cd43dd8448eb211c80319C-b7ad6b7169203331-01", false}, // upper case
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-", false},
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0", false},
		{"00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", false},
		{"00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01", false},
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331_01", false},
		{"0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", false},
		{"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", false},
		{"", false},
	} {
		b, ok := traceparentBinary(tc.tp)
		if ok != tc.canonical {
			t.Errorf("traceparentBinary(%q) ok = %v, want %v", tc.tp, ok, tc.canonical)
			continue
		}
		if ok {
			text := make([]byte, traceparentLen)
			formatTraceparent(text, b[:])
			if string(text) != tc.tp {
				t.Errorf("traceparent %q formats back as %q", tc.tp, text)
			}
		}
	}
}

// TestRecordDecodesFormat1Traceparent checks that a record written before
// format 2 still decodes, and what it re-encodes to.
func TestRecordDecodesFormat1Traceparent(t *testing.T) {
	old := mustHex(legacyTracedHex)
	want := legacyTracedRecord()
	var r Record
	if reason := decodeRecord(cloneValue(old), &r); reason != "" {
		t.Fatalf("format 1 record with a traceparent header: %s", reason)
	}
	if diff := equalRecords(&r, want); diff != "" {
		t.Fatalf("format 1 record decoded wrong: %s", diff)
	}
	enc := appendRecord(nil, &r)
	if enc[0] != recordFormatTraced || len(enc) != len(old)-43 {
		t.Fatalf("re-encoded: format %d, %d bytes; want format 2, %d bytes (43 fewer)", enc[0], len(enc), len(old)-43)
	}
	var back Record
	if reason := decodeRecord(cloneValue(enc), &back); reason != "" {
		t.Fatal(reason)
	}
	if diff := equalRecords(&back, want); diff != "" {
		t.Fatalf("format 2 record decoded wrong: %s", diff)
	}
	// Decoding without room after the value still works (the text is then
	// allocated).
	var tight Record
	if reason := decodeRecord(slices.Clip(slices.Clone(enc)), &tight); reason != "" {
		t.Fatal(reason)
	}
	if diff := equalRecords(&tight, want); diff != "" {
		t.Fatalf("format 2 record decoded without spare room: %s", diff)
	}
}

// TestRecordFormat2RejectsNonCanonical checks that a format 2 value whose
// headers also hold a traceparent is refused, and that format 2 values are
// checked as thoroughly as format 1's.
func TestRecordFormat2RejectsNonCanonical(t *testing.T) {
	r := legacyTracedRecord()
	good := appendRecord(nil, r)
	frame := func(body []byte) []byte {
		buf := make([]byte, 5, 5+len(body))
		buf[0] = recordFormatTraced
		// CRC-32C of the format byte, then the body.
		binary.BigEndian.PutUint32(buf[1:], crc32.Update(crc32.Update(0, castagnoli, []byte{recordFormatTraced}), castagnoli, body))
		return append(buf, body...)
	}
	if !bytes.Equal(frame(good[5:]), good) {
		t.Fatal("test is out of date with format 2's checksum")
	}
	// The same record with the traceparent both in binary and as a header:
	// encode it in format 1 with the header, then put the binary after the
	// causation ID.
	old := mustHex(legacyTracedHex)
	tp, _ := traceparentBinary(r.Headers[HeaderTraceparent])
	causation := bytes.Index(old, []byte("\x05cmd-9")) + len("\x05cmd-9")
	both := frame(slices.Concat(old[5:causation], tp[:], old[causation:]))
	var got Record
	if reason := decodeRecord(both, &got); !strings.Contains(reason, "traceparent both") {
		t.Fatalf("traceparent in binary and among the headers: reason %q, want a refusal", reason)
	}
	// Truncated inside the binary traceparent.
	cut := bytes.Index(good, tp[:]) + 10
	if reason := decodeRecord(frame(good[5:cut]), &got); !strings.Contains(reason, "truncated traceparent") {
		t.Fatalf("truncated in the traceparent: reason %q", reason)
	}
}
