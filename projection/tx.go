package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
)

// Handler applies one record to a read model, through tx. It runs inside
// the store's Update of the record's batch: it must be quick, must not call
// the store itself, and should be deterministic, since a batch that fails
// is applied again. An error is retried (see WithRetries), then handled by
// the ErrorPolicy; wrap it with consume.Permanent when a retry cannot help
// (a payload that does not decode). A panic is a permanent error.
type Handler interface {
	Handle(tx *Tx, rec eventstore.Record) error
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(tx *Tx, rec eventstore.Record) error

// Handle calls f(tx, rec).
func (f HandlerFunc) Handle(tx *Tx, rec eventstore.Record) error { return f(tx, rec) }

// Tx is a handler's view of the transaction that applies its record: table
// writes and reads go through it, into the generation being written.
type Tx struct {
	txn    eventstore.Txn
	p      *Projection
	gen    uint64
	prefix []byte
	// writes holds the Tx's writes, last one per key, until flush stages
	// them into txn: a batch that bumps one counter a thousand times
	// writes it once, and reads of a key written in the batch cost a map
	// lookup.
	writes map[string]txWrite
	// scratch is reused to build keys.
	scratch []byte
	done    bool
}

var errTxDone = errors.New("projection: Tx used after its handler's batch ended")

func (tx *Tx) close() { tx.done = true }

type txWrite struct {
	val []byte
	del bool
}

func newTx(txn eventstore.Txn, p *Projection, gen uint64) *Tx {
	return &Tx{txn: txn, p: p, gen: gen, prefix: p.genPrefix(gen), writes: map[string]txWrite{}}
}

func (tx *Tx) get(key []byte) ([]byte, bool, error) {
	if tx.done {
		return nil, false, errTxDone
	}
	if w, ok := tx.writes[string(key)]; ok {
		return w.val, !w.del, nil
	}
	return tx.txn.Get(key)
}

func (tx *Tx) set(key, val []byte) error {
	if tx.done {
		return errTxDone
	}
	if len(key) > eventstore.MaxStateKeyBytes {
		return invalid("key", "state key of %d bytes is longer than %d", len(key), eventstore.MaxStateKeyBytes)
	}
	if len(val) > eventstore.MaxStateValueBytes {
		return invalid("value", "of %d bytes is longer than %d", len(val), eventstore.MaxStateValueBytes)
	}
	// val is the Tx's own: a fresh encoding, or nil.
	tx.writes[string(key)] = txWrite{val: val}
	return nil
}

func (tx *Tx) del(key []byte) error {
	if tx.done {
		return errTxDone
	}
	tx.writes[string(key)] = txWrite{del: true}
	return nil
}

// flush stages the Tx's writes into its transaction.
func (tx *Tx) flush() error {
	for k, w := range tx.writes {
		var err error
		if w.del {
			err = tx.txn.Delete([]byte(k))
		} else {
			err = tx.txn.Set([]byte(k), w.val)
		}
		if err != nil {
			return err
		}
	}
	clear(tx.writes)
	return nil
}

// Generation returns the generation the Tx writes.
func (tx *Tx) Generation() uint64 { return tx.gen }

// Projection returns the projection the Tx belongs to.
func (tx *Tx) Projection() *Projection { return tx.p }

// genHandler is the consume.Handler of one generation: each batch is a Tx
// (the write-back cache of the batch's writes) into the generation, staged
// by Flush. The live generation's handler checks in every batch that the
// generation is still current, so that a live loop that a rebuild's swap
// outran writes nothing into the deleted generation.
type genHandler struct {
	p    *Projection
	gen  uint64
	live bool

	mu sync.Mutex
	// last is the Tx of the last batch begun, closed when the next one
	// begins: a batch the loop aborts is dropped without Flush, and a Tx
	// kept by a handler must not take writes that nothing stages.
	last *Tx
}

// Begin opens a batch in txn.
func (h *genHandler) Begin(_ context.Context, txn eventstore.Txn) (consume.Batch, error) {
	if h.live {
		if err := h.p.checkGen(txn, h.gen); err != nil {
			return nil, err
		}
	}
	tx := newTx(txn, h.p, h.gen)
	h.mu.Lock()
	if h.last != nil {
		h.last.close()
	}
	h.last = tx
	h.mu.Unlock()
	return txBatch{tx: tx, h: h.p.handler}, nil
}

// txBatch is one Update's worth of a projection's work.
type txBatch struct {
	tx *Tx
	h  Handler
}

func (b txBatch) Handle(rec *eventstore.Record) error { return b.h.Handle(b.tx, *rec) }

func (b txBatch) Flush() error {
	defer b.tx.close()
	return b.tx.flush()
}

func (b txBatch) Committed() {}

// checkGen fails with errGenChanged if the current generation, as txn sees
// it, is not gen.
func (p *Projection) checkGen(txn eventstore.Txn, gen uint64) error {
	v, ok, err := txn.Get(p.genKey())
	if err != nil {
		return err
	}
	cur := uint64(1)
	if ok {
		if cur, err = decodeGen(v); err != nil {
			return err
		}
	}
	if cur != gen {
		return errGenChanged
	}
	return nil
}

// call runs the handler outside the consume loop (a rebuild's last
// catch-up inside its swap), turning a panic into an error.
func (p *Projection) call(tx *Tx, rec eventstore.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("handler panicked: %v", v)
		}
	}()
	return p.handler.Handle(tx, rec)
}
