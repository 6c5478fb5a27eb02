package aggregatetest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/aggregate/aggregatetest"
)

// A small account aggregate.

type Account struct {
	Open    bool
	Balance int
	secret  int // lost by a JSON snapshot
}

type AccountCommand interface{ isCmd() }
type OpenAccount struct{}
type Deposit struct{ Amount int }
type Withdraw struct{ Amount int }

func (OpenAccount) isCmd() {}
func (Deposit) isCmd()     {}
func (Withdraw) isCmd()    {}

type AccountEvent interface{ isEvent() }
type Opened struct{}
type Deposited struct{ Amount int }
type Withdrawn struct{ Amount int }
type Audited struct{} // not registered

func (Opened) isEvent()    {}
func (Deposited) isEvent() {}
func (Withdrawn) isEvent() {}
func (Audited) isEvent()   {}

var (
	errClosed       = errors.New("account is not open")
	errInsufficient = errors.New("insufficient funds")
)

func account(t testing.TB, opts ...aggregate.Option) *aggregate.Aggregate[Account, AccountCommand, AccountEvent] {
	t.Helper()
	events, err := aggregate.NewEvents[AccountEvent](
		aggregate.Type[Opened]("account.opened"),
		aggregate.Type[Deposited]("account.deposited"),
		aggregate.Type[Withdrawn]("account.withdrawn"),
	)
	if err != nil {
		t.Fatal(err)
	}
	a, err := aggregate.New("account", aggregate.Decider[Account, AccountCommand, AccountEvent]{
		Decide: func(s Account, c AccountCommand) ([]AccountEvent, error) {
			switch c := c.(type) {
			case OpenAccount:
				return []AccountEvent{Opened{}}, nil
			case Deposit:
				if !s.Open {
					return nil, errClosed
				}
				if c.Amount == 13 { // a bug: an event nobody registered
					return []AccountEvent{Deposited{c.Amount}, Audited{}}, nil
				}
				return []AccountEvent{Deposited{c.Amount}}, nil
			case Withdraw:
				if c.Amount > s.Balance {
					return nil, fmt.Errorf("%w: balance %d, asked %d", errInsufficient, s.Balance, c.Amount)
				}
				return []AccountEvent{Withdrawn{c.Amount}}, nil
			}
			return nil, nil
		},
		Evolve: func(s Account, e AccountEvent) Account {
			switch e := e.(type) {
			case Opened:
				s.Open = true
			case Deposited:
				s.Balance += e.Amount
				s.secret++
			case Withdrawn:
				s.Balance -= e.Amount
			}
			return s
		},
	}, events, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestScenariosPass(t *testing.T) {
	f := aggregatetest.For(t, account(t))
	f.Given().When(OpenAccount{}).Then(Opened{})
	f.Given(Opened{}).When(Deposit{5}).Then(Deposited{5}).ThenState(Account{Open: true, Balance: 5, secret: 1})
	f.Given(Opened{}, Deposited{5}).When(Withdraw{7}).ThenError(errInsufficient)
	f.Given().When(Deposit{1}).ThenErrorMatches("account closed", func(err error) bool { return err == errClosed })
	f.Given(Opened{}).When(Withdraw{0}).Then(Withdrawn{0})
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	msgs  []string
	fatal bool
}

type stop struct{}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	r.fatal = true
	panic(stop{})
}

// run runs scenario against a recorder and returns what it reported.
func run(t *testing.T, scenario func(tb testing.TB)) string {
	t.Helper()
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(stop); !ok {
					panic(p)
				}
			}
		}()
		scenario(r)
	}()
	return strings.Join(r.msgs, "\n")
}

func TestFailuresAreReadable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		scenario func(tb testing.TB)
		want     []string
	}{
		{"different events", func(tb testing.TB) {
			aggregatetest.For(tb, account(t)).Given(Opened{}, Deposited{10}).When(Withdraw{3}).Then(Withdrawn{4})
		}, []string{
			"aggregatetest: account: given 2 event(s), when aggregatetest_test.Withdraw{\"Amount\":3}",
			"events differ (- want, + got):",
			"  - account.withdrawn aggregatetest_test.Withdrawn{\"Amount\":4}",
			"  + account.withdrawn aggregatetest_test.Withdrawn{\"Amount\":3}",
		}},
		{"missing event", func(tb testing.TB) {
			aggregatetest.For(tb, account(t)).Given(Opened{}).When(Deposit{1}).Then(Deposited{1}, Withdrawn{1})
		}, []string{
			"    account.deposited aggregatetest_test.Deposited{\"Amount\":1}",
			"  - account.withdrawn aggregatetest_test.Withdrawn{\"Amount\":1}",
		}},
		{"error instead of events", func(tb testing.TB) {
			aggregatetest.For(tb, account(t)).Given().When(Deposit{1}).Then(Deposited{1})
		}, []string{"want 1 event(s), got error: account is not open", "account.deposited"}},
		{"events instead of error", func(tb testing.TB) {
			aggregatetest.For(tb, account(t)).Given(Opened{}).When(Deposit{1}).ThenError(errClosed)
		}, []string{"want error account is not open, got 1 event(s)", "account.deposited"}},
		{"other error", func(tb testing.TB) {
			aggregatetest.For(tb, account(t)).Given(Opened{}).When(Withdraw{1}).ThenError(errClosed)
		}, []string{"want error matching account is not open", "got error insufficient funds"}},
		{"state", func(tb testing.TB) {
			aggregatetest.For(tb, account(t)).Given(Opened{}).When(Deposit{2}).ThenState(Account{Open: true, Balance: 3})
		}, []string{"state differs", `want aggregatetest_test.Account{"Open":true,"Balance":3}`, `got aggregatetest_test.Account{"Open":true,"Balance":2}`}},
		{"unregistered event produced", func(tb testing.TB) {
			aggregatetest.For(tb, account(t)).Given(Opened{}).When(Deposit{13}).Then(Deposited{13}, Audited{})
		}, []string{"produced event 2", "<unregistered aggregatetest_test.Audited>", "unknown event type"}},
		{"unregistered event given", func(tb testing.TB) {
			aggregatetest.For(tb, account(t)).Given(Audited{}).When(Deposit{1}).Then()
		}, []string{"given event 1", "unknown event type"}},
		{"state lost by the snapshot codec", func(tb testing.TB) {
			aggregatetest.For(tb, account(t, aggregate.WithSnapshots(10))).Given(Opened{}).When(Deposit{1}).Then(Deposited{1})
		}, []string{"does not survive a snapshot", "unexported fields"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := run(t, tc.scenario)
			if out == "" {
				t.Fatal("the scenario did not fail")
			}
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
