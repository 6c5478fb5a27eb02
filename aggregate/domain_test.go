package aggregate_test

import (
	"errors"
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/eventstore"
)

// The test domain: a tally that counts additions.

type Tally struct {
	Total, Count int
	Notes        []string
}

type TallyCommand interface{ isTallyCommand() }

type Add struct {
	N    int
	Note string
}
type Reset struct{}

func (Add) isTallyCommand()   {}
func (Reset) isTallyCommand() {}

type TallyEvent interface{ isTallyEvent() }

// Added is at schema v3: v1 had {"n"}, v2 renamed it "amount", v3 added Note.
type Added struct {
	Amount int    `json:"amount"`
	Note   string `json:"note"`
}
type Cleared struct{}

func (Added) isTallyEvent()   {}
func (Cleared) isTallyEvent() {}

var errNothingToReset = errors.New("tally: nothing to reset")

func tallyDecider() aggregate.Decider[Tally, TallyCommand, TallyEvent] {
	return aggregate.Decider[Tally, TallyCommand, TallyEvent]{
		Decide: func(s Tally, c TallyCommand) ([]TallyEvent, error) {
			switch c := c.(type) {
			case Add:
				return []TallyEvent{Added{Amount: c.N, Note: c.Note}}, nil
			case Reset:
				if s.Count == 0 {
					return nil, errNothingToReset
				}
				return []TallyEvent{Cleared{}}, nil
			}
			return nil, errors.New("unknown command")
		},
		Evolve: func(s Tally, e TallyEvent) Tally {
			switch e := e.(type) {
			case Added:
				s.Total += e.Amount
				s.Count++
				if e.Note != "" {
					s.Notes = append(s.Notes, e.Note)
				}
			case Cleared:
				s = Tally{}
			}
			return s
		},
	}
}

// tallyEvents registers the tally's events with the upcasters of Added's
// history: "tally.add" v1 {"n"} became "tally.added" v2 {"amount"}, and v3
// added "note".
func tallyEvents(t testing.TB) *aggregate.Events[TallyEvent] {
	t.Helper()
	ev, err := aggregate.NewEvents[TallyEvent](
		aggregate.Type[Added]("tally.added", aggregate.Schema(3)),
		aggregate.Type[Cleared]("tally.cleared"),
		// v1 to v2 renames the type and the field.
		aggregate.Upcast("tally.add", 1, func(r aggregate.Raw) (aggregate.Raw, error) {
			r, err := aggregate.JSONUpcaster(2, func(m map[string]any) error {
				m["amount"] = m["n"]
				delete(m, "n")
				return nil
			})(r)
			r.Type = "tally.added"
			return r, err
		}),
		aggregate.Upcast("tally.added", 2, aggregate.JSONUpcaster(3, func(m map[string]any) error {
			m["note"] = "from v2"
			return nil
		})),
	)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func newTally(t testing.TB, opts ...aggregate.Option) *aggregate.Aggregate[Tally, TallyCommand, TallyEvent] {
	t.Helper()
	a, err := aggregate.New("tally", tallyDecider(), tallyEvents(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func openMem(t testing.TB) eventstore.Store {
	t.Helper()
	s, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newRepo(t testing.TB, s eventstore.Store, a *aggregate.Aggregate[Tally, TallyCommand, TallyEvent]) *aggregate.Repository[Tally, TallyCommand, TallyEvent] {
	t.Helper()
	r, err := aggregate.NewRepository(t.Context(), s, a)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
