package aggregatetest_test

import (
	"fmt"
	"testing"

	"github.com/muninn-es/muninn/aggregate/aggregatetest"
)

// printTB stands in for the *testing.T of a real test, printing what the
// fixture reports.
type printTB struct{ testing.TB }

func (printTB) Helper()                           {}
func (printTB) Errorf(format string, args ...any) { fmt.Printf(format+"\n", args...) }
func (printTB) Fatalf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// A scenario that passes prints nothing; one that fails shows the expected
// and actual events as a diff. In a test, pass t to For.
func Example() {
	var t testing.TB = printTB{}
	f := aggregatetest.For(t, account(t))

	f.Given(Opened{}).When(Deposit{5}).Then(Deposited{5})
	f.Given(Opened{}, Deposited{5}).When(Withdraw{7}).ThenError(errInsufficient)

	// A wrong expectation:
	f.Given(Opened{}, Deposited{10}).When(Withdraw{3}).Then(Withdrawn{4})
	// Output:
	// aggregatetest: account: given 2 event(s), when aggregatetest_test.Withdraw{"Amount":3}:
	// events differ (- want, + got):
	//   - account.withdrawn aggregatetest_test.Withdrawn{"Amount":4}
	//   + account.withdrawn aggregatetest_test.Withdrawn{"Amount":3}
}
