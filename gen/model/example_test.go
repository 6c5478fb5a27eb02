package model_test

import (
	"fmt"

	"github.com/muninn-es/muninn/gen/model"
)

func Example() {
	src := []byte(`name: shop
contexts:
  - name: Order
    aggregates:
      - name: Order
        id: order_id
        commands:
          - name: PlaceOrder
            fields: {customer_id: string, total: decimal}
            emits: [OrderPlaced]
          - name: PayOrder
        events:
          - name: OrderPlaced
            fields: {customer_id: string, total: decimal}
    read_models:
      - name: Orders
        key: order_id
        fields: {order_id: string, total: decimal}
        from: [OrderPlaced, OrderShipped]
`)
	m, err := model.Parse("eventmodel.yaml", src)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Context("Order").Command("PlaceOrder").Fields.Field("total").Type)
	// Every problem at once, with file:line.
	fmt.Println(model.Validate(m))
	// Output:
	// decimal
	// eventmodel.yaml:11: command PayOrder: emits nothing (list the events it may emit under emits)
	// eventmodel.yaml:16: read model Orders: from: unknown event "OrderShipped" in context Order (name another context's as Context.OrderShipped)
}
