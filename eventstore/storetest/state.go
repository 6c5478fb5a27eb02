package storetest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/muninn-es/muninn/eventstore"
)

func runState(t *testing.T, h Harness) {
	t.Run("GetAndScan", func(t *testing.T) {
		s, _ := open(t, h)
		set(t, s, "a", "1", "b", "2", "c", "3", "d", "4")
		if got := get(t, s, "b"); got != "2" {
			t.Errorf("Get(b) = %s", got)
		}
		if got := get(t, s, "nope"); got != "<none>" {
			t.Errorf("Get of a missing key = %s", got)
		}
		// Get returns a copy: changing it changes nothing stored.
		v, _, _ := s.Get(ctx(t), []byte("a"))
		v[0] = 'x'
		if got := get(t, s, "a"); got != "1" {
			t.Errorf("changing Get's result changed the stored value to %s", got)
		}
		cases := []struct {
			lower, upper string
			nilUpper     bool
			reverse      bool
			want         string
		}{
			{"", "", true, false, "a=1 b=2 c=3 d=4"},
			{"", "", true, true, "d=4 c=3 b=2 a=1"},
			{"b", "d", false, false, "b=2 c=3"},
			{"b", "d", false, true, "c=3 b=2"},
			{"bb", "", true, false, "c=3 d=4"},
			{"a0", "c", false, true, "b=2"},
			{"c", "c", false, false, ""},
			{"e", "", true, false, ""},
		}
		for _, c := range cases {
			var upper []byte
			if !c.nilUpper {
				upper = []byte(c.upper)
			}
			got := strings.Join(entries(t, s.Scan(ctx(t), []byte(c.lower), upper, c.reverse)), " ")
			if got != c.want {
				t.Errorf("Scan(%q, %q (nil: %v), reverse %v) = %q, want %q", c.lower, c.upper, c.nilUpper, c.reverse, got, c.want)
			}
		}
		// A nil lower bound is the start of the space.
		if got := strings.Join(entries(t, s.Scan(ctx(t), nil, []byte("b"), false)), " "); got != "a=1" {
			t.Errorf("Scan(nil, b) = %q", got)
		}
		// Breaking out of a Scan ends it cleanly.
		n := 0
		for _, err := range s.Scan(ctx(t), nil, nil, false) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 2 {
				break
			}
		}
	})
	t.Run("PrefixScan", func(t *testing.T) {
		s, _ := open(t, h)
		keys := []string{"p", "p/", "p/a", "p/b\xff", "p/\xff\xff", "p0", "q", "\xff\xff", "\xff\xff\x00"}
		var kvs []string
		for _, k := range keys {
			kvs = append(kvs, k, "v")
		}
		set(t, s, kvs...)
		scanPrefix := func(prefix string, reverse bool) []string {
			var got []string
			for _, e := range entries(t, s.Scan(ctx(t), []byte(prefix), eventstore.PrefixEnd([]byte(prefix)), reverse)) {
				got = append(got, strings.TrimSuffix(e, "=v"))
			}
			return got
		}
		if got, want := scanPrefix("p/", false), []string{"p/", "p/a", "p/b\xff", "p/\xff\xff"}; !slices.Equal(got, want) {
			t.Errorf("prefix p/ = %q, want %q", got, want)
		}
		if got, want := scanPrefix("p/", true), []string{"p/\xff\xff", "p/b\xff", "p/a", "p/"}; !slices.Equal(got, want) {
			t.Errorf("prefix p/ reverse = %q, want %q", got, want)
		}
		// A prefix of 0xff bytes has no end: PrefixEnd is nil, the end of the space.
		if got, want := scanPrefix("\xff\xff", false), []string{"\xff\xff", "\xff\xff\x00"}; !slices.Equal(got, want) {
			t.Errorf("prefix ff ff = %q, want %q", got, want)
		}
		// DeleteRange over a prefix removes exactly the prefix.
		mustUpdate(t, s, func(tx eventstore.Txn) error {
			return tx.DeleteRange([]byte("p/"), eventstore.PrefixEnd([]byte("p/")))
		})
		if got, want := scanPrefix("", false), []string{"p", "p0", "q", "\xff\xff", "\xff\xff\x00"}; !slices.Equal(got, want) {
			t.Errorf("after DeleteRange of p/: %q, want %q", got, want)
		}
		// A nil upper bound in DeleteRange means to the end of the space.
		mustUpdate(t, s, func(tx eventstore.Txn) error { return tx.DeleteRange([]byte("q"), nil) })
		if got, want := scanPrefix("", false), []string{"p", "p0"}; !slices.Equal(got, want) {
			t.Errorf("after DeleteRange(q, nil): %q, want %q", got, want)
		}
	})
	t.Run("EmptyValueIsAValue", func(t *testing.T) {
		s, _ := open(t, h)
		mustUpdate(t, s, func(tx eventstore.Txn) error {
			if err := tx.Set([]byte("empty"), []byte{}); err != nil {
				return err
			}
			if err := tx.Set([]byte("nil"), nil); err != nil {
				return err
			}
			return tx.Delete([]byte("never-set")) // deleting a missing key is no error
		})
		for _, k := range []string{"empty", "nil"} {
			v, ok, err := s.Get(ctx(t), []byte(k))
			if err != nil || !ok || len(v) != 0 {
				t.Errorf("Get(%s) = %q, %v, %v; want an empty value that exists", k, v, ok, err)
			}
		}
		if got := entries(t, s.Scan(ctx(t), nil, nil, false)); !slices.Equal(got, []string{"empty=", "nil="}) {
			t.Errorf("Scan = %q", got)
		}
	})
	t.Run("TxnReadsItsOwnWrites", func(t *testing.T) {
		s, _ := open(t, h)
		set(t, s, "a", "old", "b", "old", "r/1", "old", "r/2", "old", "z", "old")
		mustUpdate(t, s, func(tx eventstore.Txn) error {
			check := func(what string, got, want any) error {
				if fmt.Sprint(got) != fmt.Sprint(want) {
					return fmt.Errorf("%s = %v, want %v", what, got, want)
				}
				return nil
			}
			txGet := func(k string) string {
				v, ok, err := tx.Get([]byte(k))
				switch {
				case err != nil:
					return "error " + err.Error()
				case !ok:
					return "<none>"
				}
				return string(v)
			}
			txScan := func(lower, upper []byte, reverse bool) string {
				got, err := scanned(tx.Scan(lower, upper, reverse))
				if err != nil {
					return "error " + err.Error()
				}
				return strings.Join(got, " ")
			}
			if err := errors.Join(
				check("Get(a) before any write", txGet("a"), "old"),
				tx.Set([]byte("a"), []byte("new")),
				tx.Set([]byte("n"), []byte("added")),
				tx.Delete([]byte("b")),
				tx.Set([]byte("r/3"), []byte("new")),
				tx.DeleteRange([]byte("r/"), []byte("r/3")),
			); err != nil {
				return err
			}
			v, _, _ := tx.Get([]byte("a"))
			v[0] = 'X' // Txn.Get returns a copy
			return errors.Join(
				check("Get(a) after Set", txGet("a"), "new"),
				check("Get(n) after Set", txGet("n"), "added"),
				check("Get(b) after Delete", txGet("b"), "<none>"),
				check("Get(r/1) after DeleteRange", txGet("r/1"), "<none>"),
				check("Get(r/3) set before DeleteRange, outside it", txGet("r/3"), "new"),
				check("Scan all", txScan(nil, nil, false), "a=new n=added r/3=new z=old"),
				check("Scan all reverse", txScan(nil, nil, true), "z=old r/3=new n=added a=new"),
				check("Scan r/", txScan([]byte("r/"), eventstore.PrefixEnd([]byte("r/")), false), "r/3=new"),
				check("Scan [b, r/3) reverse", txScan([]byte("b"), []byte("r/3"), true), "n=added"),
			)
		})
		if got := strings.Join(entries(t, s.Scan(ctx(t), nil, nil, false)), " "); got != "a=new n=added r/3=new z=old" {
			t.Errorf("after the Update: %s", got)
		}
	})
	t.Run("UncommittedWritesAreInvisible", func(t *testing.T) {
		// A Txn's writes are seen by others only once its Update commits,
		// all at once.
		s, _ := open(t, h)
		set(t, s, "a", "old")
		mustUpdate(t, s, func(tx eventstore.Txn) error {
			if err := errors.Join(tx.Set([]byte("a"), []byte("new")), tx.Set([]byte("b"), []byte("new"))); err != nil {
				return err
			}
			if got := get(t, s, "a") + "," + get(t, s, "b"); got != "old,<none>" {
				return fmt.Errorf("the store shows %s while the Update runs; want old,<none>", got)
			}
			return nil
		})
		if got := get(t, s, "a") + "," + get(t, s, "b"); got != "new,new" {
			t.Errorf("after commit: %s", got)
		}
	})
	t.Run("ScanIsASnapshot", func(t *testing.T) {
		// A Scan reads the state as of its start: writes committed while it
		// iterates do not show.
		s, _ := open(t, h)
		set(t, s, "k1", "v", "k2", "v", "k3", "v")
		var got []string
		for kv, err := range s.Scan(ctx(t), nil, nil, false) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(kv.Key))
			if len(got) == 1 {
				mustUpdate(t, s, func(tx eventstore.Txn) error {
					return errors.Join(tx.Delete([]byte("k3")), tx.Set([]byte("k2a"), []byte("v")))
				})
			}
		}
		if !slices.Equal(got, []string{"k1", "k2", "k3"}) {
			t.Errorf("Scan saw %v; want the state at its start, k1 k2 k3", got)
		}
	})
	t.Run("FailedUpdateWritesNothing", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 1})
		fill(t, s, "t", 1, 5)
		c := mustJoin(t, s, "g", []string{"t"})
		if _, err := c.Poll(ctx(t), 10); err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, s, func(tx eventstore.Txn) error {
			return errors.Join(tx.Set([]byte("keep"), []byte("1")), tx.Set([]byte("r/1"), []byte("1")),
				tx.CommitOffsets(c, map[eventstore.TopicPartition]int64{tp("t", 0): 2}))
		})
		boom := errors.New("boom")
		err := s.Update(ctx(t), func(tx eventstore.Txn) error {
			_ = tx.Set([]byte("keep"), []byte("changed"))
			_ = tx.Set([]byte("new"), []byte("1"))
			_ = tx.Delete([]byte("keep"))
			_ = tx.DeleteRange([]byte("r/"), []byte("r0"))
			_ = tx.CommitOffsets(c, map[eventstore.TopicPartition]int64{tp("t", 0): 5})
			return fmt.Errorf("handler: %w", boom)
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update = %v, want fn's error", err)
		}
		if got := strings.Join(entries(t, s.Scan(ctx(t), nil, nil, false)), " "); got != "keep=1 r/1=1" {
			t.Errorf("state after a failed Update: %s", got)
		}
		if off, ok, err := s.CommittedOffset(ctx(t), "g", "t", 0); err != nil || !ok || off != 2 {
			t.Errorf("committed offset after a failed Update = %d, %v, %v; want 2", off, ok, err)
		}
		// An Update whose fn returns a write's error writes nothing either,
		// not even the writes staged before it.
		err = s.Update(ctx(t), func(tx eventstore.Txn) error {
			if err := tx.Set([]byte("before"), []byte("1")); err != nil {
				return err
			}
			return tx.Set(nil, []byte("x"))
		})
		if !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Fatalf("Update with an empty key = %v, want ErrInvalidArgument", err)
		}
		if got := get(t, s, "before"); got != "<none>" {
			t.Errorf("a write staged before the failing one landed: %s", got)
		}
	})
	t.Run("InvalidArgument", func(t *testing.T) {
		s, _ := open(t, h)
		long := make([]byte, eventstore.MaxStateKeyBytes+1)
		for name, fn := range map[string]func(tx eventstore.Txn) error{
			"Set empty key": func(tx eventstore.Txn) error { return tx.Set(nil, []byte("v")) },
			"Set long key":  func(tx eventstore.Txn) error { return tx.Set(long, nil) },
			"Set long value": func(tx eventstore.Txn) error {
				return tx.Set([]byte("k"), make([]byte, eventstore.MaxStateValueBytes+1))
			},
			"Delete empty key":        func(tx eventstore.Txn) error { return tx.Delete(nil) },
			"Delete long key":         func(tx eventstore.Txn) error { return tx.Delete(long) },
			"DeleteRange inverted":    func(tx eventstore.Txn) error { return tx.DeleteRange([]byte("b"), []byte("a")) },
			"DeleteRange long bound":  func(tx eventstore.Txn) error { return tx.DeleteRange(nil, long) },
			"Txn.Get empty key":       func(tx eventstore.Txn) error { _, _, err := tx.Get(nil); return err },
			"Txn.Get long key":        func(tx eventstore.Txn) error { _, _, err := tx.Get(long); return err },
			"Txn.Scan inverted":       func(tx eventstore.Txn) error { return scanErr(tx.Scan([]byte("z"), []byte("a"), false)) },
			"Txn.Scan inverted rev":   func(tx eventstore.Txn) error { return scanErr(tx.Scan([]byte("z"), []byte("a"), true)) },
			"Txn.Scan long bound":     func(tx eventstore.Txn) error { return scanErr(tx.Scan(long, nil, false)) },
			"CommitOffsets nil":       func(tx eventstore.Txn) error { return tx.CommitOffsets(nil, nil) },
			"Set then fail, returned": func(tx eventstore.Txn) error { _ = tx.Set([]byte("ok"), nil); return tx.Set(nil, nil) },
		} {
			if err := s.Update(ctx(t), fn); !errors.Is(err, eventstore.ErrInvalidArgument) {
				t.Errorf("%s: Update = %v, want ErrInvalidArgument", name, err)
			}
		}
		if _, _, err := s.Get(ctx(t), nil); !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("Get(nil) = %v, want ErrInvalidArgument", err)
		}
		if _, _, err := s.Get(ctx(t), long); !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("Get of a long key = %v, want ErrInvalidArgument", err)
		}
		for _, rev := range []bool{false, true} {
			if err := scanErr(s.Scan(ctx(t), []byte("z"), []byte("a"), rev)); !errors.Is(err, eventstore.ErrInvalidArgument) {
				t.Errorf("inverted Scan (reverse %v) = %v, want ErrInvalidArgument", rev, err)
			}
		}
		if err := scanErr(s.Scan(ctx(t), long, nil, false)); !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("Scan with a long bound = %v, want ErrInvalidArgument", err)
		}
		if got := entries(t, s.Scan(ctx(t), nil, nil, false)); len(got) != 0 {
			t.Errorf("refused Updates wrote %q", got)
		}
		// The limits themselves are allowed.
		big := make([]byte, eventstore.MaxStateKeyBytes)
		big[0] = 'k'
		mustUpdate(t, s, func(tx eventstore.Txn) error { return tx.Set(big, []byte("v")) })
		if v, ok, err := s.Get(ctx(t), big); err != nil || !ok || string(v) != "v" {
			t.Errorf("Get of a key of MaxStateKeyBytes = %q, %v, %v", v, ok, err)
		}
	})
	t.Run("TxnUnusableAfterUpdate", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "t", eventstore.TopicConfig{Partitions: 1})
		c := mustJoin(t, s, "g", []string{"t"})
		for _, fail := range []bool{false, true} {
			var kept eventstore.Txn
			err := s.Update(ctx(t), func(tx eventstore.Txn) error {
				kept = tx
				if fail {
					return errors.New("boom")
				}
				return tx.Set([]byte("in"), []byte("1"))
			})
			if (err != nil) != fail {
				t.Fatalf("Update (fail %v) = %v", fail, err)
			}
			for name, err := range map[string]error{
				"Set":           kept.Set([]byte("late"), []byte("1")),
				"Delete":        kept.Delete([]byte("in")),
				"DeleteRange":   kept.DeleteRange(nil, nil),
				"Get":           func() error { _, _, err := kept.Get([]byte("in")); return err }(),
				"Scan":          scanErr(kept.Scan(nil, nil, false)),
				"CommitOffsets": kept.CommitOffsets(c, map[eventstore.TopicPartition]int64{tp("t", 0): 0}),
			} {
				if err == nil {
					t.Errorf("Txn.%s after its Update returned (fail %v): no error", name, fail)
				}
			}
		}
		if got := strings.Join(entries(t, s.Scan(ctx(t), nil, nil, false)), " "); got != "in=1" {
			t.Errorf("state after using a finished Txn: %s", got)
		}
		if _, ok, _ := s.CommittedOffset(ctx(t), "g", "t", 0); ok {
			t.Error("a finished Txn committed an offset")
		}
	})
	t.Run("ConcurrentUpdatesSerialize", func(t *testing.T) {
		// Read-modify-write Updates of one counter from many goroutines lose
		// no increment.
		s, _ := open(t, h)
		const workers, each = 4, 25
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range each {
					err := s.Update(context.Background(), func(tx eventstore.Txn) error {
						v, _, err := tx.Get([]byte("n"))
						if err != nil {
							return err
						}
						var n uint64
						if len(v) == 8 {
							n = binary.BigEndian.Uint64(v)
						}
						runtime.Gosched() // let another Update run here, if it can
						return tx.Set([]byte("n"), binary.BigEndian.AppendUint64(nil, n+1))
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		v, _, _ := s.Get(ctx(t), []byte("n"))
		if len(v) != 8 || binary.BigEndian.Uint64(v) != workers*each {
			t.Fatalf("counter = %x, want %d", v, workers*each)
		}
	})
	t.Run("UpdateNoSyncThenSync", func(t *testing.T) {
		s, _ := open(t, h)
		mustUpdate(t, s, func(tx eventstore.Txn) error { return tx.Set([]byte("fast"), []byte("1")) }, eventstore.UpdateNoSync())
		if got := get(t, s, "fast"); got != "1" {
			t.Fatalf("a NoSync Update is not visible once it returned: %s", got)
		}
		if err := s.Sync(ctx(t)); err != nil {
			t.Fatalf("Sync: %v", err)
		}
	})
	t.Run("WithStateCommitsWithTheEvents", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 2})
		set(t, s, "cmd/old", "x", "tmp/1", "x", "tmp/2", "x")
		var seen eventstore.AppendResult
		calls := 0
		res, err := s.Append(ctx(t), "orders", "o-1", eventstore.NoStream, []eventstore.Event{ev("placed", "a"), ev("paid", "b")},
			eventstore.WithState(func(r eventstore.AppendResult, w eventstore.StateWriter) error {
				calls++
				seen = r
				seen.EventIDs = slices.Clone(r.EventIDs)
				return errors.Join(
					w.Set([]byte("cmd/1"), fmt.Appendf(nil, "%s/%d@%d-%d v%d-%d", r.Key, r.Partition, r.FirstOffset, r.LastOffset, r.FirstVersion, r.LastVersion)),
					w.Delete([]byte("cmd/old")),
					w.DeleteRange([]byte("tmp/"), eventstore.PrefixEnd([]byte("tmp/"))),
				)
			}))
		if err != nil {
			t.Fatal(err)
		}
		if calls != 1 {
			t.Errorf("the WithState function ran %d times, want once", calls)
		}
		if seen.Topic != res.Topic || seen.Key != res.Key || seen.Partition != res.Partition || seen.FirstOffset != res.FirstOffset ||
			seen.LastOffset != res.LastOffset || seen.FirstVersion != res.FirstVersion || seen.LastVersion != res.LastVersion ||
			!slices.Equal(seen.EventIDs, res.EventIDs) || len(res.EventIDs) != 2 {
			t.Errorf("WithState saw %+v, Append returned %+v; want the same result", seen, res)
		}
		want := fmt.Sprintf("o-1/%d@0-1 v1-2", res.Partition)
		if got := strings.Join(entries(t, s.Scan(ctx(t), nil, nil, false)), " "); got != "cmd/1="+want {
			t.Errorf("state after the append: %s, want cmd/1=%s", got, want)
		}
		if got := payloads(collect(t, s.ReadStream(ctx(t), "orders", "o-1", 0))); got != "a,b" {
			t.Errorf("stream after the append: %s", got)
		}
	})
	t.Run("WithStateErrorAppendsNothing", func(t *testing.T) {
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		mustAppend(t, s, "orders", "o-1", eventstore.NoStream, ev("placed", "a"))
		boom := errors.New("boom")
		fails := map[string]struct {
			fn   func(eventstore.AppendResult, eventstore.StateWriter) error
			want error
		}{
			"fn error": {func(_ eventstore.AppendResult, w eventstore.StateWriter) error {
				_ = w.Set([]byte("k"), []byte("v"))
				return boom
			}, boom},
			"bad key": {func(_ eventstore.AppendResult, w eventstore.StateWriter) error {
				if err := w.Set([]byte("k"), []byte("v")); err != nil {
					return err
				}
				return w.Set(nil, []byte("v"))
			}, eventstore.ErrInvalidArgument},
			"bad range": {func(_ eventstore.AppendResult, w eventstore.StateWriter) error {
				_ = w.Set([]byte("k"), []byte("v"))
				return w.DeleteRange([]byte("b"), []byte("a"))
			}, eventstore.ErrInvalidArgument},
		}
		for name, c := range fails {
			_, err := s.Append(ctx(t), "orders", "o-1", eventstore.Exact(1), []eventstore.Event{ev("paid", name)}, eventstore.WithState(c.fn))
			if !errors.Is(err, c.want) {
				t.Errorf("%s: Append = %v, want %v", name, err, c.want)
			}
		}
		// A refused append calls no WithState function, or writes nothing
		// of it.
		_, err := s.Append(ctx(t), "orders", "o-1", eventstore.NoStream, []eventstore.Event{ev("placed", "again")},
			eventstore.WithState(func(_ eventstore.AppendResult, w eventstore.StateWriter) error {
				return w.Set([]byte("k"), []byte("conflict"))
			}))
		if !errors.Is(err, eventstore.ErrVersionConflict) {
			t.Errorf("conflicting Append = %v", err)
		}
		if v, err := s.HeadVersion(ctx(t), "orders", "o-1"); err != nil || v != 1 {
			t.Errorf("head after failed appends = %d, %v; want 1", v, err)
		}
		if got := payloads(collect(t, s.ReadPartition(ctx(t), "orders", 0, 0))); got != "a" {
			t.Errorf("partition after failed appends: %s", got)
		}
		if got := entries(t, s.Scan(ctx(t), nil, nil, false)); len(got) != 0 {
			t.Errorf("failed appends wrote state %q", got)
		}
		// The next append takes the offset and version the failed ones did not.
		res := mustAppend(t, s, "orders", "o-1", eventstore.Exact(1), ev("paid", "b"))
		if res.FirstOffset != 1 || res.FirstVersion != 2 {
			t.Errorf("next append at offset %d version %d; want 1 and 2", res.FirstOffset, res.FirstVersion)
		}
	})
	t.Run("WithStateVisibleToWhoSeesTheEvents", func(t *testing.T) {
		// A subscriber that sees an event appended WithState finds the state
		// written with it.
		s, _ := open(t, h)
		mustCreate(t, s, "orders", eventstore.TopicConfig{Partitions: 1})
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		const n = 20
		found := make(chan string, n)
		go func() {
			defer close(found)
			for rec, err := range s.Subscribe(c, "orders", 0, 0) {
				if err != nil {
					return
				}
				v, ok, err := s.Get(c, []byte("seen/"+string(rec.Payload)))
				found <- fmt.Sprintf("%s=%s %v %v", rec.Payload, v, ok, err)
				if rec.Offset == n-1 {
					return
				}
			}
		}()
		for i := range n {
			p := fmt.Sprint(i)
			if _, err := s.Append(ctx(t), "orders", "o", eventstore.Exact(uint64(i)), []eventstore.Event{ev("e", p)},
				eventstore.WithState(func(_ eventstore.AppendResult, w eventstore.StateWriter) error {
					return w.Set([]byte("seen/"+p), []byte("yes"))
				})); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			got := within(t, found, fmt.Sprint("record ", i))
			if want := fmt.Sprintf("%d=yes true <nil>", i); got != want {
				t.Fatalf("subscriber saw %q, want %q", got, want)
			}
		}
	})
}
