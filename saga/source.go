package saga

import (
	"context"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
)

// source is the saga's consume.Source: its consumer group's records, and
// the deadlines that fall due by the saga's clock, as records without a
// topic (Key the instance key, Type the deadline's name, CausationID its
// ID, Timestamp its time). Poll delivers the due deadlines first, purges
// the instances past their retention when that falls due, waits for room
// in the dispatcher, and then waits for records until the earliest deadline
// or purge falls due.
type source[S any] struct {
	g *consume.GroupSource
	r *run[S]
}

// Topics returns the group's topics, for the loop's Status.
func (src *source[S]) Topics() []string { return src.g.Topics() }

// Assignment returns the partitions the group member holds now.
func (src *source[S]) Assignment() []eventstore.TopicPartition { return src.g.Assignment() }

// Group returns the group's name.
func (src *source[S]) Group() string { return src.g.Group() }

// Poll returns the due deadlines, or else waits for records until the
// next deadline or purge falls due.
func (src *source[S]) Poll(ctx context.Context, max int) ([]eventstore.Record, error) {
	r, c := src.r, src.r.s.opts.clock
	for {
		recs, err := src.ready(ctx, max)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
		wake := r.purgeAt
		if next, ok := r.timers.peek(); ok && next.at.Before(wake) {
			wake = next.at
		}
		if !wake.After(c.Now()) {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		due, stop := c.At(wake)
		go func() {
			select {
			case <-due:
				cancel()
			case <-pctx.Done():
			}
		}()
		recs, err = src.g.Poll(pctx, max)
		stop()
		woke := pctx.Err() != nil
		cancel()
		if err != nil && ctx.Err() == nil && woke {
			continue
		}
		return recs, err
	}
}

// TryPoll returns the due deadlines, or else the records available now.
func (src *source[S]) TryPoll(ctx context.Context, max int) ([]eventstore.Record, error) {
	recs, err := src.ready(ctx, max)
	if err != nil || len(recs) > 0 {
		return recs, err
	}
	return src.g.TryPoll(ctx, max)
}

// ready returns the deadlines due by now, up to max; if there are none, it
// purges if that is due and waits for room in the dispatcher.
func (src *source[S]) ready(ctx context.Context, max int) ([]eventstore.Record, error) {
	r := src.r
	s := r.s
	// A batch that did not reach Committed was aborted.
	r.release()
	now := s.opts.clock.Now()
	var recs []eventstore.Record
	for len(recs) < max {
		t, ok := r.timers.peek()
		if !ok || t.at.After(now) {
			break
		}
		r.timers.pop()
		r.inflight[t.id] = t
		recs = append(recs, eventstore.Record{Key: t.key, Type: t.name, CausationID: t.id, Timestamp: t.at})
	}
	if len(recs) > 0 {
		return recs, nil
	}
	if !now.Before(r.purgeAt) {
		if _, err := s.Purge(ctx); err != nil {
			return nil, err
		}
		r.purgeAt = now.Add(s.opts.purge)
	}
	return nil, r.d.waitRoom()
}

// timerOf returns the deadline a record of the source stands for.
func timerOf(rec *eventstore.Record) timer {
	return timer{at: rec.Timestamp, key: rec.Key, name: rec.Type, id: rec.CausationID}
}

// Stage commits the group's offsets past the records read from it.
func (src *source[S]) Stage(tx eventstore.Txn, recs []eventstore.Record) error {
	return src.g.Stage(tx, recs)
}

// Committed forgets the deadlines of a durable batch: they have fired.
func (src *source[S]) Committed(recs []eventstore.Record) {
	for i := range recs {
		if recs[i].Topic == "" {
			delete(src.r.inflight, recs[i].CausationID)
		}
	}
}

// Rewind puts the deadlines in flight back and rewinds the group: a
// rebalance voided a batch.
func (src *source[S]) Rewind(ctx context.Context) error {
	r := src.r
	r.release()
	for id, t := range r.inflight {
		r.timers.push(t)
		delete(r.inflight, id)
	}
	return src.g.Rewind(ctx)
}

// Close leaves the group.
func (src *source[S]) Close() error { return src.g.Close() }
