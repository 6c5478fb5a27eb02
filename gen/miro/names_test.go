package miro

import "testing"

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"Order placed": "OrderPlaced", "OrderPlaced": "OrderPlaced", "place order": "PlaceOrder",
		"Customer's order": "CustomersOrder", "SKU reserved": "SKUReserved", "  ": "", "2FA enabled": "",
		"HTTPServer started": "HTTPServerStarted", "Payment – captured!": "PaymentCaptured",
	} {
		if got := typeName(in); got != want {
			t.Errorf("typeName(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"Customer ID": "customer_id", "customerId": "customer_id", "total_cents": "total_cents", "unit price": "unit_price", "": "",
	} {
		if got := fieldName(in); got != want {
			t.Errorf("fieldName(%q) = %q, want %q", in, got, want)
		}
	}
}
