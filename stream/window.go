package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/muninn-es/muninn/codec"
)

// DefaultRetention is the least time a window store keeps a window after its
// start, when Windows.Retention is zero (Kafka Streams' default).
const DefaultRetention = 24 * time.Hour

// MaxWindowsPerRecord bounds Size/Advance: how many hopping windows one
// record updates.
const MaxWindowsPerRecord = 10_000

// Windows says how a windowed aggregation groups records by event time.
// Windows are aligned to the Unix epoch and include their start, not their
// end: [Start, Start+Size). Start from Tumbling or Hopping.
type Windows struct {
	// Size is the length of each window.
	Size time.Duration
	// Advance is the distance between the starts of consecutive windows:
	// Size for tumbling windows, less for hopping (overlapping) ones.
	Advance time.Duration
	// Grace is how long after a window's end a record may still arrive for
	// it, measured in stream time (the largest event time seen on the
	// partition). A record for a window whose end + Grace <= stream time is
	// late: counted (Metrics.LateRecords) and dropped. Default 0.
	Grace time.Duration
	// Retention is how long, in stream time after a window's start, the
	// window store keeps the window for queries before removing it. Zero
	// means max(DefaultRetention, Size+Grace); otherwise at least Size+Grace.
	Retention time.Duration
}

// Tumbling returns windows of the given size that do not overlap.
func Tumbling(size time.Duration) Windows { return Windows{Size: size, Advance: size} }

// Hopping returns windows of the given size starting every advance, so that
// each record falls in about size/advance windows.
func Hopping(size, advance time.Duration) Windows { return Windows{Size: size, Advance: advance} }

// WithGrace returns w with the grace period d.
func (w Windows) WithGrace(d time.Duration) Windows { w.Grace = d; return w }

// WithRetention returns w with the retention d.
func (w Windows) WithRetention(d time.Duration) Windows { w.Retention = d; return w }

// Validate reports every problem with w at once, each naming its field.
func (w Windows) Validate() error {
	var errs []error
	if w.Size <= 0 {
		errs = append(errs, invalid("Windows.Size must be positive, got %s", w.Size))
	}
	if w.Advance <= 0 || w.Advance > w.Size {
		errs = append(errs, invalid("Windows.Advance must be in (0, Size=%s], got %s", w.Size, w.Advance))
	}
	if w.Advance > 0 && w.Size/w.Advance > MaxWindowsPerRecord {
		errs = append(errs, invalid("Windows.Advance %s puts each record in %d windows of Size %s, more than %d", w.Advance, w.Size/w.Advance, w.Size, MaxWindowsPerRecord))
	}
	if w.Grace < 0 {
		errs = append(errs, invalid("Windows.Grace must not be negative, got %s", w.Grace))
	}
	if w.Retention != 0 && w.Retention < w.Size+w.Grace {
		errs = append(errs, invalid("Windows.Retention must be zero or at least Size+Grace (%s), got %s", w.Size+w.Grace, w.Retention))
	}
	return errors.Join(errs...)
}

func (w Windows) retention() time.Duration {
	if w.Retention != 0 {
		return w.Retention
	}
	return max(DefaultRetention, w.Size+w.Grace)
}

// floorDiv divides rounding toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// starts calls fn with the start of every window that contains ts (all in
// nanoseconds since the epoch), in increasing order.
func (w Windows) starts(ts int64, fn func(start int64) error) error {
	size, adv := int64(w.Size), int64(w.Advance)
	last := floorDiv(ts, adv) * adv // the latest start <= ts
	first := last
	for first-adv > ts-size {
		first -= adv
	}
	for s := first; s <= last; s += adv {
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// Windowed is the key of a windowed aggregation's result: the record key and
// the window, [Start, End).
type Windowed[K any] struct {
	Key   K
	Start time.Time
	End   time.Time
}

// WindowedCodec returns the codec of windowed keys: the key encoded with
// inner, then the window's start and end as 8 big-endian bytes each
// (nanoseconds since the epoch).
func WindowedCodec[K any](inner codec.Codec[K]) codec.Codec[Windowed[K]] {
	return windowedCodec[K]{inner: inner}
}

type windowedCodec[K any] struct{ inner codec.Codec[K] }

// Check reports what is wrong with the inner codec.
func (s windowedCodec[K]) Check() error { return codec.Check(s.inner) }

func (s windowedCodec[K]) Encode(w Windowed[K]) ([]byte, error) { return s.AppendEncode(nil, w) }

func (s windowedCodec[K]) AppendEncode(dst []byte, w Windowed[K]) ([]byte, error) {
	dst, err := codec.Append(s.inner, dst, w.Key)
	if err != nil {
		return dst, err
	}
	return appendWindowBounds(dst, w.Start.UnixNano(), w.End.UnixNano()), nil
}

func (s windowedCodec[K]) Decode(b []byte) (Windowed[K], error) {
	kb, start, end, ok := splitWindowBounds(b)
	if !ok {
		return Windowed[K]{}, fmt.Errorf("stream: windowed key: want at least 16 bytes, got %d", len(b))
	}
	if end <= start {
		return Windowed[K]{}, fmt.Errorf("stream: windowed key: end %d is not after start %d", end, start)
	}
	k, err := s.inner.Decode(kb)
	if err != nil {
		return Windowed[K]{}, err
	}
	return Windowed[K]{Key: k, Start: timeOf(start), End: timeOf(end)}, nil
}

// appendWindowBounds appends a window's start and end (Unix nanoseconds) as
// 8 big-endian bytes each: the tail of a key as WindowedCodec writes it.
func appendWindowBounds(dst []byte, start, end int64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(start))
	return binary.BigEndian.AppendUint64(dst, uint64(end))
}

// splitWindowBounds splits a key as WindowedCodec writes it into the
// encoded key and the window's start and end; false if b is shorter than
// the 16 bytes of the bounds.
func splitWindowBounds(b []byte) (kb []byte, start, end int64, ok bool) {
	if len(b) < 16 {
		return nil, 0, 0, false
	}
	n := len(b) - 16
	return b[:n], int64(binary.BigEndian.Uint64(b[n:])), int64(binary.BigEndian.Uint64(b[n+8:])), true
}
