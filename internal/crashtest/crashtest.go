// Package crashtest runs Muninn's crash tests: tests that kill a process
// with SIGKILL while it works on a store in a directory, then reopen the
// store and check that everything the process acknowledged survived, and
// nothing half-done is visible.
//
// A crash test is two test functions of one package. The child does the
// work and acknowledges each durable effect with a line on its stdout; it
// does nothing unless this package started it:
//
//	func TestCrashChild(t *testing.T) {
//		if !crashtest.IsChild(t) {
//			return
//		}
//		s, err := eventstore.Open(crashtest.Arg("dir"))
//		if err != nil {
//			crashtest.Fail("open: %v", err)
//		}
//		for n := 0; ; n++ {
//			// ... append durably, then:
//			crashtest.Ack("appended %d", n)
//		}
//	}
//
// The parent runs the child in rounds on one directory. Each Round
// re-executes the test binary to run the child alone, collects its
// acknowledgements, kills it (after Arm acknowledgements and then
// KillAfter, a moment the test picks at random), checks that SIGKILL is
// what ended it, and returns what it acknowledged; the parent then opens
// the directory and checks:
//
//	seed := crashtest.Seed(t)
//	rng := rand.New(rand.NewPCG(seed, 0))
//	for round := 1; round <= 12; round++ {
//		res := crashtest.Round{
//			Child:     crashtest.Child{Test: "TestCrashChild", Args: map[string]string{"dir": dir}},
//			Arm:       1,
//			KillAfter: time.Duration(rng.IntN(400)) * time.Millisecond,
//		}.Run(t)
//		verify(t, dir, res.Acks)
//	}
//
// Start and Process are the same machinery for a parent that works beside
// a live child before it kills it (WaitAcks, then Kill), or lets it end
// (Wait).
//
// Every wait of the harness is for a condition (a number of
// acknowledgements, the child's end), bounded by Timeout, after which the
// test fails with the child's stderr. The only sleep is KillAfter, which
// chooses where the crash lands and never decides a result. A child that
// is still running ChildLimit after it started fails on its own, so that a
// parent that died leaves nothing behind.
//
// Seed gives every crash test one seed, logged and taken from
// MUNINN_CRASH_SEED when set, so that a failing run can be repeated as far
// as the scheduler allows.
package crashtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SeedEnv is the environment variable that Seed reads.
const SeedEnv = "MUNINN_CRASH_SEED"

// Timeout bounds each wait of a parent: for the acknowledgements a Round
// arms at (or WaitAcks wants), for a killed child to be gone, for a child
// to end on its own. It is generous: a crash test fails on it only when
// something hangs.
const Timeout = time.Minute

// ChildLimit is how long a child runs before it fails on its own (exit
// status 3, "not killed within ..."): longer than any wait of its parent.
const ChildLimit = 2 * Timeout

const (
	childEnv  = "MUNINN_CRASHTEST_CHILD"
	argPrefix = "MUNINN_CRASHTEST_ARG_"
	// ackPrefix marks the lines of Ack, so that anything else the child
	// prints (the testing package's PASS, a stray Println) is not taken
	// for an acknowledgement.
	ackPrefix = "crashtest-ack "
)

// Seed returns the seed of a crash test: the value of MUNINN_CRASH_SEED if
// it is set, or else one taken from the clock. It logs the seed with the
// way to run the test again with it, and fails t if MUNINN_CRASH_SEED is
// not a number.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed, err := seedFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d (rerun with %s=%d)", seed, SeedEnv, seed)
	return seed
}

func seedFromEnv() (uint64, error) {
	v := os.Getenv(SeedEnv)
	if v == "" {
		return uint64(time.Now().UnixNano()), nil
	}
	seed, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("crashtest: %s=%q is not an unsigned integer: %w", SeedEnv, v, err)
	}
	return seed, nil
}

// Child is a child process to start: this test binary again, running one
// test function alone.
type Child struct {
	// Test is the name of the top-level test function the child runs, one
	// that begins with `if !crashtest.IsChild(t) { return }`.
	Test string
	// Args are the child's arguments, by name; the child reads them with
	// Arg, IntArg and Uint64Arg. They travel in its environment.
	Args map[string]string
	// OnAck, if set, is called with each acknowledgement as it arrives, in
	// order, from one goroutine. An error it returns (a malformed line,
	// say) fails the test when the child has ended; later lines are still
	// read.
	OnAck func(line string) error
}

// Process is a running child. Its methods fail the test they were started
// with (t.Fatal, with the child's stderr) when the child does not do what
// they wait for; they must be called from that test's goroutine.
type Process struct {
	t       testing.TB
	test    string
	cmd     *exec.Cmd
	stderr  syncBuffer
	timeout time.Duration

	// done is closed once the child has ended and all of its stdout has
	// been read; cmd.ProcessState is set then.
	done chan struct{}

	mu struct {
		sync.Mutex
		acks []string
		// other holds the last lines of stdout that were not
		// acknowledgements, for failure messages.
		other  []string
		ackErr error
		// more is closed, and replaced, whenever an acknowledgement
		// arrives.
		more chan struct{}
	}
}

var testName = regexp.MustCompile(`^Test[A-Za-z0-9_]*$`)

// Start starts c's test as a child process and returns it. The child is
// killed, if it still runs, when t's test ends. Start fails t if the child
// cannot be started.
func Start(t testing.TB, c Child) *Process {
	t.Helper()
	p, err := start(t, c, Timeout)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func start(t testing.TB, c Child, timeout time.Duration) (*Process, error) {
	if !testName.MatchString(c.Test) {
		return nil, fmt.Errorf("crashtest: child test %q is not the name of a top-level test function", c.Test)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("crashtest: the test binary: %w", err)
	}
	cmd := exec.Command(exe, "-test.run=^"+c.Test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+c.Test)
	if _, ok := os.LookupEnv("GORACE"); !ok {
		// A binary built with -race sleeps a second before it exits
		// unless told otherwise; a child that ends on its own need not.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	for name, v := range c.Args {
		if name == "" || strings.ContainsAny(name, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("crashtest: child argument %q=%q cannot travel in the environment", name, v)
		}
		cmd.Env = append(cmd.Env, argPrefix+name+"="+v)
	}
	p := &Process{t: t, test: c.Test, cmd: cmd, timeout: timeout, done: make(chan struct{})}
	p.mu.more = make(chan struct{})
	cmd.Stderr = &p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("crashtest: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("crashtest: start child %s: %w", c.Test, err)
	}
	go p.read(stdout, c.OnAck)
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p, nil
}

// read reads the child's stdout to its end, then reaps the child.
func (p *Process) read(stdout io.Reader, onAck func(string) error) {
	defer close(p.done)
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			// A last line without its newline was cut by the kill: the
			// child had not finished saying it, so it is no
			// acknowledgement.
			break
		}
		line = strings.TrimSuffix(line, "\n")
		ack, isAck := strings.CutPrefix(line, ackPrefix)
		if !isAck {
			p.mu.Lock()
			if p.mu.other = append(p.mu.other, line); len(p.mu.other) > 20 {
				p.mu.other = p.mu.other[1:]
			}
			p.mu.Unlock()
			continue
		}
		var ackErr error
		if onAck != nil {
			ackErr = onAck(ack)
		}
		p.mu.Lock()
		p.mu.acks = append(p.mu.acks, ack)
		if ackErr != nil && p.mu.ackErr == nil {
			p.mu.ackErr = fmt.Errorf("acknowledgement %d %q: %w", len(p.mu.acks), ack, ackErr)
		}
		close(p.mu.more)
		p.mu.more = make(chan struct{})
		p.mu.Unlock()
	}
	_ = p.cmd.Wait() // the exit status is in cmd.ProcessState
}

// Acks returns the acknowledgements the child has written so far.
func (p *Process) Acks() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.mu.acks...)
}

// Exited returns a channel that is closed once the child has ended and all
// it wrote has been read.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Stderr returns what the child has written to its stderr so far.
func (p *Process) Stderr() string { return p.stderr.String() }

// WaitAcks waits until the child has written n acknowledgements and
// returns those written so far. It fails the test if the child ends first
// or n have not come within Timeout.
func (p *Process) WaitAcks(n int) []string {
	p.t.Helper()
	if err := p.waitAcks(n); err != nil {
		p.t.Fatal(err)
	}
	return p.Acks()
}

func (p *Process) waitAcks(n int) error {
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		got, more := len(p.mu.acks), p.mu.more
		p.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-more:
		case <-p.done:
			if len(p.Acks()) >= n {
				return nil
			}
			return p.failure("ended after %d of the %d acknowledgements waited for, before it was killed: %v",
				len(p.Acks()), n, p.cmd.ProcessState)
		case <-timer.C:
			return p.failure("wrote %d of the %d acknowledgements waited for within %v", got, n, p.timeout)
		}
	}
}

// Kill kills the child with SIGKILL, waits until it is gone and everything
// it wrote is read, and returns its acknowledgements. It fails the test if
// the child had already ended, if anything but SIGKILL ended it, or if
// OnAck returned an error.
func (p *Process) Kill() []string {
	p.t.Helper()
	if err := p.kill(); err != nil {
		p.t.Fatal(err)
	}
	return p.Acks()
}

func (p *Process) kill() error {
	select {
	case <-p.done:
		return p.failure("ended before it was killed: %v", p.cmd.ProcessState)
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return p.failure("kill: %v", err)
	}
	if err := p.waitDone(); err != nil {
		return err
	}
	if err := killedBySIGKILL(p.cmd.ProcessState); err != nil {
		return p.failure("%v", err)
	}
	return p.ackError()
}

// Wait waits for the child to end on its own and returns its
// acknowledgements. It fails the test unless the child exits with status 0
// within Timeout, or if OnAck returned an error.
func (p *Process) Wait() []string {
	p.t.Helper()
	if err := p.wait(); err != nil {
		p.t.Fatal(err)
	}
	return p.Acks()
}

func (p *Process) wait() error {
	if err := p.waitDone(); err != nil {
		return err
	}
	if !p.cmd.ProcessState.Success() {
		return p.failure("ended with %v", p.cmd.ProcessState)
	}
	return p.ackError()
}

// waitDone waits, at most Timeout, for the child to be gone; after that
// it kills it.
func (p *Process) waitDone() error {
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return p.failure("did not end within %v", p.timeout)
	}
}

func (p *Process) ackError() error {
	p.mu.Lock()
	err := p.mu.ackErr
	p.mu.Unlock()
	if err != nil {
		return p.failure("%v", err)
	}
	return nil
}

// failure is an error about the child, with its stderr and its other
// output.
func (p *Process) failure(format string, args ...any) error {
	var b strings.Builder
	fmt.Fprintf(&b, "crash child %s: ", p.test)
	fmt.Fprintf(&b, format, args...)
	if s := p.Stderr(); s != "" {
		fmt.Fprintf(&b, "\nstderr:\n%s", s)
	}
	p.mu.Lock()
	other := p.mu.other
	p.mu.Unlock()
	if len(other) > 0 {
		fmt.Fprintf(&b, "\nstdout (last lines that are no acknowledgement):\n%s", strings.Join(other, "\n"))
	}
	return errors.New(b.String())
}

// killedBySIGKILL returns nil if SIGKILL ended the process of st, and an
// error saying how it ended otherwise.
func killedBySIGKILL(st *os.ProcessState) error {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return nil
	}
	return fmt.Errorf("was not killed by SIGKILL but ended with %v", st)
}

// Round is one life of a child that is killed: it starts, is armed once it
// has written Arm acknowledgements, and is killed KillAfter later.
type Round struct {
	Child
	// Arm is how many acknowledgements the child writes before the kill
	// is scheduled; with 0, it is scheduled when the child starts.
	Arm int
	// KillAfter is how long after it is armed the child is killed: where
	// the crash lands, chosen by the test (at random, from its Seed), never
	// a wait for a result. With 0 the child is killed as soon as it is
	// armed.
	KillAfter time.Duration
	// MayFinish lets the child end on its own, with exit status 0, before
	// it is killed; without it, that fails the test.
	MayFinish bool
}

// Result is what a Round's child did.
type Result struct {
	// Acks are the child's acknowledgements, in the order it wrote them:
	// every line it finished writing before it died.
	Acks []string
	// Killed reports whether the child was killed (with SIGKILL); it is
	// false only with MayFinish, for a child that ended on its own.
	Killed bool
}

// Run runs the round: it starts the child, waits for Arm
// acknowledgements, waits KillAfter, kills the child with SIGKILL, checks
// that SIGKILL ended it, and returns what it acknowledged. It fails t
// (with the child's stderr) if the child ends before it is killed (unless
// MayFinish and with status 0), does not write Arm acknowledgements
// within Timeout, is ended by anything but SIGKILL, or if OnAck returns an
// error.
func (r Round) Run(t testing.TB) Result {
	t.Helper()
	res, err := r.run(t, Timeout)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (r Round) run(t testing.TB, timeout time.Duration) (Result, error) {
	p, err := start(t, r.Child, timeout)
	if err != nil {
		return Result{}, err
	}
	finished := func() (Result, error) {
		if err := p.wait(); err != nil {
			return Result{}, err
		}
		return Result{Acks: p.Acks()}, nil
	}
	if err := p.waitAcks(r.Arm); err != nil {
		if r.MayFinish && p.exited() {
			return finished()
		}
		return Result{}, err
	}
	timer := time.NewTimer(r.KillAfter)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-p.done:
		if r.MayFinish {
			return finished()
		}
		return Result{}, p.failure("ended before it was killed: %v", p.cmd.ProcessState)
	}
	if err := p.kill(); err != nil {
		if r.MayFinish && p.exited() && p.cmd.ProcessState.Success() {
			return finished() // it ended on its own as it was killed
		}
		return Result{}, err
	}
	return Result{Acks: p.Acks(), Killed: true}, nil
}

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// syncBuffer is a bytes.Buffer that the goroutine copying the child's
// stderr writes to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
