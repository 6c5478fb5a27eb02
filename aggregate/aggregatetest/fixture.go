package aggregatetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"google.golang.org/protobuf/proto"
)

// Fixture runs scenarios against one aggregate definition.
type Fixture[S, C, E any] struct {
	t   testing.TB
	agg *aggregate.Aggregate[S, C, E]
}

// For returns a fixture for agg that reports to t.
func For[S, C, E any](t testing.TB, agg *aggregate.Aggregate[S, C, E]) *Fixture[S, C, E] {
	t.Helper()
	if agg == nil {
		t.Fatalf("aggregatetest: For: nil aggregate")
	}
	return &Fixture[S, C, E]{t: t, agg: agg}
}

// Scenario is the "given" part of a scenario: the past events.
type Scenario[S, C, E any] struct {
	f     *Fixture[S, C, E]
	given []E
	state S
}

// Given starts a scenario whose aggregate has the given past events (none:
// an aggregate that does not exist yet). Each event must be registered and
// survive the codec; Evolve builds the state from them.
func (f *Fixture[S, C, E]) Given(events ...E) *Scenario[S, C, E] {
	f.t.Helper()
	state := f.agg.Initial()
	for i, e := range events {
		back, err := f.roundTrip(e, uint64(i+1))
		if err != nil {
			f.t.Fatalf("aggregatetest: %s: given event %d (%s): %v", f.agg.Name(), i+1, f.render(e), err)
		}
		if state, err = f.agg.Evolve(state, back); err != nil {
			f.t.Fatalf("aggregatetest: %s: given event %d (%s): %v", f.agg.Name(), i+1, f.render(e), err)
		}
	}
	return &Scenario[S, C, E]{f: f, given: events, state: state}
}

// Outcome is what a command did in a scenario, to be checked with the
// Then methods, which can be chained.
type Outcome[S, C, E any] struct {
	s      *Scenario[S, C, E]
	cmd    C
	events []E
	err    error
	// state is the state after the produced events; stateErr why it could
	// not be computed.
	state    S
	stateErr error
}

// When runs cmd through the aggregate's Decide on the given state.
func (s *Scenario[S, C, E]) When(cmd C) *Outcome[S, C, E] {
	s.f.t.Helper()
	o := &Outcome[S, C, E]{s: s, cmd: cmd}
	o.events, o.err = s.f.agg.Decide(s.state, cmd)
	if o.err == nil {
		o.state, o.stateErr = s.f.agg.Evolve(s.state, o.events...)
	}
	return o
}

func (o *Outcome[S, C, E]) header() string {
	return fmt.Sprintf("aggregatetest: %s: given %d event(s), when %s", o.s.f.agg.Name(), len(o.s.given), renderValue(o.cmd))
}

// Then checks that the command succeeded and produced exactly want, in
// order (none: an accepted command without a change). Events compare with
// reflect.DeepEqual, proto messages with proto.Equal. Each produced event
// must also survive the registry and codec.
func (o *Outcome[S, C, E]) Then(want ...E) *Outcome[S, C, E] {
	t := o.s.f.t
	t.Helper()
	if o.err != nil {
		t.Errorf("%s:\nwant %d event(s), got error: %v\nwanted:\n%s", o.header(), len(want), o.err, o.s.f.renderList(want))
		return o
	}
	if !equalEvents(want, o.events) {
		t.Errorf("%s:\nevents differ (- want, + got):\n%s", o.header(), o.s.f.diff(want, o.events))
		return o
	}
	o.checkCodec()
	return o
}

// ThenNothing checks that the command succeeded without producing events.
func (o *Outcome[S, C, E]) ThenNothing() *Outcome[S, C, E] {
	o.s.f.t.Helper()
	return o.Then()
}

// ThenError checks that the command failed with an error matching target
// (errors.Is), such as command.ErrRejected or a sentinel of the domain.
func (o *Outcome[S, C, E]) ThenError(target error) *Outcome[S, C, E] {
	t := o.s.f.t
	t.Helper()
	switch {
	case o.err == nil:
		t.Errorf("%s:\nwant error %v, got %d event(s):\n%s", o.header(), target, len(o.events), o.s.f.renderList(o.events))
	case !errors.Is(o.err, target):
		t.Errorf("%s:\nwant error matching %v\n got error %v", o.header(), target, o.err)
	}
	return o
}

// ThenErrorMatches checks that the command failed with an error for which
// match returns true, and names what it expected as want.
func (o *Outcome[S, C, E]) ThenErrorMatches(want string, match func(error) bool) *Outcome[S, C, E] {
	t := o.s.f.t
	t.Helper()
	switch {
	case o.err == nil:
		t.Errorf("%s:\nwant error (%s), got %d event(s):\n%s", o.header(), want, len(o.events), o.s.f.renderList(o.events))
	case !match(o.err):
		t.Errorf("%s:\nwant error (%s)\n got error %v", o.header(), want, o.err)
	}
	return o
}

// ThenState checks the state after the produced events against want with
// reflect.DeepEqual (proto.Equal for proto messages).
func (o *Outcome[S, C, E]) ThenState(want S) *Outcome[S, C, E] {
	t := o.s.f.t
	t.Helper()
	switch {
	case o.err != nil:
		t.Errorf("%s:\nwant state %s, got error: %v", o.header(), renderValue(want), o.err)
	case o.stateErr != nil:
		t.Errorf("%s:\nEvolve failed on the produced events: %v", o.header(), o.stateErr)
	case !equal(any(want), any(o.state)):
		t.Errorf("%s:\nstate differs:\nwant %s\n got %s", o.header(), renderValue(want), renderValue(o.state))
	}
	return o
}

// Events returns the produced events and the error, for checks of your own.
func (o *Outcome[S, C, E]) Events() ([]E, error) { return o.events, o.err }

// State returns the state after the produced events.
func (o *Outcome[S, C, E]) State() S { return o.state }

// checkCodec reports produced events that do not survive the registry and
// codec, an Evolve that fails on them, and, with snapshots enabled, a state
// that does not survive the snapshot codec.
func (o *Outcome[S, C, E]) checkCodec() {
	f := o.s.f
	f.t.Helper()
	for i, e := range o.events {
		back, err := f.roundTrip(e, uint64(len(o.s.given)+i+1))
		if err != nil {
			f.t.Errorf("%s:\nproduced event %d (%s): %v", o.header(), i+1, f.render(e), err)
		} else if !equal(any(e), any(back)) {
			f.t.Errorf("%s:\nproduced event %d does not survive the %s codec:\nbefore %s\n after %s",
				o.header(), i+1, f.agg.Events().Codec().Name(), renderValue(e), renderValue(back))
		}
	}
	if o.stateErr != nil {
		f.t.Errorf("%s:\nEvolve failed on the produced events: %v", o.header(), o.stateErr)
		return
	}
	if (f.agg.SnapshotEvery() == 0 && f.agg.CacheSize() == 0) || len(o.events) == 0 {
		return
	}
	codec := f.agg.SnapshotCodec()
	b, err := codec.Marshal(any(o.state))
	if err != nil {
		f.t.Errorf("%s:\nthe state cannot be snapshot with the %s codec: %v", o.header(), codec.Name(), err)
		return
	}
	back := new(S)
	var target any = back
	if m, ok := any(*back).(proto.Message); ok {
		nm := m.ProtoReflect().Type().New().Interface()
		*back = nm.(S)
		target = nm
	}
	if err := codec.Unmarshal(b, target); err != nil {
		f.t.Errorf("%s:\nthe state's snapshot does not decode with the %s codec: %v", o.header(), codec.Name(), err)
		return
	}
	if !equal(any(o.state), any(*back)) {
		f.t.Errorf("%s:\nthe state does not survive a snapshot (%s codec; unexported fields are lost with JSON):\nbefore %s\n after %s",
			o.header(), codec.Name(), renderValue(o.state), renderValue(*back))
	}
}

// roundTrip encodes e with the registry and decodes it back, as a stored
// record at version v of a scenario stream.
func (f *Fixture[S, C, E]) roundTrip(e E, v uint64) (E, error) {
	ev, err := f.agg.Events().Encode(e)
	if err != nil {
		var zero E
		return zero, err
	}
	return f.agg.Events().Decode(eventstore.Record{Topic: f.agg.Topic(), Key: "aggregatetest", Version: v,
		Type: ev.Type, SchemaVersion: ev.SchemaVersion, Payload: ev.Payload})
}

func equalEvents[E any](a, b []E) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equal(any(a[i]), any(b[i])) {
			return false
		}
	}
	return true
}

func equal(a, b any) bool {
	if pa, ok := a.(proto.Message); ok {
		if pb, ok := b.(proto.Message); ok {
			return proto.Equal(pa, pb)
		}
	}
	return reflect.DeepEqual(a, b)
}

// render shows an event as its registered name and its JSON form.
func (f *Fixture[S, C, E]) render(e E) string {
	name, _, ok := f.agg.Events().Name(e)
	if !ok {
		name = fmt.Sprintf("<unregistered %T>", any(e))
	}
	return name + " " + renderValue(e)
}

func (f *Fixture[S, C, E]) renderList(es []E) string {
	if len(es) == 0 {
		return "    (none)"
	}
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = "    " + f.render(e)
	}
	return strings.Join(lines, "\n")
}

// renderValue shows v as compact JSON (protojson for proto messages) with
// its Go type, or with %+v if it has no JSON form.
func renderValue(v any) string {
	b, err := codec.JSONFormat.Marshal(v)
	if err == nil {
		var c bytes.Buffer
		if json.Compact(&c, b) == nil {
			return fmt.Sprintf("%T%s", v, c.String())
		}
	}
	return fmt.Sprintf("%T%+v", v, v)
}

// diff renders want and got as a line diff: common events unmarked, missing
// ones with "-", unexpected ones with "+", aligned by the longest common
// subsequence.
func (f *Fixture[S, C, E]) diff(want, got []E) string {
	n, m := len(want), len(got)
	// lcs[i][j] is the LCS length of want[i:] and got[j:].
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if equal(any(want[i]), any(got[j])) {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && equal(any(want[i]), any(got[j])):
			fmt.Fprintf(&b, "    %s\n", f.render(want[i]))
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			fmt.Fprintf(&b, "  - %s\n", f.render(want[i]))
			i++
		default:
			fmt.Fprintf(&b, "  + %s\n", f.render(got[j]))
			j++
		}
	}
	if n == 0 && m == 0 {
		b.WriteString("    (none)\n")
	}
	return strings.TrimRight(b.String(), "\n")
}
