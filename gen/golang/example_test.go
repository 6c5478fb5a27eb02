package golang_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/muninn-es/muninn/gen/golang"
	"github.com/muninn-es/muninn/gen/model"
)

// A model of one context, generated: the package's types, registry and
// decider (order_gen.go), the rules to fill in (rules.go, written once)
// and a test per scenario.
func ExampleGenerate() {
	src := `
name: shop
contexts:
  - name: Order
    aggregates:
      - name: Order
        id: order_id
        commands:
          - name: PlaceOrder
            fields: {customer_id: string, total_cents: decimal}
            emits: [Placed]
        events:
          - name: Placed
            fields: {customer_id: string, total_cents: decimal}
        scenarios:
          - name: place an order
            when: {PlaceOrder: {customer_id: ada, total_cents: 100}}
            then: [{Placed: {customer_id: ada, total_cents: 100}}]
`
	m, err := model.Parse("eventmodel.yaml", []byte(src))
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, err := os.MkdirTemp("", "gen")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	rep, err := golang.Generate(m, dir, golang.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("generated:", strings.Join(rep.Written, " "))
	fmt.Println("created:", strings.Join(rep.Created, " "))
	rules, _ := os.ReadFile(dir + "/order/rules.go")
	for _, line := range strings.Split(string(rules), "\n") {
		if strings.HasPrefix(line, "func decide") || strings.HasPrefix(line, "\treturn nil, notWritten") {
			fmt.Println(line)
		}
	}

	// Again: the generated files are rewritten, the rules kept.
	rep, _ = golang.Generate(m, dir, golang.Options{})
	fmt.Println("kept:", strings.Join(rep.Kept, " "))
	// Output:
	// generated: order/order_gen.go order/scenarios_gen_test.go
	// created: order/rules.go order/doc.go
	// func decidePlaceOrder(s Order, cmd PlaceOrder) ([]Event, error) {
	// 	return nil, notWritten("Order.PlaceOrder", "decidePlaceOrder")
	// kept: order/rules.go order/doc.go
}
