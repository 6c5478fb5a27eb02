package golang_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/gen/golang"
	"github.com/muninn-es/muninn/gen/model"
)

// guardModel has two conditional policies, on integer, bool and aggregate
// ID conditions: AlarmOnSeven alarms on an unhealthy reading of 7 at level
// 2, AlarmOnHealthy on any healthy reading of meter m-1. NoteEveryAlarm
// notes every alarm in meter "log".
const guardModel = `
name: guard
contexts:
  - name: Meter
    aggregates:
      - name: Meter
        id: meter_id
        commands:
          - name: Read
            fields: {value: int, healthy: bool, level: int64}
            emits: [ReadingTaken]
          - name: Alarm
            fields: {value: int}
            emits: [Alarmed]
          - name: Note
            fields: {note: string}
            emits: [Noted]
        events:
          - name: ReadingTaken
            fields: {value: int, healthy: bool, level: int64}
          - name: Alarmed
            fields: {value: int}
          - name: Noted
            fields: {note: string}
    policies:
      - name: AlarmOnSeven
        when: ReadingTaken
        if: {value: 7, healthy: false, level: 2}
        then: Alarm
      - name: AlarmOnHealthy
        when: ReadingTaken
        if: {healthy: true, meter_id: m-1}
        then: Alarm
      # Uses neither the event nor its record: its literals only look as
      # if they did.
      - name: NoteEveryAlarm
        when: Alarmed
        then: Note
        map: {meter_id: '"log"', note: '"rec. e. alarmed"'}
`

// guardTest runs the generated policies of guardModel on a store in
// memory: every reading is taken, and once the policies have consumed
// everything and sent every command, exactly the meters whose reading
// meets a policy's if have been alarmed, and each alarm noted.
const guardTest = `package policies_test

import (
	"context"
	"testing"
	"time"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/saga"

	"example.com/gen/meter"
	"example.com/gen/policies"
)

func TestConditions(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	bus, err := command.New(store)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	agg, err := meter.New()
	if err != nil {
		t.Fatal(err)
	}
	meters, err := command.Register(ctx, bus, agg)
	if err != nil {
		t.Fatal(err)
	}
	var sagas []*saga.Saga[struct{}]
	done := make(chan error, 3)
	for _, p := range policies.All() {
		s, err := saga.New(store, bus, p)
		if err != nil {
			t.Fatal(err)
		}
		sagas = append(sagas, s)
		go func() { done <- s.Run(ctx) }()
	}
	readings := []struct {
		id      string
		read    meter.Read
		alarmed bool
	}{
		{"seven", meter.Read{Value: 7, Healthy: false, Level: 2}, true},
		{"level-3", meter.Read{Value: 7, Healthy: false, Level: 3}, false},
		{"six", meter.Read{Value: 6, Healthy: false, Level: 2}, false},
		{"healthy-seven", meter.Read{Value: 7, Healthy: true, Level: 2}, false},
		{"m-1", meter.Read{Value: 1, Healthy: true}, true},
		{"m-1-unhealthy", meter.Read{Value: 1, Healthy: false}, false},
	}
	for _, r := range readings {
		if _, err := meters.Dispatch(ctx, r.id, r.read); err != nil {
			t.Fatalf("read %s: %v", r.id, err)
		}
	}
	// Wait until the policies have consumed everything (the alarms
	// included) and sent every command they decided on.
	idle := func() bool {
		for _, s := range sagas {
			st, err := s.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Error != "" {
				t.Fatalf("%s: %s", s.Name(), st.Error)
			}
			if st.Loop.Lag != 0 || st.PendingCommands != 0 || st.Counters.Steps+st.Counters.Ignored == 0 {
				return false
			}
		}
		return true
	}
	for !idle() {
		select {
		case err := <-done:
			t.Fatalf("a policy stopped: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	for _, r := range readings {
		st, err := meters.Load(ctx, r.id)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Version == 2; got != r.alarmed {
			t.Errorf("meter %s (%+v): alarmed %v (version %d), want %v", r.id, r.read, got, st.Version, r.alarmed)
		}
	}
	// Each of the two alarms is noted once in meter "log".
	if st, err := meters.Load(ctx, "log"); err != nil || st.Version != 2 {
		t.Errorf("meter log: version %d (%v), want 2 notes", st.Version, err)
	}
}
`

// TestPolicyConditions generates a module whose policies have integer,
// bool and aggregate ID conditions, and runs them: a policy sends its
// command exactly when the event meets every condition of its if.
func TestPolicyConditions(t *testing.T) {
	if testing.Short() && os.Getenv("MUNINN_CI") == "" {
		t.Skip("builds a module (-short)")
	}
	m, err := model.Parse("eventmodel.yaml", []byte(guardModel))
	if err != nil {
		t.Fatal(err)
	}
	if ps := model.Validate(m); ps.Err() != nil {
		t.Fatal(ps.Err())
	}
	// Policies are part of the service surface. buf need not run: the
	// model has no routes, and only the policies are built.
	dir := t.TempDir()
	if _, err := golang.Generate(m, dir, golang.Options{Module: "example.com/gen", Replace: repoRoot, Service: true}); err != nil {
		t.Fatal(err)
	}
	gen, err := os.ReadFile(filepath.Join(dir, "policies", "policies_gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"if e.Healthy || e.Level != 2 || e.Value != 7 {",
		`if !e.Healthy || rec.Key != "m-1" {`,
		"Whenever meter.ReadingTaken with healthy false and level 2 and value 7, it",
		`saga.Whenever(p, "guard.meter.alarmed", func(s *saga.Step[struct{}], _ meter.Alarmed) error {` + "\n\t\ts.Send(",
	} {
		if !strings.Contains(string(gen), want) {
			t.Errorf("policies_gen.go has no %q:\n%s", want, gen)
		}
	}
	rules := filepath.Join(dir, "meter", "rules.go")
	fillRule(t, rules, "decideRead", "return []Event{ReadingTaken{Value: cmd.Value, Healthy: cmd.Healthy, Level: cmd.Level}}, nil")
	fillRule(t, rules, "decideAlarm", "return []Event{Alarmed{Value: cmd.Value}}, nil")
	fillRule(t, rules, "decideNote", "return []Event{Noted{Note: cmd.Note}}, nil")
	if err := os.WriteFile(filepath.Join(dir, "policies", "policies_test.go"), []byte(guardTest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := goCmd(t, dir, "test", "-count=1", "./policies"); err != nil {
		t.Fatalf("go test ./policies: %v\n%s", err, out)
	}
}
