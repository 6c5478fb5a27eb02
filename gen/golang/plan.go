package golang

import (
	"fmt"
	"strings"

	"github.com/muninn-es/muninn/gen/model"
)

// The plan is the model translated into Go: every name the generated code
// declares, decided once, so that the emitters only print.

// kind is the kind of a field's type.
type kind int

const (
	kString kind = iota
	kInt
	kInt64
	kBool
	kDecimal
	kTimestamp
	kEnum
	kList
	kRef
)

// gtype is a field's type.
type gtype struct {
	kind  kind
	elem  *gtype   // kList
	ref   string   // kRef: the model name of the message type
	enums []string // kEnum
}

// fromModel returns the gtype of a parsed model type.
func fromModel(t *model.Type) (*gtype, error) {
	switch t.Kind {
	case model.String:
		return &gtype{kind: kString}, nil
	case model.Int:
		return &gtype{kind: kInt}, nil
	case model.Int64:
		return &gtype{kind: kInt64}, nil
	case model.Bool:
		return &gtype{kind: kBool}, nil
	case model.Decimal:
		return &gtype{kind: kDecimal}, nil
	case model.Timestamp:
		return &gtype{kind: kTimestamp}, nil
	case model.Enum:
		return &gtype{kind: kEnum, enums: t.Values}, nil
	case model.List:
		if t.Elem == nil {
			return nil, fmt.Errorf("list without an element type")
		}
		e, err := fromModel(t.Elem)
		if err != nil {
			return nil, err
		}
		return &gtype{kind: kList, elem: e}, nil
	case model.Ref:
		return &gtype{kind: kRef, ref: t.Ref}, nil
	}
	return nil, fmt.Errorf("unknown type %s", t)
}

// goType returns the Go spelling of t.
func (t *gtype) goType() string {
	switch t.kind {
	case kString, kEnum:
		return "string"
	case kInt:
		return "int"
	case kInt64, kDecimal:
		return "int64"
	case kBool:
		return "bool"
	case kTimestamp:
		return "time.Time"
	case kList:
		return "[]" + t.elem.goType()
	case kRef:
		if pkg, name, ok := strings.Cut(t.ref, "."); ok {
			return pkg + "." + exported(name) // qualified by qualify
		}
		return exported(t.ref)
	}
	return "any"
}

// usesTime reports whether t needs package time.
func (t *gtype) usesTime() bool {
	switch t.kind {
	case kTimestamp:
		return true
	case kList:
		return t.elem.usesTime()
	}
	return false
}

// pfield is one field of a message.
type pfield struct {
	name   string // as the model spells it (snake_case), the JSON name
	goName string
	typ    *gtype
	doc    string
}

// pmsg is a command, an event or a message type.
type pmsg struct {
	name    string // model name
	goName  string
	doc     string
	fields  []*pfield
	wire    string // event type or command name in the log/outbox
	version int    // events: schema version
	rule    string // commands: decide<Name>; events: evolve<Name>
	emits   []string
	route   *proute // commands: the HTTP route hint, if any
}

// proute is a command's HTTP route hint.
type proute struct{ method, path string }

func (m *pmsg) field(name string) *pfield {
	for _, f := range m.fields {
		if f.name == name || f.goName == name {
			return f
		}
	}
	return nil
}

// pagg is one aggregate.
type pagg struct {
	name         string // model name
	goName       string // the state type, written by hand
	doc          string
	id           string // the ID field
	topic        string
	topicConst   string
	commandIface string
	eventIface   string
	eventsFunc   string
	newFunc      string
	deciderFunc  string
	initialFunc  string
	decideFunc   string
	evolveFunc   string
	commands     []*pmsg
	events       []*pmsg
	scenarios    []*pscenario
}

func (a *pagg) command(name string) *pmsg {
	for _, c := range a.commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (a *pagg) event(name string) *pmsg {
	for _, e := range a.events {
		if e.name == name {
			return e
		}
	}
	return nil
}

// pinstance is an event or command with field values, in a scenario.
type pinstance struct {
	msg    *pmsg
	fields map[string]any
}

// pscenario is one given-when-then scenario of an aggregate.
type pscenario struct {
	name    string
	goName  string
	given   []pinstance
	when    pinstance
	then    []pinstance
	err     string // the expected error as the model names it, if any
	errKind string // its command.Kind, a Go expression
}

// pctx is one bounded context: one Go package.
type pctx struct {
	name    string
	pkg     string // Go package name and directory
	doc     string
	types   []*pmsg
	aggs    []*pagg
	service string // the model's name, the prefix of topics and wire names
}

func (c *pctx) typ(name string) *pmsg {
	for _, t := range c.types {
		if t.name == name {
			return t
		}
	}
	return nil
}

// pmodel is the whole plan.
type pmodel struct {
	name     string
	file     string // the model file's base name, for headers
	contexts []*pctx
	service  string
	policies []*ppolicy
	sagas    []*psaga
	// readModels are generated only for a service (Options.Service).
	readModels []*preadmodel
}
