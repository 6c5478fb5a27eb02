package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/muninn-es/muninn/eventstore"
)

// restoreChunk is how many changelog records one restoring Update writes.
const restoreChunk = 4096

// restoreMu serializes restores in the process, so that of several Apps of
// one application ID starting together, one restores a store and the others
// find it restored. It guards no data.
var restoreMu sync.Mutex

// restore rebuilds a store from its changelog if its state is missing: the
// store has no init mark. It reads each changelog partition up to the
// end offset recorded with the last commit (all of it if none was recorded),
// so that the state matches the committed offsets. Cleanup may have removed
// older values of keys that changed after that offset; the changelog written
// since then is ahead of the state only after a crash, which is also when
// those keys are written again.
func (a *App) restore(ctx context.Context, st *storeDef) error {
	restoreMu.Lock()
	defer restoreMu.Unlock()
	sk := a.stores[st]
	if _, ok, err := a.store.Get(ctx, sk.init); err != nil || ok {
		return err
	}
	topic := a.changelogTopic(st)
	n, err := a.store.Partitions(topic)
	if err != nil {
		return fmt.Errorf("stream: restore store %q: %w", st.name, err)
	}
	// Clear what a restore that crashed may have left.
	if err := a.store.Update(ctx, func(tx eventstore.Txn) error {
		lo, hi := sk.all.Range()
		return tx.DeleteRange(lo, hi)
	}); err != nil {
		return err
	}
	var pending []eventstore.KV
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		err := a.store.Update(ctx, func(tx eventstore.Txn) error {
			for _, kv := range pending {
				if err := a.restoreOne(tx, st, kv); err != nil {
					return fmt.Errorf("stream: restore store %q: %w", st.name, err)
				}
			}
			return nil
		}, eventstore.UpdateNoSync())
		pending = pending[:0]
		return err
	}
	for p := range n {
		end := int64(-1)
		if v, ok, err := a.store.Get(ctx, sk.ends.Uint(uint64(p))); err != nil {
			return err
		} else if ok {
			if end, err = readCounter("changelog end", v); err != nil {
				return fmt.Errorf("stream: restore store %q: %w", st.name, err)
			}
		}
		for rec, err := range a.store.ReadPartition(ctx, topic, p, 0) {
			if err != nil {
				return fmt.Errorf("stream: restore store %q: %w", st.name, err)
			}
			if end >= 0 && rec.Offset >= end {
				break
			}
			pending = append(pending, eventstore.KV{Key: []byte(rec.Key), Value: rec.Payload})
			if len(pending) >= restoreChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return a.store.Update(ctx, func(tx eventstore.Txn) error { return tx.Set(sk.init, []byte{1}) })
}

// restoreOne applies one changelog record (key and payload, nil for a
// removal) to the state of st.
func (a *App) restoreOne(tx eventstore.Txn, st *storeDef, kv eventstore.KV) error {
	sk := a.stores[st]
	if st.kind == kvStore {
		key := sk.appendKVKey(nil, kv.Key)
		if kv.Value == nil {
			return tx.Delete(key)
		}
		return tx.Set(key, kv.Value)
	}
	kb, start, err := parseChangelogWindowKey(string(kv.Key), st.windows.Size)
	if err != nil {
		return err
	}
	key := sk.appendWindowKey(nil, kb, start)
	if kv.Value == nil {
		// Remove the window's index entry too, if the window exists.
		v, ok, err := tx.Get(key)
		if err != nil || !ok {
			return err
		}
		part, _, err := parseWindowValue(v)
		if err != nil {
			return err
		}
		return errors.Join(tx.Delete(sk.indexKey(part, start, kb)), tx.Delete(key))
	}
	part, _, err := parseWindowValue(kv.Value)
	if err != nil {
		return err
	}
	return errors.Join(tx.Set(key, kv.Value), tx.Set(sk.indexKey(part, start, kb), []byte{}))
}
