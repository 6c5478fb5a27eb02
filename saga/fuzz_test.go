package saga

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
)

// Run one at a time, for example:
//
//	go test -run='^$' -fuzz=FuzzDecodeInstance -fuzztime=15s ./saga/

func sampleInstance() instanceRecord {
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	cmd := storedCommand{ID: "c-1", Type: "payment.capture", AggregateID: "o-1", Payload: []byte(`{"amount":10}`), Correlation: "req-1", Causation: "e-1"}
	return instanceRecord{
		Status: StatusCompensating, State: []byte(`{"paid":true}`), Correlation: "req-1",
		Started: at, Updated: at.Add(time.Minute), Steps: 3, NextSeq: 4,
		Compensations: []compensation{{ForSeq: 1, Cmd: cmd}, {Done: true, Cmd: cmd}},
		Deadlines: []deadlineRecord{
			{Name: "t", ID: "d-1", At: at.Add(time.Hour), Message: []byte(`{}`)},
			{Name: "c", ID: "d-2", At: at.Add(2 * time.Hour), Command: &cmd},
		},
		LastError: "boom", Failure: &Failure{Reason: "rejected", Command: "payment.capture", AggregateID: "o-1",
			Kind: command.KindFailedPrecondition, Message: "card declined"},
		CompErrors: []string{"compensation rejected"},
	}
}

// FuzzDecodeInstance feeds arbitrary bytes to decodeInstance: it never
// panics, what it accepts has a known status, and it encodes to bytes that
// decode to the same record.
func FuzzDecodeInstance(f *testing.F) {
	sample, _ := json.Marshal(sampleInstance())
	f.Add(sample)
	f.Add([]byte(`{"status":"running","state":null,"started":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00+01:00","steps":1,"next_seq":0,"pending":0}`))
	f.Add([]byte(`{"status":"failed","pending":-1}`))
	f.Add([]byte(`{"status":"running","next_seq":1,"pending":2}`))
	f.Add([]byte(`{"status":"paused"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"deadlines":[{"at":"0001-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"status":"failed","failure":{"reason":"r","kind":"not found","message":"m"}}`))
	f.Add([]byte(`{"status":"failed","failure":{"reason":"r","kind":"no such kind"}}`))
	f.Add([]byte(`{"status":"failed","failure":{"reason":"r","kind":3}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeInstance(b)
		if err != nil {
			if r != nil {
				t.Fatalf("error %v with a record %+v", err, r)
			}
			return
		}
		if !r.Status.valid() {
			t.Fatalf("accepted status %q", r.Status)
		}
		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("%s decodes to %+v, which does not encode: %v", b, r, err)
		}
		r2, err := decodeInstance(enc)
		if err != nil {
			t.Fatalf("%s decodes, but its encoding %s does not: %v", b, enc, err)
		}
		enc2, err := json.Marshal(r2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s (%v)", enc, enc2, err)
		}
	})
}

// FuzzDecodeCommand feeds arbitrary bytes to decodeCommand: it never
// panics, what it accepts names its ID, type and aggregate, and it
// encodes to bytes that decode to the same command.
func FuzzDecodeCommand(f *testing.F) {
	sample, _ := json.Marshal(sampleInstance().Compensations[0].Cmd)
	f.Add(sample)
	f.Add([]byte(`{"id":"1","type":"t","aggregate_id":"a","payload":"AAE=","compensation":true}`))
	f.Add([]byte(`{"id":"1","type":"t"}`))
	f.Add([]byte(`{"id":"1","type":"t","aggregate_id":"a","payload":"not base64"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		if err != nil {
			return
		}
		if c.ID == "" || c.Type == "" || c.AggregateID == "" {
			t.Fatalf("accepted %+v", c)
		}
		enc, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("%+v does not encode: %v", c, err)
		}
		c2, err := decodeCommand(enc)
		if err != nil {
			t.Fatalf("%s decodes, but its encoding %s does not: %v", b, enc, err)
		}
		if enc2, _ := json.Marshal(c2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzParseOutboxKey feeds arbitrary bytes, under the outbox prefix, to
// parseOutboxKey: it never panics, and what it accepts is exactly the key
// outbox builds from what it returns.
func FuzzParseOutboxKey(f *testing.F) {
	ks := newKeys("s")
	prefix := []byte(ks.outboxes())
	f.Add(ks.outbox("order-1", 7)[len(prefix):])
	f.Add(ks.outbox("a\x00b", 0)[len(prefix):])
	f.Add([]byte("\x02k\x00\x15\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("\x02k\x00\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, rest []byte) {
		k := append(slices.Clip(prefix), rest...)
		key, seq, err := ks.parseOutboxKey(k)
		if err != nil {
			return
		}
		if again := ks.outbox(key, seq); !bytes.Equal(again, k) {
			t.Fatalf("%q parses as (%q, %d), which encodes as %q", k, key, seq, again)
		}
	})
}

// FuzzParseDeadlineKey feeds arbitrary bytes, under the deadline prefix,
// to parseDeadlineKey: it never panics, and what it accepts is exactly the
// key deadline builds from what it returns.
func FuzzParseDeadlineKey(f *testing.F) {
	ks := newKeys("s")
	prefix := []byte(ks.deadlines())
	f.Add(ks.deadline(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "order-1", "payment-timeout")[len(prefix):])
	f.Add(ks.deadline(time.Unix(0, math.MaxInt64), "", "")[len(prefix):])
	f.Add([]byte("\x17\x80\x00\x00\x00\x00\x00\x00\x00\x02k\x00\x02n\x00"))
	f.Add([]byte("\x17\x80\x00\x00\x00\x00\x00\x00\x00\x02k\x00"))
	f.Add([]byte("\x17\x80\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, rest []byte) {
		k := append(slices.Clip(prefix), rest...)
		at, key, name, err := ks.parseDeadlineKey(k)
		if err != nil {
			return
		}
		if at.Location() != time.UTC {
			t.Fatalf("%q parses to a time in %s, want UTC", k, at.Location())
		}
		if again := ks.deadline(at, key, name); !bytes.Equal(again, k) {
			t.Fatalf("%q parses as (%v, %q, %q), which encodes as %q", k, at, key, name, again)
		}
	})
}

// FuzzTimeKey checks the times of deadline keys: keys sort as their times
// do, every time representable in int64 Unix nanoseconds comes back as
// itself (in UTC), and one outside that range comes back as the nearest
// time inside it, so a deadline set far in the future or the past sorts
// and reloads where it belongs.
func FuzzTimeKey(f *testing.F) {
	f.Add(int64(0), int64(0), int64(1), int64(0))
	f.Add(int64(-1), int64(999_999_999), int64(0), int64(0))
	f.Add(int64(1_795_000_000), int64(5), int64(1_795_000_000), int64(4))
	f.Add(int64(-62_135_596_800), int64(0), int64(0), int64(0)) // time.Time{}
	f.Add(int64(32_503_680_000), int64(0), int64(9_223_372_036), int64(854_775_807))
	f.Add(int64(-1<<62), int64(0), int64(1<<62), int64(0))
	minKeyTime, maxKeyTime := time.Unix(0, math.MinInt64).UTC(), time.Unix(0, math.MaxInt64).UTC()
	ks := newKeys("s")
	f.Fuzz(func(t *testing.T, sa, na, sb, nb int64) {
		// Seconds that time.Time itself can hold without overflow.
		const bound = 1 << 62
		if sa < -bound || sa > bound || sb < -bound || sb > bound {
			return
		}
		a, b := time.Unix(sa, na), time.Unix(sb, nb)
		ka, kb := ks.deadline(a, "k", "n"), ks.deadline(b, "k", "n")
		if c := bytes.Compare(ka, kb); c != 0 && c != a.Compare(b) {
			t.Fatalf("deadline keys at %v = %x and at %v = %x sort the other way round", a, ka, b, kb)
		}
		got, _, _, err := ks.parseDeadlineKey(ka)
		if err != nil {
			t.Fatalf("deadline key at %v: %v", a, err)
		}
		want := a.UTC()
		switch {
		case a.Before(minKeyTime):
			want = minKeyTime
		case a.After(maxKeyTime):
			want = maxKeyTime
		}
		if !got.Equal(want) || got.Location() != time.UTC || !keyTime(a).Equal(want) {
			t.Fatalf("deadline key at %v parses as %v (keyTime %v), want %v", a, got, keyTime(a), want)
		}
		if again := ks.deadline(got, "k", "n"); !bytes.Equal(again, ka) {
			t.Fatalf("deadline key at %v = %x, but at its parse %v = %x", a, ka, got, again)
		}
	})
}

// FuzzKeyspace checks that every key of a saga's state space parses back
// to what built it, for any instance key and deadline name, and that it
// lies in its kind's range and in no other kind's.
func FuzzKeyspace(f *testing.F) {
	f.Add("order-fulfillment", "order-1", "payment-timeout", uint64(3), int64(1_795_000_000_000_000_000))
	f.Add("p", "", "", uint64(0), int64(0))
	f.Add("s", "a/b", "n\x00m", uint64(math.MaxUint64), int64(math.MinInt64))
	f.Add("s", "\xff\xff", "\xff", uint64(1)<<56, int64(-1))
	f.Add("s", "a\x00", "\x00\xff", uint64(1), int64(1))
	f.Fuzz(func(t *testing.T, name, key, dname string, seq uint64, nanos int64) {
		ks := newKeys(name)
		at := time.Unix(0, nanos).UTC()
		kinds := map[string]keyspace.Key{"instance": ks.instances(), "outbox": ks.outboxes(), "deadline": ks.deadlines(), "ended": ks.endeds()}
		in := func(what string, k []byte) {
			t.Helper()
			for kind, prefix := range kinds {
				lower, upper := prefix.Range()
				inside := bytes.Compare(k, lower) >= 0 && bytes.Compare(k, upper) < 0
				if inside != (kind == what) {
					t.Fatalf("%s key %s: in the range of %s keys: %t", what, keyspace.Format(k), kind, inside)
				}
			}
		}

		in("instance", ks.instance(key))
		if k, err := ks.parseInstanceKey(ks.instance(key)); err != nil || k != key {
			t.Fatalf("instance key %q parses as %q, %v", key, k, err)
		}
		in("outbox", ks.outbox(key, seq))
		k, s, err := ks.parseOutboxKey(ks.outbox(key, seq))
		if err != nil || k != key || s != seq {
			t.Fatalf("outbox (%q, %d) parses as (%q, %d), %v", key, seq, k, s, err)
		}
		in("deadline", ks.deadline(at, key, dname))
		gotAt, k, n, err := ks.parseDeadlineKey(ks.deadline(at, key, dname))
		if err != nil || !gotAt.Equal(at) || k != key || n != dname {
			t.Fatalf("deadline (%v, %q, %q) parses as (%v, %q, %q), %v", at, key, dname, gotAt, k, n, err)
		}
		in("ended", ks.ended(at, key))
		gotAt, k, err = ks.parseEndedKey(ks.ended(at, key))
		if err != nil || !gotAt.Equal(at) || k != key {
			t.Fatalf("ended (%v, %q) parses as (%v, %q), %v", at, key, gotAt, k, err)
		}
		// An instance's outbox range holds its commands and no other
		// instance's.
		lower, upper := ks.outboxOf(key).Range()
		other := ks.outbox(key+"\x00", seq)
		if bytes.Compare(other, lower) >= 0 && bytes.Compare(other, upper) < 0 {
			t.Fatalf("the outbox of %q holds a command of %q", key, key+"\x00")
		}
	})
}

// FuzzSagaNames checks that two sagas with different valid names have
// state spaces apart: neither's range holds a key of the other's, so one
// saga's scans never see the other's keys.
func FuzzSagaNames(f *testing.F) {
	f.Add("order", "order-fulfillment")
	f.Add("a", "a.b")
	f.Add("a", "a/b")
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == b || checkName(a) != nil || checkName(b) != nil {
			return
		}
		if strings.Contains(a, "/") || strings.Contains(b, "/") {
			t.Fatalf("checkName accepted a name with '/': %q, %q", a, b)
		}
		if len(groupPrefix+a) > eventstore.MaxNameLen {
			t.Fatalf("checkName accepted %q, whose group name is too long", a)
		}
		ka, kb := newKeys(a), newKeys(b)
		lower, upper := ka.base.Range()
		if k := kb.instance("x"); bytes.Compare(k, lower) >= 0 && bytes.Compare(k, upper) < 0 {
			t.Fatalf("saga %q's key %s is in saga %q's range", b, keyspace.Format(k), a)
		}
	})
}
