package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/eventstore"
)

// writeStore writes a store in dir: n single-event appends to 4 streams of
// topic "orders"; with flush, flushed to a table.
func writeStore(t *testing.T, dir string, n int, flush bool) {
	t.Helper()
	ctx := context.Background()
	s, err := eventstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ev := eventstore.Event{Type: "order.placed", Payload: []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 100)))}
		if _, err := s.Append(ctx, "orders", fmt.Sprintf("order-%d", i%4), eventstore.Any, []eventstore.Event{ev}, eventstore.NoSync()); err != nil {
			t.Fatal(err)
		}
	}
	if flush {
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// damage flips the middle byte of the newest file of dir ending in suffix.
func damage(t *testing.T, dir, suffix string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no %s file in %s (%v)", suffix, dir, err)
	}
	slices.Sort(matches)
	f := matches[len(matches)-1]
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRepairIntact(t *testing.T) {
	dir := t.TempDir()
	writeStore(t, dir, 50, true)
	stdout, _, err := execute(t, "repair", dir)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if !strings.Contains(stdout, "is intact") || !strings.Contains(stdout, "nothing was dropped") {
		t.Errorf("repair of an intact store says:\n%s", stdout)
	}
}

func TestRepairDamagedWAL(t *testing.T) {
	dir := t.TempDir()
	writeStore(t, dir, 400, false)
	wal := damage(t, dir, ".log")
	if _, err := eventstore.Open(dir); !errors.Is(err, eventstore.ErrCorrupt) {
		t.Fatalf("Open of the damaged store: %v, want ErrCorrupt", err)
	}
	stdout, _, err := execute(t, "repair", dir)
	if err != nil {
		t.Fatalf("repair: %v\n%s", err, stdout)
	}
	for _, want := range []string{
		"The write-ahead log " + wal + " is damaged at byte",
		"Copies of the logs as they were: " + dir,
		"TOPIC   PARTITION  OFFSETS DROPPED",
		"TOPIC   STREAM   VERSIONS DROPPED",
		"order-",
		"The store opens again",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("repair output lacks %q:\n%s", want, stdout)
		}
	}
	s, err := eventstore.Open(dir)
	if err != nil {
		t.Fatalf("Open after repair: %v", err)
	}
	s.Close()
	// Repaired: a second run finds nothing to do.
	stdout, _, err = execute(t, "repair", "--json", dir)
	if err != nil {
		t.Fatal(err)
	}
	var out repairJSON
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || !out.Intact || out.WAL != nil {
		t.Errorf("second repair: %+v (%v)\n%s", out, err, stdout)
	}
}

func TestRepairJSON(t *testing.T) {
	dir := t.TempDir()
	writeStore(t, dir, 400, false)
	wal := damage(t, dir, ".log")
	stdout, _, err := execute(t, "repair", "--json", dir)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	var out map[string]any
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&out); err != nil || dec.More() {
		t.Fatalf("stdout is not one JSON object (%v):\n%s", err, stdout)
	}
	w, _ := out["wal"].(map[string]any)
	parts, _ := w["partitions"].([]any)
	streams, _ := w["streams"].([]any)
	if out["intact"] != false || w["file"] != wal || len(parts) == 0 || len(streams) == 0 {
		t.Fatalf("JSON report: %s", stdout)
	}
	p := parts[0].(map[string]any)
	for _, k := range []string{"topic", "partition", "from", "to", "records_read"} {
		if _, ok := p[k]; !ok {
			t.Errorf("partition entry lacks %q: %v", k, p)
		}
	}
	if p["topic"] != "orders" || p["from"].(float64) > p["to"].(float64) {
		t.Errorf("partition entry: %v", p)
	}
}

func TestRepairRefusesOpenStore(t *testing.T) {
	dir := t.TempDir()
	writeStore(t, dir, 10, false)
	s, err := eventstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stdout, _, err := execute(t, "repair", dir)
	if err == nil || !errors.Is(err, eventstore.ErrLocked) || !strings.Contains(err.Error(), "is open in a running store; stop it") {
		t.Fatalf("repair of an open store: %v\n%s", err, stdout)
	}
	if stdout != "" {
		t.Errorf("repair of an open store printed:\n%s", stdout)
	}
}

func TestRepairDamagedTable(t *testing.T) {
	dir := t.TempDir()
	writeStore(t, dir, 400, true)
	sst := damage(t, dir, ".sst")
	_, _, err := execute(t, "repair", dir)
	if !errors.Is(err, eventstore.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(sst)) || !strings.Contains(err.Error(), "beyond what repair can drop") {
		t.Fatalf("repair of a damaged table: %v", err)
	}
	stdout, _, err := execute(t, "repair", "--json", dir)
	if err == nil {
		t.Fatal("repair --json of a damaged table: no error")
	}
	var out repairJSON
	if jerr := json.Unmarshal([]byte(stdout), &out); jerr != nil || out.Intact || out.Error == "" {
		t.Errorf("JSON for a failed repair: %+v (%v)\n%s", out, jerr, stdout)
	}
}

func TestRepairBadArgs(t *testing.T) {
	if _, _, err := execute(t, "repair"); err == nil {
		t.Error("repair without DIR: no error")
	}
	missing := filepath.Join(t.TempDir(), "nothing-here")
	if _, _, err := execute(t, "repair", missing); err == nil {
		t.Error("repair of a missing directory: no error")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("repair created %s", missing)
	}
}
