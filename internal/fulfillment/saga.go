package fulfillment

import (
	"fmt"
	"time"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/saga"
)

// SagaName is the name of the order fulfillment saga.
const SagaName = "order-fulfillment"

// PaymentTimeout is how long the saga waits for a payment to be captured
// or declined before it gives the order up.
const PaymentTimeout = 15 * time.Minute

// Fulfillment is the state of one order's fulfillment workflow.
type Fulfillment struct {
	OrderID string `json:"order_id"`
	SKU     string `json:"sku"`
	Qty     int    `json:"qty"`
	Amount  int64  `json:"amount"`
	Address string `json:"address"`
	// Paid and Shipped record the steps seen done.
	Paid    bool `json:"paid"`
	Shipped bool `json:"shipped"`
	// Outcome is "completed" or why the order was cancelled.
	Outcome string `json:"outcome,omitempty"`
}

// PaymentTimedOut is the timeout message of PaymentTimeout.
type PaymentTimedOut struct {
	OrderID string `json:"order_id"`
}

// Saga defines the order fulfillment workflow across the four contexts:
//
//   - order.placed starts it: it reserves the stock (compensated by
//     releasing it), captures the payment, and gives the payment
//     PaymentTimeout to answer;
//   - payment.captured: the payment is done (compensated by a refund);
//     it schedules the shipment;
//   - shipment.scheduled: it completes the order;
//   - order.completed: the workflow is complete.
//
// A declined payment, a payment that does not answer in time, or a
// shipment that is rejected (no address) fails the workflow: the stock is
// released and the payment refunded (whichever were done, newest first)
// and the order is cancelled with the reason.
func Saga() *saga.Definition[Fulfillment] {
	d := saga.Define[Fulfillment](SagaName, OrdersTopic, PaymentsTopic, ShipmentsTopic)
	saga.Command[ReserveStock](d, "stock.reserve")
	saga.Command[ReleaseStock](d, "stock.release")
	saga.Command[CapturePayment](d, "payment.capture")
	saga.Command[RefundPayment](d, "payment.refund")
	saga.Command[ScheduleShipment](d, "shipment.schedule")
	saga.Command[CompleteOrder](d, "order.complete")
	saga.Command[CancelOrder](d, "order.cancel")

	saga.StartOn(d, "order.placed", saga.RecordKey[OrderPlaced], func(s *saga.Step[Fulfillment], e OrderPlaced) error {
		id := s.Key()
		s.State = Fulfillment{OrderID: id, SKU: e.SKU, Qty: e.Qty, Amount: e.Total, Address: e.Address}
		if e.Qty > 0 {
			s.Send(e.SKU, ReserveStock{OrderID: id, Qty: e.Qty}, saga.CompensateWith(e.SKU, ReleaseStock{OrderID: id}))
		}
		s.Send(id, CapturePayment{OrderID: id, Amount: e.Total})
		s.Schedule("payment-timeout", s.Now().Add(PaymentTimeout), PaymentTimedOut{OrderID: id})
		return nil
	})
	byOrder := func(_ eventstore.Record, orderID string) string { return orderID }
	saga.On(d, "payment.captured", func(r eventstore.Record, e PaymentCaptured) string { return byOrder(r, e.OrderID) },
		func(s *saga.Step[Fulfillment], e PaymentCaptured) error {
			s.Cancel("payment-timeout")
			s.State.Paid = true
			s.RegisterCompensation(s.Key(), RefundPayment{OrderID: s.Key(), Reason: "order cancelled"})
			s.Send(s.Key(), ScheduleShipment{OrderID: s.Key(), Address: s.State.Address})
			return nil
		})
	saga.On(d, "payment.declined", func(r eventstore.Record, e PaymentDeclined) string { return byOrder(r, e.OrderID) },
		func(s *saga.Step[Fulfillment], e PaymentDeclined) error {
			s.Fail("payment declined: " + e.Reason)
			return nil
		})
	saga.OnTimeout(d, "payment-timeout", func(s *saga.Step[Fulfillment], t PaymentTimedOut) error {
		s.Fail(fmt.Sprintf("payment not answered within %s", PaymentTimeout))
		return nil
	})
	saga.On(d, "shipment.scheduled", func(r eventstore.Record, e ShipmentScheduled) string { return byOrder(r, e.OrderID) },
		func(s *saga.Step[Fulfillment], e ShipmentScheduled) error {
			s.State.Shipped = true
			s.Send(s.Key(), CompleteOrder{})
			return nil
		})
	saga.On(d, "order.completed", saga.RecordKey[OrderCompleted], func(s *saga.Step[Fulfillment], _ OrderCompleted) error {
		s.State.Outcome = "completed"
		s.Complete()
		return nil
	})
	saga.OnFailure(d, func(s *saga.Step[Fulfillment], f saga.Failure) error {
		s.State.Outcome = f.Reason
		s.Send(s.Key(), CancelOrder{Reason: f.Reason})
		return nil
	})
	return d
}
