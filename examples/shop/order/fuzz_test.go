package order_test

import (
	"errors"
	"math/big"
	"testing"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/examples/shop/order"
)

// FuzzPlaceOrder checks PlaceOrder's validation on any input: it never
// panics, an error is always InvalidArgument naming a field, and an order
// it accepts has the exact total of its lines.
func FuzzPlaceOrder(f *testing.F) {
	f.Add("ada", "sku-1", int64(2), int64(1250), "sku-2", int64(1), int64(0), "card")
	f.Add("../etc", "a/b", int64(0), int64(-1), "", int64(-5), int64(1), "cash")
	f.Add("客户", "s", int64(order.MaxQuantity), int64(1<<62), "t", int64(1), int64(1<<62), "card_timeout")
	f.Fuzz(func(t *testing.T, customer, sku1 string, q1, p1 int64, sku2 string, q2, p2 int64, method string) {
		cmd := order.PlaceOrder{CustomerID: customer, PaymentMethod: method, Items: []order.Item{
			{SKU: sku1, Quantity: q1, UnitPriceCents: p1}, {SKU: sku2, Quantity: q2, UnitPriceCents: p2},
		}}
		total, err := cmd.Validate()
		if err != nil {
			var fe *order.FieldError
			if !errors.Is(err, command.ErrInvalidArgument) || !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("Validate: %v, want InvalidArgument naming a field", err)
			}
			return
		}
		want := new(big.Int).Mul(big.NewInt(q1), big.NewInt(p1))
		want.Add(want, new(big.Int).Mul(big.NewInt(q2), big.NewInt(p2)))
		if !want.IsInt64() || want.Int64() != total {
			t.Fatalf("Validate: total %d, want %s", total, want)
		}
	})
}
