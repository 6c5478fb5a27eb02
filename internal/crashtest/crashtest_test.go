package crashtest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestChildCounts is the child of most tests here: it acknowledges "g n"
// from Arg("writers") goroutines, n counting up per goroutine, until it is
// killed, or, with Arg("stop") > 0, until each goroutine has written that
// many; then it ends with status 0 (or Arg("exit")).
func TestChildCounts(t *testing.T) {
	if !IsChild(t) {
		return
	}
	writers, stop := IntArg("writers"), IntArg("stop")
	fmt.Println("some output that is no acknowledgement")
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for n := 0; stop == 0 || n < stop; n++ {
				Ack("%d %d", g, n)
			}
		})
	}
	wg.Wait()
	if code := IntArg("exit"); code != 0 {
		Fail("asked to fail with %d", code)
	}
	// Returning lets the testing package print PASS and exit with 0.
}

// TestChildArgs acknowledges its arguments, then blocks until it is
// killed.
func TestChildArgs(t *testing.T) {
	if !IsChild(t) {
		return
	}
	Ack("%s|%d|%d", Arg("s"), IntArg("i"), Uint64Arg("u"))
	select {}
}

// TestChildSilent never acknowledges anything.
func TestChildSilent(t *testing.T) {
	if !IsChild(t) {
		return
	}
	fmt.Fprintln(os.Stderr, "silent child on stderr")
	select {}
}

func counts(writers, stop, exit int) Child {
	return Child{Test: "TestChildCounts", Args: map[string]string{
		"writers": strconv.Itoa(writers), "stop": strconv.Itoa(stop), "exit": strconv.Itoa(exit),
	}}
}

// checkCounts checks that acks are whole "g n" lines, each goroutine's in
// order from 0 without a gap, and returns how many there are.
func checkCounts(t *testing.T, acks []string, writers int) int {
	t.Helper()
	next := make([]int, writers)
	for i, a := range acks {
		var g, n int
		if _, err := fmt.Sscanf(a, "%d %d", &g, &n); err != nil || g < 0 || g >= writers {
			t.Fatalf("acknowledgement %d is %q: %v", i, a, err)
		}
		if n != next[g] {
			t.Fatalf("acknowledgement %d is %q; goroutine %d's next is %d", i, a, g, next[g])
		}
		next[g]++
	}
	return len(acks)
}

func TestRoundKillsAfterArm(t *testing.T) {
	for _, arm := range []int{0, 1, 500} {
		res := Round{Child: counts(4, 0, 0), Arm: arm}.Run(t)
		if !res.Killed {
			t.Fatalf("arm %d: not killed", arm)
		}
		if n := checkCounts(t, res.Acks, 4); n < arm {
			t.Fatalf("arm %d: killed after %d acknowledgements", arm, n)
		}
	}
}

func TestRoundKillsAfterDelay(t *testing.T) {
	res := Round{Child: counts(2, 0, 0), Arm: 1, KillAfter: 20 * time.Millisecond}.Run(t)
	if !res.Killed || checkCounts(t, res.Acks, 2) < 1 {
		t.Fatalf("killed %v with %d acknowledgements", res.Killed, len(res.Acks))
	}
}

func TestRoundStreamsToOnAck(t *testing.T) {
	var seen []string
	c := counts(3, 0, 0)
	c.OnAck = func(line string) error {
		seen = append(seen, line)
		return nil
	}
	res := Round{Child: c, Arm: 100}.Run(t)
	if strings.Join(seen, "\n") != strings.Join(res.Acks, "\n") {
		t.Fatalf("OnAck saw %d lines, the result holds %d", len(seen), len(res.Acks))
	}
}

func TestRoundMayFinish(t *testing.T) {
	// Armed after 3 of 4 goroutines' 10 lines: the child finishes before
	// an hour is up.
	res := Round{Child: counts(4, 10, 0), Arm: 3, KillAfter: time.Hour, MayFinish: true}.Run(t)
	if res.Killed {
		t.Fatal("a child that finished is reported killed")
	}
	if n := checkCounts(t, res.Acks, 4); n != 40 {
		t.Fatalf("%d acknowledgements, want 40", n)
	}
	// Armed at more acknowledgements than it writes: it finishes first.
	res = Round{Child: counts(1, 5, 0), Arm: 10, MayFinish: true}.Run(t)
	if res.Killed || len(res.Acks) != 5 {
		t.Fatalf("killed %v with %d acknowledgements; want a finished child with 5", res.Killed, len(res.Acks))
	}
}

func TestArgs(t *testing.T) {
	p := Start(t, Child{Test: "TestChildArgs", Args: map[string]string{"s": "a b=c", "i": "-7", "u": "18446744073709551615"}})
	acks := p.WaitAcks(1)
	if want := "a b=c|-7|18446744073709551615"; acks[0] != want {
		t.Fatalf("child acknowledged %q, want %q", acks[0], want)
	}
	if got := p.Kill(); len(got) != 1 {
		t.Fatalf("%d acknowledgements, want 1", len(got))
	}
}

// TestFailures checks that each way a child can misbehave is an error that
// says so, with the child's stderr.
func TestFailures(t *testing.T) {
	bad := errors.New("malformed")
	onAck := counts(1, 0, 0)
	onAck.OnAck = func(line string) error {
		if line == "0 3" {
			return bad
		}
		return nil
	}
	for _, tc := range []struct {
		name    string
		round   Round
		timeout time.Duration
		want    []string
	}{
		{"ends before armed", Round{Child: counts(1, 2, 3), Arm: 5}, Timeout,
			[]string{"ended after 2 of the 5", "exit status 3", "asked to fail with 3"}},
		{"finishes before killed", Round{Child: counts(1, 2, 0), Arm: 1, KillAfter: time.Hour}, Timeout,
			[]string{"ended before it was killed", "exit status 0", "some output that is no acknowledgement"}},
		{"fails though it may finish", Round{Child: counts(1, 2, 4), Arm: 1, KillAfter: time.Hour, MayFinish: true}, Timeout,
			[]string{"ended with exit status 3", "asked to fail with 4"}},
		{"OnAck error", Round{Child: onAck, Arm: 10}, Timeout,
			[]string{`acknowledgement 4 "0 3": malformed`}},
		{"not a test name", Round{Child: Child{Test: "TestX/sub"}}, Timeout,
			[]string{"not the name of a top-level test"}},
		{"bad argument", Round{Child: Child{Test: "TestChildSilent", Args: map[string]string{"a=b": ""}}}, Timeout,
			[]string{"cannot travel in the environment"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.round.run(t, tc.timeout)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if tc.name == "OnAck error" && !errors.Is(err, bad) && !strings.Contains(err.Error(), bad.Error()) {
				t.Errorf("error does not carry OnAck's: %v", err)
			}
		})
	}
}

// TestNeverArmed checks that a wait for acknowledgements that never come
// times out with an error that says so and carries the child's stderr. The
// short wait starts only once the child has written to stderr, so that a
// slow start on a loaded machine cannot leave stderr empty at the timeout.
func TestNeverArmed(t *testing.T) {
	short := 300 * time.Millisecond // a wait that must time out: the child never acknowledges
	p, err := start(t, Child{Test: "TestChildSilent"}, short)
	if err != nil {
		t.Fatal(err)
	}
	const line = "silent child on stderr"
	deadline := time.Now().Add(Timeout)
	for !strings.Contains(p.Stderr(), line) {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("the silent child did not write %q to stderr (exited %v): %q", line, p.exited(), p.Stderr())
		}
		time.Sleep(time.Millisecond)
	}
	err = p.waitAcks(1)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"wrote 0 of the 1 acknowledgements waited for within 300ms", line} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q:\n%v", w, err)
		}
	}
}

func TestKilledBySIGKILL(t *testing.T) {
	p := Start(t, counts(1, 1, 0))
	p.Wait()
	if err := killedBySIGKILL(p.cmd.ProcessState); err == nil || !strings.Contains(err.Error(), "exit status 0") {
		t.Errorf("a child that exited: %v; want an error naming its exit status", err)
	}
	p = Start(t, counts(1, 0, 0))
	p.WaitAcks(1)
	p.Kill()
	if err := killedBySIGKILL(p.cmd.ProcessState); err != nil {
		t.Errorf("a killed child: %v", err)
	}
}

func TestIsChild(t *testing.T) {
	if IsChild(t) {
		t.Fatal("IsChild in a parent")
	}
	t.Setenv(childEnv, "TestOther")
	if IsChild(t) {
		t.Fatal("IsChild for a test that is not the child's")
	}
}

func TestSeed(t *testing.T) {
	t.Setenv(SeedEnv, "42")
	if got := Seed(t); got != 42 {
		t.Errorf("Seed with %s=42: %d", SeedEnv, got)
	}
	t.Setenv(SeedEnv, "-1")
	if _, err := seedFromEnv(); err == nil || !strings.Contains(err.Error(), SeedEnv) {
		t.Errorf("seed from %s=-1: %v; want an error naming it", SeedEnv, err)
	}
	t.Setenv(SeedEnv, "")
	if _, err := seedFromEnv(); err != nil {
		t.Errorf("seed without %s: %v", SeedEnv, err)
	}
}
