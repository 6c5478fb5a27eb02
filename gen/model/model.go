package model

import (
	"fmt"
	"time"
)

// Pos is where an element starts in a model file. Line and Col count from
// 1; the zero Pos means unknown (an element built in code).
type Pos struct {
	File string
	Line int
	Col  int
}

// String returns "file:line", "file" or "line N" as far as they are known.
func (p Pos) String() string {
	switch {
	case p.File != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	case p.File != "":
		return p.File
	case p.Line > 0:
		return fmt.Sprintf("line %d", p.Line)
	}
	return "-"
}

// Model is a whole event-storming model: the content of eventmodel.yaml.
type Model struct {
	// Name names the system, e.g. "shop". Generators derive the Go
	// package and proto package names from it.
	Name string `yaml:"name"`
	// Version is the model's own version, free text (e.g. "1.0.0").
	Version string `yaml:"version,omitempty"`
	// Doc describes the system.
	Doc string `yaml:"doc,omitempty"`
	// Contexts are the bounded contexts, in file order.
	Contexts []*Context `yaml:"contexts"`
	// Sagas are the process managers that span contexts.
	Sagas []*Saga `yaml:"sagas,omitempty"`
	// Hotspots are open questions about the system as a whole.
	Hotspots []*Hotspot `yaml:"hotspots,omitempty"`
	// Unresolved lists what an importer could not decide; a person
	// resolves each item and removes it. See Warnings.
	Unresolved []*Unresolved `yaml:"unresolved,omitempty"`

	Pos Pos `yaml:"-"`
}

// Context is a bounded context.
type Context struct {
	// Name is the context's name, an identifier such as "Order".
	Name string `yaml:"name"`
	// Doc describes the context.
	Doc string `yaml:"doc,omitempty"`
	// Topic is the log topic of the context's public events; empty means
	// the model's name and the context's name in lower case joined by a
	// dot (see TopicName).
	Topic string `yaml:"topic,omitempty"`
	// Types are the named message types that fields may refer to.
	Types []*Message `yaml:"types,omitempty"`
	// Aggregates are the context's aggregates.
	Aggregates []*Aggregate `yaml:"aggregates,omitempty"`
	// ReadModels are the context's read models (projections).
	ReadModels []*ReadModel `yaml:"read_models,omitempty"`
	// Policies are the context's policies (when event, then command).
	Policies []*Policy `yaml:"policies,omitempty"`
	// Externals are the external systems the context talks to.
	Externals []*External `yaml:"externals,omitempty"`
	// Sagas are process managers that live in this context.
	Sagas []*Saga `yaml:"sagas,omitempty"`
	// Hotspots are open questions about this context.
	Hotspots []*Hotspot `yaml:"hotspots,omitempty"`

	Pos Pos `yaml:"-"`
}

// Message is a named message type declared in a context's types section,
// e.g. LineItem{sku string, qty int, price decimal}.
type Message struct {
	Name   string    `yaml:"name"`
	Doc    string    `yaml:"doc,omitempty"`
	Fields FieldList `yaml:"fields,omitempty"`

	Pos Pos `yaml:"-"`
}

// Aggregate is a consistency boundary: it decides commands into events.
type Aggregate struct {
	// Name is the aggregate's name, e.g. "Order".
	Name string `yaml:"name"`
	// ID is the name of the field that identifies an instance, e.g.
	// "order_id". Every command and event of the aggregate carries it
	// implicitly, as a string.
	ID string `yaml:"id"`
	// Doc describes the aggregate.
	Doc string `yaml:"doc,omitempty"`
	// Topic is the log topic of the aggregate's events; empty means the
	// context's topic for a context's only aggregate (when the context
	// names one), else "<model>.<aggregates>".
	Topic string `yaml:"topic,omitempty"`
	// Commands are the commands the aggregate decides.
	Commands []*Command `yaml:"commands,omitempty"`
	// Events are the events it emits.
	Events []*Event `yaml:"events,omitempty"`
	// Errors are the business errors its commands may return.
	Errors []*Error `yaml:"errors,omitempty"`
	// Scenarios are given-when-then examples of its rules.
	Scenarios []*Scenario `yaml:"scenarios,omitempty"`

	Pos Pos `yaml:"-"`
}

// Command is a request to an aggregate.
type Command struct {
	Name string `yaml:"name"`
	Doc  string `yaml:"doc,omitempty"`
	// Actor is who sends the command (a person's role or a system).
	Actor string `yaml:"actor,omitempty"`
	// Fields are the command's fields, besides the aggregate's ID.
	Fields FieldList `yaml:"fields,omitempty"`
	// Emits names the events of the aggregate the command may emit.
	Emits []string `yaml:"emits,omitempty"`
	// Errors names the aggregate's errors the command may return.
	Errors []string `yaml:"errors,omitempty"`
	// HTTP is the route hint, e.g. "POST /v1/orders/{order_id}:pay".
	HTTP *Route `yaml:"http,omitempty"`

	Pos Pos `yaml:"-"`
}

// Event is a domain event: a fact that happened.
type Event struct {
	Name string `yaml:"name"`
	Doc  string `yaml:"doc,omitempty"`
	// Fields are the event's fields, besides the aggregate's ID.
	Fields FieldList `yaml:"fields,omitempty"`
	// Version is the event's schema version; 0 in the file means 1 (see
	// SchemaVersion).
	Version int `yaml:"version,omitempty"`
	// Public events are published to other contexts (and described in
	// AsyncAPI); the others stay inside their context.
	Public bool `yaml:"public,omitempty"`

	Pos Pos `yaml:"-"`
}

// SchemaVersion returns the event's schema version: Version, or 1 when it
// is not set.
func (e *Event) SchemaVersion() int {
	if e.Version <= 0 {
		return 1
	}
	return e.Version
}

// Error is a business error an aggregate's commands may return.
type Error struct {
	Name string `yaml:"name"`
	Doc  string `yaml:"doc,omitempty"`
	// Code is the gRPC status code it maps to: invalid_argument,
	// failed_precondition, not_found, already_exists or aborted (the
	// CamelCase spellings, e.g. FailedPrecondition, are accepted too).
	// Empty means failed_precondition.
	Code string `yaml:"code,omitempty"`

	Pos Pos `yaml:"-"`
}

// ReadModel is a projection that answers queries.
type ReadModel struct {
	Name string `yaml:"name"`
	Doc  string `yaml:"doc,omitempty"`
	// Key names the field (one of Fields) that identifies a row.
	Key string `yaml:"key"`
	// Fields are the read model's columns.
	Fields FieldList `yaml:"fields,omitempty"`
	// From names the events that feed it; a name may be qualified
	// ("Context.Event") to name another context's public event.
	From []string `yaml:"from,omitempty"`
	// HTTP is the route hint of its query, e.g. "GET /v1/orders/{order_id}".
	HTTP *Route `yaml:"http,omitempty"`
	// Rows names the list field of its list query's response (a page of
	// rows), "orders" for {"orders": [...]}; default "rows".
	Rows string `yaml:"rows,omitempty"`
	// Custom says that the read model is kept by hand (a stream app, a
	// cache, another service): the generator makes its query RPC, which
	// asks a hand-written source, and neither a projection nor a table.
	// It needs an http route hint.
	Custom bool `yaml:"custom,omitempty"`

	Pos Pos `yaml:"-"`
}

// Policy is a reaction: whenever an event happens, send a command.
type Policy struct {
	Name string `yaml:"name"`
	Doc  string `yaml:"doc,omitempty"`
	// When names the event; it may be qualified ("Context.Event").
	When string `yaml:"when"`
	// Then names the command; it may be qualified ("Context.Command").
	Then string `yaml:"then"`
	// Map gives the command's fields: target field ← source field of the
	// event (or a literal in quotes).
	Map map[string]string `yaml:"map,omitempty"`
	// If gives the condition under which the policy sends its command:
	// fields of the event (or its aggregate's ID) and the values they must
	// equal, all of them ({method: card}). Without it, every such event
	// sends the command. Only string, enum, integer and bool fields can be
	// compared.
	If map[string]any `yaml:"if,omitempty"`

	Pos Pos `yaml:"-"`
}

// External is an external system.
type External struct {
	Name string `yaml:"name"`
	Doc  string `yaml:"doc,omitempty"`
	// UsedBy names the commands and policies that use it.
	UsedBy []string `yaml:"used_by,omitempty"`

	Pos Pos `yaml:"-"`
}

// Saga is a process manager: it follows a workflow across aggregates,
// keyed by a correlation field.
type Saga struct {
	Name string `yaml:"name"`
	Doc  string `yaml:"doc,omitempty"`
	// CorrelateBy is the field, present in every event the saga reacts
	// to, that identifies one instance of the workflow.
	CorrelateBy string `yaml:"correlate_by"`
	// StartsOn is the event that starts an instance.
	StartsOn string `yaml:"starts_on"`
	// ReactsTo are the saga's reactions, in order.
	ReactsTo []*Reaction `yaml:"reacts_to,omitempty"`
	// Timeout is what happens when an instance does not end in time.
	Timeout *Timeout `yaml:"timeout,omitempty"`
	// EndsOn are the events that end an instance.
	EndsOn []string `yaml:"ends_on,omitempty"`

	Pos Pos `yaml:"-"`
}

// Reaction is a step of a saga: on an event, send commands.
type Reaction struct {
	// On names the event (qualified names allowed).
	On string `yaml:"on"`
	// Then names the commands to send (qualified names allowed).
	Then []string `yaml:"then,omitempty"`
	// Map gives the commands' fields: target field ← source field.
	Map map[string]string `yaml:"map,omitempty"`

	Pos Pos `yaml:"-"`
}

// Timeout is a saga's deadline: After the start, if the saga has not
// ended, it sends Then.
type Timeout struct {
	After time.Duration `yaml:"after"`
	Then  string        `yaml:"then"`
	// Name names the deadline in the saga (default "timeout").
	Name string `yaml:"name,omitempty"`

	Pos Pos `yaml:"-"`
}

// Scenario is a given-when-then example of an aggregate's rule: given
// these events, when this command, then these events (or this error).
type Scenario struct {
	Name  string           `yaml:"name"`
	Given []*EventInstance `yaml:"given,omitempty"`
	When  *CommandInstance `yaml:"when"`
	Then  []*EventInstance `yaml:"then,omitempty"`
	// Error names the error the command fails with; Then is empty then.
	Error string `yaml:"error,omitempty"`

	Pos Pos `yaml:"-"`
}

// EventInstance is an event with field values, in a scenario. In the file
// it is a mapping with one key, the event's name: {OrderPlaced: {total: 100}}.
type EventInstance struct {
	Event  string
	Fields map[string]any

	Pos Pos
}

// CommandInstance is a command with field values, in a scenario. In the
// file it is a mapping with one key, the command's name.
type CommandInstance struct {
	Command string
	Fields  map[string]any

	Pos Pos
}

// Hotspot is an open question, kept with the model. In the file it is
// either a string or a mapping with text and on.
type Hotspot struct {
	Text string `yaml:"text"`
	// On names the element the question is about (optional).
	On string `yaml:"on,omitempty"`

	Pos Pos `yaml:"-"`
}

// Unresolved is something an importer could not decide, such as a sticky
// of an unknown colour or an arrow between two events.
type Unresolved struct {
	// Item is the board item's id.
	Item string `yaml:"item"`
	// Text is the item's text, for a person to find it.
	Text string `yaml:"text,omitempty"`
	// Reason says why it was not decided.
	Reason string `yaml:"reason"`

	Pos Pos `yaml:"-"`
}

// Route is an HTTP route hint, written "METHOD /path/{field}[:verb]".
// Raw keeps the text as written; Method and Path are set when it has the
// form METHOD PATH (Validate reports when it has not).
type Route struct {
	Raw    string
	Method string
	Path   string

	Pos Pos
}

// String returns the route as written.
func (r *Route) String() string { return r.Raw }

// FieldList is a list of fields, written in the file as a mapping from
// field name to its type ("sku: string") or to a mapping with type, doc
// and optional; the order of the file is kept.
type FieldList []*Field

// Field is a field of a command, event, read model or message.
type Field struct {
	Name string
	// Spec is the type as written, e.g. "list<LineItem>".
	Spec string
	// Type is Spec parsed; nil when Spec is malformed (Validate reports it).
	Type *Type
	// Optional fields may be absent; the others are required.
	Optional bool
	Doc      string

	Pos Pos
}

// Field returns the field named name, or nil.
func (l FieldList) Field(name string) *Field {
	for _, f := range l {
		if f.Name == name {
			return f
		}
	}
	return nil
}
