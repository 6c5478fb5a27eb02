package saga_test

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/saga"
)

// The examples' two bounded contexts: trips (a traveller plans a trip and
// pays for it) and hotels (a hotel books and cancels rooms for trips).

// Trip is the state of a trip.
type Trip struct {
	Hotel  string
	Paid   bool
	Status string // "planned", "confirmed" or "cancelled: <reason>"
}

// TripCommand is PlanTrip, PayTrip, ConfirmTrip or CancelTrip.
type TripCommand interface{ isTripCommand() }

type PlanTrip struct{ Hotel string }
type PayTrip struct{}
type ConfirmTrip struct{}
type CancelTrip struct{ Reason string }

func (PlanTrip) isTripCommand()    {}
func (PayTrip) isTripCommand()     {}
func (ConfirmTrip) isTripCommand() {}
func (CancelTrip) isTripCommand()  {}

// TripEvent is TripPlanned, TripPaid, TripConfirmed or TripCancelled.
type TripEvent interface{ isTripEvent() }

type TripPlanned struct{ Hotel string }
type TripPaid struct{}
type TripConfirmed struct{}
type TripCancelled struct{ Reason string }

func (TripPlanned) isTripEvent()   {}
func (TripPaid) isTripEvent()      {}
func (TripConfirmed) isTripEvent() {}
func (TripCancelled) isTripEvent() {}

func decideTrip(t Trip, c TripCommand) ([]TripEvent, error) {
	switch c := c.(type) {
	case PlanTrip:
		if t.Status != "" {
			return nil, command.Rejected("trip already planned")
		}
		return []TripEvent{TripPlanned{c.Hotel}}, nil
	case PayTrip:
		return []TripEvent{TripPaid{}}, nil
	case ConfirmTrip:
		return []TripEvent{TripConfirmed{}}, nil
	case CancelTrip:
		return []TripEvent{TripCancelled{c.Reason}}, nil
	}
	return nil, command.Invalid("unknown trip command %T", c)
}

func evolveTrip(t Trip, e TripEvent) Trip {
	switch e := e.(type) {
	case TripPlanned:
		t.Hotel, t.Status = e.Hotel, "planned"
	case TripPaid:
		t.Paid = true
	case TripConfirmed:
		t.Status = "confirmed"
	case TripCancelled:
		t.Status = "cancelled: " + e.Reason
	}
	return t
}

// Hotel is the state of a hotel: the trips it has a room booked for.
type Hotel struct{ Booked map[string]bool }

// HotelCommand is BookRoom or CancelRoom.
type HotelCommand interface{ isHotelCommand() }

type BookRoom struct{ TripID string }
type CancelRoom struct{ TripID string }

func (BookRoom) isHotelCommand()   {}
func (CancelRoom) isHotelCommand() {}

// HotelEvent is RoomBooked or RoomCancelled.
type HotelEvent interface{ isHotelEvent() }

type RoomBooked struct{ TripID string }
type RoomCancelled struct{ TripID string }

func (RoomBooked) isHotelEvent()    {}
func (RoomCancelled) isHotelEvent() {}

func decideHotel(h Hotel, c HotelCommand) ([]HotelEvent, error) {
	switch c := c.(type) {
	case BookRoom:
		return []HotelEvent{RoomBooked{c.TripID}}, nil
	case CancelRoom:
		if !h.Booked[c.TripID] {
			return nil, command.Rejected("no room booked for trip %q", c.TripID)
		}
		return []HotelEvent{RoomCancelled{c.TripID}}, nil
	}
	return nil, command.Invalid("unknown hotel command %T", c)
}

func evolveHotel(h Hotel, e HotelEvent) Hotel {
	if h.Booked == nil {
		h.Booked = map[string]bool{}
	}
	switch e := e.(type) {
	case RoomBooked:
		h.Booked[e.TripID] = true
	case RoomCancelled:
		delete(h.Booked, e.TripID)
	}
	return h
}

// travel is the two contexts on one in-memory store, each aggregate
// registered with one command bus (which creates the topics "trips" and
// "hotels").
type travel struct {
	store  eventstore.Store
	bus    *command.Bus
	trips  *command.Handler[Trip, TripCommand, TripEvent]
	hotels *command.Handler[Hotel, HotelCommand, HotelEvent]
}

func openTravel(ctx context.Context) *travel {
	store, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	tripEvents, err := aggregate.NewEvents[TripEvent](
		aggregate.Type[TripPlanned]("trip.planned"),
		aggregate.Type[TripPaid]("trip.paid"),
		aggregate.Type[TripConfirmed]("trip.confirmed"),
		aggregate.Type[TripCancelled]("trip.cancelled"),
	)
	if err != nil {
		log.Fatal(err)
	}
	trips, err := aggregate.New("trips", aggregate.Decider[Trip, TripCommand, TripEvent]{Decide: decideTrip, Evolve: evolveTrip}, tripEvents)
	if err != nil {
		log.Fatal(err)
	}
	hotelEvents, err := aggregate.NewEvents[HotelEvent](
		aggregate.Type[RoomBooked]("room.booked"),
		aggregate.Type[RoomCancelled]("room.cancelled"),
	)
	if err != nil {
		log.Fatal(err)
	}
	hotels, err := aggregate.New("hotels", aggregate.Decider[Hotel, HotelCommand, HotelEvent]{Decide: decideHotel, Evolve: evolveHotel}, hotelEvents)
	if err != nil {
		log.Fatal(err)
	}
	t := &travel{store: store}
	if t.bus, err = command.New(store); err != nil {
		log.Fatal(err)
	}
	if t.trips, err = command.Register(ctx, t.bus, trips); err != nil {
		log.Fatal(err)
	}
	if t.hotels, err = command.Register(ctx, t.bus, hotels); err != nil {
		log.Fatal(err)
	}
	return t
}

func (t *travel) Close() {
	t.bus.Close()
	t.store.Close()
}

func (t *travel) trip(ctx context.Context, id string) Trip {
	st, err := t.trips.Load(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	return st.State
}

// runSaga runs s until the returned stop is called (once or more).
func runSaga[S any](s *saga.Saga[S]) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			log.Fatal(err)
		}
	})
}

// Booking is the state of the trip booking saga.
type Booking struct {
	Hotel        string
	Booked, Paid bool
}

// PaymentDue is the message of the "pay-by" timeout.
type PaymentDue struct{}

// PayWithin is how long a traveller has to pay for a planned trip.
const PayWithin = 24 * time.Hour

// bookingSaga books the hotel room of a planned trip and confirms the trip
// once the room is booked and the trip paid. A trip not paid within
// PayWithin is cancelled, and its room with it.
func bookingSaga() *saga.Definition[Booking] {
	d := saga.Define[Booking]("trip-booking", "trips", "hotels")
	saga.Command[BookRoom](d, "room.book")
	saga.Command[CancelRoom](d, "room.cancel")
	saga.Command[ConfirmTrip](d, "trip.confirm")
	saga.Command[CancelTrip](d, "trip.cancel")

	saga.StartOn(d, "trip.planned", saga.RecordKey[TripPlanned], func(s *saga.Step[Booking], e TripPlanned) error {
		s.State.Hotel = e.Hotel
		s.Send(e.Hotel, BookRoom{s.Key()}, saga.CompensateWith(e.Hotel, CancelRoom{s.Key()}))
		s.Schedule("pay-by", s.Now().Add(PayWithin), PaymentDue{})
		return nil
	})
	// A hotel's events are keyed by the hotel: the trip they belong to is
	// in the event.
	saga.On(d, "room.booked", func(_ eventstore.Record, e RoomBooked) string { return e.TripID },
		func(s *saga.Step[Booking], _ RoomBooked) error {
			s.State.Booked = true
			confirmIfDone(s)
			return nil
		})
	saga.On(d, "trip.paid", saga.RecordKey[TripPaid], func(s *saga.Step[Booking], _ TripPaid) error {
		s.State.Paid = true
		s.Cancel("pay-by")
		confirmIfDone(s)
		return nil
	})
	saga.OnTimeout(d, "pay-by", func(s *saga.Step[Booking], _ PaymentDue) error {
		s.Fail(fmt.Sprintf("not paid within %s", PayWithin))
		return nil
	})
	saga.OnFailure(d, func(s *saga.Step[Booking], f saga.Failure) error {
		s.Send(s.Key(), CancelTrip{f.Reason})
		return nil
	})
	return d
}

func confirmIfDone(s *saga.Step[Booking]) {
	if s.State.Booked && s.State.Paid {
		s.Send(s.Key(), ConfirmTrip{})
		s.Complete()
	}
}

// A saga across two contexts: a planned trip books a hotel room, and the
// trip is confirmed once the room is booked and the trip paid.
func Example() {
	ctx := context.Background()
	t := openTravel(ctx)
	defer t.Close()

	s, err := saga.New(t.store, t.bus, bookingSaga())
	if err != nil {
		log.Fatal(err)
	}
	stop := runSaga(s)
	defer stop()

	if _, err := t.trips.Dispatch(ctx, "trip-1", PlanTrip{Hotel: "hotel-by-the-sea"}); err != nil {
		log.Fatal(err)
	}
	if _, err := t.trips.Dispatch(ctx, "trip-1", PayTrip{}); err != nil {
		log.Fatal(err)
	}

	// Wait (at most 10 s) until the saga has completed and dispatched all
	// its commands.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	in, err := s.WaitFor(wctx, "trip-1", func(in saga.Instance[Booking]) bool {
		return in.Status == saga.StatusCompleted && in.PendingCommands == 0
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s after %d steps, %+v\n", in.Key, in.Status, in.Steps, in.State)
	fmt.Println("trip:", t.trip(ctx, "trip-1").Status)
	// Output:
	// trip-1: completed after 3 steps, {Hotel:hotel-by-the-sea Booked:true Paid:true}
	// trip: confirmed
}

// A policy: whenever a room is booked, confirm its trip. The command it
// sends has an ID derived from the event, and carries the event's ID as
// its causation ID, which the command's events record in the header
// command.CausationHeader.
func ExampleDefinePolicy() {
	ctx := context.Background()
	t := openTravel(ctx)
	defer t.Close()

	p := saga.DefinePolicy("confirm-booked-trips", "hotels")
	saga.Command[ConfirmTrip](p, "trip.confirm")
	saga.Whenever(p, "room.booked", func(s *saga.Step[struct{}], e RoomBooked) error {
		s.Send(e.TripID, ConfirmTrip{})
		return nil
	})
	s, err := saga.New(t.store, t.bus, p)
	if err != nil {
		log.Fatal(err)
	}
	stop := runSaga(s)
	defer stop()

	if _, err := t.trips.Dispatch(ctx, "trip-2", PlanTrip{Hotel: "hotel-on-the-hill"}); err != nil {
		log.Fatal(err)
	}
	booked, err := t.hotels.Dispatch(ctx, "hotel-on-the-hill", BookRoom{TripID: "trip-2"})
	if err != nil {
		log.Fatal(err)
	}

	// A policy's instance is keyed by its event's ID, and is gone once its
	// commands are dispatched: wait until the policy has dispatched one.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.WaitFor(wctx, booked.EventIDs[0].String(), func(saga.Instance[struct{}]) bool {
		return s.Stats().Commands == 1
	}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("trip:", t.trip(ctx, "trip-2").Status)
	for rec, err := range t.store.ReadStream(ctx, "trips", "trip-2", 2) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Type, "caused by room.booked:", rec.Headers[command.CausationHeader] == booked.EventIDs[0].String())
	}
	// Output:
	// trip: confirmed
	// trip.confirmed caused by room.booked: true
}

// A deadline fires by the saga's clock: with a clock.Manual, a test moves
// time on instead of sleeping. The trip is not paid in time, so the saga
// fails, cancels the room it booked (its compensation) and then the trip
// (its OnFailure handler).
func ExampleOnTimeout() {
	ctx := context.Background()
	t := openTravel(ctx)
	defer t.Close()

	clock := clock.NewManual(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	s, err := saga.New(t.store, t.bus, bookingSaga(), saga.WithClock(clock))
	if err != nil {
		log.Fatal(err)
	}
	stop := runSaga(s)
	defer stop()

	if _, err := t.trips.Dispatch(ctx, "trip-3", PlanTrip{Hotel: "hotel-in-town"}); err != nil {
		log.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	in, err := s.WaitFor(wctx, "trip-3", func(in saga.Instance[Booking]) bool {
		return in.State.Booked && in.PendingCommands == 0
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s, deadline %q in %s\n", in.Key, in.Status, in.Deadlines[0].Name, in.Deadlines[0].At.Sub(clock.Now()))

	clock.Advance(PayWithin)
	in, err = s.WaitFor(wctx, "trip-3", func(in saga.Instance[Booking]) bool {
		return in.Status == saga.StatusFailed
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s: %s\n", in.Key, in.Status, in.Failure.Reason)
	fmt.Println("trip:", t.trip(ctx, "trip-3").Status)
	hotel, err := t.hotels.Load(ctx, "hotel-in-town")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("room booked:", hotel.State.Booked["trip-3"])
	// Output:
	// trip-3: running, deadline "pay-by" in 24h0m0s
	// trip-3: failed: not paid within 24h0m0s
	// trip: cancelled: not paid within 24h0m0s
	// room booked: false
}

// Inspecting a saga: the running instances with their state and pending
// deadlines, and every instance with its status.
func ExampleSaga_Instances() {
	ctx := context.Background()
	t := openTravel(ctx)
	defer t.Close()

	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	s, err := saga.New(t.store, t.bus, bookingSaga(), saga.WithClock(clock.NewManual(start)))
	if err != nil {
		log.Fatal(err)
	}
	stop := runSaga(s)
	defer stop()

	for _, id := range []string{"trip-4", "trip-5", "trip-6"} {
		if _, err := t.trips.Dispatch(ctx, id, PlanTrip{Hotel: "hotel-by-the-lake"}); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := t.trips.Dispatch(ctx, "trip-5", PayTrip{}); err != nil {
		log.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, id := range []string{"trip-4", "trip-5", "trip-6"} {
		_, err := s.WaitFor(wctx, id, func(in saga.Instance[Booking]) bool {
			// trip-5 is paid too: wait for the step that completes it.
			return in.State.Booked && in.PendingCommands == 0 && (id != "trip-5" || in.Status == saga.StatusCompleted)
		})
		if err != nil {
			log.Fatal(err)
		}
	}

	fmt.Println("running:")
	for in, err := range s.Instances(ctx, saga.WithStatus(saga.StatusRunning)) {
		if err != nil {
			log.Fatal(err)
		}
		for _, d := range in.Deadlines {
			fmt.Printf("  %s: paid %t, %q due at start+%s\n", in.Key, in.State.Paid, d.Name, d.At.Sub(start))
		}
	}
	fmt.Println("all:")
	for in, err := range s.Instances(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("  %s: %s after %d steps\n", in.Key, in.Status, in.Steps)
	}
	// Output:
	// running:
	//   trip-4: paid false, "pay-by" due at start+24h0m0s
	//   trip-6: paid false, "pay-by" due at start+24h0m0s
	// all:
	//   trip-4: running after 2 steps
	//   trip-5: completed after 3 steps
	//   trip-6: running after 2 steps
}
