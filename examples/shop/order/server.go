// The hooks of the generated server (server_gen.go): written by hand,
// and never overwritten by muninn gen go, which wrote these defaults once.

package order

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/muninn-es/muninn/service"
)

// Bounds of a CancelOrder call's reason.
const (
	// DefaultCancelReason is the reason of a CancelOrder call without one.
	DefaultCancelReason = "cancelled by customer"
	// MaxCancelReasonLen is the longest reason, in bytes.
	MaxCancelReasonLen = 500
)

// newOrderID returns the order_id of the order that a PlaceOrder call
// without one creates: derived from the call's idempotency key when it has
// one ("ord-" and 24 hex digits of its SHA-256), so that a retry addresses
// the same order (and the bus returns its first result), else "ord-" and a
// new UUIDv7.
func newOrderID(ctx context.Context) (string, error) {
	if key := service.CallFrom(ctx).CommandID; key != "" {
		sum := sha256.Sum256([]byte(key))
		return "ord-" + hex.EncodeToString(sum[:12]), nil
	}
	id, err := newID()
	if err != nil {
		return "", err
	}
	return "ord-" + id, nil
}

// checkPlaceOrder validates a PlaceOrder call before it is dispatched, so
// that bad input costs no load of the aggregate (which validates again):
// the order ID (a caller may choose it), then the command (Validate). The
// error wraps a *FieldError naming the field.
func checkPlaceOrder(_ context.Context, id string, cmd *PlaceOrder) error {
	if err := ValidateID("order_id", id); err != nil {
		return err
	}
	_, err := cmd.Validate()
	return err
}

// checkCancelOrder validates a CancelOrder call and gives it the default
// reason, DefaultCancelReason, when it has none; a reason longer than
// MaxCancelReasonLen bytes is invalid.
func checkCancelOrder(_ context.Context, id string, cmd *CancelOrder) error {
	if err := ValidateID("order_id", id); err != nil {
		return err
	}
	if cmd.Reason == "" {
		cmd.Reason = DefaultCancelReason
	}
	if len(cmd.Reason) > MaxCancelReasonLen {
		return &FieldError{Field: "reason", Msg: fmt.Sprintf("%d bytes long, at most %d allowed", len(cmd.Reason), MaxCancelReasonLen)}
	}
	return nil
}
