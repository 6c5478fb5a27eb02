package command

import (
	"fmt"
	"testing"
	"time"
)

func TestIDFilterNoFalseNegatives(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := newIDFilter(time.Hour, defaultFilterMaxIDs, now)
	if !f.mayContain("anything", now) {
		t.Fatal("a filter that has not loaded answered no")
	}
	f.markReady()
	const n = 300_000 // several slices: the filter grows
	for i := range n {
		f.add(fmt.Sprint("cmd-", i), now)
	}
	for i := range n {
		if !f.mayContain(fmt.Sprint("cmd-", i), now) {
			t.Fatalf("cmd-%d was added but the filter says it was not", i)
		}
	}
	fp := 0
	for i := range 100_000 {
		if f.mayContain(fmt.Sprint("other-", i), now) {
			fp++
		}
	}
	// Each slice is sized for about 1%; a lookup checks every slice.
	if rate := float64(fp) / 100_000; rate > 0.05 {
		t.Fatalf("false positive rate %.3f, want well under 0.05", rate)
	}
	t.Logf("false positives: %d of 100,000 (%d slices)", fp, len(f.cur.slices))
}

// An ID stays in the filter for at least one window, and generations
// older than two windows are dropped.
func TestIDFilterRotation(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	w := time.Hour
	f := newIDFilter(w, defaultFilterMaxIDs, start)
	f.markReady()
	at := start.Add(50 * time.Minute)
	f.add("late-in-gen", at)
	for _, d := range []time.Duration{0, 30 * time.Minute, w - time.Second} {
		if !f.mayContain("late-in-gen", at.Add(d)) {
			t.Fatalf("forgotten %v after it was added, within the window", d)
		}
	}
	// The loop above rotated once (the ID is in the previous generation);
	// after two more windows both generations are dropped.
	if f.prev.n != 1 {
		t.Fatalf("after one rotation the previous generation holds %d IDs, want 1", f.prev.n)
	}
	f.mayContain("x", at.Add(3*w))
	if f.prev.n != 0 || f.cur.n != 0 {
		t.Fatalf("generations still hold %d and %d IDs", f.prev.n, f.cur.n)
	}
}

func TestIDFilterGivesUpPastItsLimit(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := newIDFilter(time.Hour, 10, now)
	f.markReady()
	for i := range 11 {
		f.add(fmt.Sprint(i), now)
	}
	if !f.mayContain("never-added", now) {
		t.Fatal("a filter past its limit must send every lookup to the store")
	}
}
