package eventstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/google/uuid"
)

// Record is one event as stored in the log. Records are immutable once
// written: offsets never change, and cleanup only ever removes whole records.
type Record struct {
	// ID is the event's unique ID (a UUIDv7 unless the writer chose one).
	ID uuid.UUID
	// Topic, Partition and Offset are the record's position in the log.
	Topic     string
	Partition int
	Offset    int64
	// Key is the aggregate ID; all records of one key share a partition.
	Key string
	// Version is the record's position in its stream (its key), from 1.
	Version uint64
	// Type is the event type name, a stable string such as "order.placed".
	Type string
	// SchemaVersion is the version of the payload's schema, from 1.
	SchemaVersion int
	// Payload is the encoded event. A nil payload is a tombstone: on a
	// compacted topic it deletes the key.
	Payload []byte
	// Timestamp is the event time, set by the writer or by the store's clock.
	Timestamp time.Time
	// CorrelationID ties together every event caused by one request.
	CorrelationID string
	// CausationID is the ID of the command or event that caused this one.
	CausationID string
	// Headers are free metadata.
	Headers map[string]string
}

// IsTombstone reports whether the record deletes its key (nil payload).
func (r *Record) IsTombstone() bool { return r.Payload == nil }

// Event is what a caller appends; the store turns it into a Record.
type Event struct {
	// ID is the event ID. The zero value asks the store for a new UUIDv7.
	ID uuid.UUID
	// Type is the event type name. Required, except on tombstones.
	Type string
	// SchemaVersion is the payload's schema version; zero means 1.
	SchemaVersion int
	// Payload is the encoded event. A nil payload makes a tombstone, which
	// on a compacted topic deletes the key: an event without data should
	// carry an empty, non-nil payload ([]byte{}) instead.
	Payload []byte
	// Timestamp is the event time; the zero value means the store's clock.
	// It must lie between the years 1678 and 2262 (Unix nanoseconds).
	Timestamp time.Time
	// CorrelationID ties the event to a request. Empty means the ID of the
	// first event of the append, so that every record carries one.
	CorrelationID string
	// CausationID is the ID of what caused the event. Empty means the
	// correlation ID.
	CausationID string
	// Headers are free metadata.
	Headers map[string]string
}

// ExpectedVersion is the optimistic-concurrency condition of an append: a
// stream version (the head version the stream must have), or one of Any,
// NoStream and StreamExists.
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version.
	Any ExpectedVersion = -1
	// NoStream appends only if the stream has no events yet. It never
	// overwrites an existing stream.
	NoStream ExpectedVersion = 0
	// StreamExists appends only if the stream has at least one event.
	StreamExists ExpectedVersion = -2
)

// Exact returns the condition "the stream's head version is v". Exact(0) is
// NoStream.
func Exact(v uint64) ExpectedVersion { return ExpectedVersion(v) }

// String describes the condition: "any", "no stream", "stream exists" or
// "version N".
func (e ExpectedVersion) String() string {
	switch {
	case e == Any:
		return "any"
	case e == NoStream:
		return "no stream"
	case e == StreamExists:
		return "stream exists"
	case e > 0:
		return "version " + strconv.FormatInt(int64(e), 10)
	default:
		return "invalid(" + strconv.FormatInt(int64(e), 10) + ")"
	}
}

// matches reports whether a stream at head version head satisfies e.
func (e ExpectedVersion) matches(head uint64) bool {
	switch {
	case e == Any:
		return true
	case e == StreamExists:
		return head > 0
	default:
		return uint64(e) == head
	}
}

// minTime and maxTime bound the timestamps a record can hold (Unix
// nanoseconds in an int64: the years 1678 to 2262).
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// Limits on what an append may carry.
const (
	// MaxKeyBytes is the longest key (aggregate ID) accepted.
	MaxKeyBytes = 4096
	// MaxTypeBytes is the longest event type name accepted.
	MaxTypeBytes = 256
	// MaxIDBytes is the longest correlation or causation ID accepted.
	MaxIDBytes = 256
)

// Record value formats 1 and 2:
//
//	[0]      format: 1, or 2 for a record whose traceparent is stored in
//	         binary (below)
//	[1:5]    CRC-32C (Castagnoli) of bytes [5:]; in format 2, of byte [0]
//	         followed by bytes [5:], so that a changed format byte fails it
//	[5:21]   event ID
//	[21:29]  offset, big endian
//	[29:37]  stream version, big endian
//	[37:45]  timestamp, Unix nanoseconds, big endian
//	uvarint  partition
//	uvarint  schema version
//	string   key, type (uvarint length + bytes)
//	id       correlation ID, then causation ID: a tag, then per tag:
//	         0 a string; 1 nothing, it is the event ID's text; 2 nothing, it
//	         is the correlation ID (causation only); 3 16 bytes, the binary
//	         form of a UUID in canonical text. The encoder picks the first tag
//	         that fits, and the decoder refuses any other choice.
//	[25]     format 2 only: the traceparent header, which is then not among
//	         the headers below, in binary: 16 bytes trace ID, 8 bytes parent
//	         ID, 1 byte flags
//	uvarint  header count, then each name and value as a string, sorted by name
//	byte     1 if there is a payload (0 for a tombstone)
//	string   payload (only if present)
//
// The encoder writes format 2 when the record's traceparent is of version
// 00 in canonical text (lower-case hex, 55 bytes: what every traced append
// stores), and format 1 otherwise: a traced event's trace context takes 25
// bytes instead of 68 (of its two copies, the log's and the stream's, 86
// bytes less per event), and an untraced record is what it was before
// format 2. The decoder refuses a format 2 value whose headers hold a
// traceparent too. It accepts a format 1 value with a canonical
// traceparent header, which the encoder no longer writes: stores written
// before format 2 hold them (such a record re-encodes 43 bytes shorter;
// cleanup counts the stored size, so the partition's byte count stays
// exact).
const (
	recordFormat       = 1
	recordFormatTraced = 2
	recordFixedLen     = 45
)

// traceparentLen is the length of a version 00 traceparent's text:
// "00-" 32 hex "-" 16 hex "-" 2 hex.
const traceparentLen = 55

// traceparentBinary returns the binary form of tp (trace ID, parent ID,
// flags) if tp is a version 00 traceparent in canonical text.
func traceparentBinary(tp string) (b [25]byte, ok bool) {
	ok = len(tp) == traceparentLen && tp[:3] == "00-" && parseDashedHex(b[:], tp[3:], traceparentDashes)
	return b, ok
}

// formatTraceparent writes the canonical text of the binary traceparent b
// into dst, which holds traceparentLen bytes.
func formatTraceparent(dst []byte, b []byte) {
	copy(dst, "00-")
	formatDashedHex(dst[3:], b[:25], traceparentDashes)
}

// storedTraceparent is the traceparent that r's headers with th added
// (as appendRecordTraced says) hold, and whether they hold one.
func storedTraceparent(h, th map[string]string) (string, bool) {
	if tp, ok := th[HeaderTraceparent]; ok {
		return tp, true
	}
	tp, ok := h[HeaderTraceparent]
	return tp, ok
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord encodes r onto dst and returns the extended slice.
func appendRecord(dst []byte, r *Record) []byte { return appendRecordTraced(dst, r, nil) }

// appendRecordTraced is appendRecord of r with the trace headers th added
// to its headers (replacing any of r's traceparent and, whether or not th
// has one, its tracestate: the append's context is where the event was
// made), without building the merged map.
func appendRecordTraced(dst []byte, r *Record, th map[string]string) []byte {
	start := len(dst)
	var tp [25]byte
	format := byte(recordFormat)
	if text, ok := storedTraceparent(r.Headers, th); ok {
		if tp, ok = traceparentBinary(text); ok {
			format = recordFormatTraced
		}
	}
	dst = append(dst, format, 0, 0, 0, 0)
	dst = append(dst, r.ID[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Offset))
	dst = binary.BigEndian.AppendUint64(dst, r.Version)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Timestamp.UnixNano()))
	dst = binary.AppendUvarint(dst, uint64(r.Partition))
	dst = binary.AppendUvarint(dst, uint64(r.SchemaVersion))
	dst = appendString(dst, r.Key)
	dst = appendString(dst, r.Type)
	dst = appendID(dst, r.CorrelationID, r.ID, "", false)
	dst = appendID(dst, r.CausationID, r.ID, r.CorrelationID, true)
	skip := ""
	if format == recordFormatTraced {
		dst = append(dst, tp[:]...)
		skip = HeaderTraceparent
	}
	if len(r.Headers) == 0 {
		dst = appendHeaders(dst, th, nil, skip)
	} else {
		dst = appendHeaders(dst, r.Headers, th, skip)
	}
	if r.Payload == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = appendString(dst, unsafe.String(unsafe.SliceData(r.Payload), len(r.Payload)))
	}
	binary.BigEndian.PutUint32(dst[start+1:], recordChecksum(format, dst[start+5:]))
	return dst
}

// recordChecksum is the checksum of a record value of format whose bytes
// from [5] on are body; see the record format.
func recordChecksum(format byte, body []byte) uint32 {
	if format == recordFormat {
		return crc32.Checksum(body, castagnoli)
	}
	return crc32.Update(crc32.Update(0, castagnoli, []byte{format}), castagnoli, body)
}

// ID tags; see the record format.
const (
	idString      = 0
	idEventID     = 1
	idCorrelation = 2
	idUUID        = 3
)

// idTag picks how an ID string s is stored: the first tag that fits.
func idTag(s string, event uuid.UUID, correlation string, causation bool) (byte, uuid.UUID) {
	if causation && s == correlation && !isText(s, event) {
		return idCorrelation, uuid.Nil
	}
	if len(s) != 36 {
		return idString, uuid.Nil
	}
	if isText(s, event) {
		return idEventID, uuid.Nil
	}
	if u, ok := parseCanonicalUUID(s); ok {
		return idUUID, u
	}
	return idString, uuid.Nil
}

// isText reports whether s is the canonical text of u.
func isText(s string, u uuid.UUID) bool {
	if len(s) != 36 {
		return false
	}
	var text [36]byte
	formatUUID(text[:], u)
	return s == string(text[:])
}

func appendID(dst []byte, s string, event uuid.UUID, correlation string, causation bool) []byte {
	tag, u := idTag(s, event, correlation, causation)
	dst = append(dst, tag)
	switch tag {
	case idString:
		dst = appendString(dst, s)
	case idUUID:
		dst = append(dst, u[:]...)
	}
	return dst
}

// hexDashes marks, bit i, a dash before byte i in the dashed lower-case
// hex text of some bytes: how UUIDs and traceparents are written.
type hexDashes uint32

const (
	uuidDashes        hexDashes = 1<<4 | 1<<6 | 1<<8 | 1<<10
	traceparentDashes hexDashes = 1<<16 | 1<<24 // trace ID, parent ID, flags
)

// formatDashedHex writes b into dst as lower-case hex, with a dash before
// each byte that dashes marks; dst holds the whole text.
func formatDashedHex(dst []byte, b []byte, dashes hexDashes) {
	const hexdigits = "0123456789abcdef"
	j := 0
	for i, c := range b {
		if dashes&(1<<i) != 0 {
			dst[j] = '-'
			j++
		}
		dst[j], dst[j+1] = hexdigits[c>>4], hexdigits[c&0xf]
		j += 2
	}
}

// parseDashedHex fills dst from s only if s is exactly the text
// formatDashedHex writes for len(dst) bytes with dashes, so that
// formatting dst gives s back.
func parseDashedHex(dst []byte, s string, dashes hexDashes) bool {
	j := 0
	for i := range dst {
		if dashes&(1<<i) != 0 {
			if j >= len(s) || s[j] != '-' {
				return false
			}
			j++
		}
		if j+2 > len(s) {
			return false
		}
		hi, ok1 := lowerHex(s[j])
		lo, ok2 := lowerHex(s[j+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
		j += 2
	}
	return j == len(s)
}

// formatUUID writes the canonical text of u (as uuid.UUID.String) into
// dst[:36].
func formatUUID(dst []byte, u uuid.UUID) { formatDashedHex(dst, u[:], uuidDashes) }

// parseCanonicalUUID parses s only if it is exactly the canonical text of a
// UUID (lower-case hex, dashes at 8, 13, 18 and 23), so that formatting the
// result gives s back.
func parseCanonicalUUID(s string) (uuid.UUID, bool) {
	var u uuid.UUID
	ok := len(s) == 36 && parseDashedHex(u[:], s, uuidDashes)
	return u, ok
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// spareLen is the room cloneValue leaves after a value: the text of two
// binary IDs and of a binary traceparent.
const spareLen = 2*36 + traceparentLen

// cloneValue copies a stored value into memory the record will own, with
// room after it (spareLen) for the text of what is stored in binary.
func cloneValue(v []byte) []byte {
	buf := make([]byte, len(v), len(v)+spareLen)
	copy(buf, v)
	return buf
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decodeRecord decodes a record value into r. The strings and payload of r
// alias buf, which the caller must own and never modify afterwards; up to
// spareLen bytes of buf's spare capacity hold the text of IDs and a
// traceparent stored in binary (see cloneValue). It
// returns a description of what is wrong on failure; it never panics.
func decodeRecord(buf []byte, r *Record) (reason string) {
	if len(buf) < recordFixedLen {
		return fmt.Sprintf("value too short (%d bytes)", len(buf))
	}
	if buf[0] != recordFormat && buf[0] != recordFormatTraced {
		return fmt.Sprintf("unknown record format %d", buf[0])
	}
	if want, got := binary.BigEndian.Uint32(buf[1:5]), recordChecksum(buf[0], buf[5:]); want != got {
		return fmt.Sprintf("checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	copy(r.ID[:], buf[5:21])
	r.Offset = int64(binary.BigEndian.Uint64(buf[21:29]))
	r.Version = binary.BigEndian.Uint64(buf[29:37])
	r.Timestamp = time.Unix(0, int64(binary.BigEndian.Uint64(buf[37:45])))
	d := decoder{buf: buf[recordFixedLen:], spare: buf[len(buf):len(buf)]}
	partition := d.uvarint()
	schema := d.uvarint()
	r.Key = d.string()
	r.Type = d.string()
	r.CorrelationID = d.id(r.ID, "", false)
	r.CausationID = d.id(r.ID, r.CorrelationID, true)
	var traceparent []byte // format 2's, in binary
	if buf[0] == recordFormatTraced && d.err == "" {
		if len(d.buf) < 25 {
			d.err = "truncated traceparent"
		} else {
			traceparent, d.buf = d.buf[:25], d.buf[25:]
		}
	}
	n := d.uvarint()
	if d.err == "" && n > uint64(len(d.buf))/2 {
		return "header count exceeds value size"
	}
	r.Headers = nil
	if n > 0 && d.err == "" {
		r.Headers = make(map[string]string, n)
		var prev string
		for i := uint64(0); i < n && d.err == ""; i++ {
			k := d.string()
			if i > 0 && k <= prev && d.err == "" {
				d.err = "header names not sorted or repeated"
			}
			prev = k
			r.Headers[k] = d.string()
		}
	}
	if traceparent != nil && d.err == "" {
		if _, ok := r.Headers[HeaderTraceparent]; ok {
			d.err = "traceparent both in binary and among the headers"
		} else {
			if r.Headers == nil {
				r.Headers = make(map[string]string, 1)
			}
			r.Headers[HeaderTraceparent] = d.traceparentText(traceparent)
		}
	}
	var flag byte
	if d.err == "" {
		if len(d.buf) == 0 {
			d.err = "truncated before payload flag"
		} else {
			flag, d.buf = d.buf[0], d.buf[1:]
		}
	}
	r.Payload = nil
	switch {
	case d.err != "":
	case flag == 1:
		p := d.bytes()
		if p == nil && d.err == "" {
			p = []byte{}
		}
		r.Payload = p
	case flag != 0:
		d.err = fmt.Sprintf("bad payload flag %d", flag)
	}
	if d.err == "" && len(d.buf) != 0 {
		d.err = fmt.Sprintf("%d trailing bytes", len(d.buf))
	}
	if d.err == "" && (partition > 1<<31 || schema > 1<<31) {
		d.err = "partition or schema version out of range"
	}
	r.Partition = int(partition)
	r.SchemaVersion = int(schema)
	return d.err
}

type decoder struct {
	buf []byte
	err string
	// spare is unused capacity after the value, where IDs stored in binary
	// are written out as text without another allocation.
	spare []byte
	// corrTag and corrUUID remember how the correlation ID was stored.
	corrTag  byte
	corrUUID uuid.UUID
}

// id decodes a correlation or causation ID and checks that it was stored
// with the tag the encoder picks (idTag), so that every record has one
// encoding. The checks use what is known from the tags, so that the common
// cases cost no formatting or parsing.
func (d *decoder) id(event uuid.UUID, correlation string, causation bool) string {
	if d.err != "" {
		return ""
	}
	if len(d.buf) == 0 {
		d.err = "truncated before an ID tag"
		return ""
	}
	tag := d.buf[0]
	d.buf = d.buf[1:]
	var s string
	switch tag {
	case idString:
		s = d.string()
		switch {
		case d.err != "":
		case causation && s == correlation && d.corrTag != idEventID:
			d.err = "causation ID stored as a string equal to the correlation ID"
		case len(s) == 36:
			if want, _ := idTag(s, event, correlation, causation); want != idString {
				d.err = fmt.Sprintf("ID stored as a string, canonical tag is %d", want)
			}
		}
	case idEventID:
		s = d.uuidText(event)
	case idCorrelation:
		switch {
		case !causation:
			d.err = "correlation ID refers to itself"
		case d.corrTag == idEventID:
			d.err = "causation ID refers to a correlation ID that is the event ID"
		}
		s = correlation
	case idUUID:
		if len(d.buf) < 16 {
			d.err = "truncated UUID"
			return ""
		}
		u := uuid.UUID(d.buf[:16])
		d.buf = d.buf[16:]
		switch {
		case u == event:
			d.err = "event ID stored as a UUID"
		case causation && d.corrTag == idUUID && u == d.corrUUID:
			d.err = "causation ID stored as a UUID equal to the correlation ID"
		}
		if !causation {
			d.corrUUID = u
		}
		s = d.uuidText(u)
	default:
		d.err = fmt.Sprintf("unknown ID tag %d", tag)
		return ""
	}
	if !causation {
		d.corrTag = tag
	}
	return s
}

// uuidText returns the canonical text of u, written into d.spare when there
// is room.
func (d *decoder) uuidText(u uuid.UUID) string {
	if cap(d.spare)-len(d.spare) < 36 {
		return u.String()
	}
	n := len(d.spare)
	d.spare = d.spare[:n+36]
	formatUUID(d.spare[n:], u)
	return unsafe.String(&d.spare[n], 36)
}

// traceparentText returns the canonical text of the binary traceparent b,
// written into d.spare when there is room.
func (d *decoder) traceparentText(b []byte) string {
	n := len(d.spare)
	if cap(d.spare)-n < traceparentLen {
		text := make([]byte, traceparentLen)
		formatTraceparent(text, b)
		return string(text)
	}
	d.spare = d.spare[:n+traceparentLen]
	formatTraceparent(d.spare[n:], b)
	return unsafe.String(&d.spare[n], traceparentLen)
}

func (d *decoder) uvarint() uint64 {
	if d.err != "" {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = "bad varint"
		return 0
	}
	if n > 1 && d.buf[n-1] == 0 {
		d.err = "non-minimal varint"
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != "" {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.err = "length exceeds value"
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) string() string {
	b := d.bytes()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// appendHeaders encodes the headers h, with th's added as
// appendRecordTraced says, in name order, leaving out the header named skip
// (if not "": the traceparent, stored in binary).
func appendHeaders(dst []byte, h, th map[string]string, skip string) []byte {
	if len(th) == 0 && len(h) <= 1 {
		// None, or one (a traced append's traceparent): no names to sort.
		if _, ok := h[skip]; skip != "" && ok {
			return binary.AppendUvarint(dst, 0)
		}
		dst = binary.AppendUvarint(dst, uint64(len(h)))
		for k, v := range h {
			dst = appendString(dst, k)
			dst = appendString(dst, v)
		}
		return dst
	}
	var buf [16]string // the names of most records, without an allocation
	names := buf[:0]
	for k := range h {
		if _, ok := th[k]; ok || (len(th) > 0 && k == HeaderTracestate) || (k == skip && skip != "") {
			continue
		}
		names = append(names, k)
	}
	for k := range th {
		if k != skip || skip == "" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	dst = binary.AppendUvarint(dst, uint64(len(names)))
	for _, k := range names {
		v, ok := th[k]
		if !ok {
			v = h[k]
		}
		dst = appendString(dst, k)
		dst = appendString(dst, v)
	}
	return dst
}
