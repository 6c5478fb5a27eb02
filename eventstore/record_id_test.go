package eventstore

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestRecordIDEncodings checks each way an ID is stored: it round-trips,
// takes the tag the format says, and decodes without extra allocations.
func TestRecordIDEncodings(t *testing.T) {
	id := uuid.MustParse("0190a3c4-1111-7000-8000-00000000abcd")
	other := "0190a3c4-2222-7000-8000-00000000ef01"
	cases := []struct {
		name                   string
		correlation, causation string
		size                   int // bytes the two IDs take, tags included
	}{
		{"both the event ID", id.String(), id.String(), 2},
		{"causation is the correlation", other, other, 1 + 16 + 1},
		{"UUIDs", other, "0190a3c4-3333-7000-8000-000000000000", 2 * (1 + 16)},
		{"strings", "req-17", "cmd-3", 1 + 1 + 6 + 1 + 1 + 5},
		{"upper-case UUID is a string", "0190A3C4-2222-7000-8000-00000000EF01", id.String(), 1 + 1 + 36 + 1},
		{"empty", "", "", 1 + 1 + 1},
	}
	base := appendRecord(nil, &Record{ID: id, Key: "k", Type: "t", Timestamp: time.Unix(1, 0), CorrelationID: "", CausationID: "x"})
	baseIDs := 1 + 1 + 0 + 1 + 1 + 1 // "" as a string, "x" as a string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Record{ID: id, Key: "k", Type: "t", Timestamp: time.Unix(1, 0), CorrelationID: c.correlation, CausationID: c.causation}
			enc := appendRecord(nil, &r)
			if got := len(enc) - (len(base) - baseIDs); got != c.size {
				t.Errorf("IDs take %d bytes, want %d", got, c.size)
			}
			var back Record
			if reason := decodeRecord(cloneValue(enc), &back); reason != "" {
				t.Fatal(reason)
			}
			if back.CorrelationID != c.correlation || back.CausationID != c.causation {
				t.Fatalf("read back %q, %q", back.CorrelationID, back.CausationID)
			}
			allocs := testing.AllocsPerRun(100, func() {
				var r Record
				_ = decodeRecord(cloneValue(enc), &r)
			})
			if allocs > 1 {
				t.Errorf("decoding takes %.0f allocations, want 1 (the value's copy)", allocs)
			}
		})
	}
}
