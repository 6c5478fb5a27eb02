// Package telemetry holds the names and helpers that Muninn's packages share for traces, metrics and logs.
package telemetry
