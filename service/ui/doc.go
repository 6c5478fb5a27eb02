// Package ui is Muninn's admin web UI: a single page, embedded in the binary,
// that reads only the framework's muninn.v1 REST API (package service/admin
// through the gateway) of the server it is served from. It shows the topics
// (partitions, sizes, cleanup policy, end offsets), a stream browser (the
// events of one key with their payloads, metadata and schema versions), the
// consumer groups (members, assignments, lag in records and time, refreshed
// live), the projections (state, lag, a rebuild with its progress, dead
// letters to replay or discard), the sagas (instances by status, one
// instance's state, pending commands and deadlines) and the lineage of a
// request: the causal tree of a correlation ID drawn as a graph, coloured as
// on an event-storming board, each node linking to its record.
//
// Mount it beside the gateway with package service:
//
//	srv, err := service.New(service.WithHandler(ui.Pattern, ui.Handler()), ...)
//
// The pages are plain ES modules, CSS and SVG drawn by the UI's own code: no
// build step and no third-party script. Record data reaches the page only as
// text nodes and attribute values, never as markup, and the handler sends a
// Content-Security-Policy that allows scripts, styles and requests from the
// server's own origin only.
package ui
