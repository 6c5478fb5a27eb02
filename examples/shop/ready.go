package shop

import (
	"context"

	"github.com/muninn-es/muninn/service"
)

// ReadyChecks returns the shop's readiness checks, by name, for
// service.Server.Ready: the shop is ready when its order details and
// customer orders read models are live (running and caught up), so that
// queries answer promptly.
func (s *Shop) ReadyChecks() map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"order details":   service.ProjectionReady(s.rm.OrderDetails.Projection),
		"customer orders": service.ProjectionReady(s.rm.CustomerOrders.Projection),
	}
}
