package command

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
)

// purgeBatch is how many expired records one purge Update deletes.
const purgeBatch = 1000

// idempotency keeps the results of commands by command ID in the store's
// state space, under (keyspace.Command, bus); see the package documentation
// for the layout. A result with events is written in the same batch as the
// events (eventstore.WithState); one without, by a durable Update. Either
// way the record exists exactly when the command's effect does.
type idempotency struct {
	store  eventstore.Store
	window time.Duration
	clock  clock.Clock
	byID   keyspace.Key // ("command", bus, "c"): the records
	byTime keyspace.Key // ("command", bus, "t"): the time index
	// filter answers "certainly never recorded" without reading the
	// store, once loadFilter has run, and only on an exclusive store.
	filter *idFilter
	// exclusive is set when no other process writes the store (see
	// eventstore.PebbleStore.Exclusive): only then is what this process
	// recorded all there is, and the filter may answer for new IDs.
	exclusive bool
}

// exclusiveStore is the optional ability of a backend that no other process
// writes while it is open.
type exclusiveStore interface{ Exclusive() bool }

// isExclusive reports whether store says that it is exclusive.
func isExclusive(store eventstore.Store) bool {
	x, ok := store.(exclusiveStore)
	return ok && x.Exclusive()
}

func newIdempotency(store eventstore.Store, bus string, window time.Duration, c clock.Clock) *idempotency {
	prefix := keyspace.New(keyspace.Command, bus)
	return &idempotency{
		store: store, window: window, clock: c,
		byID: prefix.String("c"), byTime: prefix.String("t"),
		filter:    newIDFilter(window, defaultFilterMaxIDs, c.Now()),
		exclusive: isExclusive(store),
	}
}

func (d *idempotency) now() time.Time { return d.clock.Now() }

// loadFilter adds the IDs of the records within the window to the filter,
// then makes it authoritative. Until it has, every lookup reads the store.
// IDs recorded meanwhile are added by stage, so none is missed. On a store
// that other processes write too it does nothing: the filter would miss
// the IDs they record, so it never becomes authoritative there.
func (d *idempotency) loadFilter(ctx context.Context) error {
	if !d.exclusive {
		return nil
	}
	cutoff := d.now().Add(-d.window)
	_, upper := d.byTime.Range()
	for kv, err := range d.store.Scan(ctx, d.byTime.Time(cutoff), upper, false) {
		if err != nil {
			return err
		}
		if _, id, err := d.readTimeKey(kv.Key); err == nil {
			d.filter.add(id, d.now())
		}
	}
	d.filter.markReady()
	return nil
}

func (d *idempotency) idKey(id string) []byte { return d.byID.String(id) }

func (d *idempotency) timeKey(at time.Time, id string) []byte { return d.byTime.Time(at).String(id) }

// readTimeKey returns the time and the command ID of a time-index key.
func (d *idempotency) readTimeKey(k []byte) (time.Time, string, error) {
	r, err := keyspace.Read(k, d.byTime)
	if err != nil {
		return time.Time{}, "", err
	}
	at, err := r.Time()
	if err != nil {
		return time.Time{}, "", err
	}
	id, err := r.String()
	return at, id, err
}

// lookup returns the result recorded for id, if it is within the window.
// The filter answers for an ID it has never seen; on a shared store it
// never becomes ready, so every lookup reads the store.
func (d *idempotency) lookup(ctx context.Context, id string) (Result, bool, error) {
	if !d.filter.mayContain(id, d.now()) {
		return Result{}, false, nil
	}
	b, ok, err := d.store.Get(ctx, d.idKey(id))
	if err != nil || !ok {
		return Result{}, false, err
	}
	r, err := decodeRecord(b)
	if err != nil {
		return Result{}, false, fmt.Errorf("command: idempotency record of %q: %w", id, err)
	}
	if !d.now().Before(r.At.Add(d.window)) {
		return Result{}, false, nil // expired: the purge will delete it
	}
	return r, true, nil
}

// stage writes res's record and its time-index entry with w.
func (d *idempotency) stage(w eventstore.StateWriter, res Result) error {
	// Into the filter first: an ID in the filter without a record only
	// costs a read of the store; a record without its ID would be missed.
	d.filter.add(res.CommandID, d.now())
	b := encodeRecord(make([]byte, 0, 128+16*len(res.EventIDs)), res)
	if err := w.Set(d.idKey(res.CommandID), b); err != nil {
		return err
	}
	return w.Set(d.timeKey(res.At, res.CommandID), nil)
}

// record durably stores the result of a command that appended nothing.
func (d *idempotency) record(ctx context.Context, res Result) error {
	return d.store.Update(ctx, func(tx eventstore.Txn) error { return d.stage(tx, res) })
}

// purge deletes the records applied before now minus the window, in
// batches, and returns how many it deleted. A record rewritten after its
// index entry (the command ran again once expired) is kept: only the old
// index entry goes.
func (d *idempotency) purge(ctx context.Context) (int, error) {
	cutoff := d.now().Add(-d.window)
	lower, _ := d.byTime.Range()
	upper := d.byTime.Time(cutoff)
	total := 0
	for {
		n, scanned := 0, 0
		err := d.store.Update(ctx, func(tx eventstore.Txn) error {
			n = 0
			var keys [][]byte
			for kv, err := range tx.Scan(lower, upper, false) {
				if err != nil {
					return err
				}
				keys = append(keys, bytes.Clone(kv.Key))
				if len(keys) == purgeBatch {
					break
				}
			}
			for _, k := range keys {
				t, id, err := d.readTimeKey(k)
				if err := tx.Delete(k); err != nil {
					return err
				}
				if err != nil {
					continue // not an index entry: nothing more to delete
				}
				at := t.UnixNano()
				b, ok, err := tx.Get(d.idKey(id))
				if err != nil {
					return err
				}
				if ok {
					r, err := decodeRecord(b)
					if err == nil && r.At.UnixNano() > at {
						continue // applied again after this index entry
					}
					if err := tx.Delete(d.idKey(id)); err != nil {
						return err
					}
					n++
				}
			}
			scanned = len(keys)
			return nil
		}, eventstore.UpdateNoSync())
		if err != nil {
			return total, err
		}
		total += n
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		if scanned < purgeBatch {
			return total, nil // the scan reached the cut-off
		}
	}
}
