package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
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
// store has no "~init" marker. It reads each changelog partition up to the
// end offset recorded with the last commit (all of it if none was recorded),
// so that the state matches the committed offsets. Cleanup may have removed
// older values of keys that changed after that offset; the changelog written
// since then is ahead of the state only after a crash, which is also when
// those keys are written again.
func (a *App) restore(ctx context.Context, st *storeDef) error {
	restoreMu.Lock()
	defer restoreMu.Unlock()
	marker := metaKey(a.id, "init", st.name)
	if _, ok, err := a.store.Get(ctx, marker); err != nil || ok {
		return err
	}
	prefix := a.prefixes[st]
	topic := a.changelogTopic(st)
	n, err := a.store.Partitions(topic)
	if err != nil {
		return fmt.Errorf("stream: restore store %q: %w", st.name, err)
	}
	// Clear what a restore that crashed may have left.
	if err := a.store.Update(ctx, func(tx eventstore.Txn) error {
		return tx.DeleteRange(prefix, eventstore.PrefixEnd(prefix))
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
				key := append(slices.Clone(prefix), kv.Key...)
				if kv.Value == nil {
					if st.kind == windowStore {
						if err := deleteIndexOf(tx, prefix, kv.Key); err != nil {
							return err
						}
					}
					if err := tx.Delete(key); err != nil {
						return err
					}
					continue
				}
				if err := tx.Set(key, kv.Value); err != nil {
					return err
				}
				if st.kind == windowStore {
					wk, start, err1 := parseWindowKey(kv.Key)
					part, _, err2 := parseWindowValue(kv.Value)
					if err := errors.Join(err1, err2); err != nil {
						return fmt.Errorf("stream: restore store %q: %w", st.name, err)
					}
					if err := tx.Set(indexKey(prefix, part, start, wk), []byte{}); err != nil {
						return err
					}
				}
			}
			return nil
		}, eventstore.UpdateNoSync())
		pending = pending[:0]
		return err
	}
	for p := range n {
		end := int64(-1)
		if v, ok, err := a.store.Get(ctx, partitionKey(a.id, "changelog", st.name, p)); err != nil {
			return err
		} else if ok && len(v) == 8 {
			end = int64(binary.BigEndian.Uint64(v))
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
	return a.store.Update(ctx, func(tx eventstore.Txn) error { return tx.Set(marker, []byte{1}) })
}

// deleteIndexOf removes the index entry of the window whose key (after the
// store prefix) is wk, if the window exists.
func deleteIndexOf(tx eventstore.Txn, prefix, wk []byte) error {
	v, ok, err := tx.Get(append(slices.Clone(prefix), wk...))
	if err != nil || !ok {
		return err
	}
	key, start, err1 := parseWindowKey(wk)
	part, _, err2 := parseWindowValue(v)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	return tx.Delete(indexKey(prefix, part, start, key))
}
