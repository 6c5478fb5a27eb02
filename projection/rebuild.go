package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
)

// Progress is how far a rebuild has come. It marshals to JSON with its
// durations in seconds.
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

// progressJSON is the JSON form of a Progress.
type progressJSON struct {
	Generation     uint64    `json:"generation"`
	Done           int64     `json:"done"`
	Total          int64     `json:"total"`
	Fraction       float64   `json:"fraction"`
	Started        time.Time `json:"started"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	Rate           float64   `json:"rate"`
	ETASeconds     float64   `json:"eta_seconds"`
	Finished       bool      `json:"finished"`
}

// MarshalJSON writes the progress with its durations in seconds, and its
// Fraction.
func (p Progress) MarshalJSON() ([]byte, error) {
	return json.Marshal(progressJSON{Generation: p.Generation, Done: p.Done, Total: p.Total, Fraction: p.Fraction(),
		Started: p.Started, ElapsedSeconds: p.Elapsed.Seconds(), Rate: p.Rate, ETASeconds: p.ETA.Seconds(), Finished: p.Finished})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Progress) UnmarshalJSON(b []byte) error {
	var j progressJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*p = Progress{Generation: j.Generation, Done: j.Done, Total: j.Total, Started: j.Started,
		Elapsed: time.Duration(j.ElapsedSeconds * float64(time.Second)), Rate: j.Rate,
		ETA: time.Duration(j.ETASeconds * float64(time.Second)), Finished: j.Finished}
	return nil
}

// RebuildOption configures one Rebuild.
type RebuildOption func(*rebuildOpts)

type rebuildOpts struct {
	progress func(Progress)
}

// OnProgress calls f with the rebuild's progress when it starts, after
// committed batches (at most once per WithProgressInterval) and once at
// the end, with Finished set. f runs on the rebuild's goroutine: keep it
// quick (draw a progress bar, send on a buffered channel).
func OnProgress(f func(Progress)) RebuildOption { return func(o *rebuildOpts) { o.progress = f } }

// Rebuild builds the read model anew: it applies every record from offset
// zero into a fresh generation, with a consume loop of its own on the
// generation's consumer group, while queries keep answering from the
// current generation and Run keeps it up to date. Once the new generation
// has caught up with the end of the log and with the current generation's
// checkpoint on every partition (so that no query goes back in time), one
// Update makes it current and deletes the old one; a running Run then
// continues on the new generation, from the rebuild's checkpoint.
//
// Rebuild returns nil after the swap, ctx's error if ctx ends first (the
// old generation stays current; a later Rebuild, or Run, drops what it
// wrote), or the handler's *consume.HandlerError under the Stop policy.
// Records the Park policy parks are parked in the new generation. One
// Rebuild runs at a time per projection; like Run, it first waits for
// topics that do not exist yet. Progress is reported through OnProgress
// and Status.
func (p *Projection) Rebuild(ctx context.Context, opts ...RebuildOption) error {
	var ro rebuildOpts
	for _, o := range opts {
		if o != nil {
			o(&ro)
		}
	}
	if !p.rebuilding.TryLock() {
		return fmt.Errorf("projection %q: Rebuild: %w", p.name, consume.ErrRunning)
	}
	defer p.rebuilding.Unlock()
	if err := p.load(ctx); err != nil {
		return err
	}
	if err := p.awaitTopics(ctx); err != nil {
		return fmt.Errorf("projection %q: rebuild: %w", p.name, err)
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
	err := p.s.Update(ctx, func(txn eventstore.Txn) error {
		if err := txn.DeleteRange(p.genPrefix(next).Range()); err != nil {
			return err
		}
		return txn.Set(p.buildingKey(), encodeGen(next))
	})
	if err != nil {
		return fmt.Errorf("projection %q: start rebuild: %w", p.name, err)
	}
	group := p.groupName(next)
	gs, err := consume.JoinGroup(ctx, p.s, group, p.topics, eventstore.WithMemberID("rebuild"))
	if err != nil {
		return fmt.Errorf("projection %q: rebuild: join group: %w", p.name, err)
	}
	defer gs.Close()

	// The group's offsets may be those of the generation before the
	// current one: reset them to zero.
	positions := map[eventstore.TopicPartition]int64{}
	ends := map[eventstore.TopicPartition]int64{}
	pr := Progress{Generation: next, Started: p.opts.clock.Now()}
	for _, t := range p.topics {
		info, err := p.s.DescribeTopic(ctx, t)
		if err != nil {
			return fmt.Errorf("projection %q: rebuild: %w", p.name, err)
		}
		for _, pi := range info.Partitions {
			tp := eventstore.TopicPartition{Topic: t, Partition: pi.Partition}
			positions[tp] = 0
			ends[tp] = pi.EndOffset
			pr.Total += pi.EndOffset
		}
	}
	if len(gs.Consumer().Assignment()) != len(positions) {
		return fmt.Errorf("projection %q: rebuild: group %q has other members; is another process or a stale runner using it?", p.name, group)
	}
	if err := p.s.Update(ctx, func(txn eventstore.Txn) error { return txn.CommitOffsets(gs.Consumer(), maps.Clone(positions)) }); err != nil {
		return fmt.Errorf("projection %q: rebuild: reset offsets: %w", p.name, err)
	}

	var lastReport time.Time
	report := func(final bool) {
		var done int64
		for tp, end := range ends {
			done += min(positions[tp], end)
		}
		now := p.opts.clock.Now()
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
		if ro.progress != nil && (final || lastReport.IsZero() || now.Sub(lastReport) >= p.opts.progress) {
			lastReport = now
			ro.progress(cp)
		}
	}
	// The rebuild's loop reads the member joined above, which stays in the
	// group until the swap: the swap commits through it.
	src := &rebuildSource{GroupSource: gs, committed: func(recs []eventstore.Record) {
		for i := range recs {
			if recs[i].Topic == "" {
				continue
			}
			tp := eventstore.TopicPartition{Topic: recs[i].Topic, Partition: recs[i].Partition}
			positions[tp] = max(positions[tp], recs[i].Offset+1)
		}
		report(false)
	}}
	loop, err := consume.NewFrom(p.s, group, func(context.Context) (consume.Source, error) { return src, nil },
		&genHandler{p: p, gen: next}, p.loopOptions(next)...)
	if err != nil {
		return fmt.Errorf("projection %q: rebuild: %w", p.name, err)
	}
	report(false)
	for {
		if err := loop.CatchUp(ctx); err != nil {
			return fmt.Errorf("projection %q: rebuild: %w", p.name, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("projection %q: rebuild: %w", p.name, err)
		}
		err := p.swap(ctx, cur, next, gs, positions)
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

// rebuildSource is the source of a rebuild's loop: the rebuild's group
// member, which the rebuild closes itself (after the swap), and which
// reports the rebuild's progress as batches commit.
type rebuildSource struct {
	*consume.GroupSource
	committed func(recs []eventstore.Record)
}

// Committed reports the progress.
func (s *rebuildSource) Committed(recs []eventstore.Record) {
	s.GroupSource.Committed(recs)
	s.committed(recs)
}

// Close leaves the member in the group: the swap commits through it.
func (s *rebuildSource) Close() error { return nil }

// errBehindLive refuses a swap to a generation that has applied less of
// some partition than the current one: queries would go back in time.
var errBehindLive = errors.New("projection: rebuild is behind the live generation")

// swap makes generation next current and deletes generation cur, in one
// Update, while no query reads; then the rebuild's member leaves the new
// generation's group, and the live loop, if Run runs it, stops and Run
// continues on the new generation.
func (p *Projection) swap(ctx context.Context, cur, next uint64, gs *consume.GroupSource, positions map[eventstore.TopicPartition]int64) error {
	l, err := p.newLoop(next)
	if err != nil {
		return err
	}
	p.mu.Lock()
	err = p.s.Update(ctx, func(txn eventstore.Txn) error {
		if err := p.checkGen(txn, cur); errors.Is(err, errGenChanged) {
			return fmt.Errorf("projection %q: the generation moved from %d during the rebuild", p.name, cur)
		} else if err != nil {
			return err
		}
		if err := p.catchUpLive(ctx, txn, cur, next, gs.Consumer(), positions); err != nil {
			return err
		}
		if err := txn.Set(p.genKey(), encodeGen(next)); err != nil {
			return err
		}
		if err := txn.Delete(p.buildingKey()); err != nil {
			return err
		}
		// Every older generation goes: the current one, and any key a live
		// loop's park wrote into an earlier one that a swap had outrun.
		return txn.DeleteRange(p.key.String("g").Uint(0), p.genPrefix(next))
	})
	if err != nil {
		p.mu.Unlock()
		if errors.Is(err, errBehindLive) {
			return err
		}
		return fmt.Errorf("projection %q: rebuild: swap generations: %w", p.name, err)
	}
	// The rebuild's member leaves before the live loop joins its group.
	_ = gs.Close()
	stop, done := p.stopLive, p.liveDone
	if stop != nil {
		stop()
	}
	p.gen, p.loop, p.base = next, l, maps.Clone(positions)
	p.st.Lock()
	p.signalLocked()
	p.st.Unlock()
	p.mu.Unlock()
	// The old live loop leaves its group before Rebuild returns, so that
	// the next rebuild finds that group empty.
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	return nil
}

// catchUpLive brings the new generation up to the current generation's
// checkpoint on every partition, within the swap's Update: Updates are
// serialized, so the live checkpoint cannot move meanwhile, and a steady
// stream of appends cannot keep the rebuild one step behind forever. It
// applies at most a few batches this way; a larger gap, or a handler
// error, sends the rebuild back to its loop (errBehindLive), where retries
// and the error policy apply.
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
