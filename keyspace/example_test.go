package keyspace_test

import (
	"fmt"

	"github.com/muninn-es/muninn/keyspace"
)

// A consumer of your own keeps its records under the App owner. Keys built
// from one prefix sort by their elements, and read back element by element.
func Example() {
	orders := keyspace.New(keyspace.App, "order-totals")
	k := orders.String("customer-7").Uint(42)
	fmt.Println(keyspace.Format(k))

	r, _ := keyspace.Read(k, orders)
	customer, _ := r.String()
	n, _ := r.Uint()
	fmt.Println(customer, n)

	lower, upper := orders.Range() // every key of the consumer, for Scan
	fmt.Println(len(lower) > 0, upper != nil)
	// Output:
	// ("app", "order-totals", "customer-7", 42)
	// customer-7 42
	// true true
}
