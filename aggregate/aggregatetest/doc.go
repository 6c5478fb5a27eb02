// Package aggregatetest tests deciders as scenarios, in the manner of
// Axon's test fixtures: given past events, when a command, then these
// events, or this error, or this state.
//
//	f := aggregatetest.For(t, orderAggregate)
//	f.Given(OrderPlaced{"ada"}).When(AddItem{"sku-1", 2}).Then(ItemAdded{"sku-1", 2})
//	f.Given().When(AddItem{"sku-1", 2}).ThenError(command.ErrNotFound)
//
// Every event, given or produced, also goes through the aggregate's event
// registry and codec and back, so a scenario fails on an event type that is
// not registered or does not survive encoding; with snapshots enabled, the
// resulting state must survive the snapshot codec too. A failure prints the
// expected and actual events as a readable diff.
package aggregatetest
