// Package asyncapi describes the public events of a model (package
// gen/model) as an AsyncAPI 3.0 document: one channel per bounded context
// (its topic), a send operation and a message per public event, and the
// events' payloads as JSON Schemas built from the field types (decimal is
// an integer of cents, timestamp an RFC 3339 date-time, a message type a
// $ref to its schema). Each message carries its schema version as
// x-schema-version.
package asyncapi
