package command

import (
	"context"
	"time"
)

// Status is a snapshot of a Bus: its settings, its idempotency filter and
// the purges of expired idempotency records. It marshals to readable JSON.
// Counts of dispatched commands are the bus's metrics (WithMeterProvider:
// muninn_commands_total), not its Status.
type Status struct {
	// Name is the bus's name (WithName).
	Name string `json:"name"`
	// Running is true while Run purges; Closed once Close was called.
	Running bool `json:"running"`
	Closed  bool `json:"closed"`
	// IdempotencyWindowSeconds and PurgeIntervalSeconds are the bus's
	// settings (WithIdempotencyWindow, WithPurgeInterval).
	IdempotencyWindowSeconds float64 `json:"idempotency_window_seconds"`
	PurgeIntervalSeconds     float64 `json:"purge_interval_seconds"`
	// FilterReady is true once the in-memory filter of command IDs answers
	// for a new ID without reading the store (it has loaded the IDs within
	// the window, and has not given up for holding too many); FilterIDs is
	// how many IDs it holds.
	FilterReady bool `json:"filter_ready"`
	FilterIDs   int  `json:"filter_ids"`
	// Purges counts the purges run (by Run or Purge) and Purged the
	// records they deleted; LastPurgeAt is when the last one ended, by the
	// bus's clock, and LastPurgeError its error ("" if it succeeded).
	Purges         int64     `json:"purges"`
	Purged         int64     `json:"purged"`
	LastPurgeAt    time.Time `json:"last_purge_at,omitzero"`
	LastPurgeError string    `json:"last_purge_error,omitempty"`
}

// Status returns a snapshot of the bus. It is safe to call at any time and
// does no I/O.
func (b *Bus) Status(ctx context.Context) (Status, error) {
	ready, ids := b.idem.filter.state()
	st := Status{
		Name: b.cfg.name, Running: b.running.Load() > 0,
		IdempotencyWindowSeconds: b.cfg.window.Seconds(), PurgeIntervalSeconds: b.cfg.purgeInterval.Seconds(),
		FilterReady: ready, FilterIDs: ids,
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st.Closed = b.mu.closed
	st.Purges, st.Purged, st.LastPurgeAt = b.mu.purges, b.mu.purged, b.mu.lastPurgeAt
	if b.mu.lastPurgeErr != nil {
		st.LastPurgeError = b.mu.lastPurgeErr.Error()
	}
	return st, nil
}
