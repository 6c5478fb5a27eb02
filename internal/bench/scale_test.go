package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// scaleChildEnv makes the test binary the child of a scale run's crash
// measurement (see TestMain).
const scaleChildEnv = "MUNINN_BENCH_SCALE_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(scaleChildEnv); dir != "" {
		if err := ScaleChild(context.Background(), dir, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func tinyScaleConfig(t *testing.T) ScaleConfig {
	cfg := QuickScaleConfig()
	cfg.Dir = t.TempDir()
	cfg.Events = 3_000
	cfg.Duration = 30 * time.Millisecond
	cfg.PayloadBytes = 64
	cfg.ChildCommand = func(dir string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), scaleChildEnv+"="+dir)
		return cmd
	}
	return cfg
}

func TestRunScaleReportsEveryKey(t *testing.T) {
	cfg := tinyScaleConfig(t)
	var progress bytes.Buffer
	cfg.Progress = &progress
	res, err := RunScale(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	n := 0
	for k, v := range m {
		if !strings.HasPrefix(k, "scale_") {
			continue
		}
		n++
		if f, ok := v.(float64); !ok || (f <= 0 && !strings.HasPrefix(k, "scale_loadavg")) {
			t.Errorf("%s = %v, want a positive number", k, v)
		}
	}
	if n < 25 {
		t.Errorf("only %d scale_* keys in %s", n, b)
	}
	if m["scale_events"] != 3000.0 || m["payload_bytes"] != 64.0 || m["scale_streams"] != 300.0 {
		t.Errorf("the result does not echo the config: %s", b)
	}
	if entries, err := os.ReadDir(cfg.Dir); err != nil || len(entries) != 0 {
		t.Errorf("temporary directory left behind in %s: %v %v", cfg.Dir, entries, err)
	}
	var table bytes.Buffer
	if err := WriteScaleTable(&table, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scale_aggregate_load_ratio", "scale_open_after_kill_ms", "3,000 events"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestScaleWorkload(t *testing.T) {
	for _, events := range []int{1_000, 12_345, 1_000_000} {
		wl := newScaleWorkload(events)
		if len(wl.sizes) != events/EventsPerScaleStream {
			t.Errorf("%d events: %d streams, want %d", events, len(wl.sizes), events/EventsPerScaleStream)
		}
		total, longest := 0, 0
		for _, n := range wl.sizes {
			if n < 1 {
				t.Fatalf("%d events: a stream of %d events", events, n)
			}
			total += n
			longest = max(longest, n)
		}
		if total != events || wl.total != events {
			t.Errorf("%d events: lengths add up to %d (total %d)", events, total, wl.total)
		}
		if longest < events/200 {
			t.Errorf("%d events: the longest stream has %d events, want at least %d", events, longest, events/200)
		}
		// The load order appends every event of every stream once, in
		// version order, across the workers.
		next := make([]uint64, len(wl.sizes))
		for w := range 3 {
			wl.loadOrder(w, 3, func(i int, from uint64, count int) bool {
				if from != next[i] || count < 1 || count > loadChunk {
					t.Fatalf("stream %d: append of %d from %d, want from %d", i, count, from, next[i])
				}
				next[i] += uint64(count)
				return true
			})
		}
		for i, n := range next {
			if int(n) != wl.sizes[i] {
				t.Fatalf("stream %d: %d events loaded, want %d", i, n, wl.sizes[i])
			}
		}
	}
}

func TestScaleConfigValidate(t *testing.T) {
	for _, c := range []ScaleConfig{DefaultScaleConfig(), QuickScaleConfig()} {
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	}
	err := ScaleConfig{}.Validate()
	for _, field := range []string{"Events", "Duration", "PayloadBytes", "Partitions"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("zero config: error %v does not name %s", err, field)
		}
	}
	if _, err := RunScale(context.Background(), ScaleConfig{}); err == nil {
		t.Error("RunScale accepted the zero config")
	}
}
