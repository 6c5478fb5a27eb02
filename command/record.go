package command

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// recordFormat is the first byte of every stored idempotency record.
const recordFormat = 1

// maxRecordEvents bounds the event count a record may claim, so that a
// corrupt count cannot make the decoder allocate without limit.
const maxRecordEvents = 1 << 20

// encodeRecord appends the stored form of res to b: a format byte, then the
// fields as length-prefixed strings and varints, the event IDs as 16 bytes
// each, and the time in Unix nanoseconds.
func encodeRecord(b []byte, res Result) []byte {
	b = append(b, recordFormat)
	for _, s := range []string{res.CommandID, res.AggregateType, res.AggregateID, res.Topic} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(max(res.Partition, 0)))
	b = binary.AppendVarint(b, res.FirstOffset)
	b = binary.AppendVarint(b, res.LastOffset)
	b = binary.AppendUvarint(b, res.FirstVersion)
	b = binary.AppendUvarint(b, res.Version)
	b = binary.AppendUvarint(b, uint64(len(res.EventIDs)))
	for _, id := range res.EventIDs {
		b = append(b, id[:]...)
	}
	return binary.AppendVarint(b, res.At.UnixNano())
}

var errBadRecord = errors.New("command: corrupt idempotency record")

// decodeRecord parses what encodeRecord wrote.
func decodeRecord(b []byte) (Result, error) {
	var res Result
	if len(b) == 0 || b[0] != recordFormat {
		return res, fmt.Errorf("%w: unknown format", errBadRecord)
	}
	b = b[1:]
	fail := func(field string) (Result, error) {
		return Result{}, fmt.Errorf("%w: bad %s", errBadRecord, field)
	}
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	uv := func() (uint64, bool) {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	sv := func() (int64, bool) {
		v, k := binary.Varint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	var ok bool
	for _, f := range []struct {
		name string
		dst  *string
	}{{"command ID", &res.CommandID}, {"aggregate type", &res.AggregateType}, {"aggregate ID", &res.AggregateID}, {"topic", &res.Topic}} {
		if *f.dst, ok = str(); !ok {
			return fail(f.name)
		}
	}
	p, ok := uv()
	if !ok || p > 1<<31 {
		return fail("partition")
	}
	res.Partition = int(p)
	if res.FirstOffset, ok = sv(); !ok {
		return fail("first offset")
	}
	if res.LastOffset, ok = sv(); !ok {
		return fail("last offset")
	}
	if res.FirstVersion, ok = uv(); !ok {
		return fail("first version")
	}
	if res.Version, ok = uv(); !ok {
		return fail("version")
	}
	n, ok := uv()
	if !ok || n > maxRecordEvents || n*16 > uint64(len(b)) {
		return fail("event count")
	}
	if n > 0 {
		res.EventIDs = make([]uuid.UUID, n)
		for i := range res.EventIDs {
			copy(res.EventIDs[i][:], b[:16])
			b = b[16:]
		}
	}
	at, ok := sv()
	if !ok {
		return fail("time")
	}
	if len(b) != 0 {
		return fail("length")
	}
	res.At = time.Unix(0, at)
	return res, nil
}
