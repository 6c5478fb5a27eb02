package eventstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// walBytes writes n appends to a store on an in-memory filesystem and
// returns its live WAL's number and bytes.
func walBytes(t testing.TB, n int) (uint32, []byte) {
	fs := vfs.NewMem()
	s, err := Open("db", WithFS(fs))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.CreateTopic(ctx, "t", TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := s.Append(ctx, "t", fmt.Sprint("k", i%3), Any, []Event{{Type: "e", Payload: bytes.Repeat([]byte{'a' + byte(i%26)}, 100+i*37%900)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	names, err := fs.List("db")
	if err != nil {
		t.Fatal(err)
	}
	var num uint64
	var name string
	for _, n := range names {
		if m, ok := walNumber(n); ok && m >= num {
			num, name = m, n
		}
	}
	f, err := fs.Open(fs.PathJoin("db", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(num), b
}

// TestScanLog checks the scan of an intact WAL, of one cut short (a torn
// tail) and of one with a flipped byte in its middle (damage).
func TestScanLog(t *testing.T) {
	num, wal := walBytes(t, 120)
	scan := func(b []byte) logScan {
		t.Helper()
		res, err := scanLog(bytes.NewReader(b), num, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := scan(wal); res.Bad >= 0 || res.Records < 120 {
		t.Fatalf("intact log: %+v", res)
	}
	torn := scan(wal[:len(wal)-300])
	if torn.Bad < 0 || torn.After >= 0 || torn.Cut > torn.Bad {
		t.Errorf("torn tail: %+v, want damage with nothing after it", torn)
	}
	bad := bytes.Clone(wal)
	bad[len(bad)/2] ^= 1
	res := scan(bad)
	if res.Bad < 0 || res.Bad > int64(len(bad)/2) || res.After <= res.Bad || !strings.Contains(res.Reason, "checksum") {
		t.Errorf("flipped byte at %d: %+v, want damage before it and something verifying after", len(bad)/2, res)
	}
	// The same flip in a log of another number: nothing is its.
	if res, _ := scanLog(bytes.NewReader(bad), num+7, true, nil); res.Records != 0 || res.After >= 0 {
		t.Errorf("log read as another number: %+v", res)
	}
}

// FuzzScanLog feeds damaged WALs to the scan: it must never panic, and what
// it reports must be consistent. Its seed (testdata/fuzz/FuzzScanLog) is
// the WAL of a store after 12 appends, with its log number.
func FuzzScanLog(f *testing.F) {
	f.Add([]byte{}, uint32(1), uint32(0), byte(0))
	f.Fuzz(func(t *testing.T, b []byte, num, at uint32, mask byte) {
		b = bytes.Clone(b)
		if len(b) > 0 {
			b[int(at)%len(b)] ^= mask
		}
		readable := int64(0)
		res, err := scanLog(bytes.NewReader(b), num, true, func(rec []byte) { readable += int64(len(rec)) })
		if err != nil {
			t.Fatal(err)
		}
		size := int64(len(b))
		switch {
		case res.Bad > size, res.Cut > size:
			t.Fatalf("positions beyond the log: %+v (size %d)", res, size)
		case res.Bad >= 0 && (res.Cut > res.Bad || res.Cut < 0):
			t.Fatalf("cut after the damage: %+v", res)
		case res.After >= 0 && res.After <= res.Bad:
			t.Fatalf("something verifies at or before the damage: %+v", res)
		case res.Readable > size || readable > res.Readable:
			t.Fatalf("readable bytes: %+v, payloads %d (size %d)", res, readable, size)
		}
	})
}
