// Package legend is the event-storming colour legend that the board
// picture and the Mermaid flowchart share.
package legend

// Kind is the kind of a sticky.
type Kind string

// The kinds of stickies, in the order of the legend.
const (
	Actor     Kind = "actor"
	Command   Kind = "command"
	Aggregate Kind = "aggregate"
	Event     Kind = "event"
	Policy    Kind = "policy"
	Saga      Kind = "saga"
	ReadModel Kind = "read_model"
	External  Kind = "external"
	Hotspot   Kind = "hotspot"
)

// Kinds lists the kinds in the legend's order.
var Kinds = []Kind{Actor, Command, Aggregate, Event, Policy, Saga, ReadModel, External, Hotspot}

// Colors are a kind's fill, stroke and text colours.
type Colors struct{ Fill, Stroke, Text string }

// Of returns the colours of kind k.
func Of(k Kind) Colors {
	switch k {
	case Actor:
		return Colors{"#fef445", "#b8a800", "#1a1a1a"}
	case Command:
		return Colors{"#a6ccf5", "#3d7fc7", "#1a1a1a"}
	case Aggregate:
		return Colors{"#fff9b1", "#c9b800", "#1a1a1a"}
	case Event:
		return Colors{"#ff9d48", "#c2601a", "#1a1a1a"}
	case Policy:
		return Colors{"#c6a2d2", "#7d4f8f", "#1a1a1a"}
	case Saga:
		return Colors{"#b18ad0", "#6a3f8f", "#1a1a1a"}
	case ReadModel:
		return Colors{"#c9df56", "#6f8a00", "#1a1a1a"}
	case External:
		return Colors{"#ea94bb", "#a84d78", "#1a1a1a"}
	case Hotspot:
		return Colors{"#f24726", "#a82512", "#ffffff"}
	}
	return Colors{"#ffffff", "#888888", "#1a1a1a"}
}

// Label returns the kind's name for people: "read model".
func Label(k Kind) string {
	switch k {
	case ReadModel:
		return "read model"
	case External:
		return "external system"
	}
	return string(k)
}
