package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// snapshotMagic opens every snapshot payload, with the envelope's format
// version in its last byte.
var snapshotMagic = []byte("MSN\x01")

// Snapshot is a decoded snapshot envelope: the state of a stream as of a
// version, in the encoding of a snapshot schema version.
type Snapshot struct {
	// StreamVersion is the version of the last event the state includes.
	StreamVersion uint64
	// Schema is the snapshot schema version the state was written with.
	Schema int
	// State is the encoded state.
	State []byte
}

// EncodeSnapshot returns the payload of a snapshot record: a magic number,
// the stream version and schema version as varints, then the state.
func EncodeSnapshot(s Snapshot) []byte {
	b := make([]byte, 0, len(snapshotMagic)+2*binary.MaxVarintLen64+len(s.State))
	b = append(b, snapshotMagic...)
	b = binary.AppendUvarint(b, s.StreamVersion)
	b = binary.AppendUvarint(b, uint64(max(s.Schema, 0)))
	return append(b, s.State...)
}

// DecodeSnapshot parses a snapshot payload written by EncodeSnapshot. The
// returned State aliases b.
func DecodeSnapshot(b []byte) (Snapshot, error) {
	if !bytes.HasPrefix(b, snapshotMagic) {
		return Snapshot{}, errors.New("aggregate: snapshot: bad magic number or envelope version")
	}
	b = b[len(snapshotMagic):]
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return Snapshot{}, errors.New("aggregate: snapshot: bad stream version")
	}
	b = b[n:]
	schema, n := binary.Uvarint(b)
	if n <= 0 || schema < 1 || schema > 1<<31-1 {
		return Snapshot{}, fmt.Errorf("aggregate: snapshot: bad schema version")
	}
	return Snapshot{StreamVersion: v, Schema: int(schema), State: b[n:]}, nil
}
