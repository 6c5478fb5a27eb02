package projection

import (
	"context"
	"fmt"

	"github.com/muninn-es/muninn/consume"
)

// Headers a projection adds to the records the Park policy writes to the
// dead-letter topic, beside consume's (consume.HeaderTopic,
// consume.HeaderError, ...).
const (
	// HeaderProjection is the projection's name.
	HeaderProjection = "muninn.dlq.projection"
	// HeaderGeneration is the generation whose loop parked the record.
	HeaderGeneration = "muninn.dlq.generation"
)

// Parking is the consume loop's (consume.Park): a record is parked by one
// append to the dead-letter topic that writes its mark in the state space
// in the same batch, keyed by its consumer group and position with
// NoStream, and a record found parked at a partition's checkpoint after a
// crash is skipped, never applied; so a record is applied or parked, once.
// A projection keeps the marks in the generation (consume.WithStatePrefix),
// so each generation has its own parked records, and a rebuild starts
// without any: it parks again what still fails.

// Parked lists the records parked in the current generation, in order of
// topic, partition and offset, replayed ones included (with their
// ReplayedAt). It is empty unless the policy is consume.Park.
func (p *Projection) Parked(ctx context.Context) ([]consume.ParkedRecord, error) {
	_, l, unlock, err := p.hold(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out, err := l.Parked(ctx)
	if err != nil {
		return nil, fmt.Errorf("projection %q: %w", p.name, err)
	}
	return out, nil
}

// Replay applies the record parked at pos (its original position) to the
// current generation again, and marks it replayed in the same Update, so a
// record is replayed at most once. If the handler fails, Replay returns its
// error and the record stays parked. It returns an error wrapping
// consume.ErrNotParked if no record is parked at pos or it was replayed or
// discarded. It may run while Run runs.
func (p *Projection) Replay(ctx context.Context, pos Position) error {
	_, l, unlock, err := p.hold(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := l.Replay(ctx, pos); err != nil {
		return fmt.Errorf("projection %q: %w", p.name, err)
	}
	return nil
}

// Discard forgets the record parked at pos in the current generation
// without applying it: it no longer appears in Parked (its copy stays in
// the dead-letter topic). It returns an error wrapping consume.ErrNotParked
// if no record is parked at pos.
func (p *Projection) Discard(ctx context.Context, pos Position) error {
	_, l, unlock, err := p.hold(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := l.Discard(ctx, pos); err != nil {
		return fmt.Errorf("projection %q: %w", p.name, err)
	}
	return nil
}
