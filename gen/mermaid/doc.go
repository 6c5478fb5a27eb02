// Package mermaid writes a model (package gen/model) as a Mermaid
// flowchart, for documentation: one subgraph per bounded context (and
// per aggregate within it), nodes coloured as on an event-storming board,
// and the flow as arrows: actor → command → event, event → policy →
// command, event → read model, event → saga → command, external systems
// and hotspots beside what they touch.
package mermaid
