// Package board draws a model (package gen/model) as an event-storming
// board in SVG: one swimlane per bounded context, stickies in the usual
// colours (actor, command, aggregate, domain event, policy, read model,
// external system, hotspot) laid out left to right by the flow, and the
// flow as arrows, across contexts too. Each saga step is drawn as a policy
// sticky ("Checkout: on PaymentCaptured") between its event and its
// commands.
//
// The layout is a grid per lane: actors and external systems, commands,
// aggregates (one tall sticky beside all their commands), events (on the
// row of the command that emits them), policies and saga steps (on the
// row of their event), read models, hotspots. Names are split into words
// and wrapped to fit their sticky.
package board
