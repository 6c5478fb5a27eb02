// Package model is the event-storming model of a system: the file
// eventmodel.yaml that a team writes (or imports from a board) and that
// muninn gen turns into code, a board picture, an AsyncAPI document and a
// Mermaid flowchart.
//
// A Model has bounded contexts; a Context has aggregates (each with its ID
// field, commands, events, errors and given-when-then scenarios), read
// models, policies, external systems, sagas, named message types and
// hotspots (open questions). Every element keeps its position in the file
// (Pos), so that messages can name file:line.
//
// Parse reads a model; it fails only when the file is not YAML or its shape
// is wrong (an unknown key, a list where a mapping belongs), and then names
// every such place at once. Validate checks the meaning (unknown events in
// a policy, a command that emits nothing, duplicate names, unknown types,
// bad route hints...) and reports every problem at once, sorted by
// position. Warnings reports what an importer could not decide (the
// model's unresolved list): it does not stop generation, but muninn gen
// check shows it until a person resolves it.
//
// The aggregate's ID field (Aggregate.ID, e.g. order_id) is carried by
// every command and event of the aggregate implicitly, as a string: it is
// not listed among their fields.
//
// Field types are written as strings and parsed by ParseType: string, int,
// int64, bool, decimal (an amount as int64 cents), timestamp,
// enum(a|b|c), list<T> or []T, and the name of a message declared in the
// context's types section. A trailing ? marks a field optional.
package model
