package projection

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

// Progress is how far a rebuild has come.
type Progress struct {
	// Generation is the generation being built.
	Generation uint64
	// Done counts the offsets applied (records, plus gaps left by cleanup)
	// of the Total there were when the rebuild started: the sum of the
	// partitions' end offsets. Records appended since then are applied too
	// but not counted.
	Done, Total int64
	// Started is when the rebuild began; Elapsed how long it has run.
	Started time.Time
	Elapsed time.Duration
	// Rate is Done per second of Elapsed.
	Rate float64
	// ETA estimates the time left to reach Total at Rate (zero when
	// unknown or done).
	ETA time.Duration
	// Finished is set in the last report, after the swap.
	Finished bool
}

// Fraction returns Done/Total, between 0 and 1 (1 for an empty log).
func (p Progress) Fraction() float64 {
	if p.Total <= 0 {
		return 1
	}
	return min(float64(p.Done)/float64(p.Total), 1)
}

// RebuildOption configures one Rebuild.
type RebuildOption func(*rebuildOpts)

type rebuildOpts struct {
	progress func(Progress)
}

// OnProgress calls f with the rebuild's progress after applied batches (at
// most once per WithProgressInterval) and once at the end, with Finished
// set. f runs on the rebuild's goroutine: keep it quick (draw a progress
// bar, send on a buffered channel).
func OnProgress(f func(Progress)) RebuildOption { return func(o *rebuildOpts) { o.progress = f } }

// Rebuild builds the read model anew: it applies every record from offset
// zero into a fresh generation, with its own consumer group, while queries
// keep answering from the current generation and Run keeps it up to date.
// Once the new generation has caught up with the end of the log and with
// the current generation's checkpoint on every partition (so that no query
// goes back in time), one Update makes it current and deletes the old one; a running Run then
// continues on the new generation, from the rebuild's checkpoint.
//
// Rebuild returns nil after the swap, ctx's error if ctx ends first (the
// old generation stays current; a later Rebuild starts over), or the
// handler's error under the Stop policy. One Rebuild runs at a time per
// projection. Progress is reported through OnProgress and Status.
func (p *Projection) Rebuild(ctx context.Context, opts ...RebuildOption) error {
	var ro rebuildOpts
	for _, o := range opts {
		o(&ro)
	}
	if !p.rebuilding.TryLock() {
		return fmt.Errorf("projection %q: Rebuild: %w", p.name, ErrRunning)
	}
	defer p.rebuilding.Unlock()
	if err := p.load(ctx); err != nil {
		return err
	}
	p.mu.RLock()
	cur := p.gen
	p.mu.RUnlock()
	next := cur + 1
	defer func() {
		p.st.Lock()
		p.st.rebuild = nil
		p.st.Unlock()
	}()

	// Start from nothing: a rebuild that was interrupted left its
	// generation behind.
	gp := p.genPrefix(next)
	err := p.s.Update(ctx, func(txn eventstore.Txn) error {
		if err := txn.DeleteRange(gp, eventstore.PrefixEnd(gp)); err != nil {
			return err
		}
		return txn.Set(p.buildingKey(), binary.BigEndian.AppendUint64(nil, next))
	})
	if err != nil {
		return fmt.Errorf("projection %q: start rebuild: %w", p.name, err)
	}
	c, err := p.s.JoinGroup(ctx, p.groupName(next), p.topics, eventstore.WithMemberID("rebuild"))
	if err != nil {
		return fmt.Errorf("projection %q: rebuild: join group: %w", p.name, err)
	}
	defer c.Close()

	// The group's offsets may be those of the generation before the
	// current one: reset them to zero.
	zero := map[eventstore.TopicPartition]int64{}
	pr := Progress{Generation: next, Started: p.opts.now()}
	ends := map[eventstore.TopicPartition]int64{}
	for _, t := range p.topics {
		info, err := p.s.DescribeTopic(ctx, t)
		if err != nil {
			return err
		}
		for _, pi := range info.Partitions {
			tp := eventstore.TopicPartition{Topic: t, Partition: pi.Partition}
			zero[tp] = 0
			ends[tp] = pi.EndOffset
			pr.Total += pi.EndOffset
		}
	}
	if len(c.Assignment()) != len(zero) {
		return fmt.Errorf("projection %q: rebuild: group %q has other members; is another process or a stale runner using it?", p.name, p.groupName(next))
	}
	if err := p.s.Update(ctx, func(txn eventstore.Txn) error { return txn.CommitOffsets(c, zero) }); err != nil {
		return fmt.Errorf("projection %q: rebuild: reset offsets: %w", p.name, err)
	}

	r := &runner{p: p, c: c, gen: next}
	r.init()
	for tp := range zero {
		r.positions[tp] = 0
	}
	var lastReport time.Time
	report := func(final bool) {
		var done int64
		for tp, end := range ends {
			done += min(r.positions[tp], end)
		}
		now := p.opts.now()
		pr.Done, pr.Elapsed, pr.Finished = done, now.Sub(pr.Started), final
		pr.Rate, pr.ETA = 0, 0
		if s := pr.Elapsed.Seconds(); s > 0 {
			pr.Rate = float64(done) / s
		}
		if pr.Rate > 0 && done < pr.Total && !final {
			pr.ETA = time.Duration(float64(pr.Total-done) / pr.Rate * float64(time.Second))
		}
		cp := pr
		p.st.Lock()
		p.st.rebuild = &cp
		p.st.Unlock()
		if ro.progress != nil && (final || now.Sub(lastReport) >= p.opts.progress) {
			lastReport = now
			ro.progress(cp)
		}
	}
	report(false)
	for {
		for !caughtUp(ctx, p.s, p.topics, r.positions) {
			recs, err := c.Poll(ctx, p.opts.batch)
			if err != nil {
				return fmt.Errorf("projection %q: rebuild: %w", p.name, err)
			}
			if err := r.apply(ctx, recs); err != nil {
				return fmt.Errorf("projection %q: rebuild: %w", p.name, err)
			}
			report(false)
			if len(recs) < p.opts.batch {
				break
			}
		}
		err := p.swap(ctx, cur, next, c, r.positions)
		if errors.Is(err, errBehindLive) {
			continue // the live generation moved on meanwhile
		}
		if err != nil {
			return err
		}
		report(true)
		return nil
	}
}

// errBehindLive refuses a swap to a generation that has applied less of
// some partition than the current one: queries would go back in time.
var errBehindLive = errors.New("projection: rebuild is behind the live generation")

// caughtUp reports whether positions have reached every partition's end.
func caughtUp(ctx context.Context, s eventstore.Store, topics []string, positions map[eventstore.TopicPartition]int64) bool {
	for _, t := range topics {
		info, err := s.DescribeTopic(ctx, t)
		if err != nil {
			return false
		}
		for _, pi := range info.Partitions {
			if max(positions[eventstore.TopicPartition{Topic: t, Partition: pi.Partition}], pi.StartOffset) < pi.EndOffset {
				return false
			}
		}
	}
	return true
}

// swap makes generation next current and deletes generation cur, in one
// Update, while no query reads; the live runner, if any, is moved to the
// new generation's group.
func (p *Projection) swap(ctx context.Context, cur, next uint64, c eventstore.Consumer, positions map[eventstore.TopicPartition]int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.genPrefix(cur)
	err := p.s.Update(ctx, func(txn eventstore.Txn) error {
		v, ok, err := txn.Get(p.genKey())
		if err != nil {
			return err
		}
		if ok {
			g, err := decodeGen(v)
			if err != nil {
				return err
			}
			if g != cur {
				return fmt.Errorf("projection %q: generation moved from %d to %d during the rebuild", p.name, cur, g)
			}
		}
		if err := p.catchUpLive(ctx, txn, cur, next, c, positions); err != nil {
			return err
		}
		if err := txn.Set(p.genKey(), binary.BigEndian.AppendUint64(nil, next)); err != nil {
			return err
		}
		if err := txn.Delete(p.buildingKey()); err != nil {
			return err
		}
		return txn.DeleteRange(old, eventstore.PrefixEnd(old))
	})
	if err != nil {
		return fmt.Errorf("projection %q: rebuild: swap generations: %w", p.name, err)
	}
	// The rebuild's member leaves before the live runner joins its group.
	_ = c.Close()
	if p.live != nil {
		_ = p.live.Close()
		p.live = nil
	}
	p.gen = next
	p.setPositions(positions, true)
	return nil
}

// catchUpLive brings the new generation up to the current generation's
// checkpoint on every partition, within the swap's Update: Updates are
// serialized, so the live checkpoint cannot move meanwhile, and a steady
// stream of appends cannot keep the rebuild one step behind forever. It
// applies at most a few batches this way; a larger gap, or a handler
// error, sends the rebuild back to its polling loop (errBehindLive), where
// retries and the error policy apply.
func (p *Projection) catchUpLive(ctx context.Context, txn eventstore.Txn, cur, next uint64, c eventstore.Consumer, positions map[eventstore.TopicPartition]int64) error {
	type span struct{ from, to int64 }
	behind := map[eventstore.TopicPartition]span{}
	var gap int64
	for tp, pos := range positions {
		live, _, err := p.s.CommittedOffset(ctx, p.groupName(cur), tp.Topic, tp.Partition)
		if err != nil {
			return err
		}
		if pos < live {
			behind[tp] = span{pos, live}
			gap += live - pos
		}
	}
	if gap == 0 {
		return nil
	}
	if gap > int64(4*p.opts.batch) {
		return errBehindLive
	}
	tx := newTx(txn, p, next)
	defer tx.close()
	commit := map[eventstore.TopicPartition]int64{}
	for tp, sp := range behind {
		for rec, err := range p.s.ReadPartition(ctx, tp.Topic, tp.Partition, sp.from) {
			if err != nil {
				return err
			}
			if rec.Offset >= sp.to {
				break
			}
			if err := p.call(tx, rec); err != nil {
				return errBehindLive
			}
		}
		commit[tp] = sp.to
	}
	if err := tx.flush(); err != nil {
		return err
	}
	if err := txn.CommitOffsets(c, commit); err != nil {
		return err
	}
	for tp, off := range commit {
		positions[tp] = off
	}
	return nil
}
