package model

import (
	"fmt"
	"strings"
)

// Context returns the bounded context named name, or nil.
func (m *Model) Context(name string) *Context {
	for _, c := range m.Contexts {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Topic returns the log topic of c's events: c.Topic, or the model's and
// the context's names in lower case joined by a dot ("shop.order").
func (m *Model) Topic(c *Context) string {
	if c.Topic != "" {
		return c.Topic
	}
	if m.Name == "" {
		return strings.ToLower(c.Name)
	}
	return strings.ToLower(m.Name) + "." + strings.ToLower(c.Name)
}

// Aggregate returns the aggregate named name, or nil.
func (c *Context) Aggregate(name string) *Aggregate {
	for _, a := range c.Aggregates {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Event returns the event named name of any of c's aggregates, or nil.
func (c *Context) Event(name string) *Event {
	if a := c.EventOwner(name); a != nil {
		return a.Event(name)
	}
	return nil
}

// EventOwner returns the aggregate of c that has the event named name, or
// nil.
func (c *Context) EventOwner(name string) *Aggregate {
	for _, a := range c.Aggregates {
		if a.Event(name) != nil {
			return a
		}
	}
	return nil
}

// Command returns the command named name of any of c's aggregates, or nil.
func (c *Context) Command(name string) *Command {
	if a := c.CommandOwner(name); a != nil {
		return a.Command(name)
	}
	return nil
}

// CommandOwner returns the aggregate of c that has the command named
// name, or nil.
func (c *Context) CommandOwner(name string) *Aggregate {
	for _, a := range c.Aggregates {
		if a.Command(name) != nil {
			return a
		}
	}
	return nil
}

// ReadModel returns the read model named name, or nil.
func (c *Context) ReadModel(name string) *ReadModel {
	for _, r := range c.ReadModels {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Policy returns the policy named name, or nil.
func (c *Context) Policy(name string) *Policy {
	for _, p := range c.Policies {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// External returns the external system named name, or nil.
func (c *Context) External(name string) *External {
	for _, e := range c.Externals {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Message returns the message type named name of c's types section, or
// nil.
func (c *Context) Message(name string) *Message {
	for _, t := range c.Types {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Event returns the aggregate's event named name, or nil.
func (a *Aggregate) Event(name string) *Event {
	for _, e := range a.Events {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Command returns the aggregate's command named name, or nil.
func (a *Aggregate) Command(name string) *Command {
	for _, c := range a.Commands {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Error returns the aggregate's error named name, or nil.
func (a *Aggregate) Error(name string) *Error {
	for _, e := range a.Errors {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// IDField returns the aggregate's implicit ID field (a required string).
func (a *Aggregate) IDField() *Field {
	return &Field{Name: a.ID, Spec: "string", Type: &Type{Kind: String}, Pos: a.Pos}
}

// EventRef is an event resolved from a reference, with where it lives.
type EventRef struct {
	Context   *Context
	Aggregate *Aggregate
	Event     *Event
}

// CommandRef is a command resolved from a reference, with where it lives.
type CommandRef struct {
	Context   *Context
	Aggregate *Aggregate
	Command   *Command
}

// split cuts a reference "Context.Name" into its parts; an unqualified
// reference has an empty context.
func split(ref string) (ctx, name string) {
	if c, n, ok := strings.Cut(ref, "."); ok {
		return c, n
	}
	return "", ref
}

// ResolveEvent finds the event a reference names, seen from context from:
// "Name" is an event of from (or, when from is nil, of the one context
// that has it), "Context.Name" an event of that context. The error says
// what was not found, or that an unqualified name is ambiguous.
func (m *Model) ResolveEvent(from *Context, ref string) (EventRef, error) {
	cn, name := split(ref)
	find := func(c *Context) (EventRef, bool) {
		if a := c.EventOwner(name); a != nil {
			return EventRef{Context: c, Aggregate: a, Event: a.Event(name)}, true
		}
		return EventRef{}, false
	}
	return resolve(m, from, cn, name, "event", find)
}

// ResolveCommand finds the command a reference names, seen from context
// from, as ResolveEvent does for events.
func (m *Model) ResolveCommand(from *Context, ref string) (CommandRef, error) {
	cn, name := split(ref)
	find := func(c *Context) (CommandRef, bool) {
		if a := c.CommandOwner(name); a != nil {
			return CommandRef{Context: c, Aggregate: a, Command: a.Command(name)}, true
		}
		return CommandRef{}, false
	}
	return resolve(m, from, cn, name, "command", find)
}

func resolve[R any](m *Model, from *Context, cn, name, kind string, find func(*Context) (R, bool)) (R, error) {
	var zero R
	if name == "" {
		return zero, fmt.Errorf("no %s named", kind)
	}
	if cn != "" {
		c := m.Context(cn)
		if c == nil {
			return zero, fmt.Errorf("unknown context %q in %s %s.%s", cn, kind, cn, name)
		}
		if r, ok := find(c); ok {
			return r, nil
		}
		return zero, fmt.Errorf("unknown %s %q in context %s", kind, name, cn)
	}
	if from != nil {
		if r, ok := find(from); ok {
			return r, nil
		}
		return zero, fmt.Errorf("unknown %s %q in context %s (name another context's as Context.%s)", kind, name, from.Name, name)
	}
	var found []R
	var where []string
	for _, c := range m.Contexts {
		if r, ok := find(c); ok {
			found = append(found, r)
			where = append(where, c.Name)
		}
	}
	switch len(found) {
	case 0:
		return zero, fmt.Errorf("unknown %s %q", kind, name)
	case 1:
		return found[0], nil
	}
	return zero, fmt.Errorf("%s %q is ambiguous: contexts %s have it (qualify it as Context.%s)", kind, name, strings.Join(where, ", "), name)
}

// Condition returns the policy's if as text for diagrams and docs, its
// fields in name order ("level = 2 and method = card"), or "" when the
// policy sends its command on every event.
func (p *Policy) Condition() string {
	var parts []string
	for _, k := range sortedKeys(p.If) {
		parts = append(parts, fmt.Sprintf("%s = %v", k, p.If[k]))
	}
	return strings.Join(parts, " and ")
}
