package crashtest

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

var (
	childOnce sync.Once
	ackMu     sync.Mutex
)

// IsChild reports whether this process is the child that Start (or a
// Round) started to run the test t. A child test begins with it and
// returns when it reports false, so that it does nothing in an ordinary
// test run. When it reports true, it also schedules the child's own end:
// a child still running ChildLimit later fails (Fail).
func IsChild(t testing.TB) bool {
	if name := os.Getenv(childEnv); name == "" || name != t.Name() {
		return false
	}
	childOnce.Do(func() {
		time.AfterFunc(ChildLimit, func() { Fail("not killed within %v", ChildLimit) })
	})
	return true
}

// Ack writes one acknowledgement, a line formatted as by fmt.Sprintf, to
// the child's stdout in one write, so that the parent never reads half of
// one: a line the kill cuts short is not an acknowledgement. The line must
// not hold a newline. Ack is safe for concurrent use; write one only for
// an effect that is done (an append that has returned). It fails the child
// if stdout cannot be written.
func Ack(format string, args ...any) {
	line := fmt.Appendf([]byte(ackPrefix), format, args...)
	line = append(line, '\n')
	ackMu.Lock()
	defer ackMu.Unlock()
	if _, err := os.Stdout.Write(line); err != nil {
		Fail("write acknowledgement: %v", err)
	}
}

// Fail reports a failure of the child on its stderr, which the parent
// shows, and ends the child with exit status 3. It does not return.
func Fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "crash child %s: %s\n", os.Getenv(childEnv), fmt.Sprintf(format, args...))
	os.Exit(3)
}

// Arg returns the child's argument name (Child.Args). It fails the child
// if its parent did not set it.
func Arg(name string) string {
	v, ok := os.LookupEnv(argPrefix + name)
	if !ok {
		Fail("argument %q not set", name)
	}
	return v
}

// IntArg returns the child's argument name as an int. It fails the child
// if the argument is not set or not an integer.
func IntArg(name string) int {
	n, err := strconv.Atoi(Arg(name))
	if err != nil {
		Fail("argument %q: %v", name, err)
	}
	return n
}

// Uint64Arg returns the child's argument name as a uint64. It fails the
// child if the argument is not set or not an unsigned integer.
func Uint64Arg(name string) uint64 {
	n, err := strconv.ParseUint(Arg(name), 10, 64)
	if err != nil {
		Fail("argument %q: %v", name, err)
	}
	return n
}
