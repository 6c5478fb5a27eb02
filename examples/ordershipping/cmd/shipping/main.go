// Command shipping is the shipping service of the ordershipping example: it
// consumes OrderPlaced events from NATS JetStream and appends a
// ShipmentScheduled event per order to its own log, which its relay
// publishes back.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/google/uuid"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/examples/ordershipping/events"
	"github.com/muninn-es/muninn/examples/ordershipping/node"
)

func main() {
	dir := flag.String("dir", "", "store directory (required)")
	natsURL := flag.String("nats", "nats://127.0.0.1:4222", "NATS JetStream URL")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "shipping: -dir is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *natsURL); err != nil {
		fmt.Fprintln(os.Stderr, "shipping:", err)
		os.Exit(1)
	}
}

// shipmentNamespace derives a shipment's ID from its order's, so that a
// redelivered OrderPlaced schedules the same shipment.
var shipmentNamespace = uuid.MustParse("a3c7e0f2-55a6-4c36-9f1e-3b1b2d6c7e01")

func run(ctx context.Context, dir, natsURL string) error {
	n, err := node.Open(ctx, "shipping", dir, natsURL, events.TopicShipments, events.TopicOrders)
	if err != nil {
		return err
	}
	defer n.Close()
	schedule := func(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) error {
		if rec.Type != events.TypeOrderPlaced {
			return nil
		}
		var placed events.OrderPlaced
		if err := json.Unmarshal(rec.Payload, &placed); err != nil {
			return fmt.Errorf("decode %s: %w", rec.Type, err)
		}
		shipmentID := uuid.NewSHA1(shipmentNamespace, []byte(placed.OrderID))
		payload, _ := json.Marshal(events.ShipmentScheduled{ShipmentID: shipmentID.String(), OrderID: placed.OrderID})
		// The append is outside the Txn, so it is made idempotent: one
		// stream per shipment, appended only if it does not exist yet. A
		// redelivered OrderPlaced meets the version conflict and goes on.
		_, err := n.Store.Append(ctx, events.TopicShipments, shipmentID.String(), eventstore.NoStream, []eventstore.Event{{
			ID: shipmentID, Type: events.TypeShipmentScheduled, Payload: payload,
			CorrelationID: rec.CorrelationID, CausationID: rec.ID.String(),
		}})
		if err != nil && !errors.Is(err, eventstore.ErrVersionConflict) {
			return err
		}
		// The service's own read model, exactly once with the dedup mark.
		return tx.Set([]byte("shipping/shipments/"+placed.OrderID), []byte(shipmentID.String()))
	}
	fmt.Println("shipping service ready")
	return n.Run(ctx, schedule, nil)
}
