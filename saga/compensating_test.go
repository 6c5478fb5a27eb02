package saga_test

import (
	"context"
	"testing"

	"github.com/muninn-es/muninn/saga"
)

// An event handled in the same batch as the failure of its instance, after
// it, is ignored like one that comes after the instance ended: it must not
// take a step on the compensating instance (here one that would complete
// it and send a command).
func TestEventAfterFailureInSameBatchIsIgnored(t *testing.T) {
	ctx := t.Context()
	tr := openTravel(ctx)
	t.Cleanup(tr.Close)
	d := saga.Define[Booking]("fail-then-complete", "trips")
	saga.Command[BookRoom](d, "room.book")
	saga.Command[CancelRoom](d, "room.cancel")
	// A compensation to dispatch keeps the failed instance compensating
	// for the rest of the batch. (The hotel rejects it: no room is booked.)
	saga.StartOn(d, "trip.planned", saga.RecordKey[TripPlanned], func(s *saga.Step[Booking], e TripPlanned) error {
		s.RegisterCompensation(e.Hotel, CancelRoom{s.Key()})
		return nil
	})
	saga.On(d, "trip.paid", saga.RecordKey[TripPaid], func(s *saga.Step[Booking], _ TripPaid) error {
		s.Fail("payment refused")
		return nil
	})
	saga.On(d, "trip.cancelled", saga.RecordKey[TripCancelled], func(s *saga.Step[Booking], _ TripCancelled) error {
		s.State.Booked = true
		s.Send("hotel-x", BookRoom{s.Key()})
		s.Complete()
		return nil
	})
	// The three events are in the log before Run starts: its first poll
	// reads them into one batch.
	for _, c := range []TripCommand{PlanTrip{Hotel: "hotel-x"}, PayTrip{}, CancelTrip{Reason: "changed plans"}} {
		if _, err := tr.trips.Dispatch(ctx, "trip-7", c); err != nil {
			t.Fatal(err)
		}
	}
	s, err := saga.New(tr.store, tr.bus, d)
	if err != nil {
		t.Fatal(err)
	}
	stop := runSaga(s)
	t.Cleanup(stop)

	wctx, cancel := context.WithTimeout(ctx, waitTime)
	defer cancel()
	in, err := s.WaitFor(wctx, "trip-7", func(in saga.Instance[Booking]) bool {
		return (in.Status == saga.StatusFailed || in.Status == saga.StatusCompleted) && in.PendingCommands == 0
	})
	if err != nil {
		t.Fatal(err)
	}
	if in.Status != saga.StatusFailed || in.State.Booked || in.Steps != 2 || len(in.CompensationErrors) != 1 {
		t.Errorf("instance %s after %d steps, state %+v, compensation errors %q; want failed after 2 (the third event ignored) with the rejected compensation", in.Status, in.Steps, in.State, in.CompensationErrors)
	}
	stop()
	if st := s.Stats(); st.Ignored != 1 || st.Commands != 0 || st.Completed != 0 {
		t.Errorf("stats %+v; want 1 ignored event, no command, none completed", st)
	}
	hotel, err := tr.hotels.Load(ctx, "hotel-x")
	if err != nil {
		t.Fatal(err)
	}
	if hotel.State.Booked["trip-7"] {
		t.Error("the failed trip's room was booked")
	}
}
